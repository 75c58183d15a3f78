"""The ``mien batch`` job on Ray Data: photo paths → a pool of actors that read, decode, recognize and write.

Each actor loads the models once (``Recognizer``) and names faces with the gallery snapshot the driver took
when the job started, so every worker (on any node) uses the same people; each batch becomes one Parquet shard in
``OUT/faces/``, renamed into place when complete. ``--resume`` reads the content hashes (with paths) already in
the output and the actors skip those photos; a shard left unreadable by a killed job is deleted and its photos
done again.
"""
from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mien.pipeline.batch import rows as row_schema
from mien.pipeline.batch.sources import read_source
from mien.pipeline.errors import UsageError

log = logging.getLogger(__name__)
DEFAULT_BATCH_SIZE = 16
FACES_DIR = "faces"
SUMMARY = "summary.json"


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
    for tmp in faces_dir.glob(".*.parquet.tmp"):  # a shard a killed job did not finish writing
        tmp.unlink()
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


def read_photos(paths, done: set[str]) -> list[dict]:
    """Each photo's bytes, content hash and file time; photos already in the output are left out."""
    import hashlib

    from mien.pipeline.images import ImageError, read_image_bytes

    out = []
    for path in paths:
        path = str(path)
        if done_key(path, None) in done:
            continue
        photo = {"path": path, "sha256": "", "mtime": 0.0, "data": b"", "error": ""}
        try:
            photo["data"] = read_image_bytes(path)  # a FIFO, a device or a huge file is an error row, not a hang
            photo["mtime"] = os.stat(path).st_mtime
            photo["sha256"] = hashlib.sha256(photo["data"]).hexdigest()
        except ImageError as exc:
            photo["error"] = str(exc)
        except OSError as exc:
            photo["error"] = f"{path}: cannot be read ({exc.strerror or exc})."
        if done_key(path, photo["sha256"] or None) not in done:
            out.append(photo)
    return out


def write_shard(faces_dir: Path, table) -> Path:
    """One batch's rows as ``faces_dir/<random>.parquet``, written beside it and renamed into place, so a killed
    job leaves whole shards (and ``.tmp`` files that ``done_keys`` removes), never a half-written one."""
    import uuid

    import pyarrow.parquet as pq

    from mien.identity.storage import make_private

    shard = faces_dir / f"{uuid.uuid4().hex}.parquet"
    tmp = faces_dir / f".{shard.name}.tmp"
    pq.write_table(table, tmp)
    make_private(tmp)
    os.replace(tmp, shard)
    return shard


class RecognizeActor:
    """The one stage: each worker loads the models once, and per batch of paths reads, hashes (skipping what the
    output holds), decodes, recognizes all faces in one FaceNet/emotion call, and writes the rows as one shard.

    Reading and writing here rather than in separate Ray tasks measured faster on 2 cores (no task processes
    beside the model's threads, no photo bytes through the object store), and a killed job loses only the batch
    each worker was on.
    """

    def __init__(self, options: dict, snapshot, matcher: str, threads: int, faces_dir: str, done_ref,
                 emotion: bool = True):
        import ray

        from mien.pipeline import settings

        settings.set_threads(threads)
        from mien.pipeline import Options, Recognizer

        self.recognizer = Recognizer(Options(**options), identity=False, emotion=emotion)
        if snapshot is not None:
            from mien.identity.matchers import build_matcher
            from mien.pipeline.gallery import gallery_model

            self.recognizer = self.recognizer.with_options(
                matcher=build_matcher(snapshot, gallery_model(self.recognizer), matcher))
        self.provenance = row_schema.provenance(self.recognizer)
        self.faces_dir = Path(faces_dir)
        self.done: set[str] = ray.get(done_ref)

    def __call__(self, batch: dict) -> dict:
        from mien.pipeline.images import ImageError, decode_image
        from mien.pipeline.records import ImageRecord

        photos = read_photos(batch["path"], self.done)
        from mien.pipeline import settings

        trace = settings.batch_trace()  # benchmarks/batch.py: which photos each batch recognized
        if trace:
            with open(trace, "a", encoding="utf-8") as fh:
                fh.write("".join(f"{p['path']}\n" for p in photos))
        images = {}
        for i, photo in enumerate(photos):  # one photo after the other, as `mien recognize` does
            if not photo["error"]:
                try:
                    images[i] = decode_image(photo["data"], photo["path"])
                except ImageError as exc:
                    photo["error"] = str(exc)
        good = sorted(images)
        records = dict(zip(good, self.recognizer.recognize_batch([images[i] for i in good],
                                                                 [photos[i]["path"] for i in good])))
        rows: list[dict] = []
        for i, photo in enumerate(photos):
            record = records.get(i) or ImageRecord(photo["path"], error=photo["error"])
            rows += row_schema.image_rows(record, photo["sha256"] or None, photo["mtime"] or None, self.provenance)
        if rows:
            write_shard(self.faces_dir, row_schema.to_table(rows))
        return {"path": np.array([p["path"] for p in photos], dtype=object)}  # one row per photo: the progress bar


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
        # the local Ray keeps token authentication (Ray's default) without announcing it on every job
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
                 object_store_memory=512 * 1024 * 1024)
    import ray.data  # noqa: F401 (configures Ray Data's logging, which the next line then quietens)

    if not log.isEnabledFor(logging.INFO):  # Ray Data's own INFO lines only with -v
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        # bars are off when asked (-q, or not a terminal): no advice on how to turn them on
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    return ray


def run_batch(source: str | Path, out: str | Path, *, options: dict | None = None, matcher: str = "auto",
              emotion: bool = True, address: str | None = None, workers: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
              resume: bool = False, progress: bool = True) -> BatchSummary:
    """Recognize every photo of ``source`` into ``out`` (see the module docstring); returns the summary."""
    from mien.identity.storage import write_json_atomic
    from mien.pipeline.gallery import open_default_gallery

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
        actor_cpus = total_cpus / workers
        threads = max(1, int(round(actor_cpus)))
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = progress
        ctx.enable_operator_progress_bars = progress
        # blocks of batch_size paths: Ray Data cuts batches within a block (blocks of 18 gave batches of 16 and 2)
        pending = ray.data.from_items([{"path": p} for p in paths],
                                      override_num_blocks=max(1, -(-len(paths) // batch_size)))
        with warnings.catch_warnings():
            # Ray Data (2.50-2.63) restarts its actors by default, and then its core logs an error-level line about
            # constructor arguments in the object store on every job, success included (ray-project/ray#57733).
            # mien's actors are not restarted: a worker that dies fails the job, and --resume continues it. The
            # remote argument is passed the only way these versions take it, deprecated for 2.64 (setup.cfg caps).
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            recognized = pending.map_batches(
                RecognizeActor, fn_constructor_kwargs={"options": asdict(_options(options)), "snapshot": snapshot,
                                                       "matcher": matcher, "threads": threads,
                                                       "faces_dir": str(faces_dir.resolve()),
                                                       "done_ref": ray.put(done), "emotion": emotion},
                compute=ray.data.ActorPoolStrategy(size=workers), batch_size=batch_size, num_cpus=actor_cpus,
                batch_format="numpy", max_restarts=0)
        for _ in recognized.iter_batches(batch_size=None):  # the shards are the output; this drives the job
            pass
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
    from mien.pipeline.options import Options

    return Options(**(options or {}))


def load_summary(out: str | Path) -> dict:
    return json.loads((Path(out) / SUMMARY).read_text())
