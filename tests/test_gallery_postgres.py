"""What only the PostgreSQL gallery has, against a real PostgreSQL + pgvector (tests/pg_server.py; no mocks): tables
beside others in a shared database, the HNSW index, writers queueing on the generation row, the database's own
search against exact numpy search, the same snapshot as an SQLite gallery fed the same changes, a server that is
down or goes away, and the product on it. The behaviours both backends share are tested on both in test_gallery.py.
"""
from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

from mien.identity.errors import StaleModelError
from mien.identity.gallery import GalleryError, NewFace, open_gallery
from mien.identity.gallery.base import SCHEMA_VERSION
from pg_server import local_postgres, postgres_bin, sql
from test_gallery import MODEL, build_matcher, faces, l2_normalize

psycopg = pytest.importorskip("psycopg", reason="the `psycopg` package (pip install -e '.[postgres]')")


@pytest.fixture
def url(postgres_server, request) -> str:
    """A new empty database per test (so each test gets its own gallery)."""
    from pg_server import new_database

    return new_database(postgres_server, request.node.name)


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
                      "mien_changes", "mien_former_names"}
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
    from mien.identity.gallery import GalleryBusyError
    from mien.identity.gallery.postgres import PostgresGallery

    with psycopg.connect(url) as other, other.transaction():  # a writer that does not finish
        other.execute("SELECT value FROM mien_meta WHERE key = 'generation' FOR UPDATE")
        with pytest.raises(GalleryBusyError, match="another mien process"):
            PostgresGallery(url, timeout=0.3).add_faces("late", faces(5), MODEL)
        assert g.people()["p0"] == 4  # readers do not wait
    assert "late" not in g.people() and g.generation() == 20


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


def test_a_server_that_goes_away_is_a_clear_error_and_stops_cleanly(postgres_server):
    with local_postgres() as url:  # its own server (the session's, postgres_server, says pgvector runs here)
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
    from mien.pipeline.enroll import embed_folder, enroll_folder
    from mien.identity.upkeep import load_matcher, refresh_matcher
    from mien.pipeline.gallery import gallery_model, open_default_gallery
    from mien.pipeline.people import forget_person

    monkeypatch.setenv("MIEN_GALLERY_URL", url)
    with open_default_gallery() as g:
        assert g.location.startswith("postgresql://")
        enroll_folder(demo_photos[0], recognizer, g)
        assert g.people() == recognizer.gallery.people()
        val = embed_folder(demo_photos[1], recognizer, g)
        matcher = load_matcher(g, gallery_model(recognizer), "knn")
        assert matcher.index.kind == "pgvector"
        names = [m.name for m in matcher.predict(val.vectors)]
        assert names == val.labels  # 25/25
        embedded = load_matcher(recognizer.gallery, gallery_model(recognizer), "knn")
        assert names == [m.name for m in embedded.predict(val.vectors)]
        forget_person("madonna", g)
        matcher = refresh_matcher(matcher, g, gallery_model(recognizer), "knn")
        after = [m.name for m in matcher.predict(val.vectors)]
        assert "madonna" not in after and after.count("unknown") == val.labels.count("madonna")
