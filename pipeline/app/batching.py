"""Dynamic batching for the server: concurrent /recognize requests share one trip through the models.

Requests arriving within a few milliseconds of each other are gathered (up to ``max_batch`` images) and
recognized by one ``Recognizer.recognize_batch`` call, so their faces go through FaceNet and the emotion
network together, as Triton's and TF-Serving's dynamic batchers do. Admission is bounded: beyond
``max_pending`` requests in flight a new one is refused at once (the API answers 429 with Retry-After),
and decoded pixels held at once are bounded by a ``PixelBudget``, so a burst never grows memory unboundedly.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import queue
import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger(__name__)
MAX_BATCH = 8  # images per model trip (FaceNet batches of ~8 faces are already at its best ms/face)
WINDOW_S = 0.005  # how long the first request of a batch waits for company
MAX_PENDING = 32  # requests admitted and not yet answered; more get 429


class ServerBusy(Exception):
    """The server has MAX_PENDING requests in flight; ``retry_after`` is a whole-second estimate of the wait."""

    def __init__(self, retry_after: int):
        super().__init__(f"server busy, retry after {retry_after} s")
        self.retry_after = retry_after


class PixelBudget:
    """Decoded pixels held at once. A request reserves its image's pixels (from the header) before decoding
    and returns them when answered; one image larger than the whole budget still runs, alone."""

    def __init__(self, total: int):
        self.total = int(total)
        self.used = 0
        self.peak = 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        pixels = max(1, int(pixels))
        with self._cond:
            self._cond.wait_for(lambda: self.used == 0 or self.used + pixels <= self.total)
            self.used += pixels
            self.peak = max(self.peak, self.used)
        try:
            yield
        finally:
            with self._cond:
                self.used -= pixels
                self._cond.notify_all()


@dataclasses.dataclass
class _Job:
    recognizer: object  # a Recognizer view: its options and matcher decide the group
    image: object
    name: str
    future: Future


class RecognitionBatcher:
    """One worker thread that recognizes gathered requests in batches under the server's model lock."""

    def __init__(self, model_lock: threading.Lock, max_batch: int = MAX_BATCH, window_s: float = WINDOW_S,
                 max_pending: int = MAX_PENDING):
        self.max_batch, self.window_s, self.max_pending = int(max_batch), float(window_s), int(max_pending)
        self._model_lock = model_lock
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._seconds_per_image = 0.1  # running estimate, for Retry-After
        self.batches: list[int] = []  # sizes of recent batches (for tests and /health)
        self._worker = threading.Thread(target=self._run, name="mien-batcher", daemon=True)
        self._worker.start()

    @contextmanager
    def admitted(self) -> Iterator[None]:
        """Count a request in flight for its whole life; raise ServerBusy when ``max_pending`` already are."""
        with self._pending_lock:
            if self._pending >= self.max_pending:
                wait = self._pending * self._seconds_per_image / max(1, self.max_batch) * 2
                raise ServerBusy(max(1, math.ceil(wait)))
            self._pending += 1
        try:
            yield
        finally:
            with self._pending_lock:
                self._pending -= 1

    def recognize(self, recognizer, image, name: str):
        """The ImageRecord of ``image``, recognized together with whatever arrives meanwhile."""
        job = _Job(recognizer, image, name, Future())
        self._queue.put(job)
        return job.future.result()

    def stats(self) -> dict:
        """What /health reports about batching."""
        batches = self.batches
        return {"max_batch": self.max_batch, "recent_mean_batch": sum(batches) / len(batches) if batches else 0.0,
                "pending": self._pending, "max_pending": self.max_pending}

    def close(self) -> None:
        self._queue.put(None)

    # ---- the worker ------------------------------------------------------------------------------
    def _gather(self, first: _Job) -> list[_Job]:
        batch = [first]
        deadline = time.monotonic() + self.window_s
        while len(batch) < self.max_batch:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)  # seen again by the loop: stop after this batch
                break
            batch.append(job)
        return batch

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = self._gather(first)
            groups: dict[tuple, list[_Job]] = {}
            for job in batch:  # one model trip per distinct set of options and matcher (usually just one)
                key = (dataclasses.astuple(job.recognizer.options), id(job.recognizer.matcher))
                groups.setdefault(key, []).append(job)
            start = time.perf_counter()
            for jobs in groups.values():
                self._recognize_group(jobs)
            self.batches = (self.batches + [len(batch)])[-100:]
            per_image = (time.perf_counter() - start) / len(batch)
            self._seconds_per_image = 0.8 * self._seconds_per_image + 0.2 * per_image

    def _recognize_group(self, jobs: list[_Job]) -> None:
        try:
            with self._model_lock:
                records = jobs[0].recognizer.recognize_batch([j.image for j in jobs], [j.name for j in jobs])
        except Exception as exc:  # noqa: BLE001 - handed to each waiting request, never kills the worker
            log.exception("batch of %d failed", len(jobs))
            for j in jobs:
                j.future.set_exception(exc)
            return
        for j, record in zip(jobs, records):
            j.future.set_result(record)
