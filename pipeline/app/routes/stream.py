"""``/stream``: the live camera's WebSocket (the protocol and its limits are in ``pipeline/app/stream.py``)."""
from __future__ import annotations

from fastapi import APIRouter, WebSocket

from mien.pipeline.app.routes.deps import State
from mien.pipeline.app.stream import refuse, serve_stream, stream_options
from mien.pipeline.errors import UsageError

router = APIRouter()


@router.websocket("/stream")
async def stream(websocket: WebSocket, state: State) -> None:
    """A live camera: send frames (JPEG/PNG, one binary message each), get who + emotion per frame as JSON,
    tracked and smoothed as `mien video` does (see pipeline/app/stream.py for the protocol and limits). Query:
    ``every`` (1-30) and ``record`` (1/0); a bad value is answered 422 naming it, before the upgrade."""
    try:
        every, record = stream_options(websocket.query_params)
    except UsageError as exc:
        return await refuse(websocket, 422, str(exc))
    await serve_stream(websocket, state, state.stream_limits, every, record=record)
