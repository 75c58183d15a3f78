"""REST API throughput and latency, and video frames/s, on the 5-person demo photos.

    python benchmarks/serve.py [--clients 8] [--seconds 30] [--rounds 5] [--json FILE]

Starts `mien serve` (its own process, as deployed) on a free local port, lets N concurrent clients post
the held-out demo photos for a bounded time and reports requests/s, p50/p95 latency, errors and the batch
sizes the server formed; checks that every answer names the same people with the same boxes as
`mien recognize --json` on those photos, and compares the throughput with the CLI's batched recognition
of the same photos in this run, the two taking turns (goal >= 0.95x, issue 36). Before that, a freshly
loaded and warmed-up server's first request is timed against steady-state single requests (goal <= 2x).
Then measures `mien video` frames/s on a 640x480 clip built from the photos, detecting every frame vs
every 5th frame. Runs in a temporary MIEN_HOME: a user's enrolled people are never touched.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


def faces_key(record: dict) -> list[tuple]:
    """What must agree between the API and the CLI: per face, its box and who it is."""
    return [(tuple(f["bbox"]), f["identity"]["name"] if f["identity"] else None,
             f["emotion"]["label"] if f["emotion"] else None) for f in record["faces"]]


def post_photo(conn, path: Path) -> tuple[int, bytes]:
    """POST one photo to /recognize as multipart/form-data over a kept-alive http.client connection."""
    boundary = "mienbenchboundary7d1f"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    conn.request("POST", "/recognize", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    resp = conn.getresponse()
    return resp.status, resp.read()


def make_clip(path: Path, val: Path, fps: int = 10) -> Path:
    """640x480: 20 frames of one person drifting, then 20 of another (as tests/test_video.py builds)."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    for person in ("ben_afflek", "madonna"):
        face = cv2.resize(cv2.imread(str(sorted((val / person).iterdir())[0])), (280, 420))
        for i in range(20):
            frame = np.full((480, 640, 3), 110, np.uint8)
            frame[30 + i:450 + i, 100 + 3 * i:380 + 3 * i] = face
            writer.write(frame)
    writer.release()
    return path


def load_clients(url: str, photos: list[Path], clients: int, seconds: float) -> dict:
    """N threads posting the photos round-robin until the time is up; latencies, errors, answers per photo."""
    from http.client import HTTPConnection
    from urllib.parse import urlsplit

    host, port = urlsplit(url).hostname, urlsplit(url).port
    latencies, errors, answers = [], [], {}
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    counter = iter(range(10**9))  # a shared round-robin over the photos, so every photo gets checked

    def client(k: int) -> None:
        conn = HTTPConnection(host, port, timeout=120)
        while time.monotonic() < stop:
            with lock:
                p = photos[next(counter) % len(photos)]
            t = time.perf_counter()
            try:
                status, body = post_photo(conn, p)
                dt = time.perf_counter() - t
                with lock:
                    if status != 200:
                        errors.append(f"{p.name}: HTTP {status} {body[:200]!r}")
                    else:
                        latencies.append(dt)
                        answers.setdefault(str(p), set()).add(tuple(faces_key(json.loads(body))))
            except Exception as exc:  # noqa: BLE001 - counted as an error
                conn.close()
                conn = HTTPConnection(host, port, timeout=120)
                with lock:
                    errors.append(f"{p.name}: {exc!r}")
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"clients": clients, "seconds": wall, "requests": len(latencies), "errors": errors,
            "requests_per_s": len(latencies) / wall, "p50_ms": 1000 * percentile(latencies, 50),
            "p95_ms": 1000 * percentile(latencies, 95), "answers": answers}


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux /proc), or by this process (all threads)."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0, help="the clients' time in all (split over the rounds)")
    ap.add_argument("--rounds", type=int, default=5, help="turns of the CLI and the server (ratio: their median)")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)

    from workspace import demo_workspace

    work, train, val = demo_workspace("mien-bench-serve-")

    import numpy as np

    from mien.pipeline import Recognizer
    from mien.pipeline.enroll import enroll_folder
    from mien.pipeline.app.server import BackgroundServer, ServerConfig, create_app
    from mien.pipeline.app.video import process_video

    r: dict = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()}}
    # as a user's machine after `mien models fetch`: the default precision runs what it ships (FaceNet in INT8)
    subprocess.run([sys.executable, "-m", "mien", "models", "fetch"], check=True, capture_output=True,
                   env=dict(os.environ))
    rec = Recognizer()
    r["precision"] = rec.precision
    enroll_folder(train, rec)
    rec.reload_classifier()
    photos = sorted(val.rglob("*.jpg"))

    # ---- the CLI's answers for the same photos ------------------------------------------------
    cli_json = work / "cli.json"
    subprocess.run([sys.executable, "-m", "mien", "recognize", str(val), "--json", str(cli_json)],
                   check=True, capture_output=True, env=dict(os.environ))
    cli = {i["file"]: tuple(faces_key(i)) for i in json.loads(cli_json.read_text())["images"]}

    # ---- the CLI's batched throughput on the same photos (decode + recognize, chunks of 16) ------------
    def cli_images_per_s() -> float:
        t = time.perf_counter()
        for _ in range(3):
            list(rec.recognize_paths(photos))
        return 3 * len(photos) / (time.perf_counter() - t)

    list(rec.recognize_paths(photos[:4]))  # warm-up

    # ---- first request after a fresh server is ready vs steady state ---------------------------------
    from http.client import HTTPConnection
    from urllib.parse import urlsplit

    fresh = Recognizer()
    fresh.warm_up()  # as `mien serve` does before it says it is serving
    with BackgroundServer(create_app(fresh, ServerConfig(read_only=True, db_path=work / "first.db"))) as url:
        conn = HTTPConnection(urlsplit(url).hostname, urlsplit(url).port, timeout=120)
        t = time.perf_counter()
        post_photo(conn, photos[0])
        first = time.perf_counter() - t
        steady = []
        for p in photos[1:11]:
            t = time.perf_counter()
            post_photo(conn, p)
            steady.append(time.perf_counter() - t)
    r["first_request"] = {"first_ms": 1000 * first, "steady_p50_ms": 1000 * percentile(steady, 50),
                          "ratio": first / percentile(steady, 50), "goal_ratio": 2.0}
    del fresh

    # ---- API under load: `mien serve` in its own process, as deployed ---------------------------------
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db_path = work / "bench.db"
    server = subprocess.Popen([sys.executable, "-m", "mien", "serve", "--read-only", "--port", str(port),
                               "--db", str(db_path)], env=dict(os.environ), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"mien serve did not start: {server.stdout.read() if server.poll() else ''}")
                time.sleep(0.2)
        # this machine's speed drifts by several % within a minute: the CLI and the server take turns, and the
        # ratio is the median of the rounds' ratios (each round: the CLI's 3 passes, then the clients' share)
        load_clients(url, photos, args.clients, 2)  # warm-up: every batch size the clients make
        rounds, cpu = [], {"cli": 0.0, "server": 0.0, "clients": 0.0}
        for _ in range(args.rounds):
            c0 = cpu_seconds()
            cli_rate = cli_images_per_s()
            c1, s1 = cpu_seconds(), cpu_seconds(server.pid)
            rounds.append((cli_rate, load_clients(url, photos, args.clients, args.seconds / args.rounds)))
            cpu["cli"] += c1 - c0
            cpu["server"] += cpu_seconds(server.pid) - s1
            cpu["clients"] += cpu_seconds() - c1
        load = {"clients": args.clients, "seconds": sum(x["seconds"] for _, x in rounds),
                "requests": sum(x["requests"] for _, x in rounds), "errors": [e for _, x in rounds for e in x["errors"]],
                "answers": {}}
        for _, x in rounds:
            for photo, seen in x["answers"].items():
                load["answers"].setdefault(photo, set()).update(seen)
        load["requests_per_s"] = load["requests"] / load["seconds"]
        load["p50_ms"] = float(np.median([x["p50_ms"] for _, x in rounds]))
        load["p95_ms"] = float(np.median([x["p95_ms"] for _, x in rounds]))
        load["round_ratios"] = [x["requests_per_s"] / c for c, x in rounds]
        r["cli_batched_images_per_s"] = float(np.median([c for c, _ in rounds]))
        # where the CPU went: the CLI's per photo, the server's and the clients' (this process's threads) per request
        load["cpu_ms"] = {"cli_per_photo": 1000 * cpu["cli"] / (3 * len(photos) * args.rounds),
                          "server_per_request": 1000 * cpu["server"] / load["requests"],
                          "clients_per_request": 1000 * cpu["clients"] / load["requests"]}
        health = json.loads(urllib.request.urlopen(url + "/health", timeout=30).read())
    finally:
        server.terminate()
        server.wait(60)
    answers = load.pop("answers")
    mismatches = [p for p, got in answers.items() if got != {cli[p]}]
    load["photos_checked_against_cli"] = len(answers)
    load["mismatches_vs_cli"] = mismatches
    from mien.pipeline.history import ResultsDB

    with ResultsDB(db_path) as db:
        load["stored_in_db"] = len(db.query())
    load["mean_batch"] = health["batching"]["recent_mean_batch"]
    load["ratio_vs_cli_batched"] = float(np.median(load["round_ratios"]))
    r["serve"] = load

    # ---- video frames/s on a 640x480 clip ------------------------------------------------------
    clip = make_clip(work / "clip.avi", val)
    r["video"] = {}
    for every in (1, 5):
        res = process_video(clip, rec, every=every)
        r["video"][f"every_{every}"] = {"frames": res.frames, "detected_frames": res.detected_frames,
                                        "frames_per_s": res.processing_fps,
                                        "tracks": [t["identity"] for t in res.summary["tracks"]]}
    shutil.rmtree(work, ignore_errors=True)

    f = r["first_request"]
    print(f"fresh server, first request after ready: {f['first_ms']:.0f} ms vs steady single requests "
          f"{f['steady_p50_ms']:.0f} ms p50 = {f['ratio']:.2f}x (goal <= 2)")
    s = r["serve"]
    print(f"precision: {r['precision']}")
    print(f"CLI batched: {r['cli_batched_images_per_s']:.2f} images/s; API {s['requests_per_s']:.2f} req/s = "
          f"{s['ratio_vs_cli_batched']:.2f}x, the median of {len(s['round_ratios'])} alternating rounds "
          f"({', '.join(f'{x:.2f}' for x in s['round_ratios'])}; goal >= 0.95), mean batch {s['mean_batch']:.1f} images")
    print(f"API: {s['clients']} clients for {s['seconds']:.0f}s: {s['requests']} requests, {s['requests_per_s']:.2f} req/s, "
          f"p50 {s['p50_ms']:.0f} ms, p95 {s['p95_ms']:.0f} ms, {len(s['errors'])} errors, "
          f"{len(s['mismatches_vs_cli'])} of {s['photos_checked_against_cli']} photos differ from the CLI, "
          f"{s['stored_in_db']} stored in the results database")
    c = s["cpu_ms"]
    print(f"CPU ms: the CLI {c['cli_per_photo']:.1f} per photo; the server {c['server_per_request']:.1f} and the "
          f"benchmark's clients {c['clients_per_request']:.1f} per request (all on the same cores)")
    for e in s["errors"][:5]:
        print(f"  error: {e}")
    for k, v in r["video"].items():
        print(f"video 640x480, detect {k.replace('_', ' ')}: {v['frames_per_s']:.2f} frames/s "
              f"({v['detected_frames']} of {v['frames']} frames detected), tracks {v['tracks']}")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
    return r


if __name__ == "__main__":
    main()
