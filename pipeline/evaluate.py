"""Measuring identity accuracy: closed-set top-1 and open-set leave-one-person-out rejection."""
from __future__ import annotations

import os

import numpy as np

from identity.classifier import UNKNOWN, IdentityClassifier, Thresholds
from pipeline.enroll import embed_folder


def evaluate_identity(enroll_dir: str | os.PathLike, test_dir: str | os.PathLike, recognizer,
                      thresholds: Thresholds | None = None, progress=None) -> dict:
    """Top-1 accuracy per person, then for each person: enroll the others and count false accepts/rejects."""
    th = thresholds or Thresholds()
    train = embed_folder(enroll_dir, recognizer, progress=progress)
    test = embed_folder(test_dir, recognizer, progress=progress)
    persons = sorted(set(train.labels))
    clf = IdentityClassifier(train.vectors, train.labels, recognizer.embedder.version, th)
    matches = clf.predict(test.vectors)
    truth = np.array(test.labels)
    top1 = np.array([m.candidate for m in matches]) == truth
    named = np.array([m.name for m in matches]) == truth
    per_person = {p: {"photos": int((truth == p).sum()), "top1": int(top1[truth == p].sum())} for p in sorted(set(truth))}

    strangers = false_accepts = enrolled = false_rejects = 0
    lopo = {}
    for p in persons:
        keep = np.array(train.labels) != p
        sub = IdentityClassifier(train.vectors[keep], list(np.array(train.labels)[keep]), clf.embedder_version, th)
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
        "thresholds": {"distance": th.distance, "probability": th.probability},
        "enrolled_photos": len(train.labels),
        "test_photos": len(test.labels),
        "skipped_test_photos": [s for r in test.report.persons for s in r.skipped],
        "top1_accuracy": float(top1.mean()) if len(top1) else 0.0,
        "open_set_accuracy": float(named.mean()) if len(named) else 0.0,
        "per_person": per_person,
        "leave_one_person_out": {
            "stranger_rejection_rate": 1 - false_accepts / strangers if strangers else None,
            "false_accept_rate": false_accepts / strangers if strangers else None,
            "false_reject_rate": false_rejects / enrolled if enrolled else None,
            "per_person": lopo,
        },
    }
