"""The web page of ``mien serve`` as served: ``web/index.html`` with the colours it shares with the charts and
the annotated images filled in, so each colour is defined once in the code (``charts.EMOTION_COLORS``,
``outputs.KNOWN_BGR`` / ``UNKNOWN_BGR``), and the page's favicon."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

WEB = Path(__file__).with_name("web")
FAVICON = WEB / "favicon.svg"


def _hex(bgr: tuple[int, int, int]) -> str:
    b, g, r = bgr
    return f"#{r:02x}{g:02x}{b:02x}"


def palette(labels: Sequence[str] = ()) -> dict:
    """The colours the page draws with: one per emotion and "on screen" (the charts'), and the box of a known /
    unknown face (the annotated images'); ``labels``: the served emotion model's, in its order (the legends list
    those, so a 7-emotion model's legend has no contempt)."""
    from mien.pipeline.app.charts import EMOTION_COLORS, ON_SCREEN_COLOR
    from mien.pipeline.app.outputs import KNOWN_BGR, UNKNOWN_BGR

    return {"emotions": dict(EMOTION_COLORS), "labels": list(labels), "on_screen": ON_SCREEN_COLOR,
            "known": _hex(KNOWN_BGR), "unknown": _hex(UNKNOWN_BGR)}


def web_page(labels: Sequence[str] = ()) -> str:
    """index.html with ``__PALETTE__`` replaced by :func:`palette` as a JSON object (in its one inline script, whose
    hash the page's Content-Security-Policy allows); ``labels``: the served emotion model's."""
    html = (WEB / "index.html").read_text(encoding="utf-8")
    return html.replace("__PALETTE__", json.dumps(palette(labels), separators=(",", ":")))
