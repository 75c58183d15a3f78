"""mien: who is in a photo, video or live stream, and which emotion each face shows.

``mien.recognize("group.jpg")``, ``mien.verify(a, b)``, ``mien.enroll(name, photos)``, ``mien.people()``,
``mien.forget(name)``, ``mien.embed(photo)``; or ``mien.Recognizer(options)`` for the same methods on models you
keep. The design's three packages live under this one import name:
``mien.identity`` (FaceNet embeddings, galleries, open-set matching), ``mien.emotion`` (the FER2013 networks and
their training) and ``mien.pipeline`` (detection, the Recognizer, CLI, server); in a checkout they are the folders
``identity/``, ``emotion/`` and ``pipeline/`` at the repository root (setup.cfg's ``package_dir`` maps them).
"""
from __future__ import annotations

import os
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what IDEs and type checkers see; at run time each name is imported on first use (_LAZY)
    from mien.api import (default_recognizer, embed, enroll, forget, people, recognize, remove_photo, rename,
                          verify)
    from mien.errors import MienError
    from mien.identity.gallery.base import UnknownPersonError
    from mien.identity.match import Candidate, IdentityMatch
    from mien.pipeline.images import ImageError, decode_image, load_image
    from mien.pipeline.library import FaceEmbedding, NoFaceError, Verification
    from mien.pipeline.options import Options
    from mien.pipeline.people import PersonUpdate, PhotoResult, SimilarNameError
    from mien.pipeline.recognizer import Recognizer
    from mien.pipeline.records import EmotionResult, FaceRecord, ImageRecord

# Every module of mien is imported through here, so this is the one place TensorFlow's C++ start-up chatter
# (absl's "All log messages before absl::InitializeLog()", the CPU feature guard, oneDNN's notice) is silenced,
# before any import of TensorFlow; set TF_CPP_MIN_LOG_LEVEL=0 yourself to see it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class _QuietTensorFlowImport:
    """Runs the first ``import tensorflow`` with file descriptor 2 on /dev/null: TensorFlow 2.21 prints its
    oneDNN notice through absl before it reads TF_CPP_MIN_LOG_LEVEL, so the variable alone no longer silences it.
    Python errors still surface (they are raised, not printed); TF_CPP_MIN_LOG_LEVEL=0 shows everything."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        import sys
        from importlib.machinery import PathFinder

        sys.meta_path.remove(self)
        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
            return spec
        run = spec.loader.exec_module

        def exec_module(module) -> None:
            saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, 2)
                run(module)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                os.close(devnull)

        spec.loader.exec_module = exec_module  # this spec's own loader object: only TensorFlow's import is quiet
        return spec


def _install_quiet_tensorflow_import() -> None:
    import sys

    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


_install_quiet_tensorflow_import()

try:
    __version__ = version("mien")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"

# Public names, imported on first use so that `import mien` stays instant (no TensorFlow, no OpenVINO).
_LAZY = {
    **dict.fromkeys(("recognize", "verify", "embed", "enroll", "people", "forget", "rename", "remove_photo",
                     "default_recognizer"), "mien.api"),
    "Recognizer": "mien.pipeline.recognizer", "Options": "mien.pipeline.options",
    "load_image": "mien.pipeline.images", "decode_image": "mien.pipeline.images",
    "MienError": "mien.errors", "ImageError": "mien.pipeline.images", "NoFaceError": "mien.pipeline.library",
    "SimilarNameError": "mien.pipeline.people", "UnknownPersonError": "mien.identity.gallery.base",
    "ImageRecord": "mien.pipeline.records", "FaceRecord": "mien.pipeline.records",
    "EmotionResult": "mien.pipeline.records", "IdentityMatch": "mien.identity.match", "Candidate": "mien.identity.match",
    "Verification": "mien.pipeline.library", "FaceEmbedding": "mien.pipeline.library",
    "PersonUpdate": "mien.pipeline.people", "PhotoResult": "mien.pipeline.people",
}
__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        value = globals()[name] = getattr(import_module(_LAZY[name]), name)  # later look-ups skip __getattr__
        return value
    raise AttributeError(f"module 'mien' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names (imported on first use, so not yet in the module's namespace), not the helpers."""
    return sorted(set(__all__) | {n for n in globals() if n.startswith("__")})
