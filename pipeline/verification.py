"""Face verification measured on pairs (the LFW protocol): is the subject of photo A the person of photo B?

Each image is embedded once through the product's own path (MTCNN with the one-subject retry, the subject rule of
``pipeline.subject``, the FaceNet crop and embedding); a pair's score is the L2 distance of the two embeddings. Reported as LFW papers do: k-fold accuracy
(the threshold of each fold chosen on the other folds) with its standard deviation, and besides it the accuracy at
``mien verify``'s own threshold, ROC AUC and TAR at fixed FARs. A pair with an image where no face was found counts
as wrong, whatever the truth.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mien.pipeline.errors import UsageError


class PairsFileError(UsageError):
    """A pairs file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Pairs:
    """Image paths per pair, whether each pair is the same person, and the fold of each pair."""

    first: list[str]
    second: list[str]
    same: np.ndarray  # bool [P]
    fold: np.ndarray  # int [P]

    @property
    def images(self) -> list[str]:
        """Every image once, in first-seen order."""
        return list(dict.fromkeys(self.first + self.second))


def read_lfw_pairs(path: str | os.PathLike, root: str | os.PathLike, ext: str = ".jpg") -> Pairs:
    """The LFW ``pairs.txt`` format: a header ``K<TAB>N``, then per fold N same-person lines ``name i j`` and N
    different-person lines ``name1 i name2 j``; images at ``root/<name>/<name>_<iiii>.jpg``."""
    path, root = Path(path), Path(root)
    try:
        lines = [ln.split() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise PairsFileError(f"{path}: cannot be read as an LFW pairs file ({exc}).") from None
    try:
        folds, per = int(lines[0][0]), int(lines[0][1])
    except (IndexError, ValueError):
        raise PairsFileError(f"{path}: line 1 must be the LFW header 'FOLDS<TAB>PAIRS', got {' '.join(lines[0][:3]) if lines else 'nothing'!r}.") from None
    if len(lines) - 1 != folds * 2 * per:
        raise PairsFileError(f"{path}: the header promises {folds} folds of 2 x {per} pairs ({folds * 2 * per} lines) "
                             f"but {len(lines) - 1} follow.")
    image = lambda name, i: str(root / name / f"{name}_{int(i):04d}{ext}")  # noqa: E731
    first, second, same, fold = [], [], [], []
    for n, parts in enumerate(lines[1:], start=2):
        try:
            if len(parts) == 3:
                a, b, s = image(parts[0], parts[1]), image(parts[0], parts[2]), True
            elif len(parts) == 4:
                a, b, s = image(parts[0], parts[1]), image(parts[2], parts[3]), False
            else:
                raise ValueError(f"{len(parts)} fields")
        except ValueError as exc:
            raise PairsFileError(f"{path}: line {n} is not 'name i j' nor 'name1 i name2 j' ({exc}).") from None
        first.append(a)
        second.append(b)
        same.append(s)
        fold.append((n - 2) // (2 * per))
    return Pairs(first, second, np.array(same), np.array(fold))


def read_csv_pairs(path: str | os.PathLike, folds: int = 10) -> Pairs:
    """A CSV with columns ``img1,img2,same`` (same: 1/0, true/false); paths relative to the file's folder; pairs
    are dealt into ``folds`` folds in order."""
    path = Path(path)
    truth = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
    first, second, same = [], [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = {"img1", "img2", "same"} - set(reader.fieldnames or [])
            if missing:
                raise PairsFileError(f"{path}: a pairs CSV needs the columns img1, img2, same (missing: "
                                     f"{', '.join(sorted(missing))}).")
            for n, row in enumerate(reader, start=2):
                value = truth.get(str(row["same"]).strip().lower())
                if value is None:
                    raise PairsFileError(f"{path}: line {n}: same={row['same']!r}, expected 1/0 or true/false.")
                first.append(str(path.parent / row["img1"]))
                second.append(str(path.parent / row["img2"]))
                same.append(value)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PairsFileError(f"{path}: cannot be read as a pairs CSV ({exc}).") from None
    if not same:
        raise PairsFileError(f"{path}: no pairs.")
    return Pairs(first, second, np.array(same), np.arange(len(same)) % max(1, folds))


def best_threshold(dist: np.ndarray, same: np.ndarray) -> float:
    """The distance threshold (same person at or below it) with the highest accuracy on these pairs: the midpoint
    between the two sorted distances where the best split falls."""
    finite = np.sort(np.unique(dist[np.isfinite(dist)]))
    if not len(finite):
        return 0.0
    candidates = np.concatenate([[finite[0] - 1e-6], (finite[:-1] + finite[1:]) / 2, [finite[-1] + 1e-6]])
    acc = [np.mean((dist <= t) == same) for t in candidates]
    return float(candidates[int(np.argmax(acc))])


def roc_auc(dist: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve of ``-distance`` as the score of 'same person' (ties count half)."""
    from scipy.stats import rankdata

    score = -np.where(np.isfinite(dist), dist, np.nanmax(dist[np.isfinite(dist)], initial=4.0) + 1.0)
    ranks = rankdata(score)
    pos, neg = same.sum(), (~same).sum()
    return float((ranks[same].sum() - pos * (pos + 1) / 2) / (pos * neg)) if pos and neg else float("nan")


def tar_at_far(dist: np.ndarray, same: np.ndarray, far: float) -> dict:
    """The true-accept rate at the largest threshold whose false-accept rate is at most ``far``."""
    impostor = np.sort(dist[~same & np.isfinite(dist)])
    allowed = int(np.floor(far * (~same).sum()))
    threshold = float(impostor[allowed] - 1e-9) if allowed < len(impostor) else float("inf")
    accepted = dist <= threshold
    return {"far": float(accepted[~same].mean()), "tar": float(accepted[same].mean()), "threshold": threshold}


def score_pairs(dist: np.ndarray, same: np.ndarray, fold: np.ndarray, verify_threshold: float) -> dict:
    """Every number of the report from pair distances (inf where an image had no face: such a pair is wrong)."""
    folds = sorted(set(fold.tolist()))
    per_fold, thresholds = [], []
    usable = np.isfinite(dist)
    for k in folds:
        test = fold == k
        train = ~test if len(folds) > 1 else test
        t = best_threshold(dist[train & usable], same[train & usable])
        thresholds.append(t)
        per_fold.append(float(np.mean(((dist[test] <= t) == same[test]) & usable[test])))
    at_verify = float(np.mean(((dist <= verify_threshold) == same) & usable))
    return {"pairs": int(len(same)), "same_pairs": int(same.sum()), "folds": len(folds),
            "kfold_accuracy": float(np.mean(per_fold)), "kfold_std": float(np.std(per_fold)),
            "fold_accuracy": per_fold, "fold_thresholds": thresholds,
            "verify_threshold": verify_threshold, "accuracy_at_verify_threshold": at_verify,
            "auc": roc_auc(dist, same),
            "tar_at_far": {str(f): tar_at_far(dist, same, f) for f in (1e-2, 1e-3)},
            "pairs_without_face": int((~usable).sum())}


def plot_roc(dist: np.ndarray, same: np.ndarray, png: str | os.PathLike, title: str) -> None:
    """The ROC curve (TAR against FAR, FAR on a log axis) as a PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mien.identity.storage import atomic_path

    finite = np.where(np.isfinite(dist), dist, np.inf)
    ts = np.unique(finite[np.isfinite(finite)])
    far = np.array([(finite[~same] <= t).mean() for t in ts])
    tar = np.array([(finite[same] <= t).mean() for t in ts])
    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=110)
    ax.plot(np.maximum(far, 1e-4), tar, color="#1f6fb4", lw=2)
    ax.set_xscale("log")
    ax.set_xlim(1e-3, 1.0)
    ax.set_ylim(0.8, 1.001)
    ax.set_xlabel("false accept rate (different people accepted)")
    ax.set_ylabel("true accept rate")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def embed_subjects(paths: list[str], recognizer, progress=iter, chunk: int = 32,
                   subjects: dict | None = None) -> dict[str, np.ndarray | None]:
    """The embedding of each image's subject (``Recognizer.subject``: the relaxed retry when no face is found, then
    the subject rule) as the product makes it (the recognizer's identity crop and flip), None where no face was
    found or the image could not be read; ``chunk`` faces per FaceNet call. ``subjects``, if given, receives each
    image's ``Subject`` (how its face was found and chosen)."""
    from mien.pipeline.images import ImageError, load_image

    out: dict[str, np.ndarray | None] = {}
    pending: list[tuple[str, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        vecs = recognizer.embed_crops([c for _, c in pending])
        out.update((p, v) for (p, _), v in zip(pending, vecs))
        pending.clear()

    for path in progress(paths):
        try:
            image = load_image(path)
        except ImageError:
            out[path] = None
            continue
        subject = recognizer.subject(image)
        if subject is None:
            out[path] = None
            continue
        if subjects is not None:
            subjects[path] = subject
        pending.append((path, recognizer.identity_crop(image, subject.face)))
        if len(pending) >= chunk:
            flush()
    flush()
    return out


def subject_counts(pairs: Pairs, subjects: dict) -> dict:
    """What the retry and the subject rule did: the images whose face only the relaxed retry found, those whose
    subject is not their largest face, and the pairs holding either kind of image."""
    retried = sorted(p for p, s in subjects.items() if s.face.detected_on_retry)
    by_rule = sorted(p for p, s in subjects.items() if s.decided_by_rule)
    involves = lambda images: int(sum(a in images or b in images for a, b in zip(pairs.first, pairs.second)))  # noqa: E731
    return {"images_found_on_retry": retried, "images_subject_not_largest": by_rule,
            "images_with_several_faces": int(sum(s.faces > 1 for s in subjects.values())),
            "pairs_with_retry_image": involves(set(retried)), "pairs_decided_by_subject_rule": involves(set(by_rule))}


def pair_distances(pairs: Pairs, embeddings: dict[str, np.ndarray | None]) -> np.ndarray:
    """L2 distance per pair; inf where either image has no embedding."""
    dist = np.full(len(pairs.same), np.inf)
    for i, (a, b) in enumerate(zip(pairs.first, pairs.second)):
        ea, eb = embeddings.get(a), embeddings.get(b)
        if ea is not None and eb is not None:
            dist[i] = float(np.linalg.norm(ea - eb))
    return dist
