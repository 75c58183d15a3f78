"""``mien serve``: the REST API (FastAPI, OpenAPI docs at /docs and /redoc) and the web page at /.

Models load once at start-up and are warmed up before the server says it is serving. Concurrent
/recognize requests are batched (``mien.pipeline.app.batching``): those arriving within a few milliseconds
share one trip through the models; beyond ``--max-pending`` requests in flight a new one gets 429 with
Retry-After, and decoded pixels held at once are bounded. Model calls are serialised by one lock (a model
call already uses every core); everything else (upload, decoding, drawing, the database) runs concurrently. The
identity classifier is swapped copy-on-write: each request takes a snapshot, enrollment builds and saves
a new classifier and then swaps it in, so a request never sees a half-updated one.

The endpoints are routers by concern (``pipeline/app/routes/``: the page and health, recognize, stream, video,
history, people) sharing one ``state.ServerState`` through ``routes.deps``; mien's exceptions become HTTP answers in
one place (``routes/errors.py``). Every endpoint declares its response model and its 4xx answers
(``mien.pipeline.app.schemas``). The docs pages load Swagger UI and ReDoc from files the ``fastapi-offline``
package ships, so they work without internet.
"""

import errno
import logging
import threading
from typing import TYPE_CHECKING, Callable

from fastapi import FastAPI

from mien.pipeline.app.guards import AuthBeforeBody, BodyLimit, RequestGuard, allowed_hosts_for
from mien.pipeline.app.routes import errors, history, people, recognize, site, stream, video
from mien.pipeline.app.serverconfig import (DEFAULT_MAX_UPLOAD, MAX_PHOTOS_PER_REQUEST,  # noqa: F401 (re-exported)
                                            MIN_TOKEN_LENGTH, ServeConfigError, ServerConfig)
from mien.pipeline.app.state import ServerState

if TYPE_CHECKING:
    from mien.pipeline.recognizer import Recognizer

log = logging.getLogger(__name__)
# one router per concern, in the order /openapi.json lists their paths
ROUTERS = (site.router, recognize.router, stream.router, video.router, history.router, people.router)


def _uvicorn_limits() -> dict:
    """Connection hygiene for uvicorn: request heads must arrive within 10 s (pipeline/app/protocol.py), idle
    keep-alive connections close after 5 s, and beyond 256 concurrent connections new ones get a 503."""
    from mien.pipeline.app.protocol import HeaderDeadlineH11

    return {"http": HeaderDeadlineH11, "timeout_keep_alive": 5, "limit_concurrency": 256}


def _new_app(**kwargs) -> FastAPI:
    """A FastAPI app whose /docs and /redoc serve Swagger UI and ReDoc from local files, not a CDN."""
    try:
        from fastapi_offline import FastAPIOffline
    except ImportError:  # still serve the API; only the docs pages need the internet then
        log.warning("fastapi-offline is not installed: /docs and /redoc load their scripts from a CDN. "
                    "pip install fastapi-offline")
        return FastAPI(**kwargs)
    return FastAPIOffline(**kwargs)


def create_app(recognizer, config: ServerConfig | None = None) -> FastAPI:
    """The FastAPI application around an already loaded Recognizer: its state, guards, error answers and routes."""
    config = config or ServerConfig()
    config.check()
    app = _new_app(title="mien", version="1", description="Face identity + emotion recognition. Changing enrolled "
                   "people needs `Authorization: Bearer <MIEN_API_TOKEN>`. Errors are JSON: `{\"detail\": ...}`.")
    app.state.mien = ServerState(recognizer, config)
    errors.register(app)
    app.add_middleware(BodyLimit, limit_for=config.body_limit)
    app.add_middleware(AuthBeforeBody, config=config)  # before the body limit reads anything
    app.add_middleware(RequestGuard, config=config)  # outermost: other sites' requests are not even authorised
    for router in ROUTERS:
        app.include_router(router)
    return app


def serve(config: ServerConfig, load_recognizer: Callable[[], "Recognizer"], *, host: str = "127.0.0.1",
          port: int = 8000, log_level: str = "warning", allow_hosts: tuple[str, ...] = ()) -> int:
    """Check ``config``, load the models once (``load_recognizer``), warm them up, then run uvicorn; only Host
    headers of the bound address (and ``allow_hosts``) are answered."""
    import uvicorn

    config.allowed_hosts = allowed_hosts_for(host, port, allow_hosts)
    config.check()  # before the models load
    sock = listening_socket(host, port)  # a busy port is said now, not after the models have loaded
    print("loading models ...", flush=True)
    recognizer = load_recognizer()
    recognizer.warm_up()  # the first request must not pay for graph tracing
    app = create_app(recognizer, config)
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, **_uvicorn_limits()))
    print(f"mien serving on http://{host}:{port}/  (API docs: /docs)", flush=True)
    server.run(sockets=[sock])
    return 0


def listening_socket(host: str, port: int):
    """A socket bound to ``host:port`` and listening (connections wait in its backlog until the models are
    loaded); ServeConfigError naming the address when it is in use or cannot be had."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ServeConfigError(f"--host {host}: not an address this machine can listen on ({exc.strerror}).") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        hint = " (another program, or another mien serve, is using it: stop it or choose another --port)" \
            if exc.errno == errno.EADDRINUSE else ""
        raise ServeConfigError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}.") from None
    return sock


class BackgroundServer:
    """Run an app with uvicorn in a daemon thread (for tests, benchmarks and embedding): ``with ... as url:``."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0):
        import socket

        import uvicorn

        self.sock = socket.socket()
        self.sock.bind((host, port))
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5,
                                                    **_uvicorn_limits()))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        import time

        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
