"""``mien video --show``: a live preview of the annotated frames in a browser, as an MJPEG stream served on this
machine only (``http://127.0.0.1:PORT/``). mien installs the headless OpenCV, which has no windows; a browser tab
works on any desktop, in a container and through an SSH tunnel (``ssh -L PORT:127.0.0.1:PORT host``)."""
from __future__ import annotations

import http.server
import socketserver
import threading

import cv2
import numpy as np

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>mien video</title>
<style>body{margin:0;background:#111;display:flex;justify-content:center;align-items:center;height:100vh}
img{max-width:100vw;max-height:100vh}</style></head>
<body><img src="/frames.mjpg" alt="the annotated video, live"></body></html>"""
JPEG_QUALITY = 80


class Preview:
    """A local HTTP server showing the latest published frame; frames are JPEG-encoded only while someone watches."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1"):
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self._closed = False
        self.viewers = 0
        self.encoded = 0  # frames encoded for viewers (none while nobody watches)
        self._server = socketserver.ThreadingTCPServer((host, port), _handler(self), bind_and_activate=False)
        self._server.daemon_threads = True
        self._server.allow_reuse_address = True
        try:
            self._server.server_bind()
            self._server.server_activate()
        except OSError:
            self._server.server_close()
            raise
        self.url = f"http://{host}:{self._server.server_address[1]}/"
        threading.Thread(target=self._server.serve_forever, name="mien-preview", daemon=True).start()

    def publish(self, frame_bgr: np.ndarray) -> None:
        """Show this frame next (dropped at once when nobody watches)."""
        if not self.viewers:
            return
        ok, buf = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if ok:
            with self._cond:
                self._jpeg, self._seq = buf.tobytes(), self._seq + 1
                self.encoded += 1
                self._cond.notify_all()

    def next_frame(self, seen: int, timeout: float = 1.0) -> tuple[bytes | None, int]:
        """The first frame newer than ``seen`` (waiting up to ``timeout``), or (None, seen) when closed or none came."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._seq > seen, timeout=timeout)
            if self._closed or self._seq <= seen:
                return None, seen
            return self._jpeg, self._seq

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "Preview":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _handler(preview: Preview):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path == "/":
                body = PAGE.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path == "/frames.mjpg":
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                with preview._cond:
                    preview.viewers += 1
                seen = 0
                try:
                    while not preview.closed:
                        jpeg, seen = preview.next_frame(seen)
                        if jpeg is not None:
                            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                             + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the tab was closed
                finally:
                    with preview._cond:
                        preview.viewers -= 1
            else:
                self.send_error(404)

        def log_message(self, *args) -> None:  # no access log on the terminal
            pass

    return Handler
