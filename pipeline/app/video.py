"""``mien video``: who + emotion over time in a video file or webcam, with tracks, votes and smoothing.

Every N-th frame is detected and recognized (one MTCNN pass, one FaceNet and one emotion batch per
frame); in between, boxes follow the faces by optical flow. Outputs, each written atomically: an
annotated video (H.264 .mp4 or VP9 .webm, which browsers play), a JSONL line per frame and face, and a
summary (JSON, a timeline PNG per person and one of who is on screen when).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from contextlib import ExitStack, nullcontext
from pathlib import Path

import cv2
import numpy as np

from mien.identity.storage import atomic_path
from mien.pipeline.app.outputs import draw_face
from mien.pipeline.app.tracking import UNKNOWN, Observation, Track, Tracker
from mien.pipeline.app.videosummary import VideoResult, summarize, write_summary
from mien.pipeline.app.videowriter import AtomicVideoWriter, VideoError, video_suffix
from mien.pipeline.images import max_pixels
from mien.pipeline.recognizer import emotion_label

log = logging.getLogger(__name__)


def open_source(source: str | int) -> tuple[cv2.VideoCapture, bool]:
    """Open a video file or a webcam index; VideoError says clearly what is wrong."""
    text = str(source)
    webcam = text.isdigit()
    check_source(text)
    cap = cv2.VideoCapture(int(text)) if webcam else cv2.VideoCapture(text)
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"no webcam at index {text} (or it is in use)." if webcam else
                         f"{text}: cannot open as a video (not a video, truncated, or a codec OpenCV lacks).")
    return cap, webcam


def check_source(source: str) -> None:
    """Fail fast (before loading models) on a video file that does not exist, is a still image, or whose frames are
    over the pixel limit; webcams are checked on opening."""
    if str(source).isdigit():
        return
    if not Path(source).is_file():
        raise VideoError(f"{source}: no such video file" + (" (a folder?)" if Path(source).exists() else "") + ".")
    check_frame_size(source)


def check_frame_size(path: str | os.PathLike, name: str | None = None) -> None:
    """VideoError when a video's frames are over the pixel limit of photos (``images.max_pixels``) or it is a
    still image, told from the container and stream headers (PyAV, with FFmpeg refusing to decode a frame over the
    limit while probing), so a small file of huge frames is refused before any of them is decoded."""
    name = name or str(path)
    limit = max_pixels()
    try:
        import av
    except ImportError:  # without PyAV: OpenCV's reading of the size (it decodes the first frame to tell)
        cap = cv2.VideoCapture(str(path))
        width, height, still = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), False
        cap.release()
    else:
        try:
            with av.open(str(path), options={"max_pixels": str(limit)}) as container:
                if not container.streams.video:
                    raise VideoError(f"{name}: has no video stream.")
                stream = container.streams.video[0]
                width, height = stream.codec_context.width, stream.codec_context.height
                still = container.format.name.endswith("_pipe") or container.format.name == "image2"
        except av.FFmpegError as exc:
            raise VideoError(f"{name}: cannot open as a video (not a video, truncated, or a codec FFmpeg lacks: "
                             f"{exc.strerror or exc}).") from None
    if still:
        raise VideoError(f"{name}: a still image, not a video; recognize it with `mien recognize` (POST /recognize).")
    if width * height > limit:
        raise VideoError(f"{name}: its frames are {width}x{height} pixels, over the {limit / 1e6:.0f}-megapixel limit "
                         "of photos and frames; downscale the video (e.g. `ffmpeg -i IN -vf scale=1920:-2 OUT`).")


def _flow_shift(prev_gray: np.ndarray, gray: np.ndarray, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """Move a box by the median optical flow of the corners inside it (Lucas-Kanade)."""
    x, y, w, h = box
    mask = np.zeros_like(prev_gray)
    mask[max(0, y):y + h, max(0, x):x + w] = 255
    pts = cv2.goodFeaturesToTrack(prev_gray, maxCorners=40, qualityLevel=0.01, minDistance=4, mask=mask)
    if pts is None:
        return box
    new, status, _ = cv2.calcOpticalFlowPyrLK(prev_gray, gray, pts, None, winSize=(15, 15), maxLevel=2)
    ok = status.ravel() == 1
    if ok.sum() < 3:
        return box
    dx, dy = np.median((new[ok] - pts[ok]).reshape(-1, 2), axis=0)
    H, W = gray.shape
    return (int(np.clip(round(x + dx), 0, W - 1)), int(np.clip(round(y + dy), 0, H - 1)), w, h)


def _draw(frame_bgr: np.ndarray, obs: list[Observation]) -> np.ndarray:
    for o in obs:
        text = f"#{o.track_id} {o.identity or '?'}" + (f" | {o.emotion}" if o.emotion else "")
        draw_face(frame_bgr, o.bbox, text, known=o.identity not in (None, UNKNOWN), thickness=2 if o.detected else 1)
    return frame_bgr


def process_video(source: str | int, recognizer, *, out: str | os.PathLike | None = None,
                  jsonl: str | os.PathLike | None = None, summary_dir: str | os.PathLike | None = None,
                  every: int = 1, smoothing: float = 0.3, max_frames: int | None = None,
                  progress: bool = False, on_frame=None, model_lock=None, preview=None,
                  max_observations: int | None = None, name: str | None = None) -> VideoResult:
    """Track, recognize and smooth every face of a video; write the requested outputs; return what was seen.
    ``name`` is what the result and its summary call the video (default: ``source`` as given; the server gives the
    uploaded file's name, never its own path).
    ``on_frame(done, total)`` is called after each frame (total 0 when unknown; an exception it raises stops the
    run, its outputs not written); ``model_lock`` is held around each use of the models (a server shares them
    between requests); ``preview`` (``preview.Preview``) is shown each annotated frame. ``max_observations`` bounds
    the memory of a run: past that many faces-in-frames the run stops there, and ``VideoResult.stopped`` says so."""
    if every < 1:
        raise VideoError("--every must be at least 1.")
    if out:
        video_suffix(out)
    cap, webcam = open_source(source)
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    fps = fps if 0 < fps < 1000 else 25.0
    total = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)) if not webcam else 0  # some containers say -2**63
    stream = FrameTracker(recognizer, every=every, smoothing=smoothing, max_missed=max(every * 3, round(fps)),
                          model_lock=model_lock)
    observations: list[Observation] = []
    frames, size, stopped = 0, (0, 0), None
    start = time.perf_counter()
    from tqdm import tqdm

    bar = tqdm(total=min(total, max_frames or total) or None, unit="frame", desc="video",
               disable=not progress, leave=False, file=sys.stderr)
    writer = None
    with ExitStack() as stack:
        fh = None
        if jsonl:
            tmp = stack.enter_context(atomic_path(jsonl))
            fh = stack.enter_context(open(tmp, "w", encoding="utf-8"))
        try:
            while max_frames is None or frames < max_frames:
                ok, bgr = cap.read()
                if not ok or bgr is None:
                    break
                size = (bgr.shape[1], bgr.shape[0])
                if size[0] * size[1] > max_pixels():  # a stream whose frame size grew after its headers
                    raise VideoError(f"{source}: frame {frames + 1} is {size[0]}x{size[1]} pixels, over the "
                                     f"{max_pixels() / 1e6:.0f}-megapixel limit; downscale the video.")
                if out and writer is None:
                    writer = AtomicVideoWriter(Path(out), fps, size)
                t = frames / fps if not webcam else time.perf_counter() - start
                obs = stream.step(bgr, t)
                observations.extend(obs)
                if fh is not None:
                    for o in obs:
                        fh.write(json.dumps(o.to_dict(), ensure_ascii=False) + "\n")
                if writer is not None or preview is not None:
                    annotated = _draw(bgr, obs)
                    if writer is not None:
                        writer.write(annotated)
                    if preview is not None:
                        preview.publish(annotated)
                frames += 1
                bar.update(1)
                if on_frame is not None:
                    on_frame(frames, total)
                if frames % 10 == 0:
                    bar.set_postfix(fps=f"{frames / (time.perf_counter() - start):.1f}")
                if max_observations is not None and len(observations) >= max_observations:
                    stopped = (f"stopped after frame {frames}: the limit of {max_observations:,} faces-in-frames "
                               "kept per video was reached; split the video to see the rest")
                    log.warning("%s: %s", source, stopped)
                    break
        except KeyboardInterrupt:  # a webcam runs until Ctrl-C: keep what was seen
            log.warning("interrupted after %d frames; writing the outputs", frames)
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        finally:
            bar.close()
            cap.release()
        if frames == 0:
            if writer is not None:
                writer.abort()
            raise VideoError(f"{source}: no frame could be decoded (empty or corrupt video).")
    if writer is not None:
        writer.commit()
    expected = min(total, max_frames) if (total and max_frames) else total
    result = VideoResult(name or str(source), fps, frames, stream.detected, expected or None, time.perf_counter() - start,
                         observations, stream.tracker.all_tracks(), width=size[0], height=size[1], stopped=stopped)
    if result.truncated and not stopped:
        log.warning("%s: only %d of %d frames could be decoded; the video is probably truncated.",
                    source, frames, total)
    result.summary = summarize(result, recognizer, every, smoothing)
    if summary_dir:
        write_summary(result, Path(summary_dir))
    return result


class FrameTracker:
    """Who + emotion over a sequence of frames, one at a time: every ``every``-th frame is detected and
    recognized, the frames in between follow the faces by optical flow; tracks vote on names and smooth emotions.
    The one implementation behind `mien video` and the server's live ``/stream``."""

    def __init__(self, recognizer, every: int = 1, smoothing: float = 0.3, max_missed: int = 30, model_lock=None):
        if every < 1:
            raise VideoError("--every must be at least 1.")
        self.recognizer, self.every = recognizer, every
        self.tracker = Tracker(max_missed=max_missed, smoothing=smoothing)
        self.labels = recognizer.emotion_model.labels if recognizer.emotion_model is not None else None
        self.frame = 0  # frames stepped so far
        self.detected = 0  # of which detected and recognized
        self._prev_gray: np.ndarray | None = None
        self._lock = model_lock  # held around each use of the models when a server shares them

    def step(self, bgr: np.ndarray, t: float) -> list[Observation]:
        """The observations of one BGR frame at time ``t`` (seconds)."""
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        if self._prev_gray is not None and self._prev_gray.shape != gray.shape:
            self._prev_gray = None  # a stream changed its frame size: detect again rather than flow across sizes
        if self.frame % self.every == 0 or self._prev_gray is None:
            with self._lock or nullcontext():
                obs = _recognize_frame(self.recognizer, self.tracker, self.frame, t,
                                       cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self.labels)
            self.detected += 1
        else:
            obs = []
            for track in self.tracker.live(self.frame):
                track.bbox = _flow_shift(self._prev_gray, gray, track.bbox)
                obs.append(_carried(track, self.frame, t, self.labels))
        self._prev_gray = gray
        self.frame += 1
        return obs


def _recognize_frame(recognizer, tracker: Tracker, frame: int, t: float, rgb: np.ndarray,
                     labels: list[str] | None) -> list[Observation]:
    faces = recognizer.detect(rgb)
    if not faces:
        tracker.update(frame, [])
        return []
    embeddings, matches = recognizer.embed_and_identify([recognizer.identity_crop(rgb, f) for f in faces])
    emotions = recognizer.emotions([recognizer.emotion_crop(rgb, f) for f in faces])
    tracks = tracker.update(frame, [f.bbox for f in faces], embeddings)
    obs = []
    for track, match, emo, face in zip(tracks, matches, emotions, faces):
        if match is not None:
            track.vote.add(match.name, match.confidence or 0.0)  # a stranger has none
            track.raw_names.append(match.name)
            track.voted_names.append(track.name)
        raw_scores = smoothed = None
        if emo is not None and labels:
            raw_scores = emo.scores
            s = track.smoother.update(np.array([emo.scores[k] for k in labels]))
            smoothed = dict(zip(labels, map(float, s)))
            track.raw_emotions.append(emo.label)
            track.smoothed_emotions.append(emotion_label(smoothed, recognizer.options.emotion_threshold))
        obs.append(Observation(frame, t, track.track_id, track.bbox, True, match.name if match else None, track.name,
                               match.confidence if match else None, emo.label if emo else None, raw_scores,
                               track.smoothed_emotions[-1] if smoothed else None, smoothed, face.confidence))
    return obs


def _carried(track: Track, frame: int, t: float, labels: list[str] | None) -> Observation:
    s = track.smoother.scores
    scores = dict(zip(labels, map(float, s))) if (labels and s is not None) else None
    return Observation(frame, t, track.track_id, track.bbox, False, None, track.name, None, None, None,
                       track.smoothed_emotions[-1] if scores and track.smoothed_emotions else None, scores)


