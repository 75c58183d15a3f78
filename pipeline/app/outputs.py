"""What mien shows people: the JSON results file, the table on stdout, annotated photos and video frames."""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from mien.identity.match import UNKNOWN, name_text, who_text_for_stranger
from mien.identity.storage import atomic_path, write_json_atomic
from mien.pipeline.records import ImageRecord, envelope

KNOWN_BGR, UNKNOWN_BGR = (55, 127, 26), (40, 40, 198)  # white text on either: >= 5:1 contrast (WCAG AA)
# Annotated copies of small photos are enlarged to this long side so that labels are legible at 1x.
MIN_ANNOTATED_SIDE = 640


def write_results_json(path: str | os.PathLike, records: list[ImageRecord], model_versions: dict[str, str | None],
                       thresholds: dict) -> None:
    """Write all image records, with the model versions and thresholds that produced them, atomically (``-``:
    to standard output)."""
    write_json(path, envelope(records, model_versions, thresholds))


def write_json(path: str | os.PathLike, document) -> None:
    """Indented JSON to a file, atomically, or to standard output for ``-`` (every command's ``--json``)."""
    if os.fspath(path) == "-":
        import json
        import sys

        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    else:
        write_json_atomic(path, document)


# Two emotions closer than this are a near tie: the table names both instead of printing the first as certain.
NEAR_TIE_MARGIN = 0.10


def emotion_text(emotion, margin: float = NEAR_TIE_MARGIN) -> str:
    """``happy 0.81``, or ``happy 0.44 ~ angry 0.39`` when the runner-up is within ``margin``; ``-`` without one."""
    if emotion is None:
        return "-"
    text = f"{emotion.label} {emotion.confidence:.2f}"
    ranked = sorted(emotion.scores.items(), key=lambda kv: kv[1], reverse=True)
    if len(ranked) > 1 and ranked[0][1] - ranked[1][1] < margin:
        text = f"{ranked[0][0]} {ranked[0][1]:.2f} ~ {ranked[1][0]} {ranked[1][1]:.2f}"
        if emotion.label != ranked[0][0]:  # below the emotion threshold: the label says so
            text = f"{emotion.label}: {text}"
    return text


def display_path(path: str, width: int = 48) -> str:
    """A path as the table shows it: relative to the working folder when inside it, and at most ``width``
    characters, keeping its end (``.../folder/photo.jpg``), where the name is."""
    try:
        rel = os.path.relpath(path)
        text = rel if not rel.startswith("..") and "://" not in path else path  # a URL as given
    except ValueError:  # another drive on Windows
        text = path
    return text if len(text) <= width else "..." + text[-(width - 3):]


CSV_COLUMNS = ("file", "face", "who", "confidence", "distance", "closest", "emotion", "emotion_confidence", "x", "y",
               "w", "h", "detection_confidence", "error")


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as the start of a formula
NUMBER = re.compile(r"[-+]?\d+(\.\d+)?")


def csv_safe(cell):
    """A CSV cell a spreadsheet shows as text, never runs: text starting like a formula (a person named
    ``=HYPERLINK(...)``, a file ``@x.jpg``) gets a leading ``'`` as OWASP advises; numbers are left as they are.
    Prefixing rather than refusing such names: they are legitimate names and file names elsewhere (JSON, the API)."""
    if isinstance(cell, str) and cell.startswith(FORMULA_START) and not NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def csv_rows(record: ImageRecord, emotions: tuple[str, ...] = ()) -> list[list]:
    """One CSV row per face (or one for an image without faces or with an error): ``CSV_COLUMNS`` then the
    probability of each emotion in ``emotions``; every cell ``csv_safe``."""
    return [[csv_safe(c) for c in row] for row in _csv_rows(record, emotions)]


def _csv_rows(record: ImageRecord, emotions: tuple[str, ...]) -> list[list]:
    if record.error or not record.faces:
        return [[record.file, *[""] * (len(CSV_COLUMNS) - 2), record.error or ""] + [""] * len(emotions)]
    rows = []
    for f in record.faces:
        ident, emo = f.identity, f.emotion
        rows.append([record.file, f.face_id, ident.name if ident else "", _r4(ident.confidence if ident else None),
                     _r4(ident.distance if ident else None), (ident.closest or "") if ident else "",
                     emo.label if emo else "", _r4(emo.confidence if emo else None),
                     *(int(v) for v in f.bbox), _r4(f.detection_confidence), ""]
                    + [_r4(emo.scores.get(e)) if emo else "" for e in emotions])
    return rows


def who_text(ident) -> str:
    """The name, ``unknown (closest: NAME)`` for a stranger (the distance sits in its own column), or ``-``."""
    return "-" if ident is None else name_text(ident.name, ident.closest)


def _r4(value) -> str:
    return "" if value is None else f"{value:.4f}"


def table_rows(record: ImageRecord, margin: float = NEAR_TIE_MARGIN) -> list[list[str]]:
    """Table rows (who, confidence, distance, emotion, face, file) for one image: the name first, so rows stay
    readable in 100 columns; a stranger shows the closest person and the distance to them, not a confidence."""
    file = display_path(record.file)
    if record.error:
        return [["ERROR", "", "", record.error, "-", file]]
    if not record.faces:
        return [["(no face)", "", "", "", "-", file]]
    rows = []
    for f in record.faces:
        ident = f.identity
        known = ident is not None and ident.name != UNKNOWN
        rows.append([who_text(ident), f"{ident.confidence:.2f}" if known else "",
                     f"{ident.distance:.2f}" if ident and ident.distance is not None else "",
                     emotion_text(f.emotion, margin), str(f.face_id), file])
    return rows


def terminal_safe(text: str) -> str:
    """``text`` with control characters escaped (a file or person name must not drive the terminal)."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


TABLE_HEADER = ("who", "conf", "dist", "emotion", "face", "file")


class StreamingTable:
    """A table printed a row at a time (as images finish): column widths fixed up front, long cells widen; the
    file comes last, so a long path never pushes the answer off the line."""

    def __init__(self, widths: tuple[int, ...] = (16, 4, 4, 22, 4)):
        self.widths = (*widths, 0)

    @classmethod
    def for_answers(cls, people: Sequence[str] = (), emotions: Sequence[str] = ()) -> "StreamingTable":
        """Widths that hold every answer these people and emotion labels can give: ``unknown (closest: NAME)``
        and a near tie ``label 0.44 ~ label 0.39`` line up too (names capped at 24 characters of width)."""
        longest_name = min(24, max((len(p) for p in people), default=0))
        who = max(16, len(who_text_for_stranger("x" * longest_name)) if people else 0)
        longest_label = max((len(e) for e in emotions), default=0)
        emotion = max(22, 2 * (longest_label + len(" 0.00")) + len(" ~ "))
        return cls((who, 4, 4, emotion, 4))

    def line(self, cells) -> str:
        """One formatted row (control characters escaped)."""
        return "  ".join(terminal_safe(str(c)).ljust(w) for c, w in zip(cells, self.widths)).rstrip()

    def header(self) -> str:
        """The header row."""
        return self.line(TABLE_HEADER)


def format_table(rows: list[list[str]], header=TABLE_HEADER) -> str:
    """Rows aligned in columns under ``header`` (control characters escaped)."""
    rows = [[terminal_safe(str(c)) for c in r] for r in [list(header)] + rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def face_label(face) -> str:
    """``#id name conf | emotion p`` for one face of a record (a stranger shows the closest person and distance)."""
    ident = face.identity
    if ident is None:
        who = "?"
    elif ident.name == UNKNOWN:
        closest = f"{ident.closest} " if ident.closest else ""
        who = f"{UNKNOWN} (closest {closest}{ident.distance:.2f})" if ident.distance is not None else UNKNOWN
    else:
        who = f"{ident.name} {ident.confidence:.2f}"
    emo = f" | {face.emotion.label} {face.emotion.confidence:.2f}" if face.emotion else ""
    return f"#{face.face_id} {who}{emo}"


def draw_face(image_bgr: np.ndarray, bbox: tuple[int, int, int, int], text: str, known: bool,
              thickness: int = 2) -> None:
    """Draw one face box and its label in place; the label is scaled to the image and kept inside it."""
    height, width = image_bgr.shape[:2]
    x, y, w, h = (int(v) for v in bbox)
    color = KNOWN_BGR if known else UNKNOWN_BGR
    cv2.rectangle(image_bgr, (x, y), (x + w, y + h), color, thickness)
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max(0.45, min(1.2, max(height, width) / 1000))
    (tw, th), base = cv2.getTextSize(text, font, scale, 1)
    if tw + 6 > width:  # a long label on a narrow image: shrink it to fit
        scale *= (width - 6) / (tw + 6)
        (tw, th), base = cv2.getTextSize(text, font, scale, 1)
    pad = 3
    top = y - th - base - 2 * pad
    if top < 0:  # no room above the box: put the label below it, or inside at the bottom edge
        top = min(y + h, height - th - base - 2 * pad)
    left = min(max(x, 0), max(width - tw - 2 * pad, 0))
    cv2.rectangle(image_bgr, (left, top), (left + tw + 2 * pad, top + th + base + 2 * pad), color, -1)
    cv2.putText(image_bgr, text, (left + pad, top + pad + th), font, scale, (255, 255, 255), 1, cv2.LINE_AA)


def annotate(image: np.ndarray, record: ImageRecord, min_side: int = MIN_ANNOTATED_SIDE) -> np.ndarray:
    """A BGR copy of an RGB image with each face's box and label, enlarged first to a long side of at least
    ``min_side`` so small photos get legible labels (0: keep the size, as the API does for overlays)."""
    out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    factor = max(1.0, min_side / max(image.shape[:2]))
    if factor > 1.0:
        out = cv2.resize(out, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    thickness = max(2, round(max(out.shape[:2]) / 400))
    for face in record.faces:
        known = face.identity is not None and face.identity.name != UNKNOWN
        draw_face(out, tuple(round(v * factor) for v in face.bbox), face_label(face), known, thickness)
    return out


def annotated_name(source: str) -> str:
    """``<folder>__<stem>.jpg`` for a .jpg source, ``<folder>__<stem>_<ext>.jpg`` otherwise (p.jpg and p.png must
    not overwrite each other); names over 200 bytes are shortened with a hash (file systems stop at 255)."""
    src = Path(source)
    ext = src.suffix.lower().lstrip(".")
    stem = f"{src.parent.name}__{src.stem}" if src.parent.name else src.stem
    name = f"{stem}.jpg" if ext == "jpg" else f"{stem}_{ext}.jpg" if ext else f"{stem}.jpg"
    if len(name.encode()) > 200:
        digest = hashlib.sha256(source.encode()).hexdigest()[:12]
        name = stem.encode()[:150].decode(errors="ignore") + f"_{digest}.jpg"
    return name


def write_annotated(image: np.ndarray, record: ImageRecord, out_dir: str | os.PathLike, as_file: bool = False) -> Path:
    """Write the annotated copy as ``out_dir/annotated_name(file)`` (or, ``as_file``, as ``out_dir`` itself, in the
    format its suffix names) atomically, and return its path."""
    target = Path(out_dir) if as_file else Path(out_dir) / annotated_name(record.file)
    kind = target.suffix.lower() if as_file else ".jpg"
    ok, buf = cv2.imencode(kind, annotate(image, record), [cv2.IMWRITE_JPEG_QUALITY, 92] if kind in (".jpg", ".jpeg") else [])
    if not ok:
        raise OSError(f"could not encode annotated copy of {record.file}")
    with atomic_path(target) as tmp:
        tmp.write_bytes(buf.tobytes())
    return target
