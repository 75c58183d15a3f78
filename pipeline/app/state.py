"""What one `mien serve` app holds between requests (``ServerState``: models, the current matcher, locks, limits, the
results database, video jobs, the page), kept on ``app.state.mien`` and handed to the routes by
``routes.deps.State``, so no route reaches for a global."""
from __future__ import annotations

import threading

from mien.identity.gallery.base import GalleryGoneError
from mien.pipeline.app.batching import PixelBudget, RecognitionBatcher
from mien.pipeline.app.guards import page_security_headers
from mien.pipeline.app.page import web_page
from mien.pipeline.app.serverconfig import ServerConfig
from mien.pipeline.app.stream import StreamLimits
from mien.pipeline.app.videojobs import VideoJobs
from mien.pipeline.history import ResultsDB
from mien.pipeline.home import mien_home
from mien.pipeline.images import max_pixels
from mien.pipeline.provenance import model_versions

DECODED_IMAGES = 2  # the pixel budget of /recognize: this many images of the largest size allowed, decoded at once


class ServerState:
    """Models, the current matcher (kept in step with the gallery), locks and the results database of one server."""

    def __init__(self, recognizer, config: ServerConfig):
        from mien.identity.upkeep import load_matcher
        from mien.pipeline.gallery import gallery_model, index_dir, open_default_gallery

        self.config = config
        self.home = config.home or mien_home()
        self.gallery = open_default_gallery(config.home, recognizer)
        self.base = recognizer.with_options(matcher=None)  # our own matcher; the models are shared
        self.matcher_kind = recognizer.options.matcher
        self.model = gallery_model(recognizer)
        self.index_dir = index_dir(config.home)
        self.classifier = load_matcher(self.gallery, self.model, self.matcher_kind, self.index_dir)
        self.model_lock = threading.Lock()
        # decoded pixels alive at once: as much as DECODED_IMAGES of the largest allowed images (2 x 150 MB at
        # 50 MP), so many small photos batch together while a burst of huge ones waits as compressed bytes
        self.pixel_budget = PixelBudget(DECODED_IMAGES * max_pixels())
        self.batcher = RecognitionBatcher(self.model_lock, max_pending=config.max_pending)
        self.enroll_lock = threading.Lock()
        self.refresh_lock = threading.Lock()
        self.db = ResultsDB(config.db_path or self.home / "mien.db")
        self.stream_limits = StreamLimits()
        self.videos = VideoJobs(self.home / "videos", lambda: self.snapshot(), self.model_lock, history=self.db)
        emotion = recognizer.emotion_model
        # index.html with the colours it shares with the charts and annotated images, and the model's emotions
        self.page = web_page(emotion.labels if emotion is not None else ())
        self.page_headers = page_security_headers(self.page)

    def current(self):
        """The matcher at the gallery's current generation: changes by the CLI or another server are picked up
        here (one indexed read per request; a rebuild or incremental update only when something changed)."""
        from mien.identity.upkeep import refresh_matcher

        with self.refresh_lock:
            self.classifier = refresh_matcher(self.classifier, self.gallery, self.model, self.matcher_kind,
                                              self.index_dir)
            return self.classifier

    def snapshot(self, **option_changes):
        """A Recognizer view with the current matcher and per-request options (models shared, not copied)."""
        return self.base.with_options(matcher=self.current(), **option_changes)

    def people(self) -> list[dict]:
        """Enrolled people and their photo counts, from the gallery."""
        return [{"name": p, "photos": n} for p, n in self.gallery.people().items()]

    def gallery_problem(self) -> str | None:
        """Why the gallery cannot be written (its file deleted or replaced under the server), or None."""
        try:
            self.gallery.check()
        except GalleryGoneError as exc:
            return str(exc)
        return None

    def health(self) -> dict:
        """What /health reports: model versions, which models are loaded, people, configuration and whether the
        gallery can still be written."""
        rec = self.snapshot()
        people = self.people()
        problem = self.gallery_problem()
        return {"status": "degraded" if problem else "ok", "gallery": problem, "models": model_versions(rec),
                "people": len(people),
                "emotion": rec.emotion_model is not None, "read_only": self.config.read_only,
                "auth": "bearer" if self.config.token else "none",
                "loaded": {"detector": rec.detector is not None, "embedder": rec.embedder is not None,
                           "classifier": rec.classifier is not None, "emotion": rec.emotion_model is not None},
                "enrolled_photos": sum(p["photos"] for p in people), "batching": self.batcher.stats()}


class LockedModels:
    """A Recognizer whose model calls take the server's model lock (for enrollment running beside requests)."""

    def __init__(self, recognizer, lock: threading.Lock):
        self._rec, self._lock = recognizer, lock

    def __getattr__(self, name):
        return getattr(self._rec, name)

    def detect(self, image):
        with self._lock:
            return self._rec.detect(image)

    def embed_faces(self, image, faces):
        with self._lock:
            return self._rec.embed_faces(image, faces)

    def embed_crops(self, crops):
        with self._lock:
            return self._rec.embed_crops(crops)
