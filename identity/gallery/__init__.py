"""The gallery: one store of enrolled people, their photos' content hashes and embeddings (the source of truth).

Every front end (``mien enroll``, ``mien people``, the API, the web page) reads and writes people through a
``Gallery``; matchers (SVM, nearest-neighbour index) are built from its snapshots. Backends are chosen by
location: a file path (SQLite, the default) or a ``postgresql://`` URL.
"""
from __future__ import annotations

import os
from typing import Callable

from mien.identity.gallery.base import (  # noqa: F401 (the public API)
    AddedFace, Changes, Gallery, GalleryBusyError, GalleryError, GalleryFullError, GallerySnapshot, NewFace, PersonExistsError,
    PersonInfo, UnknownPersonError, UnknownPhotoError, name_key,
)

BACKENDS: dict[str, Callable[[str], Gallery]] = {}


def _sqlite(location: str) -> Gallery:
    from mien.identity.gallery.sqlite import SQLiteGallery

    return SQLiteGallery(location.removeprefix("sqlite://"))


BACKENDS["sqlite"] = _sqlite


def _postgresql(location: str) -> Gallery:
    from mien.identity.gallery.postgres import PostgresGallery  # psycopg is imported only for a postgresql:// URL

    return PostgresGallery(location)


BACKENDS["postgresql"] = _postgresql


def open_gallery(location: str | os.PathLike) -> Gallery:
    """Open (creating if needed) the gallery at ``location``: a SQLite file path or ``scheme://...`` URL."""
    text = os.fspath(location)
    scheme = text.split("://", 1)[0] if "://" in text else "sqlite"
    if scheme in ("postgres", "postgresql"):
        scheme = "postgresql"
    if scheme not in BACKENDS:
        raise GalleryError(f"{text}: unknown gallery backend {scheme!r}; use a file path (SQLite) "
                           f"or one of {sorted(BACKENDS)}.")
    return BACKENDS[scheme](text)
