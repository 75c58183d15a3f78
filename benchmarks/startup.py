"""Cold start of `mien` commands: wall seconds and peak RSS, this tree against a baseline commit in the same run.

python benchmarks/startup.py [--baseline 844c29d] [--repeat 3]

Each command runs in a fresh interpreter (as a user runs it); peak RSS comes from wait4(). The baseline is
checked out in a temporary git worktree and run with the same interpreter, MIEN_HOME and photo. Run with
nothing else on the machine (pause a training run), and compare the ratios.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run_once(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit code) of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def measure(cmd: list[str], cwd: Path, env: dict[str, str], repeat: int) -> tuple[float, float, int]:
    """Median wall time and peak RSS over ``repeat`` runs, and the exit code."""
    runs = [run_once(cmd, cwd, env) for _ in range(repeat)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), runs[-1][2]


def compare(base: Path, home: Path, photo: Path, db: Path, repeat: int) -> None:
    """Run every command in the baseline tree and in this one; print the table."""
    env = dict(os.environ, MIEN_HOME=str(home), PYTHONPATH="")
    commands = [["--help"], ["history", "--db", str(db)], ["enroll", "/missing"], ["recognize", str(photo)]]
    trees = {"baseline": (base, "mien.pipeline.cli"), "now": (REPO, "mien.pipeline.app.cli")}
    print(f"{'command':<22}{'base s':>8}{'base MB':>9}{'rc':>4}{'now s':>8}{'now MB':>8}{'rc':>4}{'x time':>8}{'x RSS':>7}")
    for args in commands:
        (bt, bm, brc), (nt, nm, nrc) = (measure([sys.executable, "-m", module, *args], tree, env, repeat)
                                        for tree, module in trees.values())
        label = "mien " + args[0] + (" one.jpg" if args[0] == "recognize" else " /missing" if args[0] == "enroll" else "")
        print(f"{label:<22}{bt:>8.2f}{bm:>9.0f}{brc:>4}{nt:>8.2f}{nm:>8.0f}{nrc:>4}{nt / bt:>8.2f}{nm / bm:>7.2f}")


def main(argv: list[str] | None = None) -> int:
    """Set up a private MIEN_HOME and a worktree of the baseline, then compare."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", default="844c29d", help="git commit to compare with")
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)

    from workspace import demo_workspace

    work, _train, val = demo_workspace("mien-startup-")
    base = work / "baseline"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(base), a.baseline], check=True,
                   capture_output=True)
    try:
        compare(base, Path(os.environ["MIEN_HOME"]), sorted((val / "madonna").iterdir())[0], work / "r.db", a.repeat)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
