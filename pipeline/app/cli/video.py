"""``mien video``: who + emotion over time in a video file or webcam, with face tracking."""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from mien.pipeline.errors import UsageError

from mien.pipeline.app.cli.common import (add_detection_options, add_emotion_options, add_identity_options,
                                     build_recognizer, new_file, new_folder, number_in, positive_int, show_progress)


MAX_WEBCAMS = 64


def video_source(text: str) -> str:
    """A webcam index or an existing video file (checked before the models load)."""
    if text.isdigit() and int(text) >= MAX_WEBCAMS:
        raise argparse.ArgumentTypeError(f"{text}: a webcam index is 0..{MAX_WEBCAMS - 1}; or give a video file")
    if not text.isdigit() and not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such video file" + (" (it is a folder)" if Path(text).is_dir()
                                                                          else ""))
    return text


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``video`` command."""
    vd = sub.add_parser("video", parents=parents, help="who + emotion over time in a video file or webcam",
                        description="Who + emotion over time in a video file or webcam, with face tracking.")
    vd.add_argument("input", type=video_source, help="a video file, or a webcam index such as 0")
    vd.add_argument("--out", type=new_file, help="write the annotated video here: .mp4 (H.264) or .webm (VP9) play in browsers; .avi (MJPEG)")
    vd.add_argument("--jsonl", type=new_file, help="write one JSON line per frame and face here")
    vd.add_argument("--summary", type=new_folder, help="write the per-person summary JSON + timeline PNGs into this folder")
    vd.add_argument("--every", type=positive_int, default=3,
                    help="detect + recognize every N frames, follow the faces by optical flow between (640x480 on 2 "
                         "cores: 54 frames/s at 3, 20 at 1, benchmarks/stream.py); 1 for every frame")
    vd.add_argument("--show", action="store_true",
                    help="a live preview of the annotated frames in a browser, at the http://127.0.0.1:PORT/ address "
                         "printed on start (this machine only; from another: ssh -L PORT:127.0.0.1:PORT)")
    vd.add_argument("--db", nargs="?", const="default",
                    help="also store the per-person results (time on screen, most frequent emotion and each one's "
                         "share) in the results database (default MIEN_HOME/mien.db), as `mien history` shows them")
    vd.add_argument("--max-frames", type=positive_int, help="stop after N frames (webcams run until Ctrl-C otherwise)")
    vd.add_argument("--smoothing", type=number_in(float, 0.0, 1.0, low_open=True), default=0.3,
                    help="weight of the newest frame in the emotion moving average, in (0, 1]; 1 = no smoothing")
    add_detection_options(vd)
    add_identity_options(vd)
    add_emotion_options(vd)
    vd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Process the video, then print the per-person summary (and store it with --db)."""
    from mien.pipeline.app.cli.recognize import open_db
    from mien.pipeline.app.video import process_video

    store = open_db(args.db) if args.db else None  # a bad database path fails before the models load
    recognizer = build_recognizer(args)
    with contextlib.ExitStack() as stack:
        preview = None
        if args.show:
            from mien.pipeline.app.preview import Preview

            try:
                preview = stack.enter_context(Preview())
            except OSError as exc:
                raise UsageError(f"--show: cannot serve the preview on this machine ({exc.strerror})") from None
            print(f"live preview: {preview.url} (open it in a browser)", file=sys.stderr, flush=True)
        result = process_video(args.input, recognizer, out=args.out, jsonl=args.jsonl,
                               summary_dir=args.summary, every=args.every, smoothing=args.smoothing,
                               max_frames=args.max_frames, progress=show_progress(), preview=preview)
    if store is not None:
        store_video(store, recognizer, result, args.input)
    s = result.summary
    print(f"{result.frames} frames ({result.detected_frames} detected) at {result.processing_fps:.1f} frames/s, "
          f"{len(s['tracks'])} tracks" + ("  [video truncated?]" if result.truncated else ""))
    for person, info in s["people"].items():
        share = ", ".join(f"{k} {v:.0%}" for k, v in info["emotion_share"].items()) or "no emotion"
        print(f"  {person}: {info['seconds']:.1f} s on screen (tracks {info['tracks']}): {share}")
    for what, path in (("annotated video", args.out), ("per-frame JSONL", args.jsonl), ("summary", args.summary)):
        if path:
            print(f"{what}: {path}")
    if store is not None:
        print(f"stored in {store.path} (`mien history`)")
    return 0


def store_video(store, recognizer, result, source: str) -> None:
    """One entry per video in the results database: a row per person (``videosummary.history_record``)."""
    from mien.identity.storage import sha256_file
    from mien.pipeline.app.videosummary import store_in_history

    digest = None if source.isdigit() else sha256_file(source)  # a webcam has no file
    store_in_history(store, recognizer, result, "video", digest)
