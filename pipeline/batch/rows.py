"""The rows ``mien batch`` writes: one per face, or one per image without a face (its reason says why).

The Parquet schema is fixed here (every shard has exactly these columns and types, whatever its batch held),
so shards concatenate and query as one table: a score column per FER+ emotion, `emotion_contempt` null under the
7-emotion FER2013 model (`emotion_labels` says which ran), and the arithmetic each network ran in
(`precision_detector`, `precision_embedder`, `precision_emotion`: fp32, bf16 or int8).
"""
from __future__ import annotations

from datetime import datetime, timezone

from mien.emotion.labels import FERPLUS_EMOTIONS
from mien.pipeline.detection import LANDMARK_NAMES

STATUS_FACE, STATUS_NO_FACE, STATUS_ERROR = "face", "no_face", "error"
PRECISION_OF = ("detector", "embedder", "emotion")  # the arithmetic each ran in (--precision): precision_* columns


def schema():
    """The pyarrow schema of a shard (``mien batch``'s documented output)."""
    import pyarrow as pa

    f32, i32, s = pa.float32(), pa.int32(), pa.string()
    return pa.schema([
        ("file", s), ("sha256", s), ("file_mtime", pa.timestamp("ms", tz="UTC")), ("status", s), ("reason", s),
        ("width", i32), ("height", i32), ("face_index", i32),
        ("bbox_x", i32), ("bbox_y", i32), ("bbox_w", i32), ("bbox_h", i32),
        ("detection_confidence", f32), ("detection_scale", f32), ("landmarks", pa.list_(f32, 2 * len(LANDMARK_NAMES))),
        ("name", s), ("identity_confidence", f32), ("distance", f32), ("closest", s),
        ("emotion", s), ("emotion_confidence", f32), *((f"emotion_{label}", f32) for label in FERPLUS_EMOTIONS),
        ("detector", s), ("embedder", s), ("classifier", s), ("emotion_model", s), ("emotion_labels", s),
        *((f"precision_{network}", s) for network in PRECISION_OF),
        ("distance_threshold", f32), ("probability_threshold", f32), ("emotion_threshold", f32),
        ("recognized_at", pa.timestamp("ms", tz="UTC")),
    ])


def _empty() -> dict:
    return {name: None for name in schema().names}


def image_rows(record, sha256: str | None, mtime: float | None, provenance: dict) -> list[dict]:
    """Rows for one recognized image (``mien.pipeline.records.ImageRecord``): one per face, or one saying why none."""
    base = _empty()
    base.update(provenance)
    base.update(file=record.file, sha256=sha256, width=record.width or None, height=record.height or None,
                file_mtime=None if mtime is None else datetime.fromtimestamp(int(mtime), timezone.utc))
    if record.error:
        return [{**base, "status": STATUS_ERROR, "reason": record.error}]
    if not record.faces:
        return [{**base, "status": STATUS_NO_FACE, "reason": "no face found"}]
    rows = []
    for face in record.faces:
        row = {**base, "status": STATUS_FACE, "face_index": face.face_id}
        row.update(zip(("bbox_x", "bbox_y", "bbox_w", "bbox_h"), (int(v) for v in face.bbox)))
        row.update(detection_confidence=face.detection_confidence, detection_scale=face.detection_scale,
                   landmarks=[float(c) for n in LANDMARK_NAMES for c in face.landmarks[n]] if face.landmarks else None)
        if face.identity:
            row.update(name=face.identity.name, identity_confidence=face.identity.confidence,
                       distance=face.identity.distance, closest=face.identity.closest)
        if face.emotion:
            row.update(emotion=face.emotion.label, emotion_confidence=face.emotion.confidence,
                       **{f"emotion_{label}": score for label, score in face.emotion.scores.items()})
        rows.append(row)
    return rows


def error_row(file: str, reason: str, sha256: str | None = None, mtime: float | None = None) -> dict:
    """The row of a file that could not be read or decoded."""
    row = _empty()
    row.update(file=file, sha256=sha256, status=STATUS_ERROR, reason=reason,
               file_mtime=None if mtime is None else datetime.fromtimestamp(int(mtime), timezone.utc))
    return row


def provenance(recognizer) -> dict:
    """Model versions and thresholds, as row columns (the same for every row an actor writes)."""
    from mien.pipeline.provenance import model_versions, thresholds_used

    versions, th = model_versions(recognizer), thresholds_used(recognizer)
    identity = th["identity"] or {}
    return {"detector": versions["detector"], "embedder": versions["embedder"], "classifier": versions["classifier"],
            "emotion_model": versions["emotion"], "emotion_labels": versions["emotion_labels"],
            **{f"precision_{network}": versions["precision"].get(network) for network in PRECISION_OF},
            "distance_threshold": identity.get("distance"),
            "probability_threshold": identity.get("probability"), "emotion_threshold": th["emotion"]}


def to_table(rows: list[dict]):
    """Rows as a pyarrow Table with the fixed schema (``recognized_at`` filled in now)."""
    import pyarrow as pa

    now = datetime.now(timezone.utc)
    for row in rows:
        row["recognized_at"] = now
    return pa.Table.from_pylist(rows, schema=schema())
