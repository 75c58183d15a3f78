"""FER2013-style data loaders: the shared .npz, the Kaggle fer2013.csv, and image folders."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np

from mien.emotion.errors import EmotionError
from mien.emotion.labels import EMOTIONS
from mien.emotion.training.options import SPLITS
from mien.emotion.weights_io import file_sha256

SIZE = 48
# Folder name -> FER2013 usage; Kaggle image-folder exports use train/ + test/ (+ sometimes validation/).
FOLDER_SPLITS = {"train": "Training", "training": "Training", "val": "PublicTest", "valid": "PublicTest",
                 "validation": "PublicTest", "publictest": "PublicTest", "test": "PrivateTest",
                 "privatetest": "PrivateTest"}
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".pgm")
CSV_COLUMNS = ("emotion", "pixels", "Usage")


class DataFormatError(EmotionError, ValueError):
    """The dataset file or folder does not have the expected layout; the message names the bad row/file."""


@dataclasses.dataclass
class FaceDataset:
    """Grayscale faces with FER2013 labels and usage split."""

    images: np.ndarray  # uint8 [N,48,48]
    labels: np.ndarray  # int64 [N], 0..6 in EMOTIONS order
    usage: np.ndarray   # str [N], one of SPLITS
    source: str
    sha256: str

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of one usage split (e.g. 'PublicTest')."""
        mask = self.usage == name
        return self.images[mask], self.labels[mask]

    def counts(self) -> dict[str, int]:
        """Number of rows per split."""
        return {s: int((self.usage == s).sum()) for s in SPLITS}


def _check(images: np.ndarray, labels: np.ndarray, usage: np.ndarray, where: str) -> None:
    """Validate shapes, label range and split names; raise DataFormatError naming the first bad row."""
    if images.ndim != 3 or images.shape[1:] != (SIZE, SIZE):
        raise DataFormatError(f"{where}: images must be [N,{SIZE},{SIZE}], got {images.shape}")
    if not (len(images) == len(labels) == len(usage)):
        raise DataFormatError(f"{where}: images/labels/usage lengths differ: {len(images)}/{len(labels)}/{len(usage)}")
    bad = np.flatnonzero((labels < 0) | (labels >= len(EMOTIONS)))
    if bad.size:
        raise DataFormatError(f"{where}: row {bad[0]}: label {labels[bad[0]]} outside 0..{len(EMOTIONS) - 1}")
    bad = np.flatnonzero(~np.isin(usage, SPLITS))
    if bad.size:
        raise DataFormatError(f"{where}: row {bad[0]}: usage {usage[bad[0]]!r} not one of {SPLITS}")


def load_npz(path: str | os.PathLike) -> FaceDataset:
    """Load the shared fer2013.npz (keys images, labels, usage)."""
    with np.load(path, allow_pickle=False) as d:
        missing = [k for k in ("images", "labels", "usage") if k not in d.files]
        if missing:
            raise DataFormatError(f"{path}: missing arrays {missing}; has {d.files}")
        images = np.asarray(d["images"], dtype=np.uint8)
        labels = np.asarray(d["labels"]).astype(np.int64)
        usage = np.asarray(d["usage"]).astype(str)
    _check(images, labels, usage, str(path))
    return FaceDataset(images, labels, usage, str(path), file_sha256(path))


def load_csv(path: str | os.PathLike) -> FaceDataset:
    """Load the Kaggle fer2013.csv (columns emotion,pixels,Usage; 2304 space-separated pixels per row)."""
    images, labels, usage = [], [], []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise DataFormatError(f"{path}: empty file")
        header = [h.strip() for h in header]
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise DataFormatError(f"{path}: line 1 (header): missing columns {missing}; expected "
                                  f"{','.join(CSV_COLUMNS)}, got {','.join(header)}")
        ie, ip, iu = (header.index(c) for c in CSV_COLUMNS)
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            where = f"{path}: line {lineno} (data row {lineno - 2})"
            if len(row) != len(header):
                raise DataFormatError(f"{where}: {len(row)} fields, expected {len(header)}")
            try:
                label = int(row[ie])
                pix = np.array(row[ip].split(), dtype=np.int64)
            except ValueError as exc:
                raise DataFormatError(f"{where}: not numeric ({exc})") from exc
            if pix.size != SIZE * SIZE:
                raise DataFormatError(f"{where}: {pix.size} pixels, expected {SIZE * SIZE} ({SIZE}x{SIZE})")
            if pix.min() < 0 or pix.max() > 255:
                raise DataFormatError(f"{where}: pixel values outside 0..255")
            if not 0 <= label < len(EMOTIONS):
                raise DataFormatError(f"{where}: emotion {label} outside 0..{len(EMOTIONS) - 1}")
            if row[iu].strip() not in SPLITS:
                raise DataFormatError(f"{where}: Usage {row[iu]!r} not one of {SPLITS}")
            images.append(pix.astype(np.uint8).reshape(SIZE, SIZE))
            labels.append(label)
            usage.append(row[iu].strip())
    if not images:
        raise DataFormatError(f"{path}: no data rows")
    ds = FaceDataset(np.stack(images), np.array(labels, np.int64), np.array(usage), str(path), file_sha256(path))
    _check(ds.images, ds.labels, ds.usage, str(path))
    return ds


def _read_gray(path: Path) -> np.ndarray:
    """Read one image file as 48x48 uint8 grayscale (resizing if needed)."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise DataFormatError(f"{path}: not a readable image")
    if img.shape != (SIZE, SIZE):
        img = cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return img


def load_image_folders(root: str | os.PathLike) -> FaceDataset:
    """Load ``root/{train,validation,test}/<emotion>/*.png`` folders (Kaggle image export layout)."""
    root = Path(root)
    images, labels, usage, digest = [], [], [], hashlib.sha256()
    split_dirs = sorted(p for p in root.iterdir() if p.is_dir() and p.name.lower() in FOLDER_SPLITS)
    if not split_dirs:
        raise DataFormatError(f"{root}: no split folders; expected train/<emotion>/*.png and test/<emotion>/*.png")
    for split_dir in split_dirs:
        split = FOLDER_SPLITS[split_dir.name.lower()]
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            name = class_dir.name.lower()
            if name not in EMOTIONS:
                raise DataFormatError(f"{class_dir}: unknown emotion folder {class_dir.name!r}; expected one of {EMOTIONS}")
            for f in sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS):
                images.append(_read_gray(f))
                labels.append(EMOTIONS.index(name))
                usage.append(split)
                digest.update(str(f.relative_to(root)).encode())
                digest.update(f.read_bytes())
    if not images:
        raise DataFormatError(f"{root}: no images found under {[d.name for d in split_dirs]}")
    ds = FaceDataset(np.stack(images), np.array(labels, np.int64), np.array(usage), str(root), digest.hexdigest())
    _check(ds.images, ds.labels, ds.usage, str(root))
    return ds


def load_dataset(path: str | os.PathLike) -> FaceDataset:
    """Load FER2013 from an .npz, a Kaggle-style .csv, or an image-folder tree, by what ``path`` is."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"dataset not found: {p} (expected fer2013.npz, fer2013.csv or a folder with train/ and test/)")
    if p.is_dir():
        return load_image_folders(p)
    if p.suffix.lower() == ".npz":
        return load_npz(p)
    if p.suffix.lower() == ".csv":
        return load_csv(p)
    raise DataFormatError(f"{p}: unsupported dataset type; use .npz, .csv or an image folder")


def validation_split(ds: FaceDataset, fraction: float = 0.1, seed: int = 0) -> FaceDataset:
    """If ``ds`` has no PublicTest rows, move a seeded stratified fraction of Training there (folder exports)."""
    if (ds.usage == "PublicTest").any():
        return ds
    rng = np.random.default_rng(seed)
    usage = ds.usage.copy()
    for c in range(len(EMOTIONS)):
        idx = np.flatnonzero((ds.usage == "Training") & (ds.labels == c))
        take = rng.permutation(idx)[: int(round(fraction * idx.size))]
        usage[take] = "PublicTest"
    return dataclasses.replace(ds, usage=usage)


# FER+ (fer2013new.csv) vote columns -> FER2013 classes; contempt, unknown and NF (not a face) are not ours.
FERPLUS_COLUMNS = {"anger": "angry", "disgust": "disgust", "fear": "fear", "happiness": "happy",
                   "sadness": "sad", "surprise": "surprise", "neutral": "neutral"}


def load_ferplus_votes(csv_path: str | os.PathLike, ds: FaceDataset) -> np.ndarray:
    """FER+ annotators' vote shares over the 7 FER2013 classes, float32 [N,7] aligned with ``ds``'s rows, for
    **Training rows only**: test rows are all zero (their votes would leak the test labels into training), as are
    rows without FER+ votes or whose row position is uncertain (the npz's ``row_position_known``)."""
    shares = ferplus_labels(csv_path, ds)[1]
    shares[~((ds.usage == "Training") & _row_position_known(ds))] = 0.0
    return shares


FERPLUS_ALL = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
# FER+ vote column -> our emotion name (unknown and NF, not-a-face, are no emotion)
FERPLUS_NAMES = {**FERPLUS_COLUMNS, "contempt": "contempt"}


def _ferplus_vote_table(csv_path: str | os.PathLike, ds: FaceDataset) -> np.ndarray:
    """The FER+ vote counts float32 [N,10] in FERPLUS_ALL order, aligned with ``ds``'s rows: fer2013new.csv lists
    FER2013's rows in the original order, so its length and Usage column must agree with ``ds``'s."""
    path = Path(csv_path)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    missing = [c for c in ("Usage", *FERPLUS_ALL) if rows and c not in rows[0]]
    if not rows or missing or len(rows) != len(ds.usage):
        raise DataFormatError(f"{path}: not the FER+ vote file of {ds.source} (missing columns {missing or 'none'}, "
                              f"{len(rows)} rows for {len(ds.usage)})")
    usage = np.array([r["Usage"] for r in rows])
    bad = np.flatnonzero(usage != ds.usage)
    if bad.size:
        raise DataFormatError(f"{path}: row {bad[0]} is {str(usage[bad[0]])!r} but {str(ds.usage[bad[0]])!r} in "
                              f"{ds.source}: the files are not in the same row order")
    return np.array([[float(r[c] or 0) for c in FERPLUS_ALL] for r in rows], np.float32)


def ferplus_labels(csv_path: str | os.PathLike, ds: FaceDataset,
                   labels: tuple[str, ...] = EMOTIONS) -> tuple[np.ndarray, np.ndarray]:
    """FER+ labels of every row of ``ds`` in the order of ``labels`` (FER2013's 7 or FER+'s 8 emotions):
    (majority int64 [N], -1 where a face has none; vote shares float32 [N,len(labels)]).

    The majority is the most-voted column, as the FER+ paper scores faces: a face whose most-voted column is not in
    ``labels`` (contempt for the 7, unknown, not-a-face) or is tied, or whose row position in the file is
    uncertain, has none. The shares are the votes over ``labels`` alone, normalised (zero where there are none)."""
    votes = _ferplus_vote_table(csv_path, ds)
    top, winner = votes.max(1), votes.argmax(1)
    unique = (votes == top[:, None]).sum(1) == 1
    ours = [FERPLUS_NAMES.get(c) for c in FERPLUS_ALL]
    to_label = np.array([labels.index(n) if n in labels else -1 for n in ours], np.int64)
    majority = np.where(unique & (top > 0) & _row_position_known(ds), to_label[winner], -1)
    shares = np.zeros((len(votes), len(labels)), np.float32)
    for column, label in enumerate(to_label):
        if label >= 0:
            shares[:, label] = votes[:, column]
    total = shares.sum(1, keepdims=True)
    return majority, np.divide(shares, total, out=np.zeros_like(shares), where=total > 0)


def ferplus_majority(csv_path: str | os.PathLike, ds: FaceDataset, split: str,
                     labels: tuple[str, ...] = EMOTIONS) -> tuple[np.ndarray, np.ndarray]:
    """(row indices into ``split``, majority labels in the order of ``labels``) of the ``split`` faces that have a
    FER+ majority among ``labels`` (``ferplus_labels``)."""
    majority = ferplus_labels(csv_path, ds, labels)[0][ds.usage == split]
    rows = np.flatnonzero(majority >= 0)
    return rows, majority[rows]


def _row_position_known(ds: FaceDataset) -> np.ndarray:
    """The npz's ``row_position_known`` (True where absent: other loaders keep FER2013's row order)."""
    if ds.source.endswith(".npz"):
        with np.load(ds.source, allow_pickle=False) as d:
            if "row_position_known" in d.files:
                return np.asarray(d["row_position_known"], bool)
    return np.ones(len(ds.usage), bool)
