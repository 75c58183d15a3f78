"""Annotated videos written atomically: H.264 or VP9 through PyAV's FFmpeg (browsers play them), OpenCV's writer
for MJPEG .avi and as the fallback; a hidden temporary file renamed over the target only on success."""
from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from mien.identity.storage import make_private
from mien.pipeline.errors import UsageError

log = logging.getLogger(__name__)


class VideoError(UsageError):
    """The video cannot be read or written (missing file, undecodable, no such webcam)."""



# The annotated video by --out suffix: (container, PyAV encoder, options). Browsers play H.264 in .mp4 and VP9 in
# .webm; OpenCV's bundled FFmpeg has no H.264 encoder and its VP9 ran at 2-16 frames/s on a 640x480 clip, against
# 185-325 for libx264 "veryfast" and 255-305 for VP9 "realtime" in PyAV's FFmpeg (at similar quality, ~36 dB PSNR).
BROWSER_FORMATS = {
    ".mp4": ("mp4", "libx264", {"preset": "veryfast", "crf": "23"}),
    ".mov": ("mov", "libx264", {"preset": "veryfast", "crf": "23"}),
    ".mkv": ("matroska", "libx264", {"preset": "veryfast", "crf": "23"}),
    ".webm": ("webm", "libvpx-vp9", {"deadline": "realtime", "cpu-used": "8", "crf": "32", "b": "0", "row-mt": "1"}),
}
# OpenCV's own writer: MJPEG in .avi (as before), and the fallback when PyAV (the `av` package) is missing.
OPENCV_FOURCC = {".avi": "MJPG", ".mp4": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".webm": "VP80"}
VIDEO_SUFFIXES = ", ".join(OPENCV_FOURCC)


class _OpenCVEncoder:
    """Frames into a file with cv2.VideoWriter."""

    def __init__(self, path: Path, fourcc: str, fps: float, size: tuple[int, int]):
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if not self.writer.isOpened():
            raise VideoError(f"{path}: cannot write a {fourcc} video here.")

    def write(self, frame_bgr: np.ndarray) -> None:
        self.writer.write(frame_bgr)

    def close(self, flush: bool = True) -> None:
        self.writer.release()


class _PyAVEncoder:
    """Frames into a browser-playable file (yuv420p H.264 or VP9) with the FFmpeg that PyAV bundles."""

    def __init__(self, path: Path, container: str, codec: str, options: dict[str, str], fps: float,
                 size: tuple[int, int]):
        import av

        self.av = av
        self.container = av.open(str(path), "w", format=container,
                                 options={"movflags": "+faststart"} if container in ("mp4", "mov") else {})
        try:
            self.stream = self.container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001), options=options)
            # 4:2:0 needs even sides: an odd side gets one more row or column, repeated from the edge (a 1x1 clip
            # becomes 2x2 rather than an empty frame)
            self.stream.width, self.stream.height = size[0] + (size[0] & 1), size[1] + (size[1] & 1)
            self.stream.pix_fmt = "yuv420p"
            self.stream.thread_type = "AUTO"
        except BaseException:
            self.container.close()
            raise

    def write(self, frame_bgr: np.ndarray) -> None:
        h, w = frame_bgr.shape[:2]
        frame = cv2.copyMakeBorder(frame_bgr, 0, self.stream.height - h, 0, self.stream.width - w, cv2.BORDER_REPLICATE) \
            if (h, w) != (self.stream.height, self.stream.width) else frame_bgr
        self.container.mux(self.stream.encode(self.av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")))

    def close(self, flush: bool = True) -> None:
        try:
            if flush:
                self.container.mux(self.stream.encode(None))
        finally:
            self.container.close()


def _pyav_has(codec: str) -> bool:
    """Whether PyAV is installed and its FFmpeg can encode ``codec``."""
    try:
        import av

        av.Codec(codec, "w")
        return True
    except Exception:  # ImportError, or a build of FFmpeg without that encoder
        return False


def video_suffix(path: str | os.PathLike) -> str:
    """The lower-case suffix of an annotated-video path; VideoError (before any work) when mien cannot write it."""
    suffix = Path(path).suffix.lower()
    if suffix not in OPENCV_FOURCC:
        raise VideoError(f"{path}: write the annotated video as one of {VIDEO_SUFFIXES} (.mp4 or .webm play in browsers).")
    return suffix


def open_video_encoder(path: Path, fps: float, size: tuple[int, int]) -> _PyAVEncoder | _OpenCVEncoder:
    """The encoder for a path's suffix: H.264 (.mp4 .mov .mkv) or VP9 (.webm) that browsers play, MJPEG for .avi."""
    suffix = video_suffix(path)
    if suffix in BROWSER_FORMATS:
        if _pyav_has(BROWSER_FORMATS[suffix][1]):
            import av

            try:
                return _PyAVEncoder(path, *BROWSER_FORMATS[suffix], fps, size)
            except (OSError, av.FFmpegError) as e:
                raise VideoError(f"{path}: cannot write a video here ({e}).") from e
        log.warning("PyAV (pip install av) with %s is missing: writing %s with OpenCV's %s, which browsers may not "
                    "play.", BROWSER_FORMATS[suffix][1], suffix, OPENCV_FOURCC[suffix])
    return _OpenCVEncoder(path, OPENCV_FOURCC[suffix], fps, size)


class AtomicVideoWriter:
    """A video encoder writing a hidden temporary file beside the target, renamed over it on success."""

    def __init__(self, target: Path, fps: float, size: tuple[int, int]):
        self.target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")
        try:  # made 0600 before the encoder writes a frame into it (the encoders open it with the umask's mode)
            os.close(os.open(self.tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
            self.encoder = open_video_encoder(self.tmp, fps, size)  # the name keeps the suffix
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise

    def write(self, frame_bgr: np.ndarray) -> None:
        self.encoder.write(frame_bgr)

    def commit(self) -> None:
        try:
            self.encoder.close()
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        make_private(self.tmp)
        os.replace(self.tmp, self.target)

    def abort(self) -> None:
        try:
            self.encoder.close(flush=False)
        finally:
            self.tmp.unlink(missing_ok=True)
