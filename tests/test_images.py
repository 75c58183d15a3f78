"""Photos in every shape users have: each either decodes to RGB uint8 or fails naming the file."""
from __future__ import annotations

import http.server
import struct
import threading

import cv2
import numpy as np
import pytest

from mien.pipeline.images import ImageError, decode_image, list_images, load_image


def _png(array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", array)
    assert ok
    return buf.tobytes()


def _jpeg(array_bgr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", array_bgr)
    assert ok
    return buf.tobytes()


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """Insert a minimal APP1/EXIF segment carrying the orientation tag after SOI."""
    ifd = struct.pack(">H", 1) + struct.pack(">HHII", 0x0112, 3, 1, orientation << 16) + struct.pack(">I", 0)
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + ifd
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + app1 + jpeg[2:]


@pytest.mark.parametrize("data, message", [
    (b"", "empty file"),
    (b"this is a text file, not a photo", "not a readable image"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 200, "truncated JPEG"),
])
def test_unreadable_bytes_name_the_file(data, message):
    with pytest.raises(ImageError, match=rf"holiday\.jpg: .*{message}"):
        decode_image(data, "holiday.jpg")


def test_truncated_real_jpeg(tmp_path):
    full = _jpeg(np.full((64, 64, 3), 120, np.uint8))
    path = tmp_path / "cut.jpg"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(ImageError, match="cut.jpg: truncated JPEG"):
        load_image(path)


def test_gray_rgba_and_16bit_become_rgb_uint8():
    gray = np.tile(np.arange(32, dtype=np.uint8), (16, 1))
    rgba = np.dstack([np.full((16, 32), c, np.uint8) for c in (10, 20, 30, 255)])  # BGRA in OpenCV order
    deep = (gray.astype(np.uint16) * 257)
    for array in (gray, rgba, deep):
        out = decode_image(_png(array))
        assert out.shape == (16, 32, 3) and out.dtype == np.uint8
    assert tuple(decode_image(_png(rgba))[0, 0]) == (30, 20, 10)  # BGR(A) file -> RGB
    assert decode_image(_png(deep))[0, 31, 0] == 31  # 16-bit scaled down, not clipped


def test_exif_rotation_is_applied():
    img = np.zeros((20, 40, 3), np.uint8)  # wide
    rotated = decode_image(_with_exif_orientation(_jpeg(img), 6))  # 6 = rotate 90 degrees clockwise
    assert rotated.shape[:2] == (40, 20)


def test_missing_paths_and_folders(tmp_path):
    with pytest.raises(ImageError, match="nope.jpg: no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="is a directory"):
        load_image(tmp_path)
    with pytest.raises(ImageError, match="missing: no such file or folder"):
        list_images(tmp_path / "missing")
    (tmp_path / "a b é.JPG").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden.jpg").write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a b é.JPG"]


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature + IHDR announcing ``width x height`` and no pixel data: ~60 bytes."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(
        b"IEND", b"")


def test_decompression_bomb_is_refused_from_its_header():
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageError, match=r"bomb\.png: 30000x30000 pixels is over the 50-megapixel limit"):
        decode_image(_png_header_only(30000, 30000), "bomb.png")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KB: nothing was decoded


def _bmp_rle8_header_only(width: int, height: int, info_size: int) -> bytes:
    """A ~1 KB RLE8 BMP claiming width x height, its info header ``info_size`` bytes (Pillow reads 40, 108, 124,
    not 41, 44, 60 or 100; OpenCV decodes any of 36 or more)."""
    info = struct.pack("<IiiHHIIiiII", info_size, width, height, 1, 8, 1, 2, 2835, 2835, 256, 0)
    info += bytes(info_size - len(info))
    offset = 14 + len(info) + 1024
    return b"BM" + struct.pack("<IHHI", offset + 2, 0, 0, offset) + info + bytes(1024) + b"\x00\x01"


@pytest.mark.parametrize("info_size", [40, 41, 44, 60, 100, 108])
def test_a_bmp_bomb_with_a_header_pillow_refuses_is_still_refused_from_its_header(info_size):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageError, match=r"bomb\.bmp: 20000x20000 pixels is over the 50-megapixel limit"):
        decode_image(_bmp_rle8_header_only(20000, 20000, info_size), "bomb.bmp")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KB: nothing was decoded


def test_an_image_whose_size_no_header_reader_knows_is_refused_before_decoding():
    """OpenCV decodes Radiance HDR files (Pillow does not read them): a size nobody checked is never decoded."""
    hdr = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 20000 +X 20000\n" + bytes(64)
    with pytest.raises(ImageError, match=r"odd\.hdr: not a readable image \(its size cannot be read from the header"):
        decode_image(hdr, "odd.hdr")


def test_opencvs_own_pixel_limit_backs_the_header_check_up():
    import os

    import mien.pipeline.images  # noqa: F401 (sets the limit before cv2 is first imported)

    assert int(os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"]) == 50_000_000


def test_pixel_budget_is_configurable_and_applies_to_real_photos(monkeypatch):
    photo = _jpeg(np.full((40, 30, 3), 128, np.uint8))
    assert decode_image(photo, "p.jpg").shape == (40, 30, 3)
    monkeypatch.setenv("MIEN_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(ImageError, match="30x40 pixels is over"):
        decode_image(photo, "p.jpg")


def test_over_opencvs_own_limit_is_an_image_error_not_a_crash(monkeypatch):
    monkeypatch.setenv("MIEN_MAX_IMAGE_PIXELS", str(4 * 10**9))  # let it past our budget to reach OpenCV's
    with pytest.raises(ImageError, match="huge.png"):
        decode_image(_png_header_only(40000, 40000), "huge.png")


@pytest.mark.parametrize("glue", [b"", b"MotionPhoto_Data"])
def test_a_motion_photo_decodes_as_its_still_photo(glue):
    """Phones append an MP4 to the JPEG (Google directly, Samsung after a marker): the photo is read, a JPEG
    cut short is still refused."""
    still = np.zeros((40, 30, 3), np.uint8)
    still[:, :15] = 200
    jpeg = _jpeg(still)
    video = struct.pack(">I", 24) + b"ftypmp42" + bytes(12) + b"\x00\x00\x00\x08mdat" + bytes(20000)
    out = decode_image(jpeg + glue + video, "PXL_motion.jpg")
    np.testing.assert_array_equal(out, decode_image(jpeg, "still.jpg"))
    with pytest.raises(ImageError, match="truncated JPEG"):
        decode_image(jpeg[: len(jpeg) // 2] + bytes(5000), "cut.jpg")


def test_pipes_devices_and_huge_files_are_refused_before_reading(tmp_path, monkeypatch):
    """A FIFO would block a reader forever and /dev/zero never ends: refused from the file's type (issue 26 item 11);
    a file larger than any image within the pixel budget is refused from its size, not read whole."""
    import os

    from mien.pipeline.images import read_image_bytes

    fifo = tmp_path / "stuck.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="stuck.jpg: not a regular file"):
        load_image(fifo)
    with pytest.raises(ImageError, match="/dev/zero: not a regular file"):
        read_image_bytes("/dev/zero")
    monkeypatch.setenv("MIEN_MAX_IMAGE_PIXELS", "1000")  # 8 kB + 1 MiB of file at most
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\0" * (2 << 20))
    with pytest.raises(ImageError, match="big.jpg: 2 MB is larger than any image"):
        load_image(big)


def test_a_folder_scan_names_what_it_cannot_list_and_keeps_the_rest(tmp_path, caplog):
    """Folders nested past the OS path limit, dangling links and FIFOs are skipped with a warning naming each
    (issue 26 item 7), and the photos beside them are still found."""
    import os

    (tmp_path / "ok.jpg").write_bytes(b"x")
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    os.mkfifo(tmp_path / "pipe.png")
    deep = tmp_path
    fd = os.open(tmp_path, os.O_RDONLY)
    try:  # build a chain longer than PATH_MAX (4096) through relative mkdir calls
        for _ in range(30):
            name = "d" * 200
            os.mkdir(name, dir_fd=fd)
            new = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = new
            deep = deep / name
    finally:
        os.close(fd)
    with caplog.at_level("WARNING"):
        images = list_images(tmp_path)
    assert [p.name for p in images] == ["ok.jpg"]
    text = caplog.text
    assert "gone.jpg: a link to a missing file; skipped" in text
    assert "pipe.png: not a regular file" in text
    assert "folder cannot be listed (File name too long)" in text


def test_a_gif_is_read_as_its_first_frame(tmp_path):
    """OpenCV 5 decodes GIF: such a photo is recognized instead of skipped (issue 26, low items)."""
    from PIL import Image

    frames = [Image.new("RGB", (30, 20), c) for c in ((200, 10, 10), (10, 200, 10))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert [p.name for p in list_images(tmp_path)] == ["anim.gif"]
    rgb = load_image(tmp_path / "anim.gif")
    assert rgb.shape == (20, 30, 3) and rgb[0, 0, 0] > 150 and rgb[0, 0, 1] < 60


def serve_locally(handler: type) -> tuple["http.server.ThreadingHTTPServer", str]:
    """A throwaway HTTP server on 127.0.0.1 in a daemon thread (shut it down when done) and its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_a_photo_on_the_web_is_downloaded_within_the_limits_and_errors_name_the_url(monkeypatch):
    """http(s) URLs (as deepface takes them): the photo is read like a file; a web page, a 404, a refused
    connection and an answer larger than any image (it never ends) each give an ImageError naming the URL."""
    import http.server
    import threading

    from mien.pipeline import images

    photo = _jpeg(np.full((40, 60, 3), 200, np.uint8))

    class Site(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path == "/missing.jpg":
                return self.send_error(404)
            kind, body = {"/photo.jpg": ("image/jpeg", photo), "/page": ("text/html", b"<html></html>")}.get(
                self.path, ("application/octet-stream", None))
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.end_headers()
            if body is not None:
                self.wfile.write(body)
                return
            try:
                while True:  # an endless download
                    self.wfile.write(b"\0" * 65536)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server, base = serve_locally(Site)
    try:
        assert load_image(base + "/photo.jpg").shape == (40, 60, 3)
        with pytest.raises(ImageError, match=r"/page: is a web page \(text/html\)"):
            load_image(base + "/page")
        with pytest.raises(ImageError, match=r"/missing.jpg: the server answered HTTP 404"):
            load_image(base + "/missing.jpg")
        monkeypatch.setattr(images, "max_file_bytes", lambda: 1 << 20)
        with pytest.raises(images.ImageTooLargeError, match=r"/endless: more than 1 MB"):
            load_image(base + "/endless")
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(ImageError, match=r"cannot be downloaded"):
        load_image(base + "/photo.jpg")  # the server is gone: connection refused


def test_a_slow_endless_or_misdirected_url_is_cut_off_with_an_error_naming_it(monkeypatch):
    """Issue 33 item 11 and low items: a server dripping its headers or its body a byte at a time is cut off by the
    overall deadline (each read alone is quick); an endless body stops at the download limit and a Content-Length
    over it is refused before the body; a redirect to ftp:// is refused; a photo sent without a Content-Type is
    read (urllib calls it text/plain)."""
    import http.server
    import threading
    import time

    from mien.pipeline import images

    photo = _jpeg(np.full((40, 60, 3), 200, np.uint8))

    class Site(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def drip(self, data: bytes) -> None:
            for byte in data[:40]:  # at most ~8 s, then the server gives up by itself
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.2)

        def do_GET(self):  # noqa: N802
            try:
                if self.path == "/drip-body":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.end_headers()
                    self.drip(photo)
                elif self.path == "/drip-head":
                    self.wfile.write(b"HTTP/1.0 200 OK\r\n")
                    self.drip(b"X-Slow: " + b"a" * 100)
                elif self.path == "/untyped.jpg":
                    self.wfile.write(b"HTTP/1.0 200 OK\r\n\r\n" + photo)
                elif self.path == "/to-ftp":
                    self.send_response(302)
                    self.send_header("Location", "ftp://127.0.0.1/photo.jpg")
                    self.end_headers()
                elif self.path == "/huge":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(10 * 2**30))
                    self.end_headers()
                    time.sleep(3)  # the body would never come: refused from the header
                elif self.path == "/endless":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.end_headers()
                    for _ in range(256):  # 16 MB at most
                        self.wfile.write(b"\0" * 65536)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server, base = serve_locally(Site)
    monkeypatch.setattr(images, "URL_DEADLINE_S", 1.5)
    monkeypatch.setattr(images, "URL_MAX_BYTES", 2 * 2**20)
    try:
        for path in ("/drip-body", "/drip-head"):
            began = time.monotonic()
            with pytest.raises(ImageError, match=rf"{path}: not downloaded within 2 s .*download it and give the file"):
                load_image(base + path)
            assert time.monotonic() - began < 4
        assert load_image(base + "/untyped.jpg").shape == (40, 60, 3)
        with pytest.raises(ImageError, match=r"/to-ftp: the server redirects to ftp://127.0.0.1/photo.jpg, not an "
                                             r"http\(s\) address"):
            load_image(base + "/to-ftp")
        began = time.monotonic()
        for path in ("/huge", "/endless"):
            with pytest.raises(ImageError, match=rf"{path}: more than 2 MB, more than mien downloads for one photo"):
                load_image(base + path)
        assert time.monotonic() - began < 1.5  # /huge: from its Content-Length, before the body
    finally:
        server.shutdown()
        server.server_close()
