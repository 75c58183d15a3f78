"""The results database: every recognition (image, thresholds, model versions, faces) in SQLite.

One recognition and its faces are written in a single transaction, so a process killed mid-write
leaves either the whole record or nothing. The schema version lives in ``PRAGMA user_version`` and
is migrated forward by ``MIGRATIONS`` when a database is opened.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from mien.pipeline.errors import UsageError
from mien.pipeline.home import mien_home
from mien.identity.gallery.base import NameSpan
from mien.identity.match import UNKNOWN, IdentityMatch, name_text
from mien.pipeline.records import EmotionResult, FaceRecord, ImageRecord

DB_NAME = "mien.db"

# MIGRATIONS[i] brings a database from schema version i to i + 1; never edit a shipped entry, append.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE recognitions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created REAL NOT NULL,
        source TEXT NOT NULL,
        image_name TEXT NOT NULL,
        image_sha256 TEXT,
        width INTEGER,
        height INTEGER,
        thresholds TEXT NOT NULL,
        models TEXT NOT NULL,
        error TEXT,
        n_faces INTEGER NOT NULL
    );
    CREATE TABLE faces (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        recognition_id INTEGER NOT NULL REFERENCES recognitions(id) ON DELETE CASCADE,
        face_id INTEGER NOT NULL,
        x INTEGER NOT NULL, y INTEGER NOT NULL, w INTEGER NOT NULL, h INTEGER NOT NULL,
        detection_confidence REAL NOT NULL,
        identity TEXT,
        identity_confidence REAL,
        identity_distance REAL,
        emotion TEXT,
        emotion_confidence REAL,
        emotion_scores TEXT
    );
    """,
    """
    CREATE INDEX faces_identity ON faces(identity);
    CREATE INDEX faces_recognition ON faces(recognition_id);
    CREATE INDEX recognitions_created ON recognitions(created);
    """,
    """
    ALTER TABLE faces ADD COLUMN landmarks TEXT;
    """,
    """
    ALTER TABLE faces ADD COLUMN detection_scale REAL NOT NULL DEFAULT 1.0;
    """,
    """
    ALTER TABLE faces ADD COLUMN identity_closest TEXT;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


class DatabaseError(UsageError):
    """The results database cannot be used (newer schema, not a database, unwritable)."""


def default_db_path() -> Path:
    """``mien.db`` under MIEN_HOME."""
    return mien_home() / DB_NAME


def redact_everywhere(name: str, names: Sequence[NameSpan], databases: Sequence[Path] = ()) -> list[tuple[Path, int]]:
    """Erasure in every results database that holds history: MIEN_HOME's (whenever it exists) and ``databases``;
    returns (database, faces redacted) for each. Forgetting through the CLI or Python calls this (a server redacts
    its own database)."""
    found = [p for p in [default_db_path(), *map(Path, databases)] if p.is_file()]
    done = []
    for path in dict.fromkeys(p.resolve() for p in found):
        with ResultsDB(path, create=False) as db:
            done.append((path, db.redact_person(name, names)))
    return done


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to SCHEMA_VERSION, one transaction per step; return the version found before."""
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise DatabaseError(f"results database has schema version {found}, newer than this mien ({SCHEMA_VERSION}); "
                            "upgrade mien or use another --db.")
    for version in range(found, SCHEMA_VERSION):
        # executescript would COMMIT implicitly; run each statement inside one explicit transaction instead.
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in (s.strip() for s in MIGRATIONS[version].split(";")):
                if stmt:
                    conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return found


def parse_since(text: str, what: str = "--since") -> float:
    """A date or datetime (ISO 8601, local time unless it carries a zone) as a Unix timestamp; DatabaseError naming
    ``what`` (the CLI's option or the API's field) for a malformed date or one too early or late to compare."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise DatabaseError(f"{what} {text!r}: expected a date like 2024-05-31 or 2024-05-31T14:00") from None
    try:
        return dt.timestamp()
    except (ValueError, OverflowError, OSError):  # year 1 in a zone east of UTC is year 0; year 9999 overflows
        raise DatabaseError(f"{what} {text!r}: out of the range of dates a recognition can have; give one like "
                            "2024-05-31") from None


def _name_key(name: str | None) -> str | None:
    from mien.identity.gallery.base import name_key

    return None if name is None else name_key(name)


class ResultsDB:
    """A thread-safe handle on the results database (one connection, writes serialised by a lock)."""

    def __init__(self, path: str | os.PathLike | None = None, create: bool = True):
        self.path = Path(path) if path else default_db_path()
        if not create and not self.path.is_file():  # a reader must not conjure an empty database from a typo
            raise DatabaseError(f"{self.path}: no such results database (`mien recognize ... --db` writes one).")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():  # who was seen where and when: readable by its owner only, like the gallery
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.unreadable: list[str] = []  # rows the last query() could not read (hand-edited or damaged)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA secure_delete=ON")  # redacted values are overwritten, not left in free pages
            self._conn.create_function("name_key", 1, _name_key, deterministic=True)  # a person's name up to case
            migrate(self._conn)
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(f"{self.path}: not a usable SQLite database ({exc}).") from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "ResultsDB":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def add(self, record: ImageRecord, *, image_sha256: str | None, thresholds: dict, models: dict,
            source: str, created: float | None = None) -> int:
        """Store one image's recognition and all its faces in one transaction; return its id."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.execute(
                    "INSERT INTO recognitions (created, source, image_name, image_sha256, width, height, thresholds,"
                    " models, error, n_faces) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (time.time() if created is None else created, source, record.file, image_sha256, record.width,
                     record.height, json.dumps(thresholds, sort_keys=True), json.dumps(models, sort_keys=True),
                     record.error, len(record.faces)))
                rid = cur.lastrowid
                cur.executemany(
                    "INSERT INTO faces (recognition_id, face_id, x, y, w, h, detection_confidence, identity,"
                    " identity_confidence, identity_distance, emotion, emotion_confidence, emotion_scores, landmarks,"
                    " detection_scale, identity_closest) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [(rid, f.face_id, *map(int, f.bbox), float(f.detection_confidence),
                      f.identity.name if f.identity else None,
                      float(f.identity.confidence) if f.identity and f.identity.confidence is not None else None,
                      float(f.identity.distance) if f.identity and f.identity.distance is not None else None,
                      f.emotion.label if f.emotion else None,
                      float(f.emotion.confidence) if f.emotion else None,
                      json.dumps(f.emotion.scores) if f.emotion else None,
                      json.dumps(f.to_dict()["landmarks"]), float(f.detection_scale),
                      f.identity.closest if f.identity and not f.identity.known else None) for f in record.faces])
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            return int(rid)

    def redact_person(self, name: str, names: Sequence[NameSpan] | None = None) -> int:
        """Erasure of a forgotten person: every face recognised as them becomes ``unknown`` (no confidence, no
        distance), and each recognition they appeared in loses its file name and photo hash (the name may be in
        the file name; the hash links back to the photo). A stranger whose closest enrolled person they were is
        linked to them too (and may be them on a photo mien could not name): that face loses its closest person
        and the distance to them, and its recognition its file name and hash, likewise. Emotions and boxes stay,
        as for any stranger. ``names`` (``Gallery.name_spans``, read before forgetting) are every name they had
        and when: rows stored under a name before a rename are theirs too. Returns the faces recognised as them
        (strangers merely nearest to them are redacted but not counted); the write-ahead log is folded in so the
        old values do not linger there."""
        from mien.identity.gallery.base import name_key

        spans = list(names) if names else [NameSpan(name)]
        with self._lock:
            rows = self._conn.execute(
                "SELECT f.id, f.identity, f.identity_closest, r.created FROM faces f JOIN recognitions r "
                "ON r.id = f.recognition_id WHERE f.identity IS NOT NULL OR f.identity_closest IS NOT NULL").fetchall()
            named, linked = set(), set()
            for span in spans:
                key = name_key(span.name)
                for fid, who, closest, created in rows:
                    if (span.since is None or created >= span.since) and (span.until is None or created < span.until):
                        if who is not None and name_key(who) == key:
                            named.add(fid)
                        elif closest is not None and name_key(closest) == key:
                            linked.add(fid)
            ids = sorted(named | linked)
            if not ids:
                return 0
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
                    marks = ",".join("?" * len(chunk))
                    self._conn.execute(f"UPDATE recognitions SET image_name = '(redacted)', image_sha256 = NULL WHERE id "
                                       f"IN (SELECT recognition_id FROM faces WHERE id IN ({marks}))", chunk)
                    self._conn.execute(f"UPDATE faces SET identity = ?, identity_confidence = NULL, identity_distance = "
                                       f"NULL, identity_closest = NULL WHERE id IN ({marks})", (UNKNOWN, *chunk))
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(named)

    def query(self, person: str | None = None, since: float | None = None, limit: int | None = None,
              emotion: str | None = None) -> list[dict]:
        """Recognitions (newest first) with their faces; ``person`` keeps those where that person was seen,
        ``emotion`` those where a face showed it (with ``person``: that person's face)."""
        where, params = [], []
        if since is not None:
            where.append("r.created >= ?")
            params.append(since)
        face = []
        if person is not None:
            face.append("name_key(f.identity) = ?")
            params.append(_name_key(person))  # one person up to case and Unicode form, as in the gallery
        if emotion is not None:
            face.append("f.emotion = ?")
            params.append(emotion)
        if face:
            where.append("EXISTS (SELECT 1 FROM faces f WHERE f.recognition_id = r.id AND " + " AND ".join(face) + ")")
        sql = "SELECT * FROM recognitions r" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY r.created DESC, r.id DESC" + (f" LIMIT {int(limit)}" if limit else "")
        with self._lock:
            self._conn.row_factory = sqlite3.Row
            try:
                rows = self._conn.execute(sql, params).fetchall()
                faces: dict[int, list[FaceRecord]] = {}
                ids = [r["id"] for r in rows]
                for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
                    marks = ",".join("?" * len(chunk))
                    for f in self._conn.execute(f"SELECT * FROM faces WHERE recognition_id IN ({marks}) "
                                                "ORDER BY recognition_id, face_id", chunk):
                        try:
                            faces.setdefault(f["recognition_id"], []).append(_face_record(f))
                        except (TypeError, ValueError, KeyError) as exc:
                            self.unreadable.append(f"recognition {f['recognition_id']} face {f['face_id']}: {exc}")
            finally:
                self._conn.row_factory = None
        out = []
        for r in rows:
            try:
                out.append(_recognition_dict(r, faces.get(r["id"], [])))
            except (TypeError, ValueError, KeyError, OverflowError, OSError) as exc:
                self.unreadable.append(f"recognition {r['id']}: {exc}")
        return out

    def quick_check(self) -> list[str]:
        """SQLite's quick_check: damaged pages make rows vanish silently from queries, so readers check first."""
        with self._lock:
            return [r[0] for r in self._conn.execute("PRAGMA quick_check") if r[0] != "ok"]

    def check(self) -> list[str]:
        """Consistency problems (empty when fine): SQLite integrity plus every record holding all its faces."""
        with self._lock:
            problems = [r[0] for r in self._conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
            problems += [f"recognition {rid}: {have} faces stored, {want} expected" for rid, want, have in
                         self._conn.execute("SELECT r.id, r.n_faces, (SELECT COUNT(*) FROM faces f WHERE "
                                            "f.recognition_id = r.id) AS have FROM recognitions r WHERE have != r.n_faces")]
        return problems


def _face_record(f: sqlite3.Row) -> FaceRecord:
    """A stored face as the FaceRecord it was (rows from before schema 3 have no landmarks; before 4, scale 1;
    a stranger stored before 5, or whose closest person was forgotten, has no closest person: None, never
    ``unknown``)."""
    identity = None
    if f["identity"] is not None:
        named = f["identity"] != UNKNOWN
        identity = IdentityMatch(f["identity"], f["identity_confidence"], f["identity_distance"],
                                 f["identity"] if named else (f["identity_closest"] or UNKNOWN))
    emotion = None if f["emotion"] is None else EmotionResult(
        f["emotion"], f["emotion_confidence"], json.loads(f["emotion_scores"]))
    landmarks = {k: tuple(v) for k, v in json.loads(f["landmarks"] or "{}").items()}
    return FaceRecord(f["face_id"], (f["x"], f["y"], f["w"], f["h"]), f["detection_confidence"], landmarks,
                      identity, emotion, f["detection_scale"])


def _recognition_dict(r: sqlite3.Row, faces: list[FaceRecord]) -> dict[str, Any]:
    """A stored recognition: the image record (as ImageRecord.to_dict writes it) plus where it came from."""
    record = ImageRecord(r["image_name"], r["width"] or 0, r["height"] or 0, faces, r["error"])
    return {
        "id": r["id"], "created": datetime.fromtimestamp(r["created"], timezone.utc).astimezone().isoformat(timespec="seconds"),
        "source": r["source"], "image_sha256": r["image_sha256"], "thresholds": json.loads(r["thresholds"]),
        "models": json.loads(r["models"]), **record.to_dict(),
    }


def history_rows(recognitions: list[dict]) -> list[list[str]]:
    """Table rows (time, source, image, face, who, emotion) for ``mien history``: a stranger is ``unknown (closest:
    NAME)`` as in ``mien recognize``'s table."""
    rows = []
    for r in recognitions:
        if r.get("error") or not r["faces"]:
            rows.append([r["created"], r["source"], r["file"], "-", "ERROR" if r.get("error") else "(no face)",
                         r.get("error") or ""])
        for f in r["faces"]:
            who = name_text(f["identity"]["name"], f["identity"].get("closest")) if f["identity"] else "-"
            emo = f"{f['emotion']['label']} {f['emotion']['confidence']:.2f}" if f["emotion"] else "-"
            rows.append([r["created"], r["source"], r["file"], str(f["face_id"]), who, emo])
    return rows
