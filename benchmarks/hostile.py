"""Hostile load on a real `mien serve`: clients, an enroll/forget loop, SIGKILL mid-load, restart, and bombs.

    python benchmarks/hostile.py [--seconds 60] [--clients 16] [--json FILE]

1. Starts `mien serve` (its own process, a throwaway MIEN_HOME with the demo people enrolled) and measures its
   idle RSS. 2. `--clients` threads post the demo's held-out photos to /recognize while one thread enrolls and
   forgets a person in a loop, for `--seconds`; the server is SIGKILLed halfway and restarted. Reported:
   requests, errors by kind, recognitions acknowledged (200) but missing from the results database (rows lost),
   database integrity, whether the gallery holds a half-enrolled person. 3. Decompression bombs (PNG headers of
   30000x30000 and 20000x20000 pixels, ~2 MB each, three at once) and 1 KB RLE8 BMPs claiming 20000x20000 with
   info headers Pillow refuses (41, 44, 60, 100 bytes; two at once): answers and the server's peak RSS against its
   idle RSS (goal: <= 1.5x). 4. Slow bodies: `--slow` connections announce a 1 MB upload and trickle a byte every
   2 s; reported: how long until the server cut each off (goal: <= 30 s) and whether a normal request meanwhile
   was answered. 5. The gallery file deleted under the running server: an enrollment must get 503 (not a 200
   that vanishes at the next start), /health must say degraded, and recognition must go on.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
TOKEN = "hostile-benchmark-token"


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


def png_bomb(width: int, height: int) -> bytes:
    """A valid grayscale PNG of width x height zero pixels, a few MB on disk, built without allocating it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    body = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


class Server:
    """`mien serve` as a child process."""

    def __init__(self, home: Path, db: Path, port: int):
        self.home, self.db, self.port = home, db, port
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        env = {**os.environ, "MIEN_HOME": str(self.home), "MIEN_API_TOKEN": TOKEN}
        t = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "mien", "serve", "--port", str(self.port),
                                      "--db", str(self.db)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        import httpx

        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return time.monotonic() - t
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stderr.read().decode()[-2000:])
            time.sleep(0.2)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_phase(server: Server, val: list[Path], train: list[Path], seconds: float, clients: int) -> dict:
    import httpx

    url = f"http://127.0.0.1:{server.port}"
    stop = threading.Event()
    lock = threading.Lock()
    stats = {"requests": 0, "ok": 0, "errors": {}, "acknowledged_ids": [], "enroll_cycles": 0}

    def count_error(kind: str) -> None:
        with lock:
            stats["errors"][kind] = stats["errors"].get(kind, 0) + 1

    def client(i: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            k = i
            while not stop.is_set():
                photo = val[k % len(val)]
                k += 1
                try:
                    r = http.post("/recognize", files={"file": (photo.name, photo.read_bytes(), "image/jpeg")})
                except httpx.HTTPError as exc:  # the server was killed under us: expected once
                    count_error(type(exc).__name__)
                    time.sleep(0.5)
                    continue
                with lock:
                    stats["requests"] += 1
                    if r.status_code == 200:
                        stats["ok"] += 1
                        stats["acknowledged_ids"].append(r.json()["id"])
                if r.status_code != 200:
                    count_error(f"http {r.status_code}")

    def enroll_loop() -> None:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=url, timeout=300, headers=auth) as http:
            while not stop.is_set():
                try:
                    files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in train[:3]]
                    r1 = http.post("/people/visitor/photos", files=files)
                    r2 = http.delete("/people/visitor")
                    if r1.status_code == 200 and r2.status_code == 200:
                        with lock:
                            stats["enroll_cycles"] += 1
                    else:
                        count_error(f"enroll {r1.status_code}/{r2.status_code}")
                except httpx.HTTPError as exc:
                    count_error("enroll " + type(exc).__name__)
                    time.sleep(0.5)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    threads.append(threading.Thread(target=enroll_loop))
    peak = [0.0]

    def sample() -> None:
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], rss_mb(server.proc.pid))
            except (OSError, StopIteration):
                pass
            time.sleep(0.2)

    threads.append(threading.Thread(target=sample))
    for t in threads:
        t.start()
    time.sleep(seconds / 2)
    server.kill()  # mid-load, mid-enrollment
    stats["killed_at_s"] = round(seconds / 2, 1)
    stats["restart_s"] = round(server.start(), 1)
    time.sleep(seconds / 2)
    stop.set()
    for t in threads:
        t.join(300)
    stats["peak_rss_mb"] = round(peak[0], 1)
    return stats


def bmp_bomb(width: int, height: int, info_size: int) -> bytes:
    """A ~1 KB RLE8 BMP claiming width x height, its info header ``info_size`` bytes (OpenCV decodes any of 36
    or more; Pillow refuses 41, 44, 60, 100)."""
    info = struct.pack("<IiiHHIIiiII", info_size, width, height, 1, 8, 1, 2, 2835, 2835, 256, 0)
    info += bytes(info_size - len(info))
    offset = 14 + len(info) + 1024
    return b"BM" + struct.pack("<IHHI", offset + 2, 0, 0, offset) + info + bytes(1024) + b"\x00\x01"


def bomb_phase(server: Server) -> dict:
    import httpx

    url = f"http://127.0.0.1:{server.port}"
    bombs = [("bomb30k.png", png_bomb(30000, 30000)), ("bomb20k_a.png", png_bomb(20000, 20000)),
             ("bomb20k_b.png", png_bomb(20000, 20000))]
    bombs += [(f"bomb20k_h{size}.bmp", bmp_bomb(20000, 20000, size)) for size in (41, 44, 60, 100, 41)]
    idle = rss_mb(server.proc.pid)
    answers, peak, done = [], [idle], threading.Event()

    def post(name: str, data: bytes) -> None:
        kind = "image/bmp" if name.endswith(".bmp") else "image/png"
        r = httpx.post(f"{url}/recognize", files={"file": (name, data, kind)}, timeout=300)
        answers.append((name, len(data), r.status_code, r.json().get("detail", "")[:120]))

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb(server.proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    posts = [threading.Thread(target=post, args=b) for b in bombs]
    for t in posts:
        t.start()
    for t in posts:
        t.join(300)
    done.set()
    sampler.join()
    return {"idle_rss_mb": round(idle, 1), "peak_rss_mb": round(peak[0], 1), "ratio": round(peak[0] / idle, 3),
            "goal_ratio": 1.5, "answers": answers}


def slow_body_phase(server: Server, connections: int, photo: Path) -> dict:
    """``connections`` uploads announcing 1 MB and sending a byte every 2 s: seconds until each was cut off, and a
    normal request's answer while they hang on."""
    import httpx

    cut_after: list[float] = []

    def trickle() -> None:
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"POST /recognize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
                      b"boundary=b\r\nContent-Length: 1000000\r\n\r\n--b\r\n")
            while time.monotonic() - start < 90:
                try:
                    s.sendall(b"x")
                    s.settimeout(2.0)
                    if s.recv(4096) == b"":
                        break
                except socket.timeout:
                    continue
                except OSError:
                    break
        cut_after.append(time.monotonic() - start)

    threads = [threading.Thread(target=trickle) for _ in range(connections)]
    for t in threads:
        t.start()
    time.sleep(3)
    t0 = time.monotonic()
    r = httpx.post(f"http://127.0.0.1:{server.port}/recognize", files={"file": (photo.name, photo.read_bytes(),
                                                                                  "image/jpeg")}, timeout=60)
    normal = {"status": r.status_code, "seconds": round(time.monotonic() - t0, 2)}
    for t in threads:
        t.join(120)
    return {"connections": connections, "cut_off_after_s_max": round(max(cut_after), 1),
            "cut_off_after_s_min": round(min(cut_after), 1), "goal_s": 30, "normal_request_meanwhile": normal}


def deleted_gallery_phase(server: Server, photo: Path) -> dict:
    """Delete the gallery file under the running server, then enroll, ask /health and recognize."""
    import httpx

    url = f"http://127.0.0.1:{server.port}"
    gallery = server.home / "identity" / "gallery.sqlite3"
    gallery.rename(gallery.with_name("gallery.sqlite3.moved"))
    files = {"files": (photo.name, photo.read_bytes(), "image/jpeg")}
    enroll = httpx.post(f"{url}/people/Latecomer/photos", files=files,
                        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    health = httpx.get(f"{url}/health", timeout=10).json()
    recognize = httpx.post(f"{url}/recognize", files={"file": (photo.name, photo.read_bytes(), "image/jpeg")},
                           timeout=60)
    gallery.with_name("gallery.sqlite3.moved").rename(gallery)
    return {"enroll_status": enroll.status_code, "enroll_detail": enroll.json().get("detail", "")[:160],
            "health_status": health.get("status"), "recognize_status": recognize.status_code}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--slow", type=int, default=64, help="slow-body connections at once")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)

    from workspace import demo_workspace

    work, train, val = demo_workspace("mien-bench-hostile-")
    home = Path(os.environ["MIEN_HOME"])
    subprocess.run([sys.executable, "-m", "mien", "enroll", str(train)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = work / "results.db"
    server = Server(home, db, free_port())
    out: dict = {"startup_s": round(server.start(), 1)}
    time.sleep(1)
    out["idle_rss_mb"] = round(rss_mb(server.proc.pid), 1)
    val_photos = sorted(p for p in val.rglob("*") if p.is_file())
    train_photos = sorted((train / "madonna").iterdir())
    load = load_phase(server, val_photos, train_photos, args.seconds, args.clients)
    acknowledged = set(load.pop("acknowledged_ids"))
    with sqlite3.connect(db) as conn:
        stored = {r[0] for r in conn.execute("SELECT id FROM recognitions")}
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        partial = conn.execute("SELECT COUNT(*) FROM recognitions r WHERE n_faces != "
                               "(SELECT COUNT(*) FROM faces f WHERE f.recognition_id = r.id)").fetchone()[0]
    with sqlite3.connect(home / "identity" / "gallery.sqlite3") as conn:
        people = dict(conn.execute("SELECT p.name, COUNT(f.id) FROM people p LEFT JOIN faces f ON f.person = p.id "
                                   "GROUP BY p.id"))
    load.update(acknowledged=len(acknowledged), rows_lost=len(acknowledged - stored), db_integrity=integrity,
                partial_records=partial, gallery_after=people,
                half_enrolled=[n for n, k in people.items() if n == "visitor" and k not in (0, 3)])
    out["load"] = load
    out["bombs"] = bomb_phase(server)
    out["slow_bodies"] = slow_body_phase(server, args.slow, val_photos[0])
    out["deleted_gallery"] = deleted_gallery_phase(server, val_photos[0])
    server.stop()
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
