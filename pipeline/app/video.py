"""``mien video``: who + emotion over time in a video file or webcam, with tracks, votes and smoothing.

Every N-th frame is detected and recognized (one MTCNN pass, one FaceNet and one emotion batch per
frame); in between, boxes follow the faces by optical flow. Outputs, each written atomically: an
annotated video, a JSONL line per frame and face, and a summary (JSON + a timeline PNG per person).
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from identity.storage import atomic_path, write_json_atomic
from pipeline.errors import UsageError
from pipeline.app.outputs import draw_face
from pipeline.provenance import model_versions, thresholds_used
from pipeline.recognizer import emotion_label
from pipeline.app.tracking import UNKNOWN, Track, Tracker, label_changes

log = logging.getLogger(__name__)


class VideoError(UsageError):
    """The video cannot be read or written (missing file, undecodable, no such webcam)."""


@dataclass
class Observation:
    """One face in one frame: where, which track, raw and decided identity, raw and smoothed emotion."""

    frame: int
    time: float
    track_id: int
    bbox: tuple[int, int, int, int]
    detected: bool  # False: box carried by tracking between detection frames
    raw_identity: str | None
    identity: str | None
    identity_confidence: float | None
    raw_emotion: str | None
    raw_scores: dict[str, float] | None
    emotion: str | None
    scores: dict[str, float] | None

    def to_dict(self) -> dict:
        r4 = (lambda d: {k: round(v, 4) for k, v in d.items()} if d else None)
        return {"frame": self.frame, "time": round(self.time, 3), "track_id": self.track_id,
                "bbox": list(self.bbox), "detected": self.detected, "raw_identity": self.raw_identity,
                "identity": self.identity, "identity_confidence": None if self.identity_confidence is None
                else round(self.identity_confidence, 4), "raw_emotion": self.raw_emotion,
                "raw_emotion_scores": r4(self.raw_scores), "emotion": self.emotion, "emotion_scores": r4(self.scores)}


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


class _AtomicVideoWriter:
    """cv2.VideoWriter into a hidden temporary file beside the target, renamed over it on success."""

    def __init__(self, target: Path, fps: float, size: tuple[int, int]):
        self.target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if target.suffix.lower() == ".avi" else "mp4v"))
        self.writer = cv2.VideoWriter(str(self.tmp), fourcc, fps, size)
        if not self.writer.isOpened():
            self.tmp.unlink(missing_ok=True)
            raise VideoError(f"{target}: cannot write a video here (use .mp4 or .avi).")

    def write(self, frame_bgr: np.ndarray) -> None:
        self.writer.write(frame_bgr)

    def commit(self) -> None:
        self.writer.release()
        os.replace(self.tmp, self.target)

    def abort(self) -> None:
        self.writer.release()
        self.tmp.unlink(missing_ok=True)


def process_video(source: str | int, recognizer, *, out: str | os.PathLike | None = None,
                  jsonl: str | os.PathLike | None = None, summary_dir: str | os.PathLike | None = None,
                  every: int = 1, smoothing: float = 0.3, max_frames: int | None = None,
                  progress: bool = False) -> VideoResult:
    """Track, recognize and smooth every face of a video; write the requested outputs; return what was seen."""
    if every < 1:
        raise VideoError("--every must be at least 1.")
    cap, webcam = open_source(source)
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    fps = fps if 0 < fps < 1000 else 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if not webcam else 0
    tracker = Tracker(max_missed=max(every * 3, round(fps)), smoothing=smoothing)
    labels = recognizer.emotion_model.labels if recognizer.emotion_model is not None else None
    observations: list[Observation] = []
    frames = detected = 0
    prev_gray = None
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
                gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
                if frames % every == 0:
                    obs = _recognize_frame(recognizer, tracker, frames, t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), labels)
                    detected += 1
                else:
                    obs = []
                    for track in tracker.live(frames):
                        track.bbox = _flow_shift(prev_gray, gray, track.bbox)
                        obs.append(_carried(track, frames, t, labels))
                observations.extend(obs)
                if fh is not None:
                    for o in obs:
                        fh.write(json.dumps(o.to_dict(), ensure_ascii=False) + "\n")
                if writer is not None:
                    writer.write(_draw(bgr, obs))
                prev_gray = gray
                frames += 1
                bar.update(1)
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
    result = VideoResult(str(source), fps, frames, detected, expected or None, time.perf_counter() - start,
                         observations, tracker.all_tracks())
    if result.truncated:
        log.warning("%s: only %d of %d frames could be decoded; the video is probably truncated.",
                    source, frames, total)
    result.summary = summarize(result, recognizer, every, smoothing)
    if summary_dir:
        write_summary(result, Path(summary_dir))
    return result


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
    """Per track (identity vote, label changes) and per person (time on screen, share of time per emotion)."""
    by_track = {t.track_id: t for t in result.tracks}
    frame_s = 1.0 / result.fps
    people: dict[str, dict] = {}
    for o in result.observations:
        p = people.setdefault(person_key(by_track[o.track_id]), {"tracks": set(), "frames": 0, "emotion_frames": {}})
        p["tracks"].add(o.track_id)
        p["frames"] += 1
        if o.emotion:
            p["emotion_frames"][o.emotion] = p["emotion_frames"].get(o.emotion, 0) + 1
    for p in people.values():
        n_emo = sum(p["emotion_frames"].values())
        p["seconds"] = round(p["frames"] * frame_s, 3)
        p["emotion_share"] = {k: round(v / n_emo, 4) for k, v in sorted(p["emotion_frames"].items(), key=lambda kv: -kv[1])}
        p["tracks"] = sorted(p["tracks"])
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


def write_summary(result: VideoResult, folder: Path) -> None:
    """``summary.json`` plus ``timeline_<person>.png`` per person, each written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    by_track = {t.track_id: t for t in result.tracks}
    for person, info in result.summary["people"].items():
        obs = [o for o in result.observations if person_key(by_track[o.track_id]) == person]
        fig, ax = plt.subplots(figsize=(10, 3.2), dpi=100)
        times = np.array([o.time for o in obs])
        scored = [o for o in obs if o.scores]
        if scored:
            t = np.array([o.time for o in scored])
            for label in scored[0].scores:
                ax.plot(t, [o.scores[label] for o in scored], ".-", ms=2, lw=1, label=label)
            ax.set_ylabel("smoothed probability")
            ax.set_ylim(0, 1.02)
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
            share = ", ".join(f"{k} {v:.0%}" for k, v in list(info["emotion_share"].items())[:3])
            ax.set_title(f"{person}: {share}", fontsize=10)
        else:
            ax.plot(times, np.ones_like(times), "|", ms=14)
            ax.set_yticks([])
            ax.set_title(f"{person}: on screen (emotion model not loaded)", fontsize=10)
        ax.set_xlabel("time (s)")
        ax.set_xlim(0, max(result.frames / result.fps, 1e-3))
        fig.tight_layout()
        target = folder / f"timeline_{_safe(person)}.png"
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        info["timeline_png"] = target.name
    write_json_atomic(folder / "summary.json", result.summary)
