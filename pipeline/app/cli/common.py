"""What every command shares: argument types that validate before any model loads, the detection and
identity options (defaults taken from ``mien.pipeline.options.Options``, the one place they live), the
recognizer builder, progress bars and the quiet TensorFlow import."""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, TypeVar

from mien.emotion.labels import LABEL_SETS
from mien.emotion.views import PRESETS
from mien.pipeline.options import MIRROR_CHOICES, Options

if TYPE_CHECKING:
    from mien.pipeline.recognizer import Recognizer

T = TypeVar("T")
DEFAULTS = Options()


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default (except where there is none to show)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, argparse.SUPPRESS) or "%(default)" in (action.help or "") \
                or "(default" in (action.help or ""):  # the help already says it in words
            return action.help or ""
        return super()._get_help_string(action)


# ---- argument types: wrong values are usage errors (exit 2) before anything heavy is imported ----------------
def existing_path(text: str) -> Path | str:
    """A file or folder that exists, or an http(s) URL (downloaded when its turn comes)."""
    from mien.pipeline.images import is_url

    if is_url(text):
        return text
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file or folder")
    return path


def existing_file(text: str) -> Path:
    """A file that exists."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file" + (" (it is a folder)" if path.is_dir() else ""))
    return path


def existing_file_or_url(text: str) -> Path | str:
    """A file that exists, or an http(s) URL of a photo (downloaded when its turn comes, as `recognize` does)."""
    from mien.pipeline.images import is_url

    return text if is_url(text) else existing_file(text)


def existing_dir(text: str) -> Path:
    """A folder that exists."""
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: no such folder" + (" (it is a file)" if path.is_file() else ""))
    return path


def _writable_ancestor(text: str, path: Path) -> None:
    """ArgumentTypeError unless a file can be created in the nearest existing folder of ``path`` (tried for real:
    permission bits say nothing of read-only mounts, /proc or a full disk's inodes)."""
    import tempfile

    ancestor = path.resolve().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: {ancestor} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".mien-write-check-", dir=ancestor)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{text}: cannot write in {ancestor} ({exc.strerror})") from None


def new_file(text: str) -> Path:
    """A file mien will write (missing folders are created): caught now if a file is in the way or the nearest
    existing folder cannot be written, not after minutes of work."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a folder; give a file name")
    _writable_ancestor(text, path)
    return path


def new_file_or_stdout(text: str) -> Path | str:
    """Like ``new_file``, or ``-`` for standard output."""
    return "-" if text == "-" else new_file(text)


def json_target(text: str) -> Path | str:
    """Where ``--json`` writes: ``-`` (standard output) or a new file, never a photo (``--json a.jpg b.jpg`` would
    otherwise take the first photo as the file to write)."""
    from mien.pipeline.images import IMAGE_SUFFIXES

    if text != "-" and Path(text).suffix.lower() in IMAGE_SUFFIXES:
        raise argparse.ArgumentTypeError(f"{text}: is a photo, not a JSON file to write; put --json after the photos "
                                         "or give it a .json file name")
    return new_file_or_stdout(text)


def add_json_option(p: argparse.ArgumentParser, what: str) -> None:
    """``--json [FILE|-]``, the one JSON convention of every command: no value or ``-`` is standard output."""
    p.add_argument("--json", nargs="?", const="-", type=json_target, metavar="FILE|-",
                   help=f"write {what} as JSON to FILE (no value or -: standard output)")


def annotates_one_file(target: Path) -> bool:
    """Whether ``--annotate`` names the one file to write (``one.jpg``) rather than a folder."""
    from mien.pipeline.images import IMAGE_SUFFIXES

    return target.suffix.lower() in IMAGE_SUFFIXES and not target.is_dir()


def new_file_or_folder(text: str) -> Path:
    """A folder mien writes into, or with an image suffix (``one.jpg``) the one file to write."""
    return new_file(text) if annotates_one_file(Path(text)) else new_folder(text)


def new_folder(text: str) -> Path:
    """A folder mien will write into (created if missing): caught now if a file is in the way or it cannot be
    written."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a file; give a folder")
    _writable_ancestor(text, path / "x")
    return path


def number_in(kind: Callable[[str], T], low: float | None = None, high: float | None = None,
              low_open: bool = False) -> Callable[[str], T]:
    """An int/float type checked against [low, high] (``low_open``: low itself is excluded)."""

    def parse(text: str) -> T:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}")
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if low is not None and (value < low or (low_open and value == low)):
            raise argparse.ArgumentTypeError(f"{text} must be {'>' if low_open else '>='} {low}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{text} must be <= {high}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


positive_int = number_in(int, 1)
unit_interval = number_in(float, 0.0, 1.0)
positive_float = number_in(float, 0.0, low_open=True)


# ---- shared option groups -------------------------------------------------------------------------------------
def verbosity_parent() -> argparse.ArgumentParser:
    """-v/-q, accepted before or after the subcommand (SUPPRESS keeps the top-level value unless given here)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("output")
    g.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="more log output (-vv: debug, TensorFlow's own messages too)")
    g.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="errors only: no warnings, no progress bars")
    return p


def add_detection_options(p: argparse.ArgumentParser, one_subject: bool = False) -> None:
    """MTCNN options (``one_subject``: a command about one person per photo, which has the relaxed retry)."""
    from mien.pipeline.detection import DETECTORS
    from mien.pipeline.runtime import PRECISIONS, RUNTIMES

    g = p.add_argument_group("detection")
    g.add_argument("--detector", choices=tuple(DETECTORS), default=DEFAULTS.detector,
                   help="mtcnn: MTCNN run by OpenVINO (default); mtcnn-keras: the mtcnn package's own TensorFlow "
                        "implementation (the reference, ~7x slower)")
    g.add_argument("--runtime", choices=RUNTIMES, default=DEFAULTS.runtime,
                   help="runs FaceNet and the emotion network: openvino (default; converted from the Keras weights "
                        "once, cached under MIEN_HOME) or tensorflow (the reference)")
    g.add_argument("--precision", choices=PRECISIONS, default=DEFAULTS.precision,
                   help="OpenVINO's arithmetic: auto runs each network in the lowest precision that kept its "
                        "accuracy gate (FaceNet in INT8, ~3x faster, once `mien models fetch` has quantized it, "
                        "fp32 until then; the emotion networks in bf16 where the CPU has bf16 instructions, 1.8x "
                        "faster; MTCNN in fp32); int8 is auto that quantizes FaceNet now if needed (~40 s, once "
                        "per machine); bf16 runs all of them in bf16 (LFW -0.2 point); fp32 none")
    g.add_argument("--min-face-size", type=positive_int, default=DEFAULTS.min_face_size,
                   help="smallest face to detect, in pixels")
    g.add_argument("--detection-threshold", type=unit_interval, default=DEFAULTS.detection_threshold,
                   help="MTCNN confidence to keep a face (its last stage, O-Net)")
    g.add_argument("--proposal-threshold", type=unit_interval, default=DEFAULTS.proposal_threshold,
                   help="MTCNN first stage (P-Net): lower finds harder faces, slower")
    g.add_argument("--refine-threshold", type=unit_interval, default=DEFAULTS.refine_threshold,
                   help="MTCNN second stage (R-Net)")
    if one_subject:
        g.add_argument("--retry-threshold", type=unit_interval, default=DEFAULTS.retry_threshold,
                       help="a photo with no face at the thresholds above is searched again with P-Net's and R-Net's "
                            "at this (O-Net's and --min-face-size kept); the face says detected_on_retry")


def add_identity_options(p: argparse.ArgumentParser, matcher: bool = True) -> None:
    """Open-set thresholds (unset: the gallery's own) and which matcher names faces."""
    g = p.add_argument_group("identity")
    if matcher:
        add_matcher_option(g)
    g.add_argument("--distance-threshold", type=positive_float, default=DEFAULTS.distance_threshold,
                   help="max FaceNet distance to the person's nearest enrolled photo (default: the gallery's)")
    g.add_argument("--probability-threshold", type=unit_interval, default=DEFAULTS.probability_threshold,
                   help="min SVM probability of the predicted person (default: the gallery's)")


def add_matcher_option(p) -> None:
    """``--matcher svm|knn|auto``: how a face is named among the enrolled people."""
    p.add_argument("--matcher", choices=("auto", "svm", "knn"), default=DEFAULTS.matcher,
                   help="svm: calibrated linear SVM; knn: nearest enrolled faces via an index; auto: svm up to "
                        "500 enrolled faces, knn beyond")


def add_emotion_options(p: argparse.ArgumentParser) -> None:
    """Emotion on/off and its 'uncertain' threshold."""
    g = p.add_argument_group("emotion")
    g.add_argument("--emotion-threshold", type=unit_interval, default=DEFAULTS.emotion_threshold,
                   help="below this probability the emotion is 'uncertain'")
    g.add_argument("--emotion-model", choices=tuple(LABEL_SETS), default=DEFAULTS.emotion_model,
                   help="which emotions: fer2013 (FER2013's 7, the ensemble of two networks) or ferplus (FER+'s 8: "
                        "contempt added, one network trained on the FER+ annotators' labels)")
    g.add_argument("--emotion-views", choices=("model", *PRESETS), default=DEFAULTS.emotion_views,
                   help="test-time views averaged per face by each network: model (as the model ships: the face "
                        "and its mirror image), mirror (the same, whatever model.json says), mirror+shift3 (3-px "
                        "shifts four ways, each mirrored: 5x the passes, no gain for the shipped ensemble) or none "
                        "(half the passes)")
    g.add_argument("--no-emotion", action="store_true", help="identity only (the emotion model is not loaded)")
    p.add_argument("--mirror", choices=MIRROR_CHOICES, default=DEFAULTS.mirror,
                   help="when FaceNet and the emotion networks also look at a face's mirror image: unsure (default: "
                        "only where the face alone gives an answer near a threshold, where the mirror can change it; "
                        "the same answers on LFW and FER2013 for ~0.6x the passes) or always")


def options_from(args: argparse.Namespace) -> Options:
    """The recognizer options given on the command line (the rest keep Options' defaults)."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Options) if hasattr(args, f.name)}
    return Options(**given)


def thresholds_from(args: argparse.Namespace) -> dict:
    """The identity thresholds given on the command line (to store with the gallery); empty when none was."""
    return {k: v for k, v in (("distance", args.distance_threshold), ("probability", args.probability_threshold))
            if v is not None}


def build_recognizer(args: argparse.Namespace, *, emotion: bool = True, identity: bool = True) -> "Recognizer":
    """Load the models a command needs. TensorFlow is imported (quietly) only when something will run or
    convert a model with it: the reference runtime or detector, or OpenVINO conversions not yet cached."""
    from mien.pipeline.models import openvino_models_cached

    options = options_from(args)
    with_emotion = emotion and not getattr(args, "no_emotion", False)
    if options.runtime == "tensorflow" or options.detector == "mtcnn-keras" \
            or not openvino_models_cached(options.emotion_views if with_emotion else None, options.emotion_model,
                                       options.mirror):
        quiet_tensorflow(getattr(args, "verbose", 0))
    from mien.pipeline.recognizer import Recognizer

    return Recognizer(options, emotion=with_emotion, identity=identity)


def progress(items: Iterable[T], desc: str, unit: str = "photo", total: int | None = None) -> Iterable[T]:
    """A progress bar on stderr when it is a terminal (and not -q); the plain iterable otherwise."""
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit, total=total, leave=False, disable=not show_progress())


def show_progress() -> bool:
    """Progress bars only on a terminal, and not under -q (the one place this is decided)."""
    from mien.pipeline import settings

    return sys.stderr.isatty() and not settings.quiet()


def quiet_tensorflow(verbose: int = 0) -> None:
    """Import TensorFlow now, quietly (``import mien`` silences its C++ start-up chatter); with -vv its own messages
    are shown."""
    if "tensorflow" in sys.modules:
        return
    if verbose >= 2:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    import tensorflow

    tensorflow.get_logger().setLevel("DEBUG" if verbose >= 2 else "ERROR")
