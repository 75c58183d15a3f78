"""The inference runtime (OpenVINO) in one place: one Core per process, models compiled for low latency in fp32."""
from __future__ import annotations

import os
from functools import lru_cache


@lru_cache(maxsize=1)
def core():
    """The process's OpenVINO Core (device plugins load once)."""
    import openvino as ov

    return ov.Core()


def default_threads() -> int:
    """Threads for one inference: the CPUs this process may use, at most 4 (small networks stop scaling there)."""
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
