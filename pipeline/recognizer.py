"""The Python API: detect every face once, then say who it is and which emotion it shows.

    from mien import Recognizer
    rec = Recognizer()
    for face in rec.recognize("group.jpg").faces: print(face.identity.name, face.emotion.label)

Models load once per Recognizer; the faces of an image (and of a batch of images) go
through FaceNet and the emotion network in single batched calls.
"""
from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

from mien.identity.classifier import MatchThresholds
from mien.identity.embedders import Embedder
from mien.pipeline import models
from mien.pipeline.detection import Detector, Face, build_detector
from mien.pipeline.faceprep import EmotionCrop, IdentityCrop
from mien.pipeline.images import ImageError, load_image, path_text
from mien.pipeline.inputs import Channels, ImageInput, describe, to_rgb
from mien.pipeline.library import LibraryMethods
from mien.pipeline.options import MIRROR_CHOICES, Options
from mien.pipeline.records import EmotionResult, FaceRecord, ImageRecord

if TYPE_CHECKING:
    from mien.pipeline.subject import Subject

log = logging.getLogger(__name__)
UNCERTAIN = "uncertain"


def emotion_label(scores: dict[str, float], threshold: float) -> str:
    """The most probable emotion, or ``uncertain`` when its probability is below ``threshold``."""
    label = max(scores, key=scores.get)
    return label if scores[label] >= threshold else UNCERTAIN


def _mean_of_views(face: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """The embedding of a face seen both ways: the re-normalised mean of its own and its mirror image's."""
    mean = face + mirror
    return (mean / np.linalg.norm(mean, axis=1, keepdims=True)).astype(np.float32)


class _StageClock:
    """Milliseconds spent in each stage of one call, lap by lap."""

    def __init__(self):
        self.ms: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.ms[stage] = self.ms.get(stage, 0.0) + 1000 * (now - self._last)
        self._last = now

    def __str__(self) -> str:
        return ", ".join(f"{k} {v:.1f} ms" for k, v in self.ms.items())


# Options the models are built with (a view cannot change them: the networks are shared, not rebuilt).
LOAD_TIME_OPTIONS = frozenset({"runtime", "precision", "detector", "min_face_size", "detection_threshold",
                               "proposal_threshold", "refine_threshold", "emotion_model", "emotion_views", "mirror"})


class Recognizer(LibraryMethods):
    """Detector + FaceNet embedder + identity matcher (from the gallery) + emotion model, loaded once; also
    verify / embed / enroll / people / forget / rename / remove_photo (``mien.pipeline.library``)."""

    def __init__(self, options: Options | None = None, *, emotion: bool = True, identity: bool = True, detector: Detector | None = None,
                 embedder: Embedder | None = None, identity_crop: IdentityCrop = IdentityCrop(),
                 emotion_crop: EmotionCrop = EmotionCrop()):
        self.options = options or Options()
        o = self.options
        if o.mirror not in MIRROR_CHOICES:
            raise ValueError(f"mirror must be one of {list(MIRROR_CHOICES)}, got {o.mirror!r}")
        start = time.perf_counter()
        self.detector = detector or build_detector(
            o.detector, min_face_size=o.min_face_size, threshold=o.detection_threshold,
            proposal_threshold=o.proposal_threshold, refine_threshold=o.refine_threshold, precision=o.precision,
        )
        self.embedder = embedder or models.build_facenet(o.runtime, o.precision)
        self.identity_crop = identity_crop
        self.emotion_crop = emotion_crop
        self.gallery = None  # opened with the matcher
        self.names_faces = identity  # whether faces are named (a matcher follows the gallery)
        self.matcher = self._load_matcher() if identity else None
        self.emotion_model = self._load_emotion() if emotion else None
        # milliseconds per stage of the last recognize_batch (shown with -v; benchmarks/profile.py sums them)
        self.last_timing: dict[str, float] = {}
        log.info("models loaded in %.1f s: detector %s, %s, emotion %s on %s (%s)", time.perf_counter() - start,
                 self.detector.signature, self.embedder.version,
                 self.emotion_model.version if self.emotion_model is not None else "off", o.runtime,
                 ", ".join(f"{k} {v}" for k, v in self.precision.items() if v))

    @property
    def precision(self) -> dict[str, str]:
        """The arithmetic each network really runs in: fp32, bf16 (fp32 on a CPU without bf16 and on the
        TensorFlow runtime) or int8, as ``Options.precision`` resolves per network (FaceNet: as it was built)."""
        from mien.pipeline.runtime import network_precision

        def of(network: str) -> str:
            return network_precision(self.options.precision, network) if self.options.runtime == "openvino" else "fp32"

        return {"detector": self.detector.precision, "embedder": getattr(self.embedder, "precision", None) or of("facenet"),
                "emotion": of("emotion") if self.emotion_model is not None else None}

    # ---- model loading ---------------------------------------------------------------------
    def _load_matcher(self):
        from mien.identity.upkeep import load_matcher
        from mien.pipeline.gallery import gallery_model, index_dir, open_default_gallery

        self.gallery = open_default_gallery(recognizer=self)
        matcher = load_matcher(self.gallery, gallery_model(self), self.options.matcher, index_dir())
        if matcher is not None:
            counts = matcher.counts
            log.info("gallery %s: %d people, %d faces, %s matcher", self.gallery.location, len(counts),
                     sum(counts.values()), matcher.kind)
        if matcher is None:
            log.warning("Nobody is enrolled yet: faces are detected but identity is null. Run `mien enroll DIR`.")
        return matcher

    def _load_emotion(self):
        from mien.emotion.views import PRESETS

        views = self.options.emotion_views
        if views != "model" and views not in PRESETS:
            raise ValueError(f"emotion_views must be 'model' or one of {sorted(PRESETS)}, got {views!r}")
        return models.load_emotion_model(runtime=self.options.runtime, views=None if views == "model" else PRESETS[views],
                                         mirror=self.options.mirror,
                                         precision=self.options.precision, label_set=self.options.emotion_model)

    def warm_up(self, batch_sizes: tuple[int, ...] = (1, 2, 4, 8)) -> None:
        """Run every loaded model once per batch size on blank input, so a first real request pays neither
        for graph tracing nor for a runtime's first sight of a shape."""
        blank = np.zeros((160, 160, 3), np.uint8)
        self.detect(np.zeros((320, 320, 3), np.uint8))
        for n in batch_sizes:
            self.embed_crops([blank] * n)
            if self.emotion_model is not None:
                self.emotion_model.predict(np.zeros((n, 48, 48), np.uint8))

    @property
    def classifier(self):
        """Deprecated name of ``matcher`` (it holds a matcher: an SVM or nearest neighbours, not only a classifier)."""
        return self.matcher

    @classifier.setter
    def classifier(self, matcher) -> None:
        self.matcher = matcher

    def reload_matcher(self) -> None:
        """Pick up gallery changes made since the matcher was built (incrementally where the matcher can)."""
        from mien.identity.upkeep import refresh_matcher
        from mien.pipeline.gallery import gallery_model, index_dir

        if self.gallery is None:
            self.matcher = self._load_matcher()
        else:
            self.matcher = refresh_matcher(self.matcher, self.gallery, gallery_model(self), self.options.matcher,
                                           index_dir())

    reload_classifier = reload_matcher  # the older name

    def with_options(self, matcher=..., **changes) -> "Recognizer":
        """A view of this Recognizer with some per-call options changed (``None`` values keep the current ones) and,
        if given, another matcher: the loaded models are shared, and this Recognizer is left as it is (the server
        answers each request with its own thresholds this way)."""
        import copy
        import dataclasses

        view = copy.copy(self)
        if matcher is not ...:
            view.matcher = matcher
        changes = {k: v for k, v in changes.items() if v is not None}
        if changes:
            unknown = set(changes) - {f.name for f in dataclasses.fields(Options)}
            if unknown:
                raise TypeError(f"not recognizer options: {sorted(unknown)}")
            built = sorted(k for k in set(changes) & LOAD_TIME_OPTIONS if changes[k] != getattr(self.options, k))
            if built:
                raise TypeError(f"{built} are chosen when the models load: build a Recognizer with them instead")
            view.options = dataclasses.replace(self.options, **changes)
        return view

    # ---- recognition -----------------------------------------------------------------------
    def thresholds(self) -> MatchThresholds | None:
        """The matcher's stored thresholds with this Recognizer's per-call overrides applied."""
        if self.matcher is None:
            return None
        base = self.matcher.thresholds
        o = self.options
        return MatchThresholds(
            distance=base.distance if o.distance_threshold is None else o.distance_threshold,
            probability=base.probability if o.probability_threshold is None else o.probability_threshold,
        )

    def detect(self, image: np.ndarray) -> list[Face]:
        """Every face of a photo at the detection thresholds (recognition of group photos: no relaxed retry)."""
        return self.detector.detect(image)

    def detect_one_subject(self, image: np.ndarray) -> list[Face]:
        """The faces of a photo of one subject: ``detect``, then the relaxed retry at ``Options.retry_threshold``
        when it finds none (pipeline.subject)."""
        from mien.pipeline.subject import find_faces

        return find_faces(self.detector, image, self.options.retry_threshold)

    def subject(self, image: np.ndarray) -> "Subject | None":
        """The face a photo of one subject is about, by pipeline.subject's rule (None when no face is found)."""
        from mien.pipeline.subject import choose_subject

        return choose_subject(self.detect_one_subject(image), *image.shape[:2])

    def subject_faces(self, image: np.ndarray) -> list[Face]:
        """``[subject's face]``, or ``[]`` when a photo of one subject has no face (as enrollment chose it)."""
        subject = self.subject(image)
        return [subject.face] if subject else []

    def embed_faces(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """FaceNet embeddings of the given faces of one image, in one batch."""
        return self.embed_crops([self.identity_crop(image, f) for f in faces])

    def embed_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        """FaceNet embeddings of identity crops (from ``identity_crop``), in one batch: the one FaceNet entry. With
        the crop's ``flip`` each is the re-normalised mean of the crop's and its mirror image's embeddings."""
        batch = np.stack(crops) if crops else np.zeros((0, 160, 160, 3), np.uint8)
        if not self.identity_crop.flip or not len(batch):
            return self.embedder.embed(batch)
        both = self.embedder.embed(np.concatenate([batch, batch[:, :, ::-1]]))
        return _mean_of_views(both[:len(batch)], both[len(batch):])

    def embed_and_identify(self, crops: list[np.ndarray]) -> tuple[np.ndarray, list]:
        """Embeddings and IdentityMatch per identity crop. With ``Options.mirror`` "unsure", FaceNet sees a face's
        mirror image only when the face alone gives an answer near a threshold (``identity.match.near_threshold``),
        and that face's embedding is then the mean of both, as ``embed_crops`` makes every one under "always"."""
        from mien.identity.match import near_threshold

        if self.options.mirror == "always" or not self.identity_crop.flip or not crops or self.matcher is None:
            embeddings = self.embed_crops(crops)
            return embeddings, self.identify(embeddings)
        batch = np.stack(crops)
        embeddings = self.embedder.embed(batch)
        matches = self.identify(embeddings)
        th = self.thresholds()
        again = [i for i, m in enumerate(matches) if near_threshold(m, th.distance, th.probability)]
        if again:
            embeddings[again] = _mean_of_views(embeddings[again], self.embedder.embed(batch[again][:, :, ::-1]))
            for i, m in zip(again, self.identify(embeddings[again])):
                matches[i] = m
        return embeddings, matches

    def identify(self, embeddings: np.ndarray) -> list:
        """IdentityMatch per embedding under the current thresholds (None for each while nobody is enrolled)."""
        if self.matcher is None or not len(embeddings):
            return [None] * len(embeddings)
        return self.matcher.predict(embeddings, self.thresholds(), candidates=self.options.candidates)

    def emotions(self, gray_faces: list[np.ndarray]) -> list[EmotionResult | None]:
        """EmotionResult per 48x48 gray face, in one batched call (None for each without an emotion model)."""
        if self.emotion_model is None or not gray_faces:
            return [None] * len(gray_faces)
        from mien.emotion.views import MirrorWhenUnsure

        faces, threshold = np.stack(gray_faces), self.options.emotion_threshold
        model = self.emotion_model
        probs = model.predict(faces, threshold) if isinstance(model, MirrorWhenUnsure) else model.predict(faces)
        out = []
        for p in probs:
            scores = {l: float(v) for l, v in zip(self.emotion_model.labels, p)}
            label = emotion_label(scores, self.options.emotion_threshold)
            out.append(EmotionResult(label, max(scores.values()), scores))
        return out

    def recognize_batch(self, images: list[np.ndarray], names: list[str] | None = None) -> list[ImageRecord]:
        """Recognize several decoded RGB images; all their faces share one FaceNet and one emotion call."""
        names = names or [f"image_{i}" for i in range(len(images))]
        clock = _StageClock()
        per_image = [self.detect(img) for img in images]
        clock.lap("detect")
        id_crops, emo_crops = [], []
        for img, faces in zip(images, per_image):
            for f in faces:
                id_crops.append(self.identity_crop(img, f))
                emo_crops.append(self.emotion_crop(img, f))
        clock.lap("crops")
        matches: list = [None] * len(id_crops)
        if id_crops and self.matcher is not None:  # no FaceNet work while nobody is enrolled
            _, matches = self.embed_and_identify(id_crops)
            clock.lap("facenet")
        emotions = self.emotions(emo_crops)
        clock.lap("emotion")
        self.last_timing = clock.ms
        log.info("%d photo(s), %d face(s): %s", len(images), len(id_crops), clock)
        records, k = [], 0
        for name, img, faces in zip(names, images, per_image):
            rec = ImageRecord(file=name, width=int(img.shape[1]), height=int(img.shape[0]))
            for i, f in enumerate(faces, start=1):
                rec.faces.append(FaceRecord(i, f.bbox, f.confidence, f.landmarks, matches[k], emotions[k], f.scale))
                k += 1
            records.append(rec)
        return records

    def recognize(self, image: ImageInput, name: str | None = None, *, channels: Channels = "rgb") -> ImageRecord:
        """Recognize every face of one photo: a path, URL, bytes, PIL image or RGB array (``channels="bgr"`` for
        OpenCV's); ``name`` is the record's ``file`` (default: the path, or a description of the argument)."""
        return self.recognize_batch([to_rgb(image, channels)], [describe(image) if name is None else name])[0]

    def recognize_cropped(self, faces: list[np.ndarray], names: list[str]) -> list[ImageRecord]:
        """Treat each image as one already-cropped face (no detection), e.g. FER2013 samples."""
        import cv2

        gray = [cv2.resize(f if f.ndim == 2 else cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (48, 48), interpolation=cv2.INTER_AREA)
                for f in faces]
        rgb = [cv2.resize(f if f.ndim == 3 else cv2.cvtColor(f, cv2.COLOR_GRAY2RGB), (160, 160)) for f in faces]
        matches: list = [None] * len(faces)
        if faces and self.matcher is not None:
            _, matches = self.embed_and_identify(rgb)
        emotions = self.emotions(gray)
        return [
            ImageRecord(n, int(f.shape[1]), int(f.shape[0]),
                        [FaceRecord(1, (0, 0, int(f.shape[1]), int(f.shape[0])), 1.0, {}, m, e)])
            for n, f, m, e in zip(names, faces, matches, emotions)
        ]

    def recognize_paths(self, paths: Iterable[str | os.PathLike], chunk: int = 16,
                        cropped: bool = False) -> Iterator[tuple[ImageRecord, np.ndarray | None]]:
        """Yield (record, decoded image) per path, in the order given; unreadable files give a record with ``error``
        set. Photos are recognized ``chunk`` at a time, or fewer when they add up to the pixel budget (so 16 photos
        of 49 MP are not held decoded at once)."""
        from mien.pipeline.images import max_pixels

        batch: list[tuple[str, np.ndarray | None, str | None]] = []  # (name, image, error) in input order

        def flush():
            good = [(name, img) for name, img, _ in batch if img is not None]
            recs = iter(self.recognize_cropped([g[1] for g in good], [g[0] for g in good]) if cropped
                        else self.recognize_batch([g[1] for g in good], [g[0] for g in good])) if good else iter(())
            for name, img, error in batch:
                yield (ImageRecord(file=name, error=error), None) if img is None else (next(recs), img)
            batch.clear()

        held = 0  # decoded pixels in the batch
        for p in paths:
            try:
                image = load_image(p)
            except ImageError as exc:
                batch.append((path_text(p), None, str(exc)))
                continue
            if held and held + image.shape[0] * image.shape[1] > max_pixels():
                yield from flush()  # a chunk stays within the budget (or is one photo)
                held = 0
            batch.append((path_text(p), image, None))
            held += image.shape[0] * image.shape[1]
            if sum(img is not None for _, img, _ in batch) >= chunk:
                yield from flush()
                held = 0
        if batch:
            yield from flush()
