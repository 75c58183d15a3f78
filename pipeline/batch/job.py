"""The ``mien batch`` job on Ray Data: list → read + hash (tasks) → decode + recognize (actors) → Parquet shards.

Each actor loads the models once (``Recognizer``) and names faces with the gallery snapshot the driver took
when the job started, so every worker (on any node) uses the same people. ``--resume`` reads the content
hashes (with paths) already in ``OUT/faces/`` and the read stage drops those photos before they are decoded; a shard
left unreadable by a killed job is deleted and its photos done again.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline.batch import rows as row_schema
from pipeline.batch.sources import read_source
from pipeline.errors import UsageError

log = logging.getLogger(__name__)
DEFAULT_BATCH_SIZE = 16
FACES_DIR = "faces"
SUMMARY = "summary.json"
DECODE_CPUS = 0.1  # logical CPUs a read or write task reserves (the actors reserve the rest)


class BatchJobError(UsageError):
    """The batch job cannot run as asked (output folder in use, Ray missing or unreachable)."""


@dataclass
class BatchSummary:
    """What ``OUT/summary.json`` says about a run (counts over the whole output, rates over this run)."""

    source: str
    images_in_source: int
    images_done_now: int
    images_skipped_as_done: int
    images_total_in_output: int
    faces: int
    images_without_face: int
    images_failed: int
    seconds: float
    images_per_s: float
    workers: int
    batch_size: int
    ray_address: str


def done_key(path: str, sha256: str | None) -> str:
    """A photo is done when a row holds both its path and its content hash: an edited photo is done again, and
    each copy of a photo saved under several names gets its own rows. ``path:FILE`` marks a file that could
    not be read (so a resumed job does not add its error row twice)."""
    return f"{sha256}|{path}" if sha256 else f"path:{path}"


def done_keys(faces_dir: Path) -> set[str]:
    """What the output already holds (``done_key`` of every row). An unreadable shard (a killed write) is
    deleted with a warning: its photos are done again."""
    import pyarrow.parquet as pq

    done: set[str] = set()
    for shard in sorted(faces_dir.glob("*.parquet")):
        try:
            table = pq.read_table(shard, columns=["file", "sha256"])
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable shard (%s), deleted; its photos are done again", shard.name, exc)
            shard.unlink()
            continue
        for file, sha in zip(table.column("file").to_pylist(), table.column("sha256").to_pylist()):
            done.add(done_key(file, sha))
    return done


_DONE: dict[str, set[str]] = {}  # per worker process: the resolved done set of the current job


def _done_set(ref) -> set[str]:
    """The job's done set, fetched from Ray's object store once per worker process (not once per batch)."""
    import ray

    key = ref.hex()
    if key not in _DONE:
        _DONE.clear()
        _DONE[key] = ray.get(ref)
    return _DONE[key]


def read_and_hash(batch: dict, done_ref) -> dict:
    """Read stage: each photo's bytes, content hash and file time; photos already in the output are dropped
    here. The bytes (compressed, ~10x smaller than the decoded image) are what travels to the actors."""
    import hashlib

    done = _done_set(done_ref)
    out: dict[str, list] = {"path": [], "sha256": [], "mtime": [], "data": [], "error": []}
    for path in batch["path"]:
        path = str(path)
        if done_key(path, None) in done:
            continue
        sha, mtime, data, error = "", 0.0, b"", ""
        try:
            data = Path(path).read_bytes()
            mtime = os.stat(path).st_mtime
            sha = hashlib.sha256(data).hexdigest()
            if done_key(path, sha) in done:
                continue
        except OSError as exc:
            error = f"{path}: cannot be read ({exc.strerror or exc})."
        for key, value in (("path", path), ("sha256", sha), ("mtime", mtime), ("data", data), ("error", error)):
            out[key].append(value)
    out["mtime"] = np.asarray(out["mtime"], np.float64)
    out["data"] = np.asarray(out["data"], dtype=object)
    return out


class RecognizeActor:
    """Recognize stage: one per worker, models loaded once, all faces of a batch in one FaceNet/emotion call."""

    def __init__(self, options: dict, snapshot, matcher: str, threads: int, emotion: bool = True):
        os.environ["MIEN_THREADS"] = str(threads)
        from pipeline import Options, Recognizer

        self.recognizer = Recognizer(Options(**options), identity=False, emotion=emotion)
        if snapshot is not None:
            from identity.matchers import build_matcher
            from pipeline.gallery import gallery_model

            self.recognizer.classifier = build_matcher(snapshot, gallery_model(self.recognizer), matcher)
        self.provenance = row_schema.provenance(self.recognizer)

    def __call__(self, batch: dict):
        from pipeline.images import ImageError, decode_image
        from pipeline.records import ImageRecord

        trace = os.environ.get("MIEN_BATCH_TRACE")  # benchmarks/batch.py: which photos each batch recognized
        if trace:
            with open(trace, "a", encoding="utf-8") as fh:
                fh.write("".join(f"{p}\n" for p in batch["path"]))
        errors = [str(e) for e in batch["error"]]
        images = {}
        for i, path in enumerate(batch["path"]):  # decoded here, one photo after the other as `mien recognize`
            if not errors[i]:                   # does: decoding beside a running model call slows both on few cores
                try:
                    images[i] = decode_image(bytes(batch["data"][i]), str(path))
                except ImageError as exc:
                    errors[i] = str(exc)
        good = sorted(images)
        records = dict(zip(good, self.recognizer.recognize_batch([images[i] for i in good],
                                                                 [str(batch["path"][i]) for i in good])))
        rows: list[dict] = []
        for i, path in enumerate(batch["path"]):
            sha, mtime = str(batch["sha256"][i]) or None, float(batch["mtime"][i]) or None
            if i in records:
                rows += row_schema.image_rows(records[i], sha, mtime, self.provenance)
            else:
                rows += row_schema.image_rows(ImageRecord(str(path), error=errors[i]), sha, mtime, self.provenance)
        return row_schema.to_table(rows)


def summarize(faces_dir: Path, started: float) -> dict:
    """Counts over every shard in the output, and which images this run (rows recognized after ``started``) did."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    shards = sorted(faces_dir.glob("*.parquet"))
    if not shards:
        return {"images_total": 0, "images_now": 0, "faces": 0, "no_face": 0, "failed": 0}
    table = pads.dataset([str(s) for s in shards], format="parquet", schema=row_schema.schema()).to_table(
        columns=["file", "status", "recognized_at"])
    status = table.column("status")
    now = pc.greater_equal(table.column("recognized_at"), pc.cast(
        np.datetime64(int(started * 1000), "ms"), table.schema.field("recognized_at").type))
    return {"images_total": len(set(table.column("file").to_pylist())),
            "images_now": len(set(table.filter(now).column("file").to_pylist())),
            "faces": int(pc.sum(pc.equal(status, row_schema.STATUS_FACE)).as_py() or 0),
            "no_face": int(pc.sum(pc.equal(status, row_schema.STATUS_NO_FACE)).as_py() or 0),
            "failed": int(pc.sum(pc.equal(status, row_schema.STATUS_ERROR)).as_py() or 0)}


def _start_ray(address: str | None, cpus: int):
    try:
        import ray
    except ImportError:
        raise BatchJobError("mien batch runs on Ray, which is not installed: `pip install 'mien[batch]'`.") from None
    if address:
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BatchJobError(f"cannot join the Ray cluster at {address} ({exc}); start one with "
                                "`ray start --head` (see the README).") from None
    else:
        ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
                 object_store_memory=512 * 1024 * 1024)
    import ray.data  # noqa: F401 (configures Ray Data's logging, which the next line then quietens)

    if not log.isEnabledFor(logging.INFO):  # Ray Data's own INFO lines only with -v
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    return ray


def run_batch(source: str | Path, out: str | Path, *, options: dict | None = None, matcher: str = "auto",
              emotion: bool = True, address: str | None = None, workers: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
              resume: bool = False, progress: bool = True) -> BatchSummary:
    """Recognize every photo of ``source`` into ``out`` (see the module docstring); returns the summary."""
    from identity.storage import write_json_atomic
    from pipeline.gallery import open_default_gallery

    out = Path(out)
    faces_dir = out / FACES_DIR
    if faces_dir.is_dir() and any(faces_dir.glob("*.parquet")) and not resume:
        raise BatchJobError(f"{out} already holds results; pass --resume to continue that job, or choose another --out.")
    paths = read_source(source)
    faces_dir.mkdir(parents=True, exist_ok=True)
    done = done_keys(faces_dir) if resume else set()
    gallery = open_default_gallery()
    snapshot = gallery.snapshot() if gallery.generation() and len(gallery.people()) else None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    ray = _start_ray(address, cpus)
    started = time.time()
    try:
        total_cpus = int(ray.cluster_resources().get("CPU", cpus))
        workers = workers or max(1, total_cpus // 2)
        actor_cpus = max(0.5, (total_cpus - 2 * DECODE_CPUS) / workers)  # room for one decode and one write task
        threads = max(1, int(round(actor_cpus)))
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = progress
        ctx.enable_operator_progress_bars = progress
        pending = ray.data.from_items([{"path": p} for p in paths])
        read = pending.map_batches(read_and_hash, fn_kwargs={"done_ref": ray.put(done)}, batch_size=batch_size,
                                   num_cpus=DECODE_CPUS, batch_format="numpy")
        recognized = read.map_batches(
            RecognizeActor, fn_constructor_kwargs={"options": asdict(_options(options)), "snapshot": snapshot,
                                                   "matcher": matcher, "threads": threads, "emotion": emotion},
            compute=ray.data.ActorPoolStrategy(size=workers), batch_size=batch_size, num_cpus=actor_cpus,
            batch_format="numpy")
        # a shard is written as each batch comes out of an actor (a killed job loses only batches in flight); the
        # write tasks reserve as little CPU as decoding, or they would wait for the actors to finish the job
        recognized.write_parquet(str(faces_dir), ray_remote_args={"num_cpus": DECODE_CPUS})
    finally:
        if not address:
            ray.shutdown()
    seconds = time.time() - started
    counts = summarize(faces_dir, started)
    summary = BatchSummary(str(source), len(paths), counts["images_now"], len(paths) - counts["images_now"],
                           counts["images_total"], counts["faces"], counts["no_face"], counts["failed"],
                           round(seconds, 2), round(counts["images_now"] / seconds, 2) if seconds else 0.0,
                           workers, batch_size, address or "local")
    write_json_atomic(out / SUMMARY, asdict(summary))
    return summary


def _options(options: dict | None):
    from pipeline.options import Options

    return Options(**(options or {}))


def load_summary(out: str | Path) -> dict:
    return json.loads((Path(out) / SUMMARY).read_text())
