"""What a video run saw, summed up: per track (identity vote, label changes) and per person (time on screen,
emotion shares, spans), written as summary.json and timeline PNGs."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mien.identity.storage import write_json_atomic
from mien.pipeline.app import charts
from mien.pipeline.app.tracking import UNKNOWN, Observation, Track, label_changes
from mien.identity.match import IdentityMatch
from mien.pipeline.provenance import model_versions, thresholds_used
from mien.pipeline.records import EmotionResult, FaceRecord, ImageRecord


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
    width: int = 0  # of the frames
    height: int = 0
    stopped: str | None = None  # why the run stopped before the end of the video (a memory limit), if it did

    @property
    def truncated(self) -> bool:
        return bool(self.expected_frames) and self.frames < 0.98 * self.expected_frames

    @property
    def processing_fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


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
        **({"stopped": result.stopped} if result.stopped else {}),
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


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def history_record(result: VideoResult) -> ImageRecord:
    """The video as one entry of the results database (`mien history`): one row per person, with their box where
    first detected, mean detection and identity confidence over their detected frames, and, as the emotion, the
    one they showed most often with each emotion's share of their frames as the scores (no distance: it is a vote
    over frames, not one match)."""
    labels = next((list(o.scores) for o in result.observations if o.scores), [])
    faces = []
    for person, info in result.summary["people"].items():
        seen = [o for o in person_observations(result, person) if o.detected]
        if not seen:
            continue
        name = person if not person.startswith(f"{UNKNOWN}#") else UNKNOWN
        identity = IdentityMatch(name, _mean([o.identity_confidence for o in seen if o.identity_confidence is not None]),
                                 None, name)
        share = {k: float(info["emotion_share"].get(k, 0.0)) for k in labels or info["emotion_share"]}
        emotion = None
        if share and any(share.values()):
            top = max(share, key=share.get)
            emotion = EmotionResult(top, share[top], share)
        faces.append(FaceRecord(len(faces) + 1, tuple(seen[0].bbox), _mean([o.detection_confidence or 0.0 for o in seen]),
                                {}, identity, emotion))
    return ImageRecord(result.source, result.width, result.height, faces)


def store_in_history(db, recognizer, result: VideoResult, source: str, image_sha256: str | None = None) -> int:
    """Add a video or a recorded stream to the results database as one entry (``history_record``) with the
    thresholds and model versions that made it; returns its id."""
    return db.add(history_record(result), image_sha256=image_sha256, thresholds=thresholds_used(recognizer),
                  models=model_versions(recognizer), source=source)
