"""The embedded gallery: one SQLite file (WAL, transactions, secure delete), safe for several processes at once.

Writers take SQLite's write lock (``BEGIN IMMEDIATE``) and wait up to ``timeout`` seconds for another writer,
so two enrollments never lose each other's people. Every committed change bumps ``generation`` and is logged
in ``changes``, so a running server or a nearest-neighbour index catches up incrementally.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from mien.identity.errors import StaleModelError
from mien.identity.gallery.base import (
    SCHEMA_VERSION, AddedFace, Changes, Gallery, GalleryBusyError, GalleryError, GalleryFullError, GalleryGoneError,
    GallerySnapshot, NameSpan, NewFace, PersonExistsError, PersonInfo, UnknownPersonError, UnknownPhotoError, name_key,
    name_spans, person_info, snapshot_from,
)

log = logging.getLogger(__name__)

UPLOAD = "upload:"  # source prefix of photos added one person at a time (API, `mien people add`)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,
    key TEXT NOT NULL UNIQUE, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS faces(id INTEGER PRIMARY KEY AUTOINCREMENT,
    person INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE, photo_hash TEXT NOT NULL,
    embedding BLOB NOT NULL, source TEXT NOT NULL, added TEXT NOT NULL, UNIQUE(person, photo_hash));
CREATE INDEX IF NOT EXISTS faces_by_hash ON faces(photo_hash);
CREATE TABLE IF NOT EXISTS stored_photos(face INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,
    data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS photo_cache(photo_hash TEXT NOT NULL, model TEXT NOT NULL, embedding BLOB,
    reason TEXT, bbox TEXT, PRIMARY KEY(photo_hash, model));
CREATE TABLE IF NOT EXISTS changes(seq INTEGER PRIMARY KEY AUTOINCREMENT, generation INTEGER NOT NULL,
    face INTEGER NOT NULL, op TEXT NOT NULL CHECK(op IN ('add', 'del')));
CREATE TABLE IF NOT EXISTS former_names(person INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    name TEXT NOT NULL, key TEXT NOT NULL, renamed REAL NOT NULL, taken REAL);
CREATE INDEX IF NOT EXISTS former_names_by_key ON former_names(key)
"""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of a file, or None if there is none at ``path``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _is_storage_problem(exc: sqlite3.Error) -> bool:
    """A full disk, an I/O error or a read-only file: the storage failed, not the gallery's contents."""
    text = str(exc).lower()
    return any(k in text for k in ("full", "disk i/o", "readonly", "read-only", "unable to open"))


def _storage_error(path: Path, exc: sqlite3.Error, kept: str) -> GalleryError:
    """The one-line error for an SQLite failure while writing: a full disk says so (and that the data is kept)."""
    if "full" in str(exc).lower():
        return GalleryFullError(f"{path}: the disk is full; {kept} and the gallery is intact. Free some space and "
                            "try again.")
    if _is_storage_problem(exc):
        return GalleryError(f"{path}: cannot be written ({exc}); {kept}. Check the disk and the file's permissions.")
    return GalleryError(f"{path}: the gallery refused the change ({exc}); {kept}.")


def _blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


class SQLiteGallery(Gallery):
    """The gallery in one SQLite file; thread-safe (one connection behind a lock) and multi-process safe."""

    def __init__(self, path: str | os.PathLike, timeout: float = 30.0):
        self.path = Path(path)
        self.location = str(self.path)
        self.timeout = timeout
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():  # biometric data: readable by its owner only
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._wal = self.path.with_name(self.path.name + "-wal")
        self._opened = {self.path: _file_id(self.path), self._wal: _file_id(self._wal)}
        try:
            self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA secure_delete=ON")  # forgotten faces are overwritten, not just unlinked
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._check_schema()
        except sqlite3.DatabaseError as exc:
            if _is_storage_problem(exc):
                raise _storage_error(self.path, exc, "the gallery was not opened") from exc
            raise GalleryError(f"{self.path}: not a mien gallery ({exc}). Move it away; `mien enroll DIR` "
                               "builds a new one.") from exc

    def check(self) -> None:
        """GalleryGoneError if the gallery file or its write-ahead log was deleted or replaced since it was opened:
        SQLite would go on writing into the unlinked file, and every change from then on would be lost."""
        for path, opened in self._opened.items():
            now = _file_id(path)
            if opened is None and path == self._wal and now is not None:
                self._opened[path] = now  # the log appeared with the first write: it is ours from now on
            elif now != opened:
                raise GalleryGoneError(
                    f"{path}: {'deleted' if now is None else 'replaced'} while this mien process had the gallery "
                    "open, so nothing more is written to it. Restart mien (or `mien serve`) to use the gallery "
                    f"now at {self.path}; restore it from a backup if it was deleted by mistake.")

    def _check_schema(self) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "meta" not in tables:
            raise GalleryError(f"{self.path}: an SQLite file that is not a mien gallery (tables: "
                               f"{', '.join(sorted(tables))}); give another path.")
        if "meta" in tables:
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            found = int(row[0]) if row else 0
            if found > SCHEMA_VERSION:
                raise GalleryError(f"{self.path}: written by a newer mien (gallery schema {found}, this mien knows "
                                   f"{SCHEMA_VERSION}); upgrade mien (pip install -U mien).")
            if found == SCHEMA_VERSION:
                return
        with self._write(bump=False) as db:  # executescript would COMMIT: run the statements one by one
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
            db.execute("INSERT OR IGNORE INTO meta VALUES ('gallery_id', ?)", (uuid.uuid4().hex,))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    # ---- transactions ----------------------------------------------------------------------------
    @contextmanager
    def _write(self, bump: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction; with ``bump`` the generation grows by one when it commits."""
        with self._lock:
            self.check()
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise GalleryBusyError(f"{self.path}: another mien process has been changing the gallery for over "
                                       f"{self.timeout:.0f} s ({exc}); try again when it has finished.") from exc
            try:
                yield self._db
                if bump:
                    self._db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")
                self._db.execute("COMMIT")
            except BaseException as exc:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite ended the transaction itself (a full disk, an I/O error): the real error follows
                if isinstance(exc, sqlite3.Error):
                    raise _storage_error(self.path, exc, "nothing was changed") from exc
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent read of several statements."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._db.execute("COMMIT")

    def _next_generation(self, db: sqlite3.Connection) -> int:
        return int(db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0]) + 1

    # ---- reading ---------------------------------------------------------------------------------
    def generation(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])

    def gallery_id(self) -> str:
        with self._lock:
            return self._db.execute("SELECT value FROM meta WHERE key='gallery_id'").fetchone()[0]

    def model(self) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='model'").fetchone()
        return row[0] if row else None

    def thresholds(self) -> dict:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='thresholds'").fetchone()
        return json.loads(row[0]) if row else {}

    def people(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT p.name, COUNT(f.id) FROM people p LEFT JOIN faces f ON f.person = p.id "
                                    "GROUP BY p.id ORDER BY p.name").fetchall()
        return {name: n for name, n in rows}

    def person(self, name: str) -> PersonInfo:
        with self._read() as db:
            pid, exact = self._person_id(db, name)
            rows = db.execute("SELECT id, photo_hash, source, added, EXISTS(SELECT 1 FROM stored_photos WHERE face=f.id) "
                              "FROM faces f WHERE person=? ORDER BY id", (pid,)).fetchall()
        return person_info(exact, rows)

    def snapshot(self, vectors: bool = True) -> GallerySnapshot:
        column = "f.embedding" if vectors else "NULL"
        with self._read() as db:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            rows = db.execute(f"SELECT f.id, p.name, {column} FROM faces f JOIN people p ON p.id = f.person "
                              "ORDER BY f.id").fetchall()
        matrix = (np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(len(rows), -1)
                  if rows and vectors else np.zeros((0, 0), np.float32))
        return snapshot_from(meta, rows, matrix)

    def changes_since(self, generation: int) -> Changes | None:
        with self._read() as db:
            gen = int(db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])
            start = db.execute("SELECT value FROM meta WHERE key='log_start'").fetchone()
            if start is not None and generation < int(start[0]):
                return None
            removed = [r[0] for r in db.execute("SELECT DISTINCT face FROM changes WHERE generation > ? AND op='del'",
                                                (generation,))]
            rows = db.execute("SELECT f.id, p.name, f.embedding FROM faces f JOIN people p ON p.id = f.person "
                              "WHERE f.id IN (SELECT face FROM changes WHERE generation > ? AND op='add') ORDER BY f.id",
                              (generation,)).fetchall()
        vectors = (np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(len(rows), -1)
                   if rows else np.zeros((0, 0), np.float32))
        return Changes(gen, np.array([r[0] for r in rows], np.int64), vectors, [r[1] for r in rows],
                       np.array(removed, np.int64))

    # ---- embedding cache -------------------------------------------------------------------------
    def cached(self, photo_hashes: list[str], model: str) -> dict:
        out = {}
        with self._lock:
            for i in range(0, len(photo_hashes), 500):
                chunk = photo_hashes[i:i + 500]
                marks = ",".join("?" * len(chunk))
                for h, emb, reason, bbox in self._db.execute(
                        f"SELECT photo_hash, embedding, reason, bbox FROM photo_cache WHERE model=? AND photo_hash IN ({marks})",
                        (model, *chunk)):
                    out[h] = (np.frombuffer(emb, np.float32).copy() if emb is not None else None, reason,
                              tuple(json.loads(bbox)) if bbox else None)
        return out

    def cache(self, entries: dict, model: str) -> None:
        if not entries:
            return
        with self._write(bump=False) as db:
            db.executemany("INSERT OR REPLACE INTO photo_cache VALUES (?, ?, ?, ?, ?)",
                           [(h, model, _blob(e) if e is not None else None, reason,
                             json.dumps([int(v) for v in bbox]) if bbox else None)
                            for h, (e, reason, bbox) in entries.items()])

    # ---- writing ---------------------------------------------------------------------------------
    def _person_id(self, db: sqlite3.Connection, name: str) -> tuple[int, str]:
        row = db.execute("SELECT id, name FROM people WHERE key=?", (name_key(name),)).fetchone()
        if row is None:
            raise UnknownPersonError.of(name)
        return row[0], row[1]

    def _ensure_person(self, db: sqlite3.Connection, name: str) -> int:
        row = db.execute("SELECT id, name FROM people WHERE key=?", (name_key(name),)).fetchone()
        if row is None:
            self._take_name(db, name)
            return db.execute("INSERT INTO people(name, key, created) VALUES (?, ?, ?)",
                              (name, name_key(name), _now())).lastrowid
        if row[1] != name:
            raise PersonExistsError(f"{name!r} differs from the enrolled {row[1]!r} only in case or Unicode form; "
                                    f"use {row[1]!r} (or `mien people rename` it first). Nothing was changed.")
        return row[0]

    def _check_model(self, db: sqlite3.Connection, model: str, replace: bool = False) -> None:
        row = db.execute("SELECT value FROM meta WHERE key='model'").fetchone()
        has_faces = db.execute("SELECT EXISTS(SELECT 1 FROM faces)").fetchone()[0]
        if row is not None and row[0] != model and has_faces and not replace:
            raise StaleModelError(
                f"{self.path}: its embeddings were made by {row[0]}, but {model} is loaded; rebuild the gallery with "
                "`mien enroll DIR --replace` (people added one by one must then be added again). Nothing was changed.")
        db.execute("INSERT OR REPLACE INTO meta VALUES ('model', ?)", (model,))

    def _insert_face(self, db: sqlite3.Connection, gen: int, pid: int, face: NewFace) -> bool:
        cur = db.execute("INSERT OR IGNORE INTO faces(person, photo_hash, embedding, source, added) VALUES (?,?,?,?,?)",
                         (pid, face.photo_hash, _blob(face.embedding), face.source, _now()))
        if cur.rowcount == 0:
            return False
        if face.photo is not None:
            db.execute("INSERT INTO stored_photos VALUES (?, ?)", (cur.lastrowid, face.photo))
        db.execute("INSERT INTO changes(generation, face, op) VALUES (?, ?, 'add')", (gen, cur.lastrowid))
        return True

    def _delete_faces(self, db: sqlite3.Connection, gen: int, face_ids: list[int]) -> None:
        for fid in face_ids:
            hashes = db.execute("SELECT photo_hash FROM faces WHERE id=?", (fid,)).fetchone()
            db.execute("DELETE FROM faces WHERE id=?", (fid,))
            db.execute("INSERT INTO changes(generation, face, op) VALUES (?, ?, 'del')", (gen, fid))
            if hashes:  # erasure: the cached embedding of that photo goes too
                db.execute("DELETE FROM photo_cache WHERE photo_hash=?", hashes)

    def _others_with(self, db: sqlite3.Connection, pid: int, photo_hash: str) -> tuple[str, ...]:
        return tuple(r[0] for r in db.execute("SELECT p.name FROM faces f JOIN people p ON p.id=f.person "
                                              "WHERE f.photo_hash=? AND f.person<>?", (photo_hash, pid)))

    def add_faces(self, name: str, faces: list[NewFace], model: str) -> list[AddedFace]:
        with self._write() as db:
            self._check_model(db, model)
            gen = self._next_generation(db)
            pid = self._ensure_person(db, name)
            return [AddedFace(f.photo_hash, self._insert_face(db, gen, pid, f), self._others_with(db, pid, f.photo_hash))
                    for f in faces]

    def sync_folder(self, people: dict[str, list[NewFace]], model: str, *, replace: bool = False) -> dict:
        added, removed, forgotten, shared = 0, 0, [], []
        with self._write() as db:
            self._check_model(db, model, replace)
            gen = self._next_generation(db)
            keep = set()
            for name, faces in people.items():
                pid = self._ensure_person(db, name)
                keep.add(pid)
                wanted = {f.photo_hash for f in faces}
                stale = [fid for fid, h, src in db.execute("SELECT id, photo_hash, source FROM faces WHERE person=?", (pid,))
                         if h not in wanted and (replace or not src.startswith(UPLOAD))]
                self._delete_faces(db, gen, stale)
                removed += len(stale)
                for f in faces:
                    if self._insert_face(db, gen, pid, f):
                        added += 1
                    if others := self._others_with(db, pid, f.photo_hash):
                        shared.append((f.source, name, others))
            if replace:
                for pid, pname in db.execute("SELECT id, name FROM people ORDER BY name").fetchall():
                    if pid not in keep:
                        removed += self._forget(db, gen, pid)
                        forgotten.append(pname)
        if forgotten or removed:
            self._checkpoint()
        return {"added": added, "removed": removed, "forgotten": forgotten, "shared": shared}

    def _forget(self, db: sqlite3.Connection, gen: int, pid: int) -> int:
        ids = [r[0] for r in db.execute("SELECT id FROM faces WHERE person=?", (pid,))]
        self._delete_faces(db, gen, ids)
        db.execute("DELETE FROM people WHERE id=?", (pid,))
        return len(ids)

    def forget(self, name: str) -> int:
        with self._write() as db:
            pid, _ = self._person_id(db, name)
            n = self._forget(db, self._next_generation(db), pid)
        self._checkpoint()
        return n

    def remove_photo(self, name: str, photo_hash: str) -> int:
        with self._write() as db:
            pid, enrolled = self._person_id(db, name)
            ids = [r[0] for r in db.execute("SELECT id FROM faces WHERE person=? AND photo_hash=?", (pid, photo_hash))]
            if not ids:
                raise UnknownPhotoError.of(enrolled, photo_hash)
            self._delete_faces(db, self._next_generation(db), ids)
        self._checkpoint()
        return len(ids)

    def _checkpoint(self) -> None:
        """Fold the WAL into the database so erased rows do not linger in the log file."""
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:  # committed already; only folding the log into the file failed
                log.warning("%s: could not fold the write-ahead log into the gallery (%s); it is folded at the next "
                            "write", self.path, exc)

    @staticmethod
    def _take_name(db: sqlite3.Connection, name: str) -> None:
        """A person starts to hold ``name``: anyone who had it before is recognised under it no longer."""
        db.execute("UPDATE former_names SET taken=? WHERE key=? AND taken IS NULL", (time.time(), name_key(name)))

    def name_spans(self, name: str) -> list[NameSpan]:
        with self._read() as db:
            pid, exact = self._person_id(db, name)
            former = db.execute("SELECT name, taken FROM former_names WHERE person=? ORDER BY renamed", (pid,)).fetchall()
            keys = [name_key(exact)] + [name_key(n) for n, _ in former]
            others = db.execute(f"SELECT key, taken FROM former_names WHERE person != ? AND taken IS NOT NULL AND key IN "
                                f"({','.join('?' * len(keys))})", (pid, *keys)).fetchall()
        return name_spans(exact, former, others)

    def rename(self, old: str, new: str) -> None:
        with self._write() as db:
            pid, exact = self._person_id(db, old)
            row = db.execute("SELECT id, name FROM people WHERE key=?", (name_key(new),)).fetchone()
            if row is not None and row[0] != pid:
                raise PersonExistsError(f"{new!r} is already enrolled (as {row[1]!r}); forget or rename that person first.")
            if name_key(new) != name_key(exact):  # their history keeps the old name: erasure must still find it
                self._take_name(db, new)
                db.execute("INSERT INTO former_names(person, name, key, renamed) VALUES (?, ?, ?, ?)",
                           (pid, exact, name_key(exact), time.time()))
            db.execute("UPDATE people SET name=?, key=? WHERE id=?", (new, name_key(new), pid))
            gen = self._next_generation(db)
            for (fid,) in db.execute("SELECT id FROM faces WHERE person=?", (pid,)).fetchall():  # labels changed
                db.executemany("INSERT INTO changes(generation, face, op) VALUES (?, ?, ?)",
                               [(gen, fid, "del"), (gen, fid, "add")])

    def set_thresholds(self, thresholds: dict) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('thresholds', ?)", (json.dumps(thresholds, sort_keys=True),))

    def stored_photo(self, face_id: int) -> bytes | None:
        """The bytes of an uploaded photo (kept so it can be re-embedded by a new model)."""
        with self._lock:
            row = self._db.execute("SELECT data FROM stored_photos WHERE face=?", (face_id,)).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        with self._lock:
            self._db.close()
