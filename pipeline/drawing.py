"""Annotated copies of photos: a box per face with name and emotion."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from identity.storage import atomic_path
from pipeline.records import ImageRecord


def face_label(face) -> str:
    who = face.identity.name if face.identity else "?"
    return f"{who} | {face.emotion.label}" if face.emotion else who


def annotate(image: np.ndarray, record: ImageRecord) -> np.ndarray:
    """Return a BGR copy of an RGB image with each face's box and ``name | emotion`` drawn."""
    out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    scale = max(0.4, max(image.shape[:2]) / 800)
    thick = max(1, round(scale * 2))
    for face in record.faces:
        x, y, w, h = face.bbox
        known = face.identity is not None and face.identity.name != "unknown"
        color = (60, 200, 60) if known else (40, 40, 230)
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thick)
        text = face_label(face)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, thick)
        ty = y - 4 if y - th - base - 4 > 0 else y + h + th + 4
        cv2.rectangle(out, (x, ty - th - base), (x + tw + 4, ty + base), color, -1)
        cv2.putText(out, text, (x + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def write_annotated(image: np.ndarray, record: ImageRecord, out_dir: str | os.PathLike) -> Path:
    """Write the annotated copy as ``out_dir/<stem>.jpg`` (atomically) and return its path."""
    out_dir = Path(out_dir)
    src = Path(record.file)
    target = out_dir / f"{src.parent.name}__{src.stem}.jpg" if src.parent.name else out_dir / f"{src.stem}.jpg"
    ok, buf = cv2.imencode(".jpg", annotate(image, record), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise OSError(f"could not encode annotated copy of {record.file}")
    with atomic_path(target) as tmp:
        tmp.write_bytes(buf.tobytes())
    return target
