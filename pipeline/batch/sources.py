"""What ``mien batch`` reads: a folder (recursively), a text file of paths, or a Parquet/CSV manifest."""
from __future__ import annotations

import csv
from pathlib import Path

from mien.pipeline.errors import UsageError
from mien.pipeline.images import scan_images

MANIFEST_COLUMN = "path"


class BatchSourceError(UsageError):
    """The batch source cannot be read as a folder, a list of paths or a manifest."""


def read_source(source: str | Path) -> list[str]:
    """The photo paths of ``source``, as absolute strings in a stable order. A folder is searched recursively
    for images; ``.parquet``/``.csv`` files are manifests with a ``path`` column; any other file is a text
    list, one path per line (blank lines and ``#`` comments skipped). Relative paths in a list or manifest
    are taken relative to the file's folder; a path listed again is done once."""
    source = Path(source)
    if source.is_dir():
        return [str(p.resolve()) for p in scan_images(source)[0]]
    if not source.is_file():
        raise BatchSourceError(f"{source}: no such folder or file; give a folder of photos, a text file of "
                               "paths or a Parquet/CSV manifest with a 'path' column.")
    suffix = source.suffix.lower()
    if suffix == ".parquet":
        paths = _parquet_paths(source)
    elif suffix == ".csv":
        paths = _csv_paths(source)
    else:
        paths = _text_paths(source)
    base = source.resolve().parent
    absolute = (str(p if p.is_absolute() else (base / p)) for p in (Path(x) for x in paths))
    return list(dict.fromkeys(absolute))  # first occurrence kept, in order


def _parquet_paths(source: Path) -> list[str]:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(source).names
    except (OSError, ValueError) as exc:
        raise BatchSourceError(f"{source}: not a readable Parquet file ({str(exc).splitlines()[0][:200]}).") from None
    if MANIFEST_COLUMN not in names:
        raise BatchSourceError(f"{source}: a Parquet manifest needs a '{MANIFEST_COLUMN}' column (found: "
                               f"{', '.join(names[:10]) or 'none'}{', ...' if len(names) > 10 else ''}).")
    try:
        table = pq.read_table(source, columns=[MANIFEST_COLUMN])
    except (OSError, ValueError, KeyError) as exc:
        raise BatchSourceError(f"{source}: not a Parquet manifest with a '{MANIFEST_COLUMN}' column "
                               f"({str(exc).splitlines()[0][:200]}).") from None
    return [str(p) for p in table.column(MANIFEST_COLUMN).to_pylist() if p]


def _csv_paths(source: Path) -> list[str]:
    try:
        with open(source, newline="", encoding="utf-8-sig") as fh:  # a spreadsheet's byte-order mark is no name
            reader = csv.DictReader(fh)
            if MANIFEST_COLUMN not in (reader.fieldnames or []):
                raise BatchSourceError(f"{source}: a CSV manifest needs a '{MANIFEST_COLUMN}' column "
                                       f"(found: {', '.join(reader.fieldnames or []) or 'none'}).")
            return [row[MANIFEST_COLUMN] for row in reader if row.get(MANIFEST_COLUMN)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BatchSourceError(f"{source}: unreadable CSV manifest ({exc}).") from None


def _text_paths(source: Path) -> list[str]:
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise BatchSourceError(f"{source}: not a text file of paths (is it a photo? give its folder instead).") from None
    except OSError as exc:
        raise BatchSourceError(f"{source}: cannot be read ({exc.strerror}).") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
