"""``GET /stream``: a live camera over a WebSocket (issue 22). The client sends each frame as one binary message
(JPEG or PNG); the server answers each frame it processed with one JSON text message::

    {"frame": n, "faces": [<mien video's per-face record: track_id, bbox, detected, raw_identity, identity
                            (the track's vote), identity_confidence, raw_emotion(+_scores), emotion (smoothed)
                            and emotion_scores>], "dropped": k, "ms": t}

Frames go through ``video.FrameTracker``, the same tracker, votes and emotion smoothing as `mien video`. One frame
is in flight per connection: a frame that arrives while another is processed replaces any frame still waiting
(the latest wins) and the replaced one is counted in ``dropped``. A frame that is not an image, or is over the
size or pixel limits, gets ``{"error": ...}`` and the stream goes on. With ``?record=1`` the stream is kept as one
recording in the results database when it ends (a row per person: most frequent emotion and each one's share, as
`mien video --db`); the text message ``stop`` ends it and is answered ``{"recorded": id, "frames": n}``. Limits: ``MAX_STREAMS`` at once (more are
closed with code 1013, "try again later"), ``IDLE_S`` without a frame closes the stream (1000), a client that does
not read its answers for ``SEND_TIMEOUT_S`` is closed (1008) so it cannot hold a stream's slot, and a page of
another web site may not open one (its Origin must be the server's own host).
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Mapping

import cv2
import numpy as np
from fastapi import WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from mien.pipeline.errors import UsageError
from mien.pipeline.images import ImageError, checked_size, decode_image

MAX_STREAMS = 4  # concurrent live streams per server (each holds a tracker and competes for the models)
IDLE_S = 30.0  # a stream that sends no frame for this long is closed
SEND_TIMEOUT_S = 10.0  # an answer the client has not taken within this long (it stopped reading) closes the stream
RECORDED_OBSERVATIONS = 200_000  # a recording keeps at most this many faces-in-frames (~3 h of one face at 20 fps)
MAX_EVERY = 30


class StreamLimits:
    """How many streams are open; refuses more than ``MAX_STREAMS``."""

    def __init__(self, max_streams: int = MAX_STREAMS):
        self.max_streams = max_streams
        self._open = 0
        self._lock = threading.Lock()

    def enter(self) -> bool:
        with self._lock:
            if self._open >= self.max_streams:
                return False
            self._open += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._open -= 1


BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def stream_options(query: Mapping[str, str]) -> tuple[int, bool]:
    """``every`` (1..MAX_EVERY, default 1) and ``record`` (default off) of a ``/stream`` address; UsageError naming
    the parameter and the values it takes."""
    every, record = query.get("every", "1").strip(), query.get("record", "0").strip().lower()
    if not (every.isdigit() and 1 <= int(every) <= MAX_EVERY):
        raise UsageError(f"every: {every!r} is not a whole number 1..{MAX_EVERY} (detect every N-th frame)")
    if record not in BOOLEANS:
        raise UsageError(f"record: {record!r} is not 1 or 0 (true or false: keep the stream in the history)")
    return int(every), BOOLEANS[record]


async def refuse(websocket: WebSocket, status: int, message: str) -> None:
    """Refuse a WebSocket before accepting it: an HTTP answer with ``{"detail": message}`` where the server can
    send one (uvicorn, the test client), else a close with code 1008 and the message as its reason."""
    from fastapi.responses import JSONResponse

    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse({"detail": message}, status))
    else:
        await websocket.close(code=1008, reason=message[:120])


def origin_allowed(websocket: WebSocket) -> bool:
    """A browser always sends Origin on a WebSocket; another site's page must not drive the camera stream (scripts
    and native clients send none)."""
    origin = websocket.headers.get("origin")
    host = (websocket.headers.get("host") or "").lower()
    return origin is None or origin.split("://", 1)[-1].lower() == host


async def serve_stream(websocket: WebSocket, state, limits: StreamLimits, every: int, idle_s: float | None = None,
                       record: bool = False) -> None:
    """Run one live stream until the client leaves or stops, idles out (``idle_s``, default ``IDLE_S``) or is
    refused; with ``record``, store it in the results database as one recording."""
    from mien.pipeline.app.video import FrameTracker

    if not origin_allowed(websocket):
        await websocket.close(code=1008, reason="cross-site stream refused: open it from this server's own page")
        return
    await websocket.accept()
    if not limits.enter():
        await websocket.close(code=1013, reason=f"{limits.max_streams} live streams are open; try again later")
        return
    try:
        if not 1 <= every <= MAX_EVERY:
            await websocket.close(code=1008, reason=f"every must be 1..{MAX_EVERY}")
            return
        tracker = FrameTracker(state.snapshot(), every=every, max_missed=max(every * 3, 15), model_lock=state.model_lock)
        recording = Recording() if record else None
        await _run(websocket, state, tracker, idle_s or IDLE_S, recording)
    finally:
        limits.leave()


class Recording:
    """What a recorded stream saw: every observation, the frame size and when it started."""

    def __init__(self):
        self.observations: list = []
        self.size = (0, 0)
        self.started = time.time()
        self.stored = False

    def store(self, state, tracker) -> int | None:
        """The stream as one entry of the results database (None when no face was seen); once."""
        from mien.pipeline.app.videosummary import VideoResult, store_in_history, summarize

        if self.stored or not self.observations:  # nobody was seen: nothing to keep
            return None
        self.stored = True
        seconds = max(time.time() - self.started, 1e-3)
        result = VideoResult("camera", tracker.frame / seconds, tracker.frame, tracker.detected, None, seconds,
                             self.observations, tracker.tracker.all_tracks(), width=self.size[0], height=self.size[1])
        result.summary = summarize(result, tracker.recognizer, tracker.every, tracker.tracker.smoothing)
        return store_in_history(state.db, tracker.recognizer, result, "camera")


async def _run(websocket: WebSocket, state, tracker, idle_s: float, recording: Recording | None = None) -> None:
    latest: list[bytes | None] = [None]  # the frame waiting to be processed (the latest wins)
    arrived = asyncio.Event()
    counts = {"dropped": 0}
    closed = asyncio.Event()
    stop = asyncio.Event()

    async def receive() -> None:
        try:
            while True:
                try:
                    message = await asyncio.wait_for(websocket.receive(), timeout=idle_s)
                except asyncio.TimeoutError:
                    await websocket.close(code=1000, reason=f"no frame for {idle_s:.0f} s")
                    return
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                if data is None and message.get("text") == "stop":
                    stop.set()
                    return
                if data is None:
                    try:
                        await _send(websocket, {"error": "send each frame as one binary message (JPEG or PNG)"})
                    except NotReading:
                        await _close_quietly(websocket, 1008, f"answers not read for {SEND_TIMEOUT_S:.0f} s")
                        return
                    continue
                if latest[0] is not None:
                    counts["dropped"] += 1
                latest[0] = data
                arrived.set()
        except (WebSocketDisconnect, RuntimeError, OSError):  # the client left (uvicorn: ClientDisconnected)
            return
        finally:
            closed.set()
            arrived.set()

    receiver = asyncio.create_task(receive())
    start = time.perf_counter()
    try:
        while True:
            await arrived.wait()
            arrived.clear()
            data, latest[0] = latest[0], None
            if data is None:
                if stop.is_set():
                    rid = await run_in_threadpool(recording.store, state, tracker) if recording else None
                    await _send(websocket, {"recorded": rid, "frames": tracker.frame})
                    await _close_quietly(websocket, 1000, "stopped")
                    return
                if closed.is_set():
                    return
                continue
            began = time.perf_counter()
            try:
                observations = await run_in_threadpool(_process, state, tracker, data, began - start, recording)
            except ImageError as exc:
                await _send(websocket, {"error": exc.for_client(), "dropped": counts["dropped"]})
                continue
            await _send(websocket, {"frame": tracker.frame - 1, "faces": [o.to_dict() for o in observations],
                                    "dropped": counts["dropped"], "ms": round(1000 * (time.perf_counter() - began), 1)})
    except (WebSocketDisconnect, RuntimeError, OSError):  # the client left while its answer was sent
        return
    except NotReading:
        await _close_quietly(websocket, 1008, f"answers not read for {SEND_TIMEOUT_S:.0f} s")
    finally:
        receiver.cancel()
        if recording is not None and not recording.stored:  # the client left without "stop": kept all the same
            await run_in_threadpool(recording.store, state, tracker)


def _process(state, tracker, data: bytes, t: float, recording: Recording | None = None) -> list:
    """One frame: limits checked from its header, decoded, stepped through the tracker under the model lock; its
    observations (kept in ``recording`` too)."""
    if len(data) > state.config.max_upload:
        raise ImageError(f"frame: {len(data) / 2**20:.1f} MB is over the {state.config.max_upload / 2**20:.0f} MB "
                         "upload limit")
    width, height = checked_size(data, "frame")
    with state.pixel_budget.hold(width * height):
        rgb = decode_image(data, "frame")
        bgr = np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        observations = tracker.step(bgr, t)  # the tracker holds the model lock while it uses the models
    if recording is not None and len(recording.observations) < RECORDED_OBSERVATIONS:  # then the first ~3 h only
        recording.observations.extend(observations)
        recording.size = (width, height)
    return observations


class NotReading(Exception):
    """The client has not taken an answer for SEND_TIMEOUT_S: its receive buffers are full."""


async def _send(websocket: WebSocket, message: dict) -> None:
    try:
        await asyncio.wait_for(websocket.send_text(json.dumps(message, ensure_ascii=False)), timeout=SEND_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise NotReading from None


async def _close_quietly(websocket: WebSocket, code: int, reason: str) -> None:
    """Close a stream whose client may be gone or stuck (a close that cannot be sent is given up after a second)."""
    try:
        await asyncio.wait_for(websocket.close(code=code, reason=reason), timeout=1.0)
    except (asyncio.TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
        pass
