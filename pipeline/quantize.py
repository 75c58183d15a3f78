"""FaceNet in INT8 (``--precision int8``): NNCF's post-training quantization of the converted model, calibrated on
training data only (the demo enrollment photos' faces, read from the FaceNet sdist mien downloads anyway) and
cached beside the conversions, so it runs once per machine (~1 min).

Measured (benchmarks/int8_facenet.py, docs/results.md): ~3x faster per face than fp32, embeddings at cosine 0.997
of fp32's, the same AUC on the LFW dev folds but ~0.2 point less 3-fold accuracy (as bf16), which is why ``auto``
keeps FaceNet in fp32. NNCF is an optional dependency: ``pip install 'mien[int8]'``.
"""
from __future__ import annotations

import contextlib
import logging
import sys
from typing import Callable

import numpy as np

from mien.pipeline.errors import UsageError
from mien.pipeline.runtime import CompiledForward, cache_key, cached_model, converted_model

# bump when the calibration set or NNCF's settings change: a new cache key, never a stale model
RECIPE_VERSION = 1
QUANTIZABLE = ("facenet",)  # the networks with a calibration set and a measured INT8 form


def nncf_version() -> str:
    """The installed NNCF's version, or a UsageError saying how to install it."""
    try:
        import nncf
    except ImportError:
        raise UsageError("--precision int8 quantizes FaceNet with NNCF, which is not installed: "
                         "pip install 'mien[int8]' (or choose --precision auto).") from None
    return nncf.__version__


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
    import nncf

    nncf.set_log_level(logging.WARNING)
    with contextlib.redirect_stdout(sys.stderr):  # its progress bars: stdout may carry results (--json -)
        return nncf.quantize(model, nncf.Dataset(calibration), preset=nncf.QuantizationPreset.MIXED,
                             subset_size=len(calibration), fast_bias_correction=False)


def quantized_model(name: str, source_sha256: str, tf_function: Callable[[], object]):
    """``name``'s INT8 model from the cache, or quantized now from its fp32 conversion (~40 s, once)."""
    variant = f"int8-nncf{nncf_version()}-q{RECIPE_VERSION}"
    if name not in QUANTIZABLE:
        raise ValueError(f"{name} has no INT8 form; quantizable: {', '.join(QUANTIZABLE)}")

    def quantize():
        return quantize_facenet(converted_model(name, source_sha256, tf_function), facenet_calibration())

    return cached_model(cache_key(name, source_sha256, variant=variant), quantize,
                        f"INT8 {name} (NNCF, calibrated on the demo enrollment faces; ~1 min)")


def int8_forward(name: str, source_sha256: str, tf_function: Callable[[], object]) -> CompiledForward:
    """``compile_forward`` for ``--precision int8``: ``name``'s INT8 model compiled for this CPU."""
    return CompiledForward(quantized_model(name, source_sha256, tf_function), precision="int8")
