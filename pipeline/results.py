"""Writing recognition results: the JSON file and the table printed on stdout."""
from __future__ import annotations

import os
import time

from identity.storage import write_json_atomic
from pipeline.records import ImageRecord

RESULTS_FORMAT_VERSION = 1


def write_results_json(path: str | os.PathLike, records: list[ImageRecord], model_versions: dict[str, str | None],
                       thresholds: dict) -> None:
    """Write all image records, with the model versions and thresholds that produced them, atomically."""
    write_json_atomic(path, {
        "format_version": RESULTS_FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "models": model_versions,
        "thresholds": thresholds,
        "images": [r.to_dict() for r in records],
    })


def table_rows(record: ImageRecord) -> list[list[str]]:
    """Table rows (file, face, who, confidence, distance, emotion) for one image."""
    if record.error:
        return [[record.file, "-", "ERROR", "", "", record.error]]
    if not record.faces:
        return [[record.file, "-", "(no face)", "", "", ""]]
    rows = []
    for f in record.faces:
        ident = f.identity
        emo = f"{f.emotion.label} {f.emotion.confidence:.2f}" if f.emotion else "-"
        rows.append([record.file, str(f.face_id), ident.name if ident else "-",
                     f"{ident.confidence:.2f}" if ident else "", f"{ident.distance:.2f}" if ident else "", emo])
    return rows


def format_table(rows: list[list[str]], header=("file", "face", "who", "conf", "dist", "emotion")) -> str:
    rows = [list(header)] + rows
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
