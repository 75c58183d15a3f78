"""``mien.recognize(...)`` and friends: the Recognizer's methods on one default Recognizer over MIEN_HOME's gallery.

The default loads on the first call (seconds: the detector, FaceNet and the emotion model) and is reused; it picks
up people enrolled or forgotten elsewhere (the CLI, a server) at each ``recognize``. Build your own
``mien.Recognizer(options)`` for other options; it has the same methods.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from mien.pipeline.inputs import Channels, ImageInput
    from mien.pipeline.library import FaceEmbedding, Verification
    from mien.pipeline.people import PersonUpdate
    from mien.pipeline.recognizer import Recognizer
    from mien.pipeline.records import ImageRecord

_default: "Recognizer | None" = None
_lock = threading.Lock()


def default_recognizer() -> "Recognizer":
    """The Recognizer the module functions use (built on first use, with ``mien.Options()``' defaults)."""
    global _default
    with _lock:
        if _default is None:
            from mien.pipeline.recognizer import Recognizer

            _default = Recognizer()
        return _default


def recognize(image: "ImageInput", *, candidates: int = 0, channels: "Channels" = "rgb") -> "ImageRecord":
    """Who (an enrolled name, or ``unknown`` with the closest person) and which emotion, for every face of a photo;
    ``candidates=k`` also lists the k nearest enrolled people with their distances."""
    if not isinstance(candidates, int) or candidates < 0:
        from mien.pipeline.errors import UsageError

        raise UsageError(f"candidates={candidates!r}: give how many nearest people to list, 0 or more.")
    rec = default_recognizer()
    rec.reload_matcher()  # cheap when nothing changed: a generation number is compared
    return (rec.with_options(candidates=candidates) if candidates else rec).recognize(image, channels=channels)


def verify(a: "ImageInput", b: "ImageInput", *, threshold: float | None = None,
           channels: "Channels" = "rgb") -> "Verification":
    """Whether the subjects of two photos are the same person (``.same``, ``.distance``, ``.threshold``,
    ``.detected_on_retry``); pipeline.subject picks each photo's face."""
    return default_recognizer().verify(a, b, threshold=threshold, channels=channels)


def embed(image: "ImageInput", *, channels: "Channels" = "rgb") -> "list[FaceEmbedding]":
    """Every face of a photo with its 128-d FaceNet embedding, largest first, its subject marked (``.subject``)."""
    return default_recognizer().embed(image, channels=channels)


def enroll(name: str, photos: "ImageInput | Iterable[ImageInput]", *, new: bool = False,
           channels: "Channels" = "rgb") -> "PersonUpdate":
    """Add photos of one person to the gallery (unusable ones skipped with the reason); ``new=True`` to enroll a
    name that looks like a typo of an enrolled one."""
    return default_recognizer().enroll(name, photos, new=new, channels=channels)


def people() -> dict[str, int]:
    """Enrolled people and their number of photos."""
    return default_recognizer().people()


def forget(name: str) -> int:
    """Erase a person from the gallery; returns the number of photos erased."""
    return default_recognizer().forget(name)


def rename(old: str, new: str) -> None:
    """Rename an enrolled person."""
    default_recognizer().rename(old, new)


def remove_photo(name: str, photo_hash: str) -> int:
    """Erase one photo of a person by its hash (8+ characters of it)."""
    return default_recognizer().remove_photo(name, photo_hash)
