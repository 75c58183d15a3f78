"""Measuring identity accuracy: closed-set top-1 and open-set leave-one-person-out rejection."""
from __future__ import annotations

import os

import numpy as np

from mien.identity.classifier import UNKNOWN, MatchThresholds
from mien.identity.gallery import GallerySnapshot
from mien.identity.matchers import build_matcher
from mien.pipeline.enroll import embed_folder


def _matcher(vectors: np.ndarray, labels: list[str], th: MatchThresholds, kind: str):
    """A matcher over in-memory embeddings (evaluation never touches the gallery's people)."""
    snapshot = GallerySnapshot(np.asarray(vectors, np.float32), list(labels), np.arange(len(labels), dtype=np.int64),
                               0, None, {"distance": th.distance, "probability": th.probability})
    return build_matcher(snapshot, "evaluation", kind)


FPIR_TARGETS = (0.01, 0.003)


def threshold_at_fpir(nonmated: np.ndarray, fpir: float) -> float:
    """The largest distance threshold at which at most ``fpir`` of the non-mated searches (strangers) are named."""
    d = np.sort(np.asarray(nonmated, np.float64))
    allowed = int(np.floor(fpir * len(d)))
    if allowed >= len(d):
        return float("inf")
    return float(np.floor(np.nextafter(d[allowed], -np.inf) * 1e4) / 1e4)  # below the first stranger let in, 4 decimals


def fnir_at(mated_d: np.ndarray, mated_correct: np.ndarray, threshold: float) -> float:
    """NIST FRVT's false-negative identification rate: mated searches not named correctly within ``threshold``."""
    return float(np.mean(~(mated_correct & (mated_d <= threshold)))) if len(mated_d) else float("nan")


def open_set_curve(mated_d: np.ndarray, mated_correct: np.ndarray, nonmated_d: np.ndarray,
                   targets: tuple[float, ...] = FPIR_TARGETS) -> dict:
    """FNIR at fixed FPIR (score = distance to the candidate's nearest enrolled face), as FRVT reports it."""
    out = {}
    for f in targets:
        t = threshold_at_fpir(nonmated_d, f)
        out[str(f)] = {"distance_threshold": t if np.isfinite(t) else None,
                       "fnir": round(fnir_at(mated_d, mated_correct, t), 4),
                       "fpir": round(float(np.mean(nonmated_d <= t)), 4) if len(nonmated_d) else None}
    return out


def evaluate_identity(enroll_dir: str | os.PathLike, test_dir: str | os.PathLike, recognizer,
                      thresholds: MatchThresholds | None = None, progress=None, matcher: str = "auto",
                      fpir: float | None = None) -> dict:
    """Top-1 accuracy per person, then for each person: enroll the others and count false accepts/rejects.

    Also FNIR at FPIR 1 % and 0.3 % with strangers from leave-one-person-out; with ``fpir`` the distance
    threshold is the one that reaches that FPIR (chosen on these searches) instead of a raw distance.
    """
    th = thresholds or MatchThresholds()
    train = embed_folder(enroll_dir, recognizer, progress=progress)
    test = embed_folder(test_dir, recognizer, progress=progress)
    persons = sorted(set(train.labels))
    truth = np.array(test.labels)
    nonmated = []
    for p in persons:  # strangers: each person's test photos against a gallery without them
        keep = np.array(train.labels) != p
        if (truth == p).any() and keep.any():
            sub = _matcher(train.vectors[keep], list(np.array(train.labels)[keep]), th, matcher)
            nonmated += [m.distance for m in sub.predict(test.vectors[truth == p])]
    nonmated_d = np.array(nonmated)
    full = _matcher(train.vectors, train.labels, th, matcher).predict(test.vectors)
    mated = np.isin(truth, persons)
    mated_d = np.array([m.distance for m, k in zip(full, mated) if k])
    mated_ok = np.array([m.candidate == t for m, t, k in zip(full, truth, mated) if k])
    curve = open_set_curve(mated_d, mated_ok, nonmated_d, FPIR_TARGETS + ((fpir,) if fpir else ()))
    if fpir:
        th = MatchThresholds(distance=curve[str(fpir)]["distance_threshold"] or th.distance, probability=th.probability)
    clf = _matcher(train.vectors, train.labels, th, matcher)
    matches = clf.predict(test.vectors)
    top1 = np.array([m.candidate for m in matches]) == truth
    named = np.array([m.name for m in matches]) == truth
    per_person = {p: {"photos": int((truth == p).sum()), "top1": int(top1[truth == p].sum())} for p in sorted(set(truth))}

    strangers = false_accepts = enrolled = false_rejects = 0
    lopo = {}
    for p in persons:
        keep = np.array(train.labels) != p
        sub = _matcher(train.vectors[keep], list(np.array(train.labels)[keep]), th, matcher)
        res = sub.predict(test.vectors)
        is_p = truth == p
        fa = sum(1 for m, s in zip(res, is_p) if s and m.name != UNKNOWN)
        fr = sum(1 for m, s in zip(res, is_p) if not s and m.name == UNKNOWN)
        lopo[p] = {"strangers": int(is_p.sum()), "false_accepts": fa, "enrolled": int((~is_p).sum()), "false_rejects": fr}
        strangers += int(is_p.sum())
        false_accepts += fa
        enrolled += int((~is_p).sum())
        false_rejects += fr
    return {
        "embedder": recognizer.embedder.version,
        "alignment": recognizer.identity_crop.signature,
        "matcher": clf.kind,
        "thresholds": {"distance": th.distance, "probability": th.probability},
        "enrolled_photos": len(train.labels),
        "test_photos": len(test.labels),
        "skipped_test_photos": [s for r in test.report.persons for s in r.skipped],
        "top1_accuracy": float(top1.mean()) if len(top1) else 0.0,
        "open_set_accuracy": float(named.mean()) if len(named) else 0.0,
        "per_person": per_person,
        "fnir_at_fpir": {"mated_searches": len(mated_d), "nonmated_searches": len(nonmated_d), **curve},
        "leave_one_person_out": {
            "stranger_rejection_rate": 1 - false_accepts / strangers if strangers else None,
            "false_accept_rate": false_accepts / strangers if strangers else None,
            "false_reject_rate": false_rejects / enrolled if enrolled else None,
            "per_person": lopo,
        },
    }
