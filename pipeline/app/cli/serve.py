"""``mien serve``: the REST API + web page; configuration is checked before the models load."""
from __future__ import annotations

import argparse

from mien.pipeline.app.batching import MAX_PENDING
from mien.pipeline.app.cli.common import (add_detection_options, add_emotion_options, add_matcher_option, build_recognizer,
                                     number_in, positive_float)


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` command."""
    s = sub.add_parser("serve", parents=parents, help="REST API + web page (FastAPI, OpenAPI docs at /docs)",
                       description="Serve the REST API and the web page. Changing enrolled people needs the bearer "
                                   "token in MIEN_API_TOKEN (or --allow-unauthenticated / --read-only).")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on")
    s.add_argument("--port", type=number_in(int, 0, 65535), default=8000, help="port to listen on")
    s.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also answer requests whose Host header is NAME (a DNS name or proxy in front of the server; "
                        "repeatable). Others are refused, so a web page cannot reach the server by rebinding DNS")
    s.add_argument("--allow-unauthenticated", action="store_true",
                   help="enable enrolling/forgetting people without a token (MIEN_API_TOKEN unset)")
    s.add_argument("--read-only", action="store_true", help="disable the endpoints that change enrolled people")
    s.add_argument("--max-upload-mb", type=positive_float, default=10.0, help="largest accepted upload, in MB")
    s.add_argument("--db", default="default", help="results database (default: MIEN_HOME/mien.db)")
    s.add_argument("--max-pending", type=number_in(int, 1, 100_000), default=MAX_PENDING,
                   help="requests in flight at once (being read, queued or recognized); more get 429 + Retry-After")
    add_detection_options(s)
    add_matcher_option(s)
    add_emotion_options(s)
    s.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check the server configuration, then load the models, warm them up and serve."""
    from pathlib import Path

    from mien.pipeline.app.server import ServerConfig, serve

    # a token copied with a trailing newline or space is the same token (clients' headers are stripped too)
    from mien.pipeline import settings

    config = ServerConfig(token=settings.api_token(),
                          allow_unauthenticated=args.allow_unauthenticated, read_only=args.read_only,
                          max_upload=int(args.max_upload_mb * 1024 * 1024),
                          db_path=None if args.db == "default" else Path(args.db), max_pending=args.max_pending)
    config.check()  # before the models load
    return serve(config, lambda: build_recognizer(args), host=args.host, port=args.port,
                 log_level="info" if getattr(args, "verbose", 0) else "warning", allow_hosts=tuple(args.allow_host))
