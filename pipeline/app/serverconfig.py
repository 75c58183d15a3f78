"""How `mien serve` behaves (``ServerConfig``: token, limits, where it writes) and the check that refuses to serve
an unsafe configuration; its own module so the server's state and routes read it without importing the server."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from mien.pipeline.app.batching import MAX_PENDING
from mien.pipeline.errors import UsageError

DEFAULT_MAX_UPLOAD = 10 * 1024 * 1024
MAX_PHOTOS_PER_REQUEST = 20
MIN_TOKEN_LENGTH = 12  # a bearer token anyone on the network can try: not a short word


class ServeConfigError(UsageError):
    """The server cannot start as configured (e.g. no token while enrolling is enabled)."""


@dataclasses.dataclass
class ServerConfig:
    """How the API behaves: auth token, whether people can be changed, limits and where it writes."""

    token: str | None = None
    allow_unauthenticated: bool = False
    read_only: bool = False
    max_upload: int = DEFAULT_MAX_UPLOAD
    max_video_upload: int = 200 * 1024 * 1024  # POST /video (a minute of phone video is ~100 MB)
    db_path: Path | None = None
    home: Path | None = None
    max_pending: int = MAX_PENDING
    # Host headers answered (DNS-rebinding guard); None: any (the in-process test client, a server on 0.0.0.0)
    allowed_hosts: frozenset[str] | None = None

    def check(self) -> None:
        """Refuse to serve mutating endpoints to anyone at all unless explicitly allowed, or behind a guessable token."""
        if self.token is not None and len(self.token.strip()) < MIN_TOKEN_LENGTH:
            raise ServeConfigError(f"MIEN_API_TOKEN is {len(self.token.strip())} characters (blank ones not counted); "
                                   f"use at least {MIN_TOKEN_LENGTH}, e.g. `python -c \"import secrets; "
                                   "print(secrets.token_urlsafe())\"`.")
        if not self.token and not self.read_only and not self.allow_unauthenticated:
            raise ServeConfigError("MIEN_API_TOKEN is not set, so anyone could enroll or forget people. Set it "
                                   "(clients send `Authorization: Bearer <token>`), or pass --read-only or "
                                   "--allow-unauthenticated.")

    def body_limit(self, path: str) -> int:
        """The largest request body taken on ``path`` (``guards.BodyLimit``): a video, up to 20 photos of a person,
        or one photo; plus 64 KB for the multipart framing."""
        if path == "/video":
            limit = self.max_video_upload
        else:
            limit = self.max_upload * (MAX_PHOTOS_PER_REQUEST if path.startswith("/people/") else 1)
        return limit + 64 * 1024
