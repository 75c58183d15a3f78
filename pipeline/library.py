"""mien as a Python library: the Recognizer's verify / embed / enroll / people / forget / rename / remove_photo.

Thin names over the pipeline the CLI and the API already use (``pipeline.subject``'s subject of a photo,
``people.enroll_photos``, the gallery), so ``mien.verify`` and ``mien verify`` give one answer. Every image argument
takes whatever ``mien.pipeline.inputs`` takes (a path, a URL, bytes, a PIL image, an RGB or, said so, BGR array).
The module functions ``mien.recognize(...)`` and friends run these on a default Recognizer (``mien/api.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import numpy as np

from mien.pipeline.images import ImageError
from mien.pipeline.inputs import Channels, ImageInput, describe, to_bytes, to_rgb

if TYPE_CHECKING:
    from mien.identity.gallery import Gallery
    from mien.pipeline.people import PersonUpdate


class NoFaceError(ImageError):
    """A photo in which no face was found where one was needed (``verify``)."""


@dataclass(frozen=True)
class Verification:
    """Whether two photos show the same person: ``same`` when ``distance`` (FaceNet, between their subjects' faces)
    is at most ``threshold``; ``detected_on_retry`` says, per photo, whether its face was found only by the relaxed
    retry."""

    same: bool
    distance: float
    threshold: float
    detected_on_retry: tuple[bool, bool] = (False, False)

    def to_dict(self) -> dict:
        return {"same": self.same, "distance": round(self.distance, 4), "threshold": self.threshold,
                "detected_on_retry": list(self.detected_on_retry)}


@dataclass(frozen=True)
class FaceEmbedding:
    """One face's box ``[x, y, w, h]``, detection confidence and L2-normalised 128-d FaceNet embedding; whether it is
    the photo's subject (pipeline.subject's rule) and whether only the relaxed retry found it."""

    bbox: tuple[int, int, int, int]
    detection_confidence: float
    embedding: np.ndarray
    subject: bool = False
    detected_on_retry: bool = False

    def to_dict(self) -> dict:
        return {"bbox": [int(v) for v in self.bbox], "detection_confidence": round(float(self.detection_confidence), 4),
                "subject": self.subject, "detected_on_retry": self.detected_on_retry,
                "embedding": [round(float(v), 6) for v in self.embedding]}


def same_person_distance(options) -> float:
    """The distance at or below which two faces are one person: ``options.distance_threshold`` if set, else the
    one default shared by recognition and verification (``SAME_PERSON_DISTANCE``)."""
    from mien.identity.classifier import SAME_PERSON_DISTANCE

    return SAME_PERSON_DISTANCE if options.distance_threshold is None else float(options.distance_threshold)


class LibraryMethods:
    """What the Python API adds to a Recognizer (mixed into ``Recognizer``; needs its detect / embed / gallery)."""

    # ---- faces ---------------------------------------------------------------------------------------------
    def embed(self, image: ImageInput, *, channels: Channels = "rgb") -> list[FaceEmbedding]:
        """Every face of a photo with its FaceNet embedding, largest face first, the subject marked (empty when
        there is none); a photo without a face at the detection thresholds gets the relaxed retry."""
        from mien.pipeline.subject import choose_subject

        rgb = to_rgb(image, channels)
        faces = self.detect_one_subject(rgb)
        subject = choose_subject(faces, *rgb.shape[:2])
        return [FaceEmbedding(tuple(int(v) for v in f.bbox), float(f.confidence), vec,
                              subject is not None and f is subject.face, f.detected_on_retry)
                for f, vec in zip(faces, self.embed_faces(rgb, faces))]

    def embed_subject(self, image: ImageInput, *, channels: Channels = "rgb") -> FaceEmbedding:
        """The FaceEmbedding of a photo's subject (pipeline.subject's rule); NoFaceError names the photo when it has
        no face, even on the relaxed retry."""
        rgb = to_rgb(image, channels)
        subject = self.subject(rgb)
        if subject is None:
            raise NoFaceError(f"{describe(image)}: no face found.")
        f = subject.face
        [vec] = self.embed_faces(rgb, [f])
        return FaceEmbedding(tuple(int(v) for v in f.bbox), float(f.confidence), vec, True, f.detected_on_retry)

    def subject_embedding(self, image: ImageInput, *, channels: Channels = "rgb") -> np.ndarray:
        """The embedding of a photo's subject (``embed_subject``); NoFaceError names the photo when it has none."""
        return self.embed_subject(image, channels=channels).embedding

    def verify(self, a: ImageInput, b: ImageInput, *, threshold: float | None = None,
               channels: Channels = "rgb") -> Verification:
        """Are the subjects of two photos the same person? (pipeline.subject's rule picks each photo's face; the
        threshold defaults to the one recognition uses, ``SAME_PERSON_DISTANCE``, or ``Options.distance_threshold``.)"""
        fa, fb = self.embed_subject(a, channels=channels), self.embed_subject(b, channels=channels)
        distance = float(np.linalg.norm(fa.embedding - fb.embedding))
        limit = same_person_distance(self.options) if threshold is None else float(threshold)
        return Verification(distance <= limit, distance, limit, (fa.detected_on_retry, fb.detected_on_retry))

    # ---- the gallery ---------------------------------------------------------------------------------------
    def _writable_gallery(self) -> "Gallery":
        """The gallery this Recognizer names faces from (opened now if it was built without identity)."""
        if self.gallery is None:
            from mien.pipeline.gallery import open_default_gallery

            self.gallery = open_default_gallery(recognizer=self)
        return self.gallery

    def _changed(self) -> None:
        """Name faces from the changed gallery from now on (when this Recognizer names faces at all)."""
        if self.names_faces:
            self.reload_matcher()

    def people(self) -> dict[str, int]:
        """Enrolled people and the number of photos of each."""
        return self._writable_gallery().people()

    def enroll(self, name: str, photos: ImageInput | Iterable[ImageInput], *, new: bool = False,
               channels: Channels = "rgb") -> "PersonUpdate":
        """Add photos of one person (new or enrolled); unreadable and faceless photos are skipped with the reason
        in ``.photos``. A new name one or two edits from an enrolled one raises SimilarNameError unless ``new``."""
        from mien.pipeline.names import validate_person_name
        from mien.pipeline.people import Unreadable, check_new_name, enroll_photos

        name = validate_person_name(name)
        if isinstance(photos, (str, bytes, bytearray, memoryview, np.ndarray)) or hasattr(photos, "__fspath__") \
                or not isinstance(photos, Iterable):
            photos = [photos]
        gallery = self._writable_gallery()
        check_new_name(name, gallery, new)
        items: list[tuple[str, bytes | Unreadable]] = []
        for i, photo in enumerate(photos, start=1):
            label = describe(photo) if isinstance(photo, str) or hasattr(photo, "__fspath__") else f"photo_{i}"
            try:
                items.append((label, to_bytes(photo, channels)))
            except ImageError as exc:
                items.append((label, Unreadable(str(exc).removeprefix(f"{label}: "))))
        update = enroll_photos(name, items, self, gallery)
        self._changed()
        return update

    def forget(self, name: str) -> int:
        """Erase a person (embeddings, stored photos, cached embeddings) and redact their recognitions in MIEN_HOME's
        history, as `mien people forget` does; returns how many photos were erased."""
        from mien.pipeline.history import redact_everywhere
        from mien.pipeline.people import forget_person

        forgotten = forget_person(name, self._writable_gallery())
        self._changed()
        redact_everywhere(name, forgotten.names)
        return forgotten.faces

    def rename(self, old: str, new: str) -> None:
        """Rename an enrolled person (the new name follows the enrollment rule)."""
        from mien.pipeline.names import validate_person_name

        self._writable_gallery().rename(validate_person_name(old), validate_person_name(new))
        self._changed()

    def remove_photo(self, name: str, photo_hash: str) -> int:
        """Erase one photo of a person, by its hash (``mien people show`` lists them; 8+ characters suffice)."""
        from mien.pipeline.people import photo_hash_of, remove_photo

        gallery = self._writable_gallery()
        removed = remove_photo(name, photo_hash_of(name, photo_hash, gallery), gallery)
        self._changed()
        return removed
