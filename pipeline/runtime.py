"""The inference runtime (OpenVINO) in one place: one Core per process, models compiled for low latency in the
chosen precision (fp32, bf16 where the CPU has bf16 instructions, or INT8 for FaceNet: ``pipeline.quantize``), and
Keras models converted once into OpenVINO's format (fp32 weights), cached under ``MIEN_HOME/cache/openvino``.

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
import tempfile
import threading
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from mien.identity.storage import sha256_file
from mien.pipeline.errors import UsageError

log = logging.getLogger(__name__)
RUNTIMES = ("openvino", "tensorflow")
# Arithmetic of OpenVINO's kernels, as users choose it: every network in fp32, every one in bf16 (fp32's range with
# an 8-bit mantissa; on a CPU without bf16 instructions it runs fp32), or "auto": each network in the lowest
# precision that kept its accuracy gate in benchmarks/precision.py (AVX-512 BF16): the emotion ensemble in bf16
# (1.8x faster, FER2013 PublicTest -0.08 point, gate 0.3); FaceNet in INT8, quantized by NNCF (pipeline.quantize;
# ~3x faster per face; issue 36's gate met: McNemar's exact test at verify's threshold, AUC, TAR at FAR 1e-2, the
# demo, strangers), or fp32 where its INT8 model is not made (models.build_facenet says so); MTCNN in fp32 (bf16
# gained 3 % and moved 3 of 453 faces). "int8" is auto that must run FaceNet in INT8 (quantizing it now if needed);
# the emotion ensemble stays in bf16 (it lost 1.3 points in INT8).
PRECISIONS = ("auto", "fp32", "bf16", "int8")
AUTO_PRECISION = {"mtcnn": "fp32", "facenet": "int8", "emotion": "bf16"}
PER_NETWORK = {"auto": AUTO_PRECISION, "int8": {**AUTO_PRECISION, "facenet": "int8"}}
# OpenVINO's hint for a model's floating-point layers (an INT8 model's quantized layers run in INT8 whatever it says;
# FaceNet's are all quantized, and bf16 for the rest measured no faster)
_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
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


def check_precision(precision: str) -> str:
    """``precision`` if users may choose it (PRECISIONS), else ValueError."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    return precision


@lru_cache(maxsize=None)
def network_precision(precision: str, network: str) -> str:
    """What ``network`` (a key of AUTO_PRECISION) really runs in on this CPU when users choose ``precision``."""
    plan = PER_NETWORK.get(check_precision(precision))
    wanted = plan[network] if plan else precision
    if wanted == "bf16" and not has_bf16():
        log.info("this CPU has no bf16 instructions: %s runs fp32", network)
        return "fp32"
    return wanted


@lru_cache(maxsize=1)
def has_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX-512 BF16 or AMX)."""
    return "BF16" in core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def compile_model(model, threads: int | None = None, precision: str = "fp32"):
    """Compile an OpenVINO model for this CPU: latency-oriented, in ``precision`` (fp32, bf16, or int8 for a
    quantized model, as ``network_precision`` resolved it)."""
    return core().compile_model(model, "CPU", {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": _HINTS[precision],
        "INFERENCE_NUM_THREADS": int(threads or default_threads()),
    })


def cache_dir() -> Path:
    from mien.pipeline.home import mien_home

    return mien_home() / "cache" / "openvino"


def cache_key(name: str, source_sha256: str, *, variant: str = "") -> str:
    """Folder name of a converted model: what it is, its weights, the OpenVINO version, mien's conversion version
    (and ``variant``, e.g. an INT8 model's quantizer and recipe versions)."""
    import openvino as ov

    version = ov.get_version().split("-")[0]
    return f"{name}-{source_sha256[:16]}-ov{version}-c{CONVERSION_VERSION}" + (f"-{variant}" if variant else "")


def is_cached(name: str, source_sha256: str, *, variant: str = "") -> bool:
    return (cache_dir() / cache_key(name, source_sha256, variant=variant) / "model.xml").is_file()


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


def cached_model(key: str, make: Callable[[], object], what: str):
    """The OpenVINO model cached as ``key`` (a folder of ``cache_dir()``), or ``make()`` now (``what`` it is, for
    the log) and cached atomically:
    the two IR files and their digests are written into a temporary folder that is renamed into place. A damaged
    cache entry is made again, never run."""
    import openvino as ov

    folder = cache_dir() / key
    xml = folder / "model.xml"
    if xml.is_file():
        problem = damaged(folder)
        if problem is None:
            try:
                return core().read_model(xml)
            except RuntimeError as exc:
                problem = f"unreadable ({exc})"
        log.warning("%s: the cached %s is %s; making it again", folder, what, problem)
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():
            raise UsageError(f"{folder}: the cached {what} is {problem}, and it cannot be removed (the folder is "
                             f"read-only). Delete it by hand, make {cache_dir()} writable, or set MIEN_HOME to a "
                             "writable folder.")
    log.info("making the %s (once; cached in %s)", what, folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder.parent, prefix=".writable-")
        probe.close()
    except OSError as exc:
        raise UsageError(f"{folder.parent}: cannot write the {what} there ({exc.strerror or exc}). Make it "
                         "writable, set MIEN_HOME to a writable folder, or run `mien models fetch` where it is.") from exc
    model = make()
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


def converted_model(name: str, source_sha256: str, tf_function: Callable[[], object]):
    """The OpenVINO model for ``name`` from the cache, or converted now from ``tf_function()`` (a
    ``tf.function`` with an input signature; TensorFlow is imported only here) and cached."""
    import openvino as ov

    return cached_model(cache_key(name, source_sha256), lambda: ov.convert_model(tf_function()),
                        f"OpenVINO conversion of {name}")


class CompiledForward:
    """A compiled single-input model as a NumPy function ``forward(x) -> first output``; safe to share between
    threads (one infer request, used under a lock)."""

    def __init__(self, model, threads: int | None = None, precision: str = "fp32"):
        self._compiled = compile_model(model, threads, precision)
        self._request = self._compiled.create_infer_request()
        self._output = self._compiled.outputs[0]
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            out = self._request.infer({0: np.ascontiguousarray(x, np.float32)})[self._output]
            return np.array(out, copy=True)  # the request's buffer is reused by the next call


def openvino_forward(name: str, source_sha256: str, tf_function: Callable[[], object],
                     precision: str = "fp32") -> CompiledForward:
    """``name``'s model compiled by OpenVINO in ``precision`` (converted from ``tf_function()`` on the first use
    only)."""
    return CompiledForward(converted_model(name, source_sha256, tf_function), precision=precision)


def compile_forward_for(runtime: str, network: str, precision: str = "auto"):
    """What the identity and emotion packages take as ``compile_forward`` for ``network`` (facenet | emotion): None
    means their own TensorFlow path (which runs fp32 whatever ``precision`` says)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
    check_precision(precision)  # an error on either runtime
    if runtime != "openvino":
        return None
    chosen = network_precision(precision, network)
    if chosen == "int8":  # an INT8 model is quantized, not just compiled: models.build_facenet takes it from quantize
        raise ValueError(f"{network} has no INT8 form here; pipeline.quantize makes INT8 models")
    return lambda name, sha, tf_function: openvino_forward(name, sha, tf_function, chosen)


# OpenVINO runs the emotion network as fast per face at 4 faces x 10 views per call as at 256 faces, while each
# view in a call holds its activations: 40 views per call keep `mien recognize` of the demo photos ~45 MB smaller.
OPENVINO_EMOTION_VIEWS_PER_CALL = 40


def views_per_call_for(runtime: str) -> int | None:
    """Face views per emotion network call on ``runtime`` (None: the emotion package's default)."""
    return OPENVINO_EMOTION_VIEWS_PER_CALL if runtime == "openvino" else None
