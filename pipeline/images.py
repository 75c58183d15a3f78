"""Reading photos robustly: any format OpenCV knows, EXIF-rotated, gray/RGBA/16-bit, corrupt files named."""
from __future__ import annotations

import io
import logging
import os
import stat
import struct
from pathlib import Path

log = logging.getLogger(__name__)



def max_pixels() -> int:
    """The pixel budget checked from the header before decoding (a 2.6 MB PNG can claim 30000x30000 px = 2.7 GB
    decoded): ``$MIEN_MAX_IMAGE_PIXELS`` if set, else 50 million (larger than any camera photo)."""
    from mien.pipeline import settings

    return settings.max_image_pixels()


# OpenCV's own decoder limit backs mien's header check up; OpenCV reads it once, when cv2 is first imported.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(max_pixels()))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from mien.pipeline.errors import MienError  # noqa: E402

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}  # a GIF: its first frame


class ImageError(MienError, ValueError):
    """An input file that is not a readable image; the message names the file."""

    def for_client(self) -> str:
        """The message for a remote client, who cannot change the server's settings."""
        return str(self)


class ImageTooLargeError(ImageError):
    """An image over the pixel budget (or a file larger than any image within it)."""

    def __init__(self, message: str, fix: str):
        super().__init__(f"{message} (set MIEN_MAX_IMAGE_PIXELS to allow larger images, or {fix}).")
        self.client_message = f"{message} ({fix})."

    def for_client(self) -> str:
        return self.client_message


def path_text(path: str | os.PathLike) -> str:
    """A path as text that any UTF-8 writer takes (JSON, SQLite, Parquet, a terminal): file-name bytes that are
    not UTF-8 (which Python keeps as lone surrogates) become ``\\xNN`` escapes, so such a photo gets a result
    instead of crashing the output after the whole run."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raw = text.encode("utf-8", "surrogatepass")
        return raw.decode("utf-8", "backslashreplace")


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def bmp_header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a BMP as OpenCV's decoder reads it, for the info-header sizes Pillow refuses (41, 44,
    60, 100, ...: OpenCV takes any of 36 bytes or more); None if ``data`` is not a BMP."""
    if data[:2] != b"BM" or len(data) < 26:
        return None
    (info_size,) = struct.unpack_from("<I", data, 14)
    if info_size == 12:  # the OS/2 core header: 16-bit sides
        width, height = struct.unpack_from("<HH", data, 18)
    else:
        width, height = struct.unpack_from("<ii", data, 18)
    return abs(width), abs(height)


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from the image header without decoding (Pillow, or mien's BMP reader for headers
    Pillow refuses), or None if neither can tell."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # Pillow only reads the header here; mien's own, stricter budget applies
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:  # not a format Pillow knows, or a header it refuses
        return bmp_header_size(data)


def checked_size(data: bytes, name: str) -> tuple[int, int]:
    """(width, height) from the header, before any decoding; ImageError if over the pixel budget, or if no
    header reader can tell the size (OpenCV would then decode whatever size the file claims)."""
    size = header_size(data)
    if size is None:
        raise ImageError(f"{name}: not a readable image (its size cannot be read from the header: an unknown or "
                         "damaged image format); convert it to JPEG or PNG.")
    if size[0] * size[1] > max_pixels():
        raise ImageTooLargeError(f"{name}: {size[0]}x{size[1]} pixels is over the {max_pixels() / 1e6:.0f}-megapixel "
                                 "limit", "downscale the photo")
    return size


MOTION_PHOTO_MARKERS = (b"ftyp", b"MotionPhoto_Data")


def motion_photo_jpeg_end(data: bytes) -> int | None:
    """Where the still JPEG of a phone "motion photo" ends (a JPEG followed by an MP4 video, directly as Google's
    do or after a ``MotionPhoto_Data`` marker as Samsung's do), or None if ``data`` is no such photo."""
    for marker in MOTION_PHOTO_MARKERS:
        at = data.find(marker)
        while at != -1:
            eoi = at - 6 if marker == b"ftyp" else at - 2  # an MP4 box: 4-byte size, then "ftyp"
            if eoi > 2 and data[eoi:eoi + 2] == b"\xff\xd9":
                return eoi + 2
            at = data.find(marker, at + 1)
    return None


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes to an RGB uint8 array (EXIF orientation applied), within the pixel budget."""
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes), not an image.")
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-4096:]:  # some writers append bytes after EOI
        end = motion_photo_jpeg_end(data)
        if end is None:
            raise ImageError(f"{name}: truncated JPEG (no end-of-image marker); re-export or re-download the photo.")
        data = data[:end]  # the still photo; its video is not needed
    checked_size(data, name)
    buf = np.frombuffer(data, dtype=np.uint8)
    # IMREAD_COLOR: 8-bit BGR whatever the source (gray, RGBA, 16-bit), EXIF orientation applied.
    try:
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. over OpenCV's own 2^30-pixel limit
        raise ImageError(f"{name}: OpenCV cannot decode it ({str(exc).strip().splitlines()[-1][:200]}).") from None
    if bgr is None or bgr.size == 0:
        raise ImageError(f"{name}: not a readable image (corrupt, or a format OpenCV cannot decode).")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def max_file_bytes() -> int:
    """The largest image file read: 8 bytes per pixel of the pixel budget (an uncompressed 16-bit RGBA TIFF at the
    budget fits), so a huge non-image is refused from its size instead of being read whole into memory."""
    return 8 * max_pixels() + (1 << 20)


def read_image_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of an image file, refusing what is not a regular file (a FIFO would block, ``/dev/zero`` never
    ends) or is larger than any image within the pixel budget; ImageError names the file and the fix."""
    name = path_text(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open itself
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file (or a link to a missing file).") from None
    except IsADirectoryError:
        raise ImageError(f"{name}: is a directory, not an image.") from None
    except OSError as exc:
        raise ImageError(f"{name}: cannot be read ({exc.strerror}).") from None
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        os.close(fd)
        raise ImageError(f"{name}: is a directory, not an image.")
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"{name}: not a regular file (a pipe, socket or device); copy the photo to a file.")
        if st.st_size > max_file_bytes():
            raise ImageTooLargeError(f"{name}: {st.st_size / 2**20:.0f} MB is larger than any image within the "
                                     f"{max_pixels() / 1e6:.0f}-megapixel limit", "check that it is a photo")
        try:
            return fh.read(max_file_bytes() + 1)
        except OSError as exc:
            raise ImageError(f"{name}: cannot be read ({exc.strerror}).") from None


URL_SCHEMES = ("http://", "https://")
URL_TIMEOUT_S = 20.0  # the longest wait for the connection or for any one read of the answer
URL_DEADLINE_S = 60.0  # the whole download, redirects included: a server dripping a byte at a time is cut off here
URL_MAX_BYTES = 64 * 2**20  # the most downloaded: photos on the web are compressed (a 50-MP JPEG is well below)
URL_CHUNK = 1 << 16


def is_url(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an http(s) address of a photo rather than a file."""
    return isinstance(path, str) and path.lower().startswith(URL_SCHEMES)


def max_url_bytes() -> int:
    """The most bytes downloaded for one photo: ``max_file_bytes`` or ``URL_MAX_BYTES``, whichever is smaller."""
    return min(max_file_bytes(), URL_MAX_BYTES)


def _url_too_large(url: str) -> ImageError:
    """The error for an answer over ``max_url_bytes`` (told from Content-Length before the body when it is given)."""
    limit = max_url_bytes()
    if limit == max_file_bytes():
        return ImageTooLargeError(f"{url}: more than {limit / 2**20:.0f} MB, larger than any image within the "
                                  f"{max_pixels() / 1e6:.0f}-megapixel limit", "check that it is a photo")
    return ImageError(f"{url}: more than {limit / 2**20:.0f} MB, more than mien downloads for one photo (an endless "
                      "answer, or not a photo); download it and give the file instead.")


class _Deadline:
    """Cuts a download off ``seconds`` after it starts: a timer shuts down every connection opened through
    ``opener()``, so a read blocked on a slow or dripping server returns at once and ``expired`` tells why."""

    def __init__(self, seconds: float):
        import threading

        self.seconds = seconds
        self.expired = threading.Event()
        self._sockets: list = []
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def _cut(self) -> None:
        self.expired.set()
        for sock in list(self._sockets):
            _shutdown(sock)

    def _connected(self, sock) -> None:
        self._sockets.append(sock)
        if self.expired.is_set():
            _shutdown(sock)

    def opener(self, url: str):
        """A urllib opener for ``url`` whose connections this deadline cuts (a TLS handshake is bounded by the
        per-read timeout only), following redirects to http(s) addresses only (urllib also follows ftp://)."""
        import http.client
        import urllib.request

        deadline = self

        def tracked(base: type) -> type:
            class Connection(base):
                def connect(self) -> None:
                    super().connect()
                    deadline._connected(self.sock)
            return Connection

        http_conn, https_conn = tracked(http.client.HTTPConnection), tracked(http.client.HTTPSConnection)

        class Http(urllib.request.HTTPHandler):
            def http_open(self, req):
                return self.do_open(http_conn, req)

        class Https(urllib.request.HTTPSHandler):
            def https_open(self, req):
                return self.do_open(https_conn, req, context=self._context)

        class HttpRedirectsOnly(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, req, fp, code, msg, headers, newurl):
                if not is_url(newurl):
                    raise ImageError(f"{url}: the server redirects to {newurl}, not an http(s) address; mien "
                                     "downloads photos over http and https only.")
                return super().redirect_request(req, fp, code, msg, headers, newurl)

        return urllib.request.build_opener(Http, Https, HttpRedirectsOnly)


def _shutdown(sock) -> None:
    """Shut a connection down so that a read blocked on it returns; one already closed is left alone."""
    import socket

    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def read_url_bytes(url: str, timeout: float = URL_TIMEOUT_S, deadline: float | None = None) -> bytes:
    """The bytes of a photo on the web, as ``read_image_bytes`` reads a file: at most ``max_url_bytes`` (a larger
    or endless answer is refused from its Content-Length or while it arrives), within ``timeout`` seconds per read
    and ``deadline`` (default ``URL_DEADLINE_S``) seconds in all; ImageError names the URL and what went wrong
    (HTTP status, a page that is not an image, a redirect elsewhere than http(s), too slow, no connection)."""
    import http.client
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": "mien", "Accept": "image/*"})
    limit = max_url_bytes()
    with _Deadline(deadline or URL_DEADLINE_S) as cut:
        try:
            with cut.opener(url).open(request, timeout=timeout) as answer:  # is_url checked the scheme
                _check_answer(url, answer, limit)
                data = bytearray()
                while len(data) <= limit and (chunk := answer.read1(URL_CHUNK)):
                    data += chunk
        except ImageError:
            raise
        except urllib.error.HTTPError as exc:
            raise ImageError(f"{url}: the server answered HTTP {exc.code} ({exc.reason}).") from None
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:  # a cut: IncompleteRead
            if cut.expired.is_set():
                raise _too_slow(url, cut.seconds) from None
            reason = getattr(exc, "reason", exc)
            raise ImageError(f"{url}: cannot be downloaded ({reason}).") from None
        if cut.expired.is_set():
            raise _too_slow(url, cut.seconds)
    if len(data) > limit:
        raise _url_too_large(url)
    return bytes(data)


def _check_answer(url: str, answer, limit: int) -> None:
    """ImageError for an answer that says it is a web page or text, or whose Content-Length is over ``limit``.
    An answer without a Content-Type is judged by its bytes when decoded (urllib would call it text/plain)."""
    if answer.headers.get("Content-Type"):
        kind = answer.headers.get_content_type().lower()
        if kind.startswith(("text/", "application/json")):
            raise ImageError(f"{url}: is a web page ({kind}), not an image; give the address of the photo itself.")
    length = answer.headers.get("Content-Length", "")
    if length.strip().isdigit() and int(length) > limit:
        raise _url_too_large(url)


def _too_slow(url: str, seconds: float) -> ImageError:
    """The error for a download cut off by its deadline."""
    return ImageError(f"{url}: not downloaded within {seconds:.0f} s (the server is too slow or its answer never "
                      "ends); download it and give the file instead, or try again later.")


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file (or download an http(s) URL) as RGB uint8, raising ImageError that names it on any
    problem."""
    data = read_url_bytes(path) if is_url(path) else read_image_bytes(path)
    return decode_image(data, path_text(path))


def scan_images(root: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """Image files under ``root`` (a file or a folder, recursively), sorted, and the other files skipped there.
    Folders that cannot be listed (no permission, nested past the OS path limit), links to missing files and
    pipes or devices are skipped with a warning naming each, never a traceback."""
    root = Path(root)
    if root.is_file():
        return [root], []
    if not root.is_dir():
        raise ImageError(f"{path_text(root)}: no such file or folder.")

    def unlistable(exc: OSError) -> None:
        log.warning("%s: folder cannot be listed (%s); skipped", path_text(exc.filename or root), exc.strerror)

    files: list[Path] = []
    for folder, _, names in os.walk(root, onerror=unlistable):
        for name in names:
            if name.startswith("."):
                continue
            path = Path(folder, name)
            try:
                mode = path.stat().st_mode
            except OSError as exc:
                why = "a link to a missing file" if path.is_symlink() else exc.strerror
                log.warning("%s: %s; skipped", path_text(path), why)
                continue
            if stat.S_ISREG(mode):
                files.append(path)
            else:
                log.warning("%s: not a regular file (a pipe, socket or device); skipped", path_text(path))
    files.sort()
    return [p for p in files if is_image_path(p)], [p for p in files if not is_image_path(p)]


def list_images(root: str | os.PathLike) -> list[Path]:
    """Image files under ``root`` (a file or a folder, recursively), sorted."""
    return scan_images(root)[0]
