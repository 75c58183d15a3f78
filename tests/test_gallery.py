"""The gallery store on synthetic embeddings (fast): merge, replace, forget (erasure), rename, names, versions,
concurrency, corrupt files, and the SVM and kNN matchers built from it giving the same answers. The behaviours
both backends share run on SQLite and on a real PostgreSQL + pgvector (the ``store`` fixture)."""
from __future__ import annotations

import multiprocessing
import sqlite3

import numpy as np
import pytest

from mien.identity.errors import StaleModelError
from mien.identity.gallery import (GalleryError, NewFace, PersonExistsError, UnknownPersonError, open_gallery)
from mien.identity.gallery.base import SCHEMA_VERSION
from mien.identity.match import UNKNOWN

MODEL = "facenet-test|align"  # light imports only: the concurrency test re-imports this module in 4 processes


def l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def build_matcher(*args, **kwargs):
    from mien.identity.matchers import build_matcher as build

    return build(*args, **kwargs)


def faces(person: int, n: int = 4, seed: int = 0, source: str = "/photos") -> list[NewFace]:
    """n embeddings near person's centre, with distinct photo hashes."""
    rng = np.random.default_rng(1000 + person)
    centre = l2_normalize(rng.normal(size=128))
    noise = np.random.default_rng(seed * 7919 + person).normal(size=(n, 128)) * 0.04
    vecs = l2_normalize(centre + noise).astype(np.float32)
    return [NewFace(f"p{person}s{seed}i{i}", v, f"{source}/p{person}/{i}.jpg") for i, v in enumerate(vecs)]


def rows(path, sql: str, *args) -> list:
    with sqlite3.connect(path) as db:
        return db.execute(sql, args).fetchall()


class Store:
    """A gallery location on one backend and a way to query its tables (``{t}`` stands for the table prefix)."""

    def __init__(self, location: str, prefix: str, query):
        self.location, self.prefix, self._query = location, prefix, query

    def sql(self, statement: str) -> list:
        return [tuple(r) for r in self._query(statement.format(t=self.prefix))]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> Store:
    """An empty gallery on each backend: a SQLite file, and a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "g.sqlite3"
        return Store(str(path), "", lambda q: rows(path, q))
    from pg_server import new_database, sql

    url = new_database(request.getfixturevalue("postgres_server"), request.node.name)
    return Store(url, "mien_", lambda q: sql(url, q))


def test_folder_merge_keeps_other_people_and_uploads(store):
    g = open_gallery(store.location)
    upload = NewFace("up1", faces(9)[0].embedding, "upload:me.jpg", b"\xff\xd8photo")
    g.add_faces("zoe", [upload], MODEL)  # enrolled through the API
    g.add_faces("ann", [NewFace("up2", faces(1, seed=5)[0].embedding, "upload:a.jpg", b"x")], MODEL)
    out = g.sync_folder({"ann": faces(1), "bob": faces(2)}, MODEL)
    assert out["added"] == 8 and out["removed"] == 0 and out["forgotten"] == []
    assert g.people() == {"ann": 5, "bob": 4, "zoe": 1}  # zoe untouched, ann's upload kept
    # a photo removed from the folder leaves the gallery on the next enroll; unchanged photos stay
    out = g.sync_folder({"ann": faces(1)[:2], "bob": faces(2)}, MODEL)
    assert out == {"added": 0, "removed": 2, "forgotten": [], "shared": []}
    assert g.people() == {"ann": 3, "bob": 4, "zoe": 1}
    # --replace: the folder is the whole truth and says whom it removed
    zoe = g.person("zoe").faces[0]
    assert zoe["photo_stored"] and g.stored_photo(zoe["face_id"]) == b"\xff\xd8photo"
    out = g.sync_folder({"bob": faces(2)}, MODEL, replace=True)
    assert out["forgotten"] == ["ann", "zoe"] and g.people() == {"bob": 4}
    assert g.gallery_id() == g.snapshot().gallery_id != ""


def test_forget_erases_faces_photos_and_cached_embeddings(store):
    g = open_gallery(store.location)
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
    assert store.sql("SELECT COUNT(*) FROM {t}stored_photos") == [(0,)]
    assert store.sql("SELECT photo_hash FROM {t}photo_cache") == [("blurry",)]  # only ann's photos were erased
    assert store.sql("SELECT COUNT(*) FROM {t}people WHERE key = 'ann'") == [(0,)]
    g.close()


def test_one_photo_of_a_person_is_removed_with_its_bytes_and_cached_embedding(store):
    """remove_photo (issue 22 item 4): one photo goes, the person stays with the others; the change is logged for
    incremental matchers; no such person or photo is a clear error."""
    from mien.identity.gallery import UnknownPhotoError

    g = open_gallery(store.location)
    mine = faces(1)
    g.cache({f.photo_hash: (f.embedding, None, (0, 0, 9, 9)) for f in mine}, MODEL + "|det")
    g.add_faces("ann", [NewFace(f.photo_hash, f.embedding, "upload:x.jpg", b"BYTES" + bytes([i]))
                        for i, f in enumerate(mine)], MODEL)
    generation = g.generation()
    assert g.remove_photo("ANN", mine[1].photo_hash) == 1  # the name up to case, as everywhere
    assert g.people() == {"ann": 3} and g.generation() > generation
    assert mine[1].photo_hash not in {f["photo_hash"] for f in g.person("ann").faces}
    assert store.sql("SELECT COUNT(*) FROM {t}stored_photos") == [(3,)]
    assert set(g.cached([f.photo_hash for f in mine], MODEL + "|det")) == {mine[i].photo_hash for i in (0, 2, 3)}
    assert g.changes_since(generation) is not None
    with pytest.raises(UnknownPhotoError, match="'ann' has no photo"):
        g.remove_photo("ann", mine[1].photo_hash)
    with pytest.raises(UnknownPersonError, match="'bob' is not enrolled"):
        g.remove_photo("bob", mine[0].photo_hash)
    g.close()


def test_forgotten_bytes_do_not_linger_in_the_sqlite_file_or_its_log(tmp_path):
    path = tmp_path / "g.sqlite3"
    g = open_gallery(path)
    mine = faces(1)
    g.add_faces("ann", [NewFace(f.photo_hash, f.embedding, "upload:x.jpg", b"PHOTO-BYTES-" + bytes([i]))
                        for i, f in enumerate(mine)], MODEL)
    g.add_faces("bob", faces(2), MODEL)
    g.forget("ann")
    g.close()
    # secure_delete + checkpoint: the bytes are not left behind in the file or its write-ahead log
    blob = path.read_bytes() + (path.with_name(path.name + "-wal").read_bytes()
                                if path.with_name(path.name + "-wal").exists() else b"")
    assert b"PHOTO-BYTES-" not in blob and mine[0].embedding.tobytes() not in blob


def test_names_that_differ_only_in_case_or_unicode_form_are_one_person(store):
    g = open_gallery(store.location)
    g.add_faces("Zoë", faces(1), MODEL)  # NFC
    before = g.generation()
    with pytest.raises(PersonExistsError, match="only in case or Unicode form"):
        g.add_faces("zoe\u0308".upper(), faces(2), MODEL)  # decomposed, upper case
    with pytest.raises(PersonExistsError):
        g.sync_folder({"bob": faces(3), "ZOË": faces(2)}, MODEL)  # the whole transaction is refused
    with pytest.raises(PersonExistsError):
        g.sync_folder({"Eve": faces(4), "eve": faces(5)}, MODEL)  # two spellings in one folder
    assert g.generation() == before and g.people() == {"Zoë": 4}
    assert store.sql("SELECT name FROM {t}people") == [("Zoë",)] and store.sql("SELECT COUNT(*) FROM {t}faces") == [(4,)]
    g.add_faces("bob", faces(3), MODEL)
    with pytest.raises(PersonExistsError, match="already enrolled"):
        g.rename("bob", "zoë")
    g.rename("bob", "Robert")
    assert g.people() == {"Robert": 4, "Zoë": 4} and g.person("robert").name == "Robert"


def test_every_name_a_person_had_is_recorded_for_erasure(store, tmp_path):
    """Issue 33 item 2: history rows carry the name at the time, so the gallery keeps a person's former names and
    when each was taken by someone else; they go when the person is forgotten. A schema-1 SQLite gallery gains
    the table when opened."""
    g = open_gallery(store.location)
    g.add_faces("ann", faces(1), MODEL)
    g.rename("ann", "Anna")
    g.rename("Anna", "ANNA")  # only the case: the same name, nothing to record
    [current, former] = g.name_spans("anna")
    assert (current.name, current.until, former.name, former.until) == ("ANNA", None, "ann", None)
    g.add_faces("Ann", faces(2), MODEL)  # a newcomer under the name given up
    [_, former] = g.name_spans("anna")
    [newcomer] = g.name_spans("ann")
    assert former.until is not None and newcomer.since == former.until and newcomer.until is None
    g.forget("anna")
    assert store.sql("SELECT name FROM {t}former_names") == []
    assert [s.since for s in g.name_spans("ann")] == [None]  # the one who gave it up is gone, and so is their record
    g.close()
    if store.prefix == "":
        with sqlite3.connect(store.location) as db:
            db.execute("DROP TABLE former_names")
            db.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
        with open_gallery(store.location) as g:
            g.rename("Ann", "Annie")
            assert [s.name for s in g.name_spans("annie")] == ["Annie", "Ann"]


def test_same_photo_under_two_people_is_reported(store):
    g = open_gallery(store.location)
    g.add_faces("ann", faces(1)[:1], MODEL)
    added = g.add_faces("bob", faces(1)[:1], MODEL)
    assert added[0].added and added[0].also_enrolled_as == ("ann",)
    assert g.add_faces("bob", faces(1)[:1], MODEL)[0].added is False  # not twice for the same person
    out = g.sync_folder({"cy": faces(1)[:1] + faces(3)[:1]}, MODEL)
    assert out["shared"] == [(faces(1)[0].source, "cy", ("ann", "bob"))]


def test_other_model_newer_schema_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "g.sqlite3"
    g = open_gallery(path)
    g.add_faces("ann", faces(1), MODEL)
    with pytest.raises(StaleModelError, match="--replace"):
        g.add_faces("bob", faces(2), "facenet-other|align")
    with pytest.raises(StaleModelError, match="rebuild"):
        build_matcher(g.snapshot(), "facenet-other|align")
    g.sync_folder({"bob": faces(2)}, "facenet-other|align", replace=True)  # --replace rebuilds with the new model
    assert g.model() == "facenet-other|align" and g.people() == {"bob": 4}
    g.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(GalleryError, match="newer mien"):
        open_gallery(path)
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(GalleryError, match="junk.sqlite3: not a mien gallery"):
        open_gallery(junk)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE results(x)")
    with pytest.raises(GalleryError, match="not a mien gallery"):
        open_gallery(other)
    assert rows(other, "SELECT name FROM sqlite_master") == [("results",)]  # nothing written into it


def _enroll_many(path: str, person: int) -> None:
    g = open_gallery(path)
    for seed in range(5):
        g.sync_folder({f"p{person}": faces(person, seed=seed)}, MODEL)


def test_two_processes_enrolling_at_once_lose_nothing(tmp_path):
    path = str(tmp_path / "g.sqlite3")
    open_gallery(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_enroll_many, args=(path, p)) for p in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    g = open_gallery(path)
    assert g.people() == {f"p{p}": 4 for p in range(4)}
    assert g.generation() == 20  # every committed change counted once


def test_changes_since_drive_incremental_knn_updates(store):
    g = open_gallery(store.location)
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
    assert [m.name for m in knn.predict(probes)] == [m.name for m in fresh.predict(probes)] == [UNKNOWN, "one", "p2", "p9"]
    assert knn.counts == fresh.counts and knn.generation == g.generation()


@pytest.mark.parametrize("kind", ["svm", "knn"])
def test_matchers_name_the_enrolled_and_reject_strangers(store, kind):
    g = open_gallery(store.location)
    for p in range(5):
        g.add_faces(f"p{p}", faces(p), MODEL)
    g.set_thresholds({"distance": 0.9, "probability": 0.5})
    m = build_matcher(g.snapshot(), MODEL, kind)
    probes = np.stack([faces(p, n=1, seed=9)[0].embedding for p in range(5)])
    assert m.kind == kind and [x.name for x in m.predict(probes)] == [f"p{p}" for p in range(5)]
    strangers = l2_normalize(np.random.default_rng(4).normal(size=(6, 128))).astype(np.float32)
    assert all(x.name == UNKNOWN and x.candidate.startswith("p") for x in m.predict(strangers))
    assert m.thresholds.distance == 0.9


def test_an_older_classifier_and_cache_are_migrated_then_deleted(tmp_path):
    """classifier.joblib + embeddings_cache.npz + API photos of an older mien become gallery people, once."""
    import json
    from types import SimpleNamespace

    import joblib

    from mien.identity.classifier import IdentityClassifier, Thresholds
    from mien.pipeline.gallery import open_default_gallery

    rec = SimpleNamespace(embedder=SimpleNamespace(version="facenet-test"),
                          identity_crop=SimpleNamespace(signature="crop-160"))
    home = tmp_path / "home"
    (home / "identity").mkdir(parents=True)
    ann, bob = faces(1, n=3), faces(2, n=2)
    vectors = np.stack([f.embedding for f in ann + bob])
    labels = ["ann"] * 3 + ["bob"] * 2
    clf = IdentityClassifier(vectors, labels, "facenet-test", Thresholds(distance=0.8, probability=0.6))
    joblib.dump({"format_version": 1, "classifier": clf}, home / "identity" / "classifier.joblib")
    keys = [f"{i:064x}" for i in range(5)]
    meta = {"format_version": 1, "model_version": "x", "keys": keys, "reasons": [None] * 5, "bboxes": [None] * 5}
    np.savez(home / "identity" / "embeddings_cache.npz", embeddings=vectors, meta=np.array(json.dumps(meta)))
    (home / "enrollment" / "bob").mkdir(parents=True)
    (home / "enrollment" / "bob" / f"{keys[4][:16]}.jpg").write_bytes(b"\xff\xd8bob")

    g = open_default_gallery(home, rec)
    assert g.people() == {"ann": 3, "bob": 2} and g.model() == "facenet-test|crop-160"
    assert g.thresholds() == {"distance": 0.8, "probability": 0.6}
    bob_faces = g.person("bob").faces
    assert [f["photo_hash"] for f in bob_faces] == keys[3:] and bob_faces[1]["photo_stored"]
    assert sorted(p.name for p in home.rglob("*") if p.is_file() and "gallery" not in p.name) == []
    snap = g.snapshot()
    assert np.array_equal(snap.vectors, vectors) and snap.labels == labels


def test_a_large_gallerys_index_is_saved_and_caught_up_not_rebuilt(tmp_path, monkeypatch, caplog):
    """The HNSW index is kept between runs; the next run applies only the change log (here: one new person)."""
    from mien.identity import knn, matchers, upkeep
    from mien.identity.upkeep import index_file, load_matcher
    from mien.pipeline.gallery import index_dir

    monkeypatch.setenv("MIEN_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(knn, "EXACT_BELOW", 10)  # 30 faces count as "large" here
    monkeypatch.setattr(matchers, "SVM_MAX_FACES", 10)
    model, indexes = "facenet-test|c", index_dir()
    g = open_gallery(tmp_path / "g.sqlite3")
    for p in range(6):
        g.add_faces(f"p{p}", faces(p, n=5), model)
    first = load_matcher(g, model, "auto", indexes)
    assert first.kind == "knn" and type(first.index).__name__ == "USearchIndex"
    saved = index_file(indexes, g.snapshot(vectors=False), "usearch")
    assert saved.is_file()

    g.add_faces("p9", faces(9, n=5), model)
    g.forget("p0")
    real_build = upkeep.build_matcher

    def no_rebuild(*a, **k):
        raise AssertionError("the saved index should have been reused")

    monkeypatch.setattr(upkeep, "build_matcher", no_rebuild)
    again = load_matcher(g, model, "auto", indexes)
    probes = np.stack([faces(p, n=1, seed=4)[0].embedding for p in (0, 3, 9)])
    assert len(again) == 30 and [m.name for m in again.predict(probes)] == [UNKNOWN, "p3", "p9"]

    saved.write_bytes(saved.read_bytes()[:-10])  # a damaged index file is not trusted: rebuilt, with a warning
    monkeypatch.setattr(upkeep, "build_matcher", real_build)
    rebuilt = load_matcher(g, model, "auto", indexes)
    assert [m.name for m in rebuilt.predict(probes)] == [UNKNOWN, "p3", "p9"] and "rebuilding the index" in caplog.text

    from mien.pipeline.people import forget_person

    assert saved.is_file()  # saved again by the rebuild
    forget_person("p3", g)  # an HNSW file keeps deleted vectors' bytes: erasure removes it (the next run rebuilds)
    assert not saved.exists() and not saved.with_suffix(".usearch.json").exists()


@pytest.mark.parametrize("victim", ["g.sqlite3", "g.sqlite3-wal"])
def test_a_gallery_file_deleted_under_a_running_process_refuses_writes(tmp_path, victim):
    """SQLite would go on writing into the unlinked file (and lose it all at exit): mien refuses and says why."""
    from mien.identity.gallery.base import GalleryGoneError

    g = open_gallery(tmp_path / "g.sqlite3")
    g.add_faces("ann", faces(1), MODEL)
    g.check()
    (tmp_path / victim).unlink()
    with pytest.raises(GalleryGoneError, match=rf"{victim}: deleted while this mien process had the gallery open"):
        g.check()
    with pytest.raises(GalleryGoneError, match="Restart mien"):
        g.add_faces("bob", faces(2), MODEL)
    with pytest.raises(GalleryGoneError):
        g.forget("ann")
    g.close()


def test_a_gallery_file_replaced_under_a_running_process_refuses_writes(tmp_path):
    from mien.identity.gallery.base import GalleryGoneError

    g = open_gallery(tmp_path / "g.sqlite3")
    g.add_faces("ann", faces(1), MODEL)
    other = open_gallery(tmp_path / "other.sqlite3")
    other.add_faces("bob", faces(2), MODEL)
    other.close()
    (tmp_path / "other.sqlite3").replace(tmp_path / "g.sqlite3")
    with pytest.raises(GalleryGoneError, match="g.sqlite3: replaced"):
        g.add_faces("cat", faces(3), MODEL)
    g.close()
    assert "cat" not in open_gallery(tmp_path / "g.sqlite3").people()


def test_a_full_disk_says_so_and_keeps_every_person(tmp_path):
    """Issue 26 item 5: SQLite ends the transaction itself on a full disk, and the old ROLLBACK then hid the real
    error behind "cannot rollback - no transaction is active". The size cap of SQLite (max_page_count) fails the
    same way a full disk does (SQLITE_FULL)."""
    from mien.identity.gallery import GalleryFullError

    g = open_gallery(tmp_path / "g.sqlite3")
    g.add_faces("ann", faces(1), MODEL)
    generation = g.generation()
    pages = g._db.execute("PRAGMA page_count").fetchone()[0]
    g._db.execute(f"PRAGMA max_page_count={pages}")
    big = [NewFace(f"h{i}", faces(1)[0].embedding, f"upload:{i}.jpg", b"photo" * 20_000) for i in range(3)]
    with pytest.raises(GalleryFullError, match=r"g\.sqlite3: the disk is full; nothing was changed"):
        g.add_faces("bob", big, MODEL)
    assert g.people() == {"ann": 4} and g.generation() == generation
    g._db.execute("PRAGMA max_page_count=1073741823")
    g.add_faces("bob", big[:1], MODEL)  # space again: the gallery works on
    g.close()
    assert open_gallery(tmp_path / "g.sqlite3").people() == {"ann": 4, "bob": 1}


def test_a_fitted_svm_is_saved_reused_refitted_when_the_gallery_changes_and_erased_with_it(tmp_path, monkeypatch,
                                                                                         caplog):
    """The SVM fitted on a gallery is kept beside the indexes: the next run reuses it (no scikit-learn import, no
    fit: ~1 s of a cold `mien recognize one.jpg`) with the same answers to 1e-6; a new enrollment is a new fit that
    replaces the old file; a damaged file is fitted again with a warning; forgetting someone removes it."""
    import subprocess
    import sys

    from mien.identity.upkeep import load_matcher, svm_file
    from mien.pipeline.gallery import index_dir
    from mien.pipeline.people import forget_person

    monkeypatch.setenv("MIEN_HOME", str(tmp_path / "home"))
    model, indexes = "facenet-test|svm", index_dir()
    g = open_gallery(tmp_path / "g.sqlite3")
    for p in range(4):
        g.add_faces(f"p{p}", faces(p, n=5), model)
    probes = np.stack([faces(p, n=1, seed=5)[0].embedding for p in range(4)]
                      + list(l2_normalize(np.random.default_rng(3).normal(size=(3, 128))).astype(np.float32)))
    first = load_matcher(g, model, "svm", indexes)
    saved = svm_file(indexes, g.snapshot())
    assert first.svm is not None and saved.is_file() and saved.stat().st_mode & 0o077 == 0

    again = load_matcher(g, model, "svm", indexes)
    assert again.svm is None and again.fitted_svm is not None  # nothing fitted this time
    np.testing.assert_allclose(again._proba(probes), first.svm.predict_proba(probes), atol=1e-6)
    assert [m.name for m in again.predict(probes)] == [m.name for m in first.predict(probes)] == \
        ["p0", "p1", "p2", "p3", UNKNOWN, UNKNOWN, UNKNOWN]

    # a process that finds the saved fit never imports scikit-learn
    code = ("import sys; from pathlib import Path; from mien.identity.gallery import open_gallery; "
            "from mien.identity.upkeep import load_matcher; "
            f"m = load_matcher(open_gallery(Path({str(tmp_path / 'g.sqlite3')!r})), {model!r}, 'svm', "
            f"Path({str(indexes)!r})); print(m.kind, m.svm is None, 'sklearn' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() \
        == ["svm", "True", "False"]

    g.add_faces("p4", faces(4, n=5), model)  # a new person: a new fit, the old file replaced
    changed = load_matcher(g, model, "svm", indexes)
    assert changed.svm is not None and changed.classes == ["p0", "p1", "p2", "p3", "p4"]
    assert not saved.exists() and len(list(indexes.glob("*.svm-*.npz"))) == 1
    saved = svm_file(indexes, g.snapshot())

    saved.write_bytes(saved.read_bytes()[:-20])  # damaged: not trusted, fitted again
    damaged = load_matcher(g, model, "svm", indexes)
    assert damaged.svm is not None and "ignoring the saved SVM" in caplog.text
    assert [m.name for m in damaged.predict(probes[:4])] == ["p0", "p1", "p2", "p3"]

    assert saved.is_file()
    forget_person("p2", g)  # its weights come from everyone's embeddings: erasure removes it
    assert not list(indexes.glob("*.svm-*.npz"))
