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
import re
import sys
import time
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from mien.identity.storage import atomic_path, make_private, write_json_atomic
from mien.pipeline.errors import UsageError
from mien.pipeline.app import charts
from mien.pipeline.app.outputs import draw_face
from mien.pipeline.provenance import model_versions, thresholds_used
from mien.pipeline.recognizer import emotion_label
from mien.pipeline.app.tracking import UNKNOWN, Observation, Track, Tracker, label_changes

log = logging.getLogger(__name__)


class VideoError(UsageError):
    """The video cannot be read or written (missing file, undecodable, no such webcam)."""


@dataclass
class VideoResult:
    """What a run saw: frame counts, speed, the tracks and every observation, and the per-person summary."""

    source: str
    fps: float
    frames: int
    detected_frames: int
    expected_frames: int | None
    seconds: float
    observations: list[Observation]
    tracks: list[Track]
    summary: dict = field(default_factory=dict)

    @property
    def truncated(self) -> bool:
        return bool(self.expected_frames) and self.frames < 0.98 * self.expected_frames

    @property
    def processing_fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


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
    """Fail fast (before loading models) on a video file that does not exist; webcams are checked on opening."""
    if not str(source).isdigit() and not Path(source).is_file():
        raise VideoError(f"{source}: no such video file" + (" (a folder?)" if Path(source).exists() else "") + ".")


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


# The annotated video by --out suffix: (container, PyAV encoder, options). Browsers play H.264 in .mp4 and VP9 in
# .webm; OpenCV's bundled FFmpeg has no H.264 encoder and its VP9 ran at 2-16 frames/s on a 640x480 clip, against
# 185-325 for libx264 "veryfast" and 255-305 for VP9 "realtime" in PyAV's FFmpeg (at similar quality, ~36 dB PSNR).
BROWSER_FORMATS = {
    ".mp4": ("mp4", "libx264", {"preset": "veryfast", "crf": "23"}),
    ".mov": ("mov", "libx264", {"preset": "veryfast", "crf": "23"}),
    ".mkv": ("matroska", "libx264", {"preset": "veryfast", "crf": "23"}),
    ".webm": ("webm", "libvpx-vp9", {"deadline": "realtime", "cpu-used": "8", "crf": "32", "b": "0", "row-mt": "1"}),
}
# OpenCV's own writer: MJPEG in .avi (as before), and the fallback when PyAV (the `av` package) is missing.
OPENCV_FOURCC = {".avi": "MJPG", ".mp4": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".webm": "VP80"}
VIDEO_SUFFIXES = ", ".join(OPENCV_FOURCC)


class _OpenCVEncoder:
    """Frames into a file with cv2.VideoWriter."""

    def __init__(self, path: Path, fourcc: str, fps: float, size: tuple[int, int]):
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if not self.writer.isOpened():
            raise VideoError(f"{path}: cannot write a {fourcc} video here.")

    def write(self, frame_bgr: np.ndarray) -> None:
        self.writer.write(frame_bgr)

    def close(self, flush: bool = True) -> None:
        self.writer.release()


class _PyAVEncoder:
    """Frames into a browser-playable file (yuv420p H.264 or VP9) with the FFmpeg that PyAV bundles."""

    def __init__(self, path: Path, container: str, codec: str, options: dict[str, str], fps: float,
                 size: tuple[int, int]):
        import av

        self.av = av
        self.container = av.open(str(path), "w", format=container,
                                 options={"movflags": "+faststart"} if container in ("mp4", "mov") else {})
        try:
            self.stream = self.container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001), options=options)
            # 4:2:0 needs even sides: an odd side gets one more row or column, repeated from the edge (a 1x1 clip
            # becomes 2x2 rather than an empty frame)
            self.stream.width, self.stream.height = size[0] + (size[0] & 1), size[1] + (size[1] & 1)
            self.stream.pix_fmt = "yuv420p"
            self.stream.thread_type = "AUTO"
        except BaseException:
            self.container.close()
            raise

    def write(self, frame_bgr: np.ndarray) -> None:
        h, w = frame_bgr.shape[:2]
        frame = cv2.copyMakeBorder(frame_bgr, 0, self.stream.height - h, 0, self.stream.width - w, cv2.BORDER_REPLICATE) \
            if (h, w) != (self.stream.height, self.stream.width) else frame_bgr
        self.container.mux(self.stream.encode(self.av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")))

    def close(self, flush: bool = True) -> None:
        try:
            if flush:
                self.container.mux(self.stream.encode(None))
        finally:
            self.container.close()


def _pyav_has(codec: str) -> bool:
    """Whether PyAV is installed and its FFmpeg can encode ``codec``."""
    try:
        import av

        av.Codec(codec, "w")
        return True
    except Exception:  # ImportError, or a build of FFmpeg without that encoder
        return False


def video_suffix(path: str | os.PathLike) -> str:
    """The lower-case suffix of an annotated-video path; VideoError (before any work) when mien cannot write it."""
    suffix = Path(path).suffix.lower()
    if suffix not in OPENCV_FOURCC:
        raise VideoError(f"{path}: write the annotated video as one of {VIDEO_SUFFIXES} (.mp4 or .webm play in browsers).")
    return suffix


def open_video_encoder(path: Path, fps: float, size: tuple[int, int]) -> _PyAVEncoder | _OpenCVEncoder:
    """The encoder for a path's suffix: H.264 (.mp4 .mov .mkv) or VP9 (.webm) that browsers play, MJPEG for .avi."""
    suffix = video_suffix(path)
    if suffix in BROWSER_FORMATS:
        if _pyav_has(BROWSER_FORMATS[suffix][1]):
            import av

            try:
                return _PyAVEncoder(path, *BROWSER_FORMATS[suffix], fps, size)
            except (OSError, av.FFmpegError) as e:
                raise VideoError(f"{path}: cannot write a video here ({e}).") from e
        log.warning("PyAV (pip install av) with %s is missing: writing %s with OpenCV's %s, which browsers may not "
                    "play.", BROWSER_FORMATS[suffix][1], suffix, OPENCV_FOURCC[suffix])
    return _OpenCVEncoder(path, OPENCV_FOURCC[suffix], fps, size)


class _AtomicVideoWriter:
    """A video encoder writing a hidden temporary file beside the target, renamed over it on success."""

    def __init__(self, target: Path, fps: float, size: tuple[int, int]):
        self.target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")
        try:
            self.encoder = open_video_encoder(self.tmp, fps, size)  # the name keeps the suffix
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise

    def write(self, frame_bgr: np.ndarray) -> None:
        self.encoder.write(frame_bgr)

    def commit(self) -> None:
        try:
            self.encoder.close()
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        make_private(self.tmp)
        os.replace(self.tmp, self.target)

    def abort(self) -> None:
        try:
            self.encoder.close(flush=False)
        finally:
            self.tmp.unlink(missing_ok=True)


def process_video(source: str | int, recognizer, *, out: str | os.PathLike | None = None,
                  jsonl: str | os.PathLike | None = None, summary_dir: str | os.PathLike | None = None,
                  every: int = 1, smoothing: float = 0.3, max_frames: int | None = None,
                  progress: bool = False, on_frame=None, model_lock=None) -> VideoResult:
    """Track, recognize and smooth every face of a video; write the requested outputs; return what was seen.
    ``on_frame(done, total)`` is called after each frame (total 0 when unknown); ``model_lock`` is held around each
    use of the models (a server shares them between requests)."""
    if every < 1:
        raise VideoError("--every must be at least 1.")
    if out:
        video_suffix(out)
    cap, webcam = open_source(source)
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    fps = fps if 0 < fps < 1000 else 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if not webcam else 0
    stream = FrameTracker(recognizer, every=every, smoothing=smoothing, max_missed=max(every * 3, round(fps)),
                          model_lock=model_lock)
    observations: list[Observation] = []
    frames = 0
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
                if out and writer is None:
                    writer = _AtomicVideoWriter(Path(out), fps, (bgr.shape[1], bgr.shape[0]))
                t = frames / fps if not webcam else time.perf_counter() - start
                obs = stream.step(bgr, t)
                observations.extend(obs)
                if fh is not None:
                    for o in obs:
                        fh.write(json.dumps(o.to_dict(), ensure_ascii=False) + "\n")
                if writer is not None:
                    writer.write(_draw(bgr, obs))
                frames += 1
                bar.update(1)
                if on_frame is not None:
                    on_frame(frames, total)
                if frames % 10 == 0:
                    bar.set_postfix(fps=f"{frames / (time.perf_counter() - start):.1f}")
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
    result = VideoResult(str(source), fps, frames, stream.detected, expected or None, time.perf_counter() - start,
                         observations, stream.tracker.all_tracks())
    if result.truncated:
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
    embeddings = recognizer.embed_faces(rgb, faces)
    matches = recognizer.identify(embeddings)
    emotions = recognizer.emotions([recognizer.emotion_crop(rgb, f) for f in faces])
    tracks = tracker.update(frame, [f.bbox for f in faces], embeddings)
    obs = []
    for track, match, emo in zip(tracks, matches, emotions):
        if match is not None:
            track.vote.add(match.name, match.confidence)
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
                               track.smoothed_emotions[-1] if smoothed else None, smoothed))
    return obs


def _carried(track: Track, frame: int, t: float, labels: list[str] | None) -> Observation:
    s = track.smoother.scores
    scores = dict(zip(labels, map(float, s))) if (labels and s is not None) else None
    return Observation(frame, t, track.track_id, track.bbox, False, None, track.name, None, None, None,
                       track.smoothed_emotions[-1] if scores and track.smoothed_emotions else None, scores)


def person_key(track: Track) -> str:
    """Tracks of one enrolled person are merged; every unknown face stays its own ``unknown#<track>``."""
    return track.name if track.name not in (None, UNKNOWN) else f"unknown#{track.track_id}"


def summarize(result: VideoResult, recognizer, every: int, smoothing: float) -> dict:
    """Per track (identity vote, label changes) and per person (time on screen, share of time per emotion, spans)."""
    by_track = {t.track_id: t for t in result.tracks}
    frame_s = 1.0 / result.fps
    people: dict[str, dict] = {}
    for o in result.observations:
        p = people.setdefault(person_key(by_track[o.track_id]), {"tracks": set(), "frames": 0, "emotion_frames": {}})
        p["tracks"].add(o.track_id)
        p["frames"] += 1
        if o.emotion:
            p["emotion_frames"][o.emotion] = p["emotion_frames"].get(o.emotion, 0) + 1
    for person, p in people.items():
        n_emo = sum(p["emotion_frames"].values())
        p["seconds"] = round(p["frames"] * frame_s, 3)
        p["emotion_share"] = {k: round(v / n_emo, 4) for k, v in sorted(p["emotion_frames"].items(), key=lambda kv: -kv[1])}
        p["tracks"] = sorted(p["tracks"])
        p["spans"] = charts.spans(person_observations(result, person), max_gap_frames(every), frame_s)
        del p["emotion_frames"]
    return {
        "source": result.source, "fps": result.fps, "frames": result.frames, "detected_frames": result.detected_frames,
        "expected_frames": result.expected_frames, "truncated": result.truncated, "every": every,
        "smoothing": smoothing, "processing_fps": round(result.processing_fps, 2),
        "models": model_versions(recognizer), "thresholds": thresholds_used(recognizer),
        "tracks": [{"track_id": t.track_id, "identity": t.name, "vote_share": round(t.vote.share, 3),
                    "votes": dict(t.vote.counts), "first_s": round(t.first_frame * frame_s, 3),
                    "last_s": round(t.last_detected * frame_s, 3),
                    "raw_identity_changes": label_changes(t.raw_names),
                    "voted_identity_changes": label_changes(t.voted_names),
                    "raw_emotion_changes": label_changes(t.raw_emotions),
                    "smoothed_emotion_changes": label_changes(t.smoothed_emotions)} for t in result.tracks],
        "people": people,
    }


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name, flags=re.UNICODE).strip("._") or "person"


def person_observations(result: VideoResult, person: str) -> list[Observation]:
    """The observations of one person (as keyed by ``person_key``)."""
    by_track = {t.track_id: t for t in result.tracks}
    return [o for o in result.observations if person_key(by_track[o.track_id]) == person]


def max_gap_frames(every: int) -> int:
    """Frames without a person before their charts break: 2 frame intervals, or 2 detection intervals with --every."""
    return 2 * every


def write_summary(result: VideoResult, folder: Path) -> None:
    """``summary.json``, ``timeline.png`` (everyone) and ``timeline_<person>.png`` per person, each written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    s = result.summary
    labels = next((list(o.scores) for o in result.observations if o.scores), None)  # the model's order
    frame_s, duration = 1.0 / result.fps, max(result.frames / result.fps, 1e-3)
    if s["people"]:
        duration = max(duration, max(sp["end_s"] for p in s["people"].values() for sp in p["spans"]))
    for person, info in s["people"].items():
        target = folder / f"timeline_{_safe(person)}.png"
        charts.person_chart(target, person, person_observations(result, person), info, labels,
                            max_gap_frames(s["every"]), frame_s, duration)
        info["timeline_png"] = target.name
    charts.timeline_chart(folder / "timeline.png", s["people"], duration)
    s["timeline_png"] = "timeline.png"
    write_json_atomic(folder / "summary.json", s)
