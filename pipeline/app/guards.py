"""The HTTP guards of `mien serve`, each an ASGI middleware or a check it runs, apart from the endpoints: which Host
headers are answered and which other sites may send state-changing requests (DNS rebinding, cross-site posts),
who may change people (the bearer token, checked before any body is read), how large a body may be, and the
security headers of every answer.
"""
from __future__ import annotations

import base64
import hashlib
import hmac

from fastapi import HTTPException
from fastapi.responses import JSONResponse


def page_security_headers(html: str) -> dict[str, str]:
    """A strict Content-Security-Policy for the web page (its one inline script and style allowed by hash, nothing
    else: no other origin, no framing, no forms posted elsewhere) plus the headers that stop sniffing and framing."""
    import re

    def hashes(tag: str) -> str:
        bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S)
        return " ".join("'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'"
                        for b in bodies)

    csp = (f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
           "img-src 'self' data:; media-src 'self'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; "
           "base-uri 'none'")
    return {"Content-Security-Policy": csp, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer"}


def _bearer_ok(token: str, authorization: str | None) -> bool:
    """Whether an Authorization header carries ``token`` as its bearer token (compared in constant time)."""
    scheme, _, credentials = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode())


def auth_problem(config, authorization: str | None) -> tuple[int, str] | None:
    """Why a request that changes enrolled people is refused ((status, message)), or None if it may go on."""
    if config.read_only:
        return 403, "this server is read-only (started with --read-only)"
    if not config.token:
        return None  # --allow-unauthenticated
    if not _bearer_ok(config.token, authorization):
        return 401, "missing or wrong bearer token"
    return None


def personal_data_problem(config, authorization: str | None, what: str) -> tuple[int, str] | None:
    """Why a read of personal data (the history, a person's photo list with its file names, their faces) is
    refused, or None: with a token it needs the token (read-only or not); without one only a server started with
    --allow-unauthenticated serves it, since a --read-only server without a token cannot tell its owner from
    anyone else on the network."""
    if config.token:
        return None if _bearer_ok(config.token, authorization) else (
            401, f"missing or wrong bearer token ({what} need it, like changes to people)")
    if config.allow_unauthenticated:
        return None
    return 403, (f"{what} are not served by a read-only server without a token; start it with MIEN_API_TOKEN set "
                 "and send `Authorization: Bearer <token>`")


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def allowed_hosts_for(host: str, port: int, extra: tuple[str, ...] = ()) -> frozenset[str] | None:
    """The Host headers a server bound to ``host``:``port`` answers: the loopback names for a loopback address, the
    address itself otherwise, each with and without the port, plus ``extra`` (names a proxy or DNS gives it);
    None (any) for a wildcard address without ``extra``, where the names it is reached by are unknown."""
    if host in ("0.0.0.0", "::", "") and not extra:
        return None
    names = set(LOOPBACK_NAMES if host in ("127.0.0.1", "localhost", "::1") else
                ((f"[{host}]" if ":" in host else host),)) | {h.lower() for h in extra}
    return frozenset(names | {f"{n}:{port}" for n in names})


class RequestGuard:
    """ASGI middleware against other web sites: a Host header the server was not bound to is refused (a page
    that rebinds its DNS name to 127.0.0.1 would otherwise read the enrolled names), and so is a request that
    changes state (POST, DELETE, ...) sent by a browser from another origin (a cross-site form post carries an
    Origin or Sec-Fetch-Site header; scripts and curl send neither and are unaffected)."""

    def __init__(self, app, config):
        self.app, self.config = app, config

    def problem(self, scope) -> tuple[int, str] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "").strip().lower()
        allowed = self.config.allowed_hosts
        if allowed is not None and host not in allowed:
            return 421, (f"this server does not answer for host {host!r}; start it with `mien serve --allow-host "
                         f"{host.rsplit(':', 1)[0] or 'NAME'}` if that name is meant to reach it")
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return None
        origin = headers.get("origin")
        if headers.get("sec-fetch-site") == "cross-site" or (
                origin is not None and origin.split("://", 1)[-1].lower() != host):
            return 403, "cross-site request refused: post from this server's own page, or from a script or client"
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":  # the live stream: the same Host rule (its Origin is checked by stream.py)
            if (problem := self.problem({**scope, "method": "GET"})) is not None:
                return await send({"type": "websocket.close", "code": 1008, "reason": problem[1][:120]})
            return await self.app(scope, receive, send)
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if (problem := self.problem(scope)) is not None:
            response = JSONResponse({"detail": problem[1]}, problem[0])
            return await response(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message = {**message, "headers": list(message.get("headers", [])) + [
                    (k, v) for k, v in SECURITY_HEADERS if k not in present]}
            await send(message)

        return await self.app(scope, receive, send_with_headers)


# Every answer (JSON, /docs, errors) refuses framing and sniffing; JSON may load nothing. The web page sends its own,
# stricter policy (page_security_headers), which these do not override.
SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"content-security-policy", b"frame-ancestors 'none'"), (b"referrer-policy", b"no-referrer"))


class AuthBeforeBody:
    """ASGI middleware: requests that change people are authorised from their headers, before any body is read
    (an unauthenticated client must not stream megabytes first)."""

    def __init__(self, app, config):
        self.app, self.config = app, config

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS") \
                and scope["path"].startswith("/people"):
            header = dict(scope["headers"]).get(b"authorization")
            problem = auth_problem(self.config, header.decode("latin-1") if header else None)
            if problem is not None:
                status, message = problem
                response = JSONResponse({"detail": message}, status, headers={"WWW-Authenticate": "Bearer"}
                                        if status == 401 else None)
                return await response(scope, receive, send)
        return await self.app(scope, receive, send)


class BodyLimit:
    """ASGI middleware: 413 for request bodies over the limit, checked on Content-Length and while streaming."""

    def __init__(self, app, limit_for):
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope["path"])
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            response = JSONResponse({"detail": f"request body too large ({int(length)} bytes; limit {limit})"}, 413)
            return await response(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:  # FastAPI re-raises HTTPException from body parsing as the response
                raise HTTPException(413, f"request body too large (over {limit} bytes)")
            return message

        return await self.app(scope, limited, send)
