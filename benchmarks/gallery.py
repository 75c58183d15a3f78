"""The gallery at scale: synthetic galleries of 10k / 100k / 1M embeddings with the 5 real demo people mixed in.

    python benchmarks/gallery.py [--sizes 10000 100000 1000000] [--json FILE]

Per size, through the product's own code (SQLite gallery + matcher): bulk enroll (one transaction), file size,
snapshot load, matcher build (exact below identity.knn.EXACT_BELOW, else the HNSW index), search latency for one
face (p50/p95) and a batch of 32, recall@1 of the matcher's nearest face against exact search, adding one person
(5 photos: gallery transaction + incremental index update) and forgetting one, resident memory, and whether the
demo's 25 held-out photos still get the right names (with 5 real people among thousands of synthetic ones).
Also the SVM's refit time by gallery size (why `auto` switches to kNN). Goals: at 1M, one face <= 5 ms,
adding a person <= 1 s, recall@1 >= 0.99. Runs in a temporary MIEN_HOME.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

PER_ID = 5
MODEL = "bench"


def rss_mb() -> float:
    """Current resident memory of this process."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def synthetic(n: int, seed: int = 0, dim: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors, PER_ID per identity around random centres (same-person distance ~0.6-0.9, like FaceNet)."""
    rng = np.random.default_rng(seed)
    ids = n // PER_ID
    centres = rng.normal(size=(ids, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.repeat(centres, PER_ID, axis=0) + rng.normal(scale=0.055, size=(ids * PER_ID, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, np.repeat(np.arange(ids), PER_ID)


def synthetic_people(n: int, demo: dict | None) -> tuple[np.ndarray, np.ndarray, dict[str, list]]:
    """``synthetic(n)`` as people to enroll (``id0000042``: its faces), with the real demo people mixed in."""
    from mien.identity.gallery import NewFace

    x, ident = synthetic(n)
    people: dict[str, list] = {}
    for i, (v, p) in enumerate(zip(x, ident)):
        people.setdefault(f"id{p:07d}", []).append(NewFace(f"h{i}", v, f"/synthetic/{i}.jpg"))
    if demo:
        for i, (v, name) in enumerate(zip(*demo["train"])):
            people.setdefault(name, []).append(NewFace(f"demo{i}", v, f"/demo/{i}.jpg"))
    return x, ident, people


def demo_embeddings() -> dict:
    """Embeddings of the demo train and val photos (real FaceNet, in a throwaway MIEN_HOME)."""
    from workspace import demo_workspace

    _, train, val = demo_workspace("mien-bench-gallery-")
    from mien.pipeline import Recognizer
    from mien.pipeline.enroll import embed_folder

    rec = Recognizer(emotion=False, identity=False)
    t, v = embed_folder(train, rec), embed_folder(val, rec)
    return {"train": (t.vectors, t.labels), "val": (v.vectors, v.labels)}


def timed(fn, *a, **k):
    t = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t


def print_table(rows: list[dict], keys: list[str]) -> None:
    """The rows as a Markdown table of these columns ('-' where a row has no value)."""
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r.get(k, "-")) for k in keys) + " |")


def svm_refit_seconds(sizes: list[int]) -> dict:
    """Seconds to fit the calibrated linear SVM on galleries of these many embeddings (5 per person)."""
    from mien.identity.classifier import IdentityClassifier

    out = {}
    for n in sizes:
        x, y = synthetic(n, seed=3)
        _, s = timed(IdentityClassifier, x, [f"p{i}" for i in y], MODEL)
        out[n] = round(s, 3)
    return out


def add_and_forget_a_person(gallery, matcher) -> dict:
    """Seconds to add a person of 5 photos (gallery transaction + incremental matcher update), then forget them."""
    from mien.identity.gallery import NewFace

    newcomer = [NewFace(f"new{i}", v, f"/new/{i}.jpg") for i, v in enumerate(synthetic(5, seed=99)[0])]
    out = {}
    gen = gallery.generation()
    t = time.perf_counter()
    gallery.add_faces("newcomer", newcomer, MODEL)
    matcher.update(gallery.changes_since(gen))
    out["add_person_s"] = round(time.perf_counter() - t, 3)
    assert matcher.predict(newcomer[0].embedding[None])[0].name == "newcomer"
    gen = gallery.generation()
    t = time.perf_counter()
    gallery.forget("newcomer")
    matcher.update(gallery.changes_since(gen))
    out["forget_person_s"] = round(time.perf_counter() - t, 3)
    assert matcher.predict(newcomer[0].embedding[None])[0].candidate != "newcomer"
    return out


def one_size(n: int, demo: dict | None, work: Path) -> dict:
    from mien.identity.gallery import open_gallery
    from mien.identity.knn import ExactIndex
    from mien.identity.matchers import build_matcher

    r: dict = {"embeddings": n}
    x, ident, people = synthetic_people(n, demo)
    path = work / f"gallery_{n}.sqlite3"
    gallery = open_gallery(path)
    _, r["enroll_s"] = timed(gallery.sync_folder, people, MODEL)
    del people
    r["file_mb"] = round(path.stat().st_size / 2**20, 1)
    rss0 = rss_mb()
    snap, r["snapshot_load_s"] = timed(gallery.snapshot)
    matcher, r["matcher_build_s"] = timed(build_matcher, snap, MODEL, "knn")
    r["index"] = type(matcher.index).__name__
    r["rss_mb_matcher"] = round(rss_mb() - rss0, 1)

    rng = np.random.default_rng(7)
    pick = rng.choice(len(x), 200, replace=False)  # another photo of an enrolled person: near its cluster
    queries = x[pick] + rng.normal(scale=0.055, size=(200, x.shape[1])).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    lat = []
    for q in queries:
        t = time.perf_counter()
        matcher.predict(q[None])
        lat.append((time.perf_counter() - t) * 1000)
    r["one_face_ms_p50"], r["one_face_ms_p95"] = (round(float(np.percentile(lat, p)), 3) for p in (50, 95))
    batch = []
    for i in range(0, 192, 32):
        t = time.perf_counter()
        matcher.predict(queries[i:i + 32])
        batch.append((time.perf_counter() - t) * 1000)
    r["batch32_ms_p50"] = round(float(np.median(batch)), 2)

    exact = ExactIndex(snap.vectors.shape[1])
    exact.add(snap.face_ids, snap.vectors)
    (truth, _), r["exact_one_face_ms"] = exact.search(queries[:1], 1), 0.0
    t = time.perf_counter()
    for q in queries[:50]:
        exact.search(q[None], 1)
    r["exact_one_face_ms"] = round((time.perf_counter() - t) / 50 * 1000, 3)
    truth, _ = exact.search(queries, 1)
    found, _ = matcher.index.search(queries, 1)
    r["recall_at_1"] = float(np.mean(found[:, 0] == truth[:, 0]))
    del exact

    r.update(add_and_forget_a_person(gallery, matcher))
    if demo:
        vectors, labels = demo["val"]
        names = [m.name for m in matcher.predict(vectors)]
        r["demo_val_named_correctly"] = f"{sum(a == b for a, b in zip(names, labels))}/{len(labels)}"
    gallery.close()
    path.unlink()
    return r


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--svm-sizes", type=int, nargs="+", default=[100, 500, 2000, 5000])
    ap.add_argument("--no-demo", action="store_true", help="synthetic only (no FaceNet)")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)
    demo = None if args.no_demo else demo_embeddings()
    work = Path(tempfile.mkdtemp(prefix="mien-bench-gallery-"))
    out = {"cpus": os.cpu_count(), "svm_refit_s": svm_refit_seconds(args.svm_sizes), "sizes": []}
    print("SVM refit seconds by gallery size:", out["svm_refit_s"], flush=True)
    for n in args.sizes:
        r = one_size(n, demo, work)
        out["sizes"].append(r)
        print(json.dumps(r), flush=True)
        r["one_face_vs_exact"] = round(r["one_face_ms_p50"] / max(r["exact_one_face_ms"], 1e-9), 3)
    keys = ["embeddings", "index", "enroll_s", "file_mb", "snapshot_load_s", "matcher_build_s", "rss_mb_matcher",
            "one_face_ms_p50", "one_face_ms_p95", "batch32_ms_p50", "exact_one_face_ms", "one_face_vs_exact",
            "recall_at_1", "add_person_s", "forget_person_s", "demo_val_named_correctly"]
    print_table(out["sizes"], keys)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
