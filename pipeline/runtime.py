"""The inference runtime (OpenVINO) in one place: one Core per process, models compiled for low latency in fp32,
and Keras models converted once into OpenVINO's format, cached under ``MIEN_HOME/cache/openvino``.

TensorFlow stays for training and as the reference backend (``--runtime tensorflow``); recognition with the
default runtime imports it only to convert a model the first time (``mien models fetch`` does that up front).
A cached conversion is keyed by the source weights' sha256, the OpenVINO version and CONVERSION_VERSION, so a
new model, a new OpenVINO or a change to how mien converts is a new key, never a stale file.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from mien.identity.storage import sha256_file

log = logging.getLogger(__name__)
RUNTIMES = ("openvino", "tensorflow")
CONVERSION_VERSION = 2  # bump when the way a model is converted changes (2: a digest of the cached files)
DIGESTS = "sha256.json"  # beside model.xml/.bin: a same-size damaged file is noticed, not run


@lru_cache(maxsize=1)
def core():
    """The process's OpenVINO Core (device plugins load once)."""
    import openvino as ov

    return ov.Core()


def default_threads() -> int:
    """Threads for one inference: ``$MIEN_THREADS`` if set (a batch worker sharing the machine), else the CPUs
    this process may use, at most 4 (small networks stop scaling there)."""
    from mien.pipeline import settings

    if (n := settings.threads()) is not None:
        return n
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def compile_model(model, threads: int | None = None):
    """Compile an OpenVINO model for this CPU: latency-oriented, fp32 (no bf16/int8 shortcuts that shift outputs)."""
    return core().compile_model(model, "CPU", {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32",
        "INFERENCE_NUM_THREADS": int(threads or default_threads()),
    })


def cache_dir() -> Path:
    from mien.pipeline.home import mien_home

    return mien_home() / "cache" / "openvino"


def cache_key(name: str, source_sha256: str) -> str:
    """Folder name of a converted model: what it is, its weights, the OpenVINO version, mien's conversion version."""
    import openvino as ov

    version = ov.get_version().split("-")[0]
    return f"{name}-{source_sha256[:16]}-ov{version}-c{CONVERSION_VERSION}"


def is_cached(name: str, source_sha256: str) -> bool:
    return (cache_dir() / cache_key(name, source_sha256) / "model.xml").is_file()


def damaged(folder: Path) -> str | None:
    """What is wrong with a cached conversion (a file missing, or not the bytes that were written), or None.
    Hashing both files costs ~0.1 s for FaceNet's 90 MB, once per process."""
    try:
        want = json.loads((folder / DIGESTS).read_text())
        for name in ("model.xml", "model.bin"):
            if sha256_file(folder / name) != want[name]:
                return f"damaged ({name} differs from what was written)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"incomplete ({exc})"
    return None


def converted_model(name: str, source_sha256: str, tf_function: Callable[[], object]):
    """The OpenVINO model for ``name`` from the cache, or converted now from ``tf_function()`` (a
    ``tf.function`` with an input signature; TensorFlow is imported only here) and cached atomically:
    the two IR files are written into a temporary folder that is renamed into place."""
    import openvino as ov

    folder = cache_dir() / cache_key(name, source_sha256)
    xml = folder / "model.xml"
    if xml.is_file():
        problem = damaged(folder)
        if problem is None:
            try:
                return core().read_model(xml)
            except RuntimeError as exc:
                problem = f"unreadable ({exc})"
        log.warning("%s: cached %s conversion %s; converting again", folder, name, problem)
        shutil.rmtree(folder, ignore_errors=True)
    log.info("converting %s for OpenVINO (once; cached in %s)", name, folder)
    model = ov.convert_model(tf_function())
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        ov.save_model(model, tmp / "model.xml", compress_to_fp16=False)
        del model
        (tmp / DIGESTS).write_text(json.dumps({f: sha256_file(tmp / f) for f in ("model.xml", "model.bin")}))
        try:
            os.rename(tmp, folder)
        except OSError:  # another process cached it first: theirs is as good
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # Always the copy read back from disk: a model converted in memory shares its weights' buffers with the
    # TensorFlow objects it came from, which are freed (and their memory reused) once this function returns.
    return core().read_model(xml)


class CompiledForward:
    """A compiled single-input model as a NumPy function ``forward(x) -> first output``; safe to share between
    threads (one infer request, used under a lock)."""

    def __init__(self, model, threads: int | None = None):
        self._compiled = compile_model(model, threads)
        self._request = self._compiled.create_infer_request()
        self._output = self._compiled.outputs[0]
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            out = self._request.infer({0: np.ascontiguousarray(x, np.float32)})[self._output]
            return np.array(out, copy=True)  # the request's buffer is reused by the next call


def openvino_forward(name: str, source_sha256: str, tf_function: Callable[[], object]) -> CompiledForward:
    """``name``'s model compiled by OpenVINO (converted from ``tf_function()`` on the first use only)."""
    return CompiledForward(converted_model(name, source_sha256, tf_function))


def compile_forward_for(runtime: str):
    """What the identity and emotion packages take as ``compile_forward``: None means their own TensorFlow path."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
    return openvino_forward if runtime == "openvino" else None


# OpenVINO runs the emotion network as fast per face at 4 faces x 10 views per call as at 256 faces, while each
# view in a call holds its activations: 40 views per call keep `mien recognize` of the demo photos ~45 MB smaller.
OPENVINO_EMOTION_VIEWS_PER_CALL = 40


def views_per_call_for(runtime: str) -> int | None:
    """Face views per emotion network call on ``runtime`` (None: the emotion package's default)."""
    return OPENVINO_EMOTION_VIEWS_PER_CALL if runtime == "openvino" else None
