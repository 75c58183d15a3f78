"""The live stream of `mien serve` (`GET /stream`, a WebSocket): frames/s, latency and dropped frames for 100
640x480 JPEG frames (the 25 held-out demo photos letterboxed, each 4 times in a row, as a still camera would see
them), sent one at a time; the names it gives against `mien recognize` on the same frames, and `mien video` on
the same frames as a clip, all in one run.

    python benchmarks/stream.py [--every 1] [--json FILE]

The server runs in this process on a real socket (uvicorn, the WebSocket protocol of `mien serve`); the client is
the `websockets` package. Goal (issue 22): >= 10 frames/s on this 2-core machine and >= 95 % of the frames naming
the same people as `mien recognize`. Pause other work (a training run) first.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=int, default=1, help="detect every N-th frame (flow in between)")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)

    import cv2
    import numpy as np
    from websockets.sync.client import connect

    from mien.pipeline import Recognizer
    from mien.pipeline.app.server import BackgroundServer, ServerConfig, create_app
    from mien.pipeline.app.video import process_video
    from mien.pipeline.enroll import enroll_folder
    from mien.pipeline.images import decode_image
    from test_stream import letterboxed
    from workspace import demo_workspace

    work, train, val = demo_workspace()
    rec = Recognizer()
    enroll_folder(train, rec)
    rec.reload_classifier()
    frames = [data for p in sorted(val.rglob("*.jpg")) for data in [letterboxed(p)] * 4]
    expected = []
    for data in frames:
        names = sorted(f.identity.name for f in rec.recognize(decode_image(data)).faces if f.identity)
        expected.append(names)

    app = create_app(rec, ServerConfig(home=work / "home", token="b" * 20))
    latencies, replies = [], []
    with BackgroundServer(app) as url:
        with connect(url.replace("http", "ws") + f"/stream?every={args.every}", max_size=None) as ws:
            ws.send(frames[0])
            ws.recv()  # warm-up: the first frame pays for nothing the others do not
            start = time.perf_counter()
            for data in frames:
                t = time.perf_counter()
                ws.send(data)
                replies.append(json.loads(ws.recv()))
                latencies.append(1000 * (time.perf_counter() - t))
            seconds = time.perf_counter() - start
    got = [sorted(f["identity"] for f in r["faces"] if f["identity"]) for r in replies]
    same = sum(g == e for g, e in zip(got, expected))

    with tempfile.TemporaryDirectory() as tmp:  # the same frames as a clip through `mien video`
        clip = Path(tmp) / "clip.avi"
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 25, (640, 480))
        for data in frames:
            writer.write(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
        writer.release()
        video = process_video(clip, rec, every=args.every)
    result = {"frames": len(frames), "every": args.every, "stream_fps": round(len(frames) / seconds, 1),
              "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1),
              "latency_ms_p95": round(float(np.percentile(latencies, 95)), 1),
              "dropped": replies[-1]["dropped"], "same_names_as_recognize": round(same / len(frames), 3),
              "mien_video_fps": round(video.processing_fps, 1)}
    print(f"/stream (every {args.every}): {result['stream_fps']} frames/s, latency p50 {result['latency_ms_p50']} ms "
          f"p95 {result['latency_ms_p95']} ms, {result['dropped']} dropped; same names as mien recognize on "
          f"{100 * result['same_names_as_recognize']:.0f} % of the frames (goal >= 95 %); mien video on the same "
          f"frames: {result['mien_video_fps']} frames/s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
