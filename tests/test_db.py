"""The results database: round trip, filters, schema migration, and surviving a process killed mid-write."""
from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mien.identity.classifier import IdentityMatch
from mien.pipeline.history import MIGRATIONS, SCHEMA_VERSION, DatabaseError, ResultsDB, parse_since
from mien.pipeline.records import EmotionResult, FaceRecord, ImageRecord

REPO = Path(__file__).resolve().parents[1]
MODELS = {"detector": "mtcnn-test", "embedder": "facenet-test", "classifier": "abc", "emotion": None}
THRESHOLDS = {"identity": {"distance": 0.95, "probability": 0.5}, "emotion": 0.0}


def record(name: str, *people: str, emotion: str = "happy") -> ImageRecord:
    faces = [FaceRecord(i, (10 * i, 20, 30, 40), 0.99, {}, IdentityMatch(p, 0.9, 0.5, p),
                        EmotionResult(emotion if i == 1 else "happy", 0.8, {"happy": 0.8, "sad": 0.2}))
             for i, p in enumerate(people, start=1)]
    return ImageRecord(name, 640, 480, faces)


def test_round_trip_and_filters(tmp_path):
    with ResultsDB(tmp_path / "r.db") as db:
        assert db.schema_version == SCHEMA_VERSION
        old = db.add(record("a.jpg", "madonna"), image_sha256="aa", thresholds=THRESHOLDS, models=MODELS,
                     source="cli", created=parse_since("2024-01-01T12:00"))
        new = db.add(record("b.jpg", "madonna", "elton_john"), image_sha256="bb", thresholds=THRESHOLDS,
                     models=MODELS, source="server")
        db.add(ImageRecord("broken.jpg", error="not an image"), image_sha256=None, thresholds=THRESHOLDS,
               models=MODELS, source="cli")
        everything = db.query()
        assert [r["file"] for r in everything] == ["broken.jpg", "b.jpg", "a.jpg"]  # newest first
        b = next(r for r in everything if r["id"] == new)
        assert [f["identity"]["name"] for f in b["faces"]] == ["madonna", "elton_john"]
        assert b["faces"][1]["bbox"] == [20, 20, 30, 40] and b["faces"][0]["emotion"]["scores"]["sad"] == 0.2
        assert b["models"] == MODELS and b["thresholds"] == THRESHOLDS and b["image_sha256"] == "bb"
        assert [r["id"] for r in db.query(person="elton_john")] == [new]
        assert [r["id"] for r in db.query(person="madonna")] == [new, old]
        assert [r["id"] for r in db.query(person="MADONNA")] == [new, old]  # one person up to case, as in the gallery
        assert [r["id"] for r in db.query(person="madonna", since=parse_since("2024-06-01"))] == [new]
        assert len(db.query(limit=1)) == 1
        assert db.query(person="nobody") == []
        sad = db.add(record("c.jpg", "elton_john", "madonna", emotion="sad"), image_sha256="cc", thresholds=THRESHOLDS,
                     models=MODELS, source="cli")
        assert [r["id"] for r in db.query(emotion="sad")] == [sad]
        assert [r["id"] for r in db.query(person="elton_john", emotion="sad")] == [sad]
        assert db.query(person="madonna", emotion="sad") == []  # the emotion of that person's face
        assert [r["id"] for r in db.query(person="madonna", emotion="happy")] == [sad, new, old]
        assert db.check() == []


def old_database(path, version: int, source: str, image: str, face: dict) -> None:
    """A results database at schema ``version`` holding one recognition of ``image`` with one face (its columns)."""
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:version]:
        conn.executescript(script)
    conn.execute("INSERT INTO recognitions (created, source, image_name, thresholds, models, n_faces) "
                 "VALUES (1.0, ?, ?, '{}', '{}', 1)", (source, image))
    columns = {"recognition_id": 1, "face_id": 1, "x": 5, "y": 6, "w": 30, "h": 40, "detection_confidence": 0.99,
               **face}
    conn.execute(f"INSERT INTO faces ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                 tuple(columns.values()))
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


def test_old_schema_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / "v1.db"
    old_database(path, 1, "cli", "old.jpg", {"identity": "madonna", "identity_confidence": 0.9,
                                              "identity_distance": 0.5})
    with ResultsDB(path) as db:
        assert db.schema_version == SCHEMA_VERSION == 5
        [old] = db.query()
        assert old["file"] == "old.jpg" and old["faces"][0]["identity"]["name"] == "madonna"
        assert old["faces"][0]["landmarks"] == {}  # stored before schema 3 added landmarks
        assert old["faces"][0]["detection_scale"] == 1.0  # before schema 4 every face was found at full size
    indexes = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"faces_identity", "recognitions_created"} <= indexes


def stranger(file: str, closest: str | None, distance: float | None = 1.17) -> ImageRecord:
    """A photo of a stranger nearest to ``closest`` (None: no closest person) beside bob."""
    return ImageRecord(file, 640, 480, [
        FaceRecord(1, (5, 6, 30, 40), 0.98, {}, IdentityMatch("unknown", None, distance, closest or "unknown"),
                   EmotionResult("sad", 0.7, {"happy": 0.3, "sad": 0.7})),
        FaceRecord(2, (50, 6, 30, 40), 0.99, {}, IdentityMatch("bob", 0.9, 0.5, "bob"),
                   EmotionResult("happy", 0.8, {"happy": 0.8, "sad": 0.2}))])


def test_a_stranger_reads_back_with_the_person_they_were_closest_to(tmp_path):
    """Schema 5: a stranger's closest enrolled person is stored, so a record read back says what it said when made
    (`unknown`, no confidence, the distance, closest), like recognize --json; a named face's closest is itself."""
    made = stranger("party.jpg", "alice")
    with ResultsDB(tmp_path / "r.db") as db:
        db.add(made, image_sha256="p" * 64, thresholds=THRESHOLDS, models=MODELS, source="cli")
        [found] = db.query()
        assert db.query(person="alice") == []  # near alice is not alice: --person finds where they were seen
    assert [f["identity"] for f in found["faces"]] == [f["identity"] for f in made.to_dict()["faces"]] == [
        {"name": "unknown", "confidence": None, "distance": 1.17, "closest": "alice"},
        {"name": "bob", "confidence": 0.9, "distance": 0.5, "closest": "bob"}]


def test_history_table_says_whom_a_stranger_was_closest_to(tmp_path, capfd):
    """`mien history`'s who column says it as `mien recognize`'s table does: unknown (closest: NAME)."""
    from mien.pipeline.app.cli import main

    path = tmp_path / "r.db"
    with ResultsDB(path) as db:
        db.add(stranger("party.jpg", "alice"), image_sha256=None, thresholds=THRESHOLDS, models=MODELS, source="cli")
        db.add(stranger("crowd.jpg", None), image_sha256=None, thresholds=THRESHOLDS, models=MODELS, source="cli")
    capfd.readouterr()
    assert main(["history", "--db", str(path)]) == 0
    rows = [re.split(r"\s{2,}", line)[2:] for line in capfd.readouterr().out.splitlines()[1:]]
    assert rows == [["crowd.jpg", "1", "unknown", "sad 0.70"],  # no closest person known: unknown alone
                    ["crowd.jpg", "2", "bob", "happy 0.80"],
                    ["party.jpg", "1", "unknown (closest: alice)", "sad 0.70"],
                    ["party.jpg", "2", "bob", "happy 0.80"]]


def test_a_schema_4_database_migrates_and_its_strangers_have_no_closest_person(tmp_path):
    """A stranger stored before schema 5 has no closest person: read back as null, never as `unknown`."""
    path = tmp_path / "v4.db"
    old_database(path, 4, "server", "crowd.jpg", {"identity": "unknown", "identity_distance": 1.3, "emotion": "sad",
                                                   "emotion_confidence": 0.7, "emotion_scores": '{"sad": 0.7}'})
    with ResultsDB(path) as db:
        assert db.schema_version == SCHEMA_VERSION == 5
        [old] = db.query()
        assert old["faces"][0]["identity"] == {"name": "unknown", "confidence": None, "distance": 1.3, "closest": None}
        assert old["faces"][0]["emotion"]["label"] == "sad" and not db.unreadable
    columns = {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(faces)")}
    assert "identity_closest" in columns


def test_newer_schema_or_foreign_file_is_refused(tmp_path):
    newer = tmp_path / "newer.db"
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(DatabaseError, match="newer than this mien"):
        ResultsDB(newer)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseError, match="not a usable SQLite database"):
        ResultsDB(junk)
    with pytest.raises(DatabaseError, match="expected a date"):
        parse_since("last tuesday")


WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    from test_db import record, MODELS, THRESHOLDS
    from mien.pipeline.history import ResultsDB

    class Stuck(float):
        def __float__(self):  # called while the record's transaction is open: announce, then hang
            print("in transaction", flush=True)
            time.sleep(600)
            return 0.0

    db = ResultsDB(sys.argv[1])
    for i in range(40):
        db.add(record(f"{{i}}.jpg", "madonna", "elton_john", "ben_afflek"), image_sha256=str(i),
               thresholds=THRESHOLDS, models=MODELS, source="cli")
    print("committed 40", flush=True)
    stuck = record("stuck.jpg", "madonna", "elton_john", "ben_afflek")
    stuck.faces[2].detection_confidence = Stuck(0.5)
    db.add(stuck, image_sha256="x", thresholds=THRESHOLDS, models=MODELS, source="cli")
""")


def test_killed_writer_leaves_whole_records_only(tmp_path):
    path = tmp_path / "killed.db"
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(repo=str(REPO)))
    env = dict(os.environ, PYTHONPATH=f"{REPO / 'tests'}{os.pathsep}{REPO}")
    proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "committed 40"
        assert proc.stdout.readline().strip() == "in transaction"  # the 41st record is half inserted now
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    with ResultsDB(path) as db:
        assert db.check() == []
        found = db.query()
        assert len(found) == 40 and all(len(r["faces"]) == 3 for r in found)
        assert "stuck.jpg" not in {r["file"] for r in found}
        db.add(record("after.jpg", "madonna"), image_sha256="y", thresholds=THRESHOLDS, models=MODELS, source="cli")
        assert db.query(limit=1)[0]["file"] == "after.jpg"


@pytest.mark.slow
def test_cli_recognize_db_then_history(enrolled, mien_home, demo_photos, tmp_path, capfd):
    from mien.pipeline.app.cli import main
    from test_cli import mien

    photo = sorted((demo_photos[1] / "madonna").iterdir())[0]
    db = tmp_path / "results.db"
    r = mien("recognize", photo, "--db", db, "--no-emotion", "--json", tmp_path / "r.json", home=mien_home)
    assert r.returncode == 0, r.stderr
    capfd.readouterr()
    assert main(["history", "--db", str(db), "--person", "madonna", "--json"]) == 0  # in-process: no model loading
    [found] = json.loads(capfd.readouterr().out)
    [recognized] = json.loads((tmp_path / "r.json").read_text())["images"]
    assert {k: found[k] for k in recognized} == recognized  # one serialisation: same keys, landmarks included
    assert found["source"] == "cli" and found["file"] == str(photo) and len(found["image_sha256"]) == 64
    assert found["faces"][0]["identity"]["name"] == "madonna"
    assert found["models"]["embedder"].startswith("facenet-taniai-") and found["models"]["classifier"]
    assert found["thresholds"]["identity"]["distance"] > 0
    assert main(["history", "--db", str(db)]) == 0
    assert "madonna" in capfd.readouterr().out
    assert main(["history", "--db", str(db), "--person", "elton_john"]) == 0
    assert "madonna" not in capfd.readouterr().out
    assert main(["history", "--db", str(db), "--since", "tomorrow"]) == 2
    assert "expected a date" in capfd.readouterr().err


def test_history_on_a_typo_bad_rows_and_a_damaged_file(tmp_path, capfd):
    """A missing --db is an error (never created); hand-edited rows are skipped with a warning; damaged pages warn."""
    from mien.pipeline.app.cli import main

    assert main(["history", "--db", str(tmp_path / "typo.db")]) == 2
    assert "no such results database" in capfd.readouterr().err and not (tmp_path / "typo.db").exists()
    path = tmp_path / "r.db"
    with ResultsDB(path) as db:
        for i in range(400):
            db.add(record(f"p{i}.jpg", "madonna"), image_sha256=f"{i:064x}", thresholds=THRESHOLDS, models=MODELS,
                   source="cli")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE faces SET emotion_scores = '{broken' WHERE recognition_id = 7")
        conn.execute("UPDATE recognitions SET models = 'not json' WHERE id = 9")
    capfd.readouterr()
    assert main(["history", "--db", str(path), "--json"]) == 0
    out, err = capfd.readouterr()
    assert len(json.loads(out)) == 399 and "recognition 9" in err and "recognition 7 face 1" in err
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        leaf = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'faces'").fetchone()[0]
    data = bytearray(path.read_bytes())
    data[leaf * page_size: leaf * page_size + 64] = b"\xff" * 64  # scribble over a page of the faces table
    path.write_bytes(bytes(data))
    main(["history", "--db", str(path), "--json"])
    assert "is damaged" in capfd.readouterr().err


def test_the_results_database_is_private_and_forgetting_redacts_the_person(tmp_path):
    """Erasure (issue 26 item 12): after forget, no row names the person, links their photo by hash, or keeps
    the file name; other people's faces in the same photo stay; the file is 0600 like the gallery."""
    path = tmp_path / "r.db"
    with ResultsDB(path) as db:
        assert (path.stat().st_mode & 0o777) == 0o600
        db.add(record("ann_at_the_beach.jpg", "Ann", "bob"), image_sha256="a" * 64, thresholds=THRESHOLDS,
               models=MODELS, source="cli")
        db.add(record("bob_alone.jpg", "bob"), image_sha256="b" * 64, thresholds=THRESHOLDS, models=MODELS,
               source="server")
        assert db.redact_person("ann") == 1  # names are one person up to case
        assert db.redact_person("ann") == 0
        rows = {r["image_sha256"]: r for r in db.query()}
        assert set(rows) == {None, "b" * 64}
        beach = rows[None]
        assert beach["file"] == "(redacted)"
        assert [f["identity"] for f in beach["faces"]] == [
            {"name": "unknown", "confidence": None, "distance": None, "closest": None},
            {"name": "bob", "confidence": 0.9, "distance": 0.5, "closest": "bob"}]
        assert beach["faces"][0]["emotion"]["label"] == "happy"
        assert db.query(person="Ann") == [] and len(db.query(person="bob")) == 2 and not db.unreadable
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("r.db"))
    assert b"Ann" not in blob and b"ann_at_the_beach" not in blob and b"a" * 64 not in blob


def all_text(path: Path) -> list[str]:
    """Every text value in every row of every table of a database."""
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return [v for t in tables for row in conn.execute(f'SELECT * FROM "{t}"') for v in row if isinstance(v, str)]
    finally:
        conn.close()


def test_forgetting_a_person_unlinks_the_strangers_closest_to_them(tmp_path):
    """Erasure with schema 5: a stranger whose closest enrolled person was the forgotten one links to them (and may
    be them on a photo mien could not name). After forget no row holds their name: that face keeps its emotion and
    box, loses closest and distance, its recognition file name and hash; other strangers and people stay."""
    path = tmp_path / "r.db"
    with ResultsDB(path) as db:
        db.add(stranger("alice_or_her_sister.jpg", "alice"), image_sha256="a" * 64, thresholds=THRESHOLDS,
               models=MODELS, source="cli")
        db.add(stranger("crowd.jpg", "carol"), image_sha256="c" * 64, thresholds=THRESHOLDS, models=MODELS,
               source="server")
        assert db.redact_person("Alice") == 0  # nobody was recognised as her (the count); the link still goes
        rows = {r["image_sha256"]: r for r in db.query()}
        assert not db.unreadable
    assert set(rows) == {None, "c" * 64}
    near, far = rows[None], rows["c" * 64]
    assert near["file"] == "(redacted)"
    assert near["faces"][0]["identity"] == {"name": "unknown", "confidence": None, "distance": None, "closest": None}
    assert near["faces"][0]["emotion"]["label"] == "sad" and near["faces"][0]["bbox"] == [5, 6, 30, 40]
    assert near["faces"][1]["identity"]["name"] == "bob" and near["faces"][1]["emotion"]["label"] == "happy"
    assert far["file"] == "crowd.jpg" and far["faces"][0]["identity"]["closest"] == "carol"
    assert [v for v in all_text(path) if "alice" in v.lower()] == []
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("r.db"))
    assert b"alice" not in blob.lower()


def test_forgetting_unlinks_strangers_closest_to_a_former_name_only_while_it_was_theirs(tmp_path):
    """Alice was renamed "Alice B" at t=1000 and another person enrolled as alice at t=2000: strangers nearest
    to alice before 2000 and to "Alice B" are hers; those nearest to the newcomer alice stay."""
    from mien.identity.gallery.base import NameSpan

    path = tmp_path / "r.db"
    with ResultsDB(path) as db:
        for file, closest, created in [("early.jpg", "alice", 500), ("renamed.jpg", "Alice B", 1500),
                                       ("newcomer.jpg", "alice", 2500)]:
            db.add(stranger(file, closest), image_sha256=None, thresholds=THRESHOLDS, models=MODELS, source="cli",
                   created=created)
        db.add(record("the_new_alice.jpg", "alice"), image_sha256=None, thresholds=THRESHOLDS, models=MODELS,
               source="cli", created=2600)
        assert db.redact_person("Alice B", [NameSpan("Alice B"), NameSpan("alice", None, 2000.0)]) == 0
        found = db.query()
    closest = sorted((r["file"], f["identity"]["closest"] or "-") for r in found for f in r["faces"])
    assert closest == [("(redacted)", "-"), ("(redacted)", "-"), ("(redacted)", "bob"), ("(redacted)", "bob"),
                       ("newcomer.jpg", "alice"), ("newcomer.jpg", "bob"), ("the_new_alice.jpg", "alice")]
    assert [v for v in all_text(path) if "alice b" in v.lower()] == []


def test_files_mien_writes_are_readable_by_their_owner_only(tmp_path):
    from mien.identity.storage import write_json_atomic

    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "results.json", {"faces": [{"name": "Ann"}]})
    finally:
        os.umask(old)
    assert ((tmp_path / "results.json").stat().st_mode & 0o777) == 0o600


def test_people_forget_redacts_the_default_results_database_and_the_ones_named(tmp_path):
    import numpy as np

    from mien.identity.gallery import NewFace, open_gallery

    home = tmp_path / "home"
    gallery = open_gallery(home / "identity" / "gallery.sqlite3")
    gallery.add_faces("Ann", [NewFace("h1", np.full(128, 128 ** -0.5, np.float32), "/p/ann.jpg")], "facenet-test")
    gallery.close()
    for path in (home / "mien.db", tmp_path / "elsewhere.db"):
        with ResultsDB(path) as db:
            db.add(record("ann.jpg", "Ann"), image_sha256="c" * 64, thresholds=THRESHOLDS, models=MODELS, source="cli")
    r = subprocess.run([sys.executable, "-m", "mien", "people", "forget", "Ann", "--yes", "--db", str(tmp_path / "elsewhere.db")],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "MIEN_HOME": str(home)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("1 recognised faces of Ann redacted to unknown") == 2
    for path in (home / "mien.db", tmp_path / "elsewhere.db"):
        with ResultsDB(path) as db:
            assert [f["identity"]["name"] for rec in db.query() for f in rec["faces"]] == ["unknown"]


def test_forgetting_a_renamed_person_redacts_their_history_under_every_name_they_had(tmp_path):
    """Issue 33 item 2: history rows keep the name a person had when recognised; after `people rename` and
    `people forget` none is left under the old name, while a newcomer later enrolled under that old name keeps
    their own rows (the gallery records when each name was given up and taken again)."""
    import time

    import numpy as np

    from mien.identity.gallery import NewFace, open_gallery

    home = tmp_path / "home"
    env = {**os.environ, "MIEN_HOME": str(home)}

    def mien(*args):
        r = subprocess.run([sys.executable, "-m", "mien", *args], capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def enroll(name, value):
        with open_gallery(home / "identity" / "gallery.sqlite3") as gallery:
            gallery.add_faces(name, [NewFace(name, np.full(128, value, np.float32), f"/p/{name}.jpg")], "facenet-test")

    def store(file, *people):
        with ResultsDB(home / "mien.db") as db:
            db.add(record(file, *people), image_sha256=file * 8, thresholds=THRESHOLDS, models=MODELS, source="cli")

    enroll("madonna", 128 ** -0.5)
    store("madonna_on_stage.jpg", "madonna")
    mien("people", "rename", "madonna", "Madonna L")
    store("after_the_rename.jpg", "Madonna L")
    enroll("Madonna", -(128 ** -0.5))  # another person under the name given up
    store("the_newcomer.jpg", "Madonna")
    out = mien("people", "forget", "Madonna L", "--yes")
    assert "2 recognised faces of Madonna L redacted to unknown" in out, out
    assert json.loads(mien("history", "--person", "Madonna L", "--json")) == []
    [kept] = json.loads(mien("history", "--person", "madonna", "--json"))
    assert kept["file"] == "the_newcomer.jpg"
    with ResultsDB(home / "mien.db") as db:
        files = sorted(r["file"] for r in db.query())
    assert files == ["(redacted)", "(redacted)", "the_newcomer.jpg"]
    blob = b"".join(p.read_bytes() for p in home.glob("mien.db*"))
    assert b"madonna_on_stage" not in blob and b"after_the_rename" not in blob
    with open_gallery(home / "identity" / "gallery.sqlite3") as gallery:  # the former name went with the person
        assert [s.name for s in gallery.name_spans("Madonna")] == ["Madonna"]


def test_a_date_out_of_range_is_a_usage_error_in_the_cli_and_a_422_in_the_api(tmp_path, capfd):
    """Issue 33 item 8: `since=0001-01-01` was a 500 (year 0 in the local zone) and "invalid since_timestamp
    value" in the CLI; both now say what is wrong, naming the CLI's option or the API's field."""
    from mien.pipeline.app.cli import main

    with pytest.raises(DatabaseError, match="^since '0001-01-01': out of the range of dates"):
        parse_since("0001-01-01", "since")
    with ResultsDB(tmp_path / "r.db"):
        pass
    assert main(["history", "--db", str(tmp_path / "r.db"), "--since", "0001-01-01"]) == 2
    assert "--since '0001-01-01': out of the range of dates" in capfd.readouterr().err
