"""The live stream of `mien serve` (issue 22 item 1): frames in over a WebSocket, who + emotion out per frame,
tracked and smoothed as `mien video` does; hostile streams answered without ending the stream or the server."""
from __future__ import annotations

import json
import struct
import zlib

import cv2
import numpy as np
import pytest
from conftest import home_copy

pytestmark = pytest.mark.slow


def letterboxed(path, size=(640, 480)) -> bytes:
    """A demo photo centred on a grey 640x480 frame, as a JPEG (what a browser's canvas sends)."""
    photo = cv2.imread(str(path))
    scale = min(size[0] / photo.shape[1], size[1] / photo.shape[0]) * 0.8
    photo = cv2.resize(photo, None, fx=scale, fy=scale)
    frame = np.full((size[1], size[0], 3), 110, np.uint8)
    y, x = (size[1] - photo.shape[0]) // 2, (size[0] - photo.shape[1]) // 2
    frame[y:y + photo.shape[0], x:x + photo.shape[1]] = photo
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes()


@pytest.fixture(scope="module")
def app(recognizer, enrolled, mien_home, tmp_path_factory):
    from fastapi.testclient import TestClient

    from mien.pipeline.app.server import ServerConfig, create_app

    home = home_copy(mien_home, tmp_path_factory.mktemp("stream_home"))
    return TestClient(create_app(recognizer, ServerConfig(home=home, token="t" * 16)))


@pytest.fixture(scope="module")
def frames(demo_photos):
    val = demo_photos[1]
    return {p: [letterboxed(f) for f in sorted((val / p).iterdir())[:3]] for p in ("ben_afflek", "madonna")}


def test_each_frame_gets_its_people_tracked_and_smoothed(app, frames):
    sent = [frames["ben_afflek"][0]] * 4 + [frames["madonna"][0]] * 4  # a still camera: one person, then another
    replies = []
    with app.websocket_connect("/stream?every=2") as ws:
        for data in sent:
            ws.send_bytes(data)
            replies.append(json.loads(ws.receive_text()))
    assert [r["frame"] for r in replies] == list(range(8)) and all(r["dropped"] == 0 for r in replies), replies
    faces = [r["faces"] for r in replies]
    assert all(len(f) == 1 for f in faces), [[(x["identity"], x["bbox"]) for x in f] for f in faces]
    assert [f[0]["identity"] for f in faces] == ["ben_afflek"] * 4 + ["madonna"] * 4
    assert [f[0]["detected"] for f in faces[:4]] == [True, False, True, False]  # every=2: flow in between
    assert faces[0][0]["track_id"] != faces[-1][0]["track_id"]  # another person, another track
    first = faces[0][0]
    assert set(first["emotion_scores"]) == set(first["raw_emotion_scores"]) and first["emotion"]
    assert abs(sum(first["emotion_scores"].values()) - 1) < 1e-3


def test_bad_frames_get_an_error_and_the_stream_goes_on(app, frames):
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    bomb = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
            + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))
    with app.websocket_connect("/stream") as ws:
        ws.send_bytes(b"this is not a photo")
        assert "not a readable image" in json.loads(ws.receive_text())["error"]
        ws.send_bytes(bomb)
        assert "megapixel limit (downscale the photo)" in json.loads(ws.receive_text())["error"]
        ws.send_text("hello")
        assert "binary message" in json.loads(ws.receive_text())["error"]
        ws.send_bytes(frames["madonna"][0])
        assert json.loads(ws.receive_text())["faces"][0]["identity"] == "madonna"


def test_frames_sent_faster_than_processed_are_dropped_latest_wins(app, frames):
    with app.websocket_connect("/stream") as ws:
        for i in range(6):
            ws.send_bytes(frames["ben_afflek"][i % 3])
        answered = 0
        while True:  # every frame is either answered or counted as dropped
            reply = json.loads(ws.receive_text())
            answered += 1
            if answered + reply["dropped"] == 6:
                break
    assert answered >= 1 and reply["dropped"] == 6 - answered


def test_too_many_streams_other_sites_and_idle_clients_are_closed(app, frames, monkeypatch):
    from starlette.websockets import WebSocketDisconnect

    from mien.pipeline.app import stream

    with pytest.raises(WebSocketDisconnect) as refused:
        with app.websocket_connect("/stream", headers={"origin": "https://evil.example"}) as ws:
            ws.receive_text()
    assert refused.value.code == 1008
    with app.websocket_connect("/stream") as a, app.websocket_connect("/stream") as b, \
            app.websocket_connect("/stream") as c, app.websocket_connect("/stream") as d:
        for ws in (a, b, c, d):
            ws.send_bytes(frames["madonna"][1])
            assert json.loads(ws.receive_text())["faces"]
        for _ in range(6):  # ten streams at once: the six beyond the limit are refused, each with its reason
            with pytest.raises(WebSocketDisconnect) as busy:
                with app.websocket_connect("/stream") as e:
                    e.receive_text()
            assert busy.value.code == 1013 and "try again later" in busy.value.reason
        for ws in (a, b, c, d):  # and the four open ones go on
            ws.send_bytes(frames["ben_afflek"][0])
            assert json.loads(ws.receive_text())["faces"][0]["identity"] == "ben_afflek"
    monkeypatch.setattr(stream, "IDLE_S", 0.5)
    with pytest.raises(WebSocketDisconnect) as idle:
        with app.websocket_connect("/stream") as ws:
            ws.receive_text()
    assert idle.value.code == 1000


def test_a_client_that_never_reads_its_answers_is_closed(monkeypatch):
    """A client that keeps sending frames but never takes an answer (its buffers full, so each send waits) is closed
    with 1008 after SEND_TIMEOUT_S instead of holding its stream (and its slot) for ever."""
    import asyncio
    import threading
    import time
    from types import SimpleNamespace

    from mien.pipeline.app import stream

    monkeypatch.setattr(stream, "SEND_TIMEOUT_S", 0.3)
    monkeypatch.setattr(stream, "_process", lambda *args: [])  # the models are not the point

    class StuckClient:
        def __init__(self):
            self.closed, self.frames = None, 0

        async def receive(self):
            await asyncio.sleep(0.01)
            self.frames += 1
            return {"type": "websocket.receive", "bytes": b"a frame"}

        async def send_text(self, text):
            await asyncio.Event().wait()  # the answer never leaves

        async def close(self, code, reason=""):
            self.closed = (code, reason)

    client = StuckClient()
    began = time.perf_counter()
    # in a thread of its own: a session's headless browser (Playwright) keeps an event loop in this one
    worker = threading.Thread(target=lambda: asyncio.run(stream._run(client, None, SimpleNamespace(frame=1), idle_s=30)))
    worker.start()
    worker.join(30)
    assert client.closed is not None and client.closed[0] == 1008 and "not read" in client.closed[1]
    assert time.perf_counter() - began < 5 and client.frames > 1


def test_a_recorded_stream_is_one_entry_of_the_history(app, frames):
    """?record=1 (issue 22 item 2): "stop" ends the stream with the recording's id; the history then holds it, a row
    per person with their most frequent emotion, as `mien video --db` stores a video."""
    with app.websocket_connect("/stream?record=1&every=2") as ws:
        for data in [frames["madonna"][0]] * 4:
            ws.send_bytes(data)
            assert json.loads(ws.receive_text())["faces"][0]["identity"] == "madonna"
        ws.send_text("stop")
        done = json.loads(ws.receive_text())
    assert done["frames"] == 4 and isinstance(done["recorded"], int)
    history = app.get("/history?person=madonna", headers={"Authorization": "Bearer " + "t" * 16}).json()
    [entry] = [r for r in history["recognitions"] if r["id"] == done["recorded"]]
    assert entry["source"] == "camera" and (entry["width"], entry["height"]) == (640, 480)
    [face] = entry["faces"]
    assert face["identity"]["name"] == "madonna" and face["emotion"]["label"] in face["emotion"]["scores"]
    assert abs(sum(face["emotion"]["scores"].values()) - 1) < 1e-3
    with app.websocket_connect("/stream") as ws:  # without record=1 nothing is kept
        ws.send_bytes(frames["madonna"][0])
        ws.receive_text()
        ws.send_text("stop")
        assert json.loads(ws.receive_text())["recorded"] is None


def test_a_camera_rate_stream_stays_open_past_the_request_head_deadline(app, frames):
    """Issue 33 item 1: a real uvicorn used to drop every stream 10 s after it connected (the head deadline of the
    request that opened it was never disarmed). A camera at 2 frames/s for 25 s gets every answer, then "stop"."""
    import time

    from websockets.sync.client import connect

    from mien.pipeline.app.protocol import HeaderDeadlineH11
    from mien.pipeline.app.server import BackgroundServer

    assert HeaderDeadlineH11.header_timeout <= 10  # the deadline this stream must outlive
    sent, replies = 0, []
    with BackgroundServer(app.app) as url:
        with connect(url.replace("http", "ws") + "/stream?record=1&every=2", max_size=None) as ws:
            start = time.monotonic()
            while time.monotonic() - start < 25:
                ws.send(frames["madonna"][0])  # a still camera
                sent += 1
                replies.append(json.loads(ws.recv(timeout=30)))
                time.sleep(max(0.0, start + sent * 0.5 - time.monotonic()))  # the camera's pace, 2 frames/s
            held = time.monotonic() - start
            ws.send("stop")
            done = json.loads(ws.recv(timeout=30))
    assert held >= 25 and sent >= 40 and [r["frame"] for r in replies] == list(range(sent))
    assert all([f["identity"] for f in r["faces"]] == ["madonna"] for r in replies)
    assert done["frames"] == sent and isinstance(done["recorded"], int)


def test_websocket_upgrades_count_against_the_connection_limit(app, frames, monkeypatch):
    """Issue 33 item 1: uvicorn's limit_concurrency applied to plain requests only; an upgrade beyond it is now
    refused with 503 like any other request, and the streams already open go on."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    from mien.pipeline.app import server

    limits = server._uvicorn_limits()
    monkeypatch.setattr(server, "_uvicorn_limits", lambda: {**limits, "limit_concurrency": 3})
    with server.BackgroundServer(app.app) as url:
        ws_url = url.replace("http", "ws") + "/stream"
        with connect(ws_url) as a, connect(ws_url) as b:
            with pytest.raises(InvalidStatus) as refused:
                connect(ws_url, open_timeout=10)
            assert refused.value.response.status_code == 503
            for ws in (a, b):
                ws.send(frames["ben_afflek"][0])
                assert json.loads(ws.recv(timeout=30))["faces"][0]["identity"] == "ben_afflek"


def test_a_bad_every_or_record_is_a_422_naming_the_parameter(app):
    """Issue 33 (low): ``/stream?every=abc`` was answered a bare 403 by the real server; now a 422 before the
    upgrade whose detail names the parameter and its values (the test client and uvicorn alike)."""
    from starlette.testclient import WebSocketDenialResponse
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    from mien.pipeline.app.server import BackgroundServer

    for query, message in (("every=abc", "every: 'abc' is not a whole number 1..30"), ("every=0", "every: '0'"),
                           ("every=2&record=maybe", "record: 'maybe' is not 1 or 0")):
        with pytest.raises(WebSocketDenialResponse) as refused:
            with app.websocket_connect(f"/stream?{query}"):
                pass
        assert refused.value.status_code == 422 and message in refused.value.json()["detail"], query
    with BackgroundServer(app.app) as url:
        with pytest.raises(InvalidStatus) as refused:
            with connect(url.replace("http", "ws") + "/stream?every=abc", open_timeout=10):
                pass
    answer = refused.value.response
    assert answer.status_code == 422 and b"every: 'abc' is not a whole number 1..30" in answer.body
