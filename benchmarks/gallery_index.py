"""Nearest-neighbour indexes for large face galleries, with ratios against exact numpy search from the same run.

    python benchmarks/gallery_index.py [--sizes 10000 100000 1000000] [--libraries usearch faiss hnswlib ...]
                                       [--json FILE]

Synthetic FaceNet-like data: 128-d L2-normalised float32, n/5 identities of 5 embeddings each (same-identity
distance ~0.75, different-identity ~1.3). Queries are fresh photos of enrolled people ("known") and of strangers
("unknown"). Per library and size: build time, adding one person (5 vectors), removing one person, single-query
p50/p95 latency (1 thread), a batch of 32 queries, recall@1 against exact search, RSS growth, saved file size and
whether deletion is native. Exact numpy search (dist^2 = 2 - 2 q.x) is timed at each size to see where an index
starts paying off. ``mien`` and ``mien-exact`` benchmark identity.knn's HNSW and exact indexes as the project ships
them (``mien-exact`` keeps BLAS on one thread for a single face).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DIM = 128
PER_ID = 5
LIBRARIES = ("usearch", "faiss", "faiss-ivf", "hnswlib", "mien", "mien-exact")


# ---------------------------------------------------------------------------------------------------------------
# data
def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class Faces:
    """Clustered unit vectors shaped like FaceNet embeddings: identities share a mean direction (different-person
    distance ~1.3 instead of sqrt(2)) and each photo is its identity's centre plus isotropic noise (~0.75 apart)."""

    def __init__(self, seed: int = 0, dim: int = DIM):
        self.rng = np.random.default_rng(seed)
        self.dim = dim
        self.mean = _unit(self.rng.standard_normal((1, dim)))[0]

    def centres(self, n: int) -> np.ndarray:
        r = _unit(self.rng.standard_normal((n, self.dim), dtype=np.float32))
        return _unit(np.sqrt(0.22) * self.mean + np.sqrt(0.78) * r)

    def photos(self, centres: np.ndarray, per: int) -> np.ndarray:
        c = np.repeat(centres, per, axis=0)
        s = self.rng.uniform(0.5, 0.75, size=(len(c), 1)).astype(np.float32)
        return _unit(c + s * self.rng.standard_normal(c.shape, dtype=np.float32) / np.sqrt(self.dim))


# ---------------------------------------------------------------------------------------------------------------
# exact search
def exact_top1(gallery: np.ndarray, queries: np.ndarray, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """(row, squared distance) of each query's nearest gallery row, chunked over the gallery."""
    best = np.full(len(queries), np.inf, np.float32)
    arg = np.full(len(queries), -1, np.int64)
    for s in range(0, len(gallery), chunk):
        d2 = 2.0 - 2.0 * (queries @ gallery[s:s + chunk].T)
        a = d2.argmin(axis=1)
        v = d2[np.arange(len(queries)), a]
        better = v < best
        best[better], arg[better] = v[better], a[better] + s
    return arg, best


def exact_one(gallery: np.ndarray, q: np.ndarray, k: int = 1) -> np.ndarray:
    """The k nearest rows of one query: one matrix-vector product plus argpartition."""
    d2 = 2.0 - 2.0 * (gallery @ q)
    idx = np.argpartition(d2, k - 1)[:k] if k < len(d2) else np.arange(len(d2))
    return idx[np.argsort(d2[idx])]


# ---------------------------------------------------------------------------------------------------------------
# adapters: build / add / remove / search(one query or a batch) / save, all with int64 ids
class Adapter:
    name = ""
    deletes = "yes"
    knob = "ef"
    knobs: tuple[int, ...] = (16, 32, 64, 128, 256)

    def build(self, ids: np.ndarray, x: np.ndarray, threads: int) -> None: ...
    def add(self, ids: np.ndarray, x: np.ndarray) -> None: ...
    def remove(self, ids: np.ndarray) -> None: ...
    def search(self, q: np.ndarray, k: int) -> np.ndarray: ...  # (m, k) ids
    def set_knob(self, v: int) -> None: ...
    def save(self, path: str) -> None: ...
    def threads(self, n: int) -> None: ...


class USearch(Adapter):
    name = "usearch"

    def __init__(self, m: int, efc: int):
        from usearch.index import Index

        # dtype f32 explicitly: the default picks bf16/f16 on CPUs that have it (different results per machine)
        self.ix = Index(ndim=DIM, metric="l2sq", dtype="f32", connectivity=m, expansion_add=efc)
        self.nt = 1

    def build(self, ids, x, threads):
        self.ix.add(ids, x, threads=threads)

    def add(self, ids, x):
        self.ix.add(ids, x, threads=1)

    def remove(self, ids):
        self.ix.remove(ids)

    def search(self, q, k):
        return np.asarray(self.ix.search(q, k, threads=self.nt).keys, dtype=np.int64).reshape(len(q), k)

    def set_knob(self, v):
        self.ix.expansion_search = v

    def threads(self, n):
        self.nt = n

    def save(self, path):
        self.ix.save(path)


class FaissHNSW(Adapter):
    name = "faiss"
    deletes = "no (HNSW)"

    def __init__(self, m: int, efc: int):
        import faiss

        self.faiss = faiss
        base = faiss.IndexHNSWFlat(DIM, m)
        base.hnsw.efConstruction = efc
        self.ix = faiss.IndexIDMap2(base)
        self.base = base

    def build(self, ids, x, threads):
        self.faiss.omp_set_num_threads(threads)
        self.ix.add_with_ids(x, ids)
        self.faiss.omp_set_num_threads(1)

    def add(self, ids, x):
        self.ix.add_with_ids(x, ids)

    def remove(self, ids):
        self.ix.remove_ids(ids)  # raises: HNSW cannot delete

    def search(self, q, k):
        return self.ix.search(q, k)[1]

    def set_knob(self, v):
        self.base.hnsw.efSearch = v

    def threads(self, n):
        self.faiss.omp_set_num_threads(n)

    def save(self, path):
        self.faiss.write_index(self.ix, path)


class FaissIVF(Adapter):
    name = "faiss-ivf"
    knob = "nprobe"
    knobs = (8, 16, 32, 64, 128, 256)

    def __init__(self, m: int, efc: int):
        import faiss

        self.faiss = faiss

    def build(self, ids, x, threads):
        faiss = self.faiss
        faiss.omp_set_num_threads(threads)
        nlist = max(16, int(4 * np.sqrt(len(x))))
        self.ix = faiss.IndexIVFFlat(faiss.IndexFlatL2(DIM), DIM, nlist)
        sample = x[np.random.default_rng(1).choice(len(x), min(len(x), 64 * nlist), replace=False)]
        self.ix.train(sample)
        self.ix.add_with_ids(x, ids)
        faiss.omp_set_num_threads(1)

    def add(self, ids, x):
        self.ix.add_with_ids(x, ids)

    def remove(self, ids):
        self.ix.remove_ids(self.faiss.IDSelectorBatch(ids))

    def search(self, q, k):
        return self.ix.search(q, k)[1]

    def set_knob(self, v):
        self.ix.nprobe = v

    def threads(self, n):
        self.faiss.omp_set_num_threads(n)

    def save(self, path):
        self.faiss.write_index(self.ix, path)


class HNSWLib(Adapter):
    name = "hnswlib"
    deletes = "yes (mark_deleted)"

    def __init__(self, m: int, efc: int):
        import hnswlib

        self.ix = hnswlib.Index(space="l2", dim=DIM)
        self.m, self.efc = m, efc

    def build(self, ids, x, threads):
        self.ix.init_index(max_elements=len(x) + 1000, M=self.m, ef_construction=self.efc, allow_replace_deleted=True)
        self.ix.add_items(x, ids, num_threads=threads)
        self.ix.set_num_threads(1)

    def add(self, ids, x):
        if self.ix.get_current_count() + len(ids) > self.ix.get_max_elements():
            self.ix.resize_index(2 * self.ix.get_max_elements())
        self.ix.add_items(x, ids, num_threads=1, replace_deleted=True)

    def remove(self, ids):
        for i in ids:
            self.ix.mark_deleted(int(i))

    def search(self, q, k):
        return self.ix.knn_query(q, k)[0].astype(np.int64)

    def set_knob(self, v):
        self.ix.set_ef(v)

    def threads(self, n):
        self.ix.set_num_threads(n)

    def save(self, path):
        self.ix.save_index(path)


class Mien(Adapter):
    """mien.identity.knn's ANN index, as the project ships it."""

    name = "mien"

    def __init__(self, m: int, efc: int):
        from mien.identity import knn

        self.knn = knn
        self.ix = knn.build_index(knn.ANN_KIND, DIM)
        self.knobs = (self.ix.ef,)

    def build(self, ids, x, threads):
        self.ix.add(ids, x)

    def add(self, ids, x):
        self.ix.add(ids, x)

    def remove(self, ids):
        self.ix.remove(ids)

    def search(self, q, k):
        return self.ix.search(q, k)[0]

    def set_knob(self, v):
        self.ix.ef = v

    def save(self, path):
        self.ix.save(path)


class MienExact(Mien):
    """mien.identity.knn's exact index (what galleries under EXACT_BELOW use)."""

    name = "mien-exact"
    knob = "-"

    def __init__(self, m: int, efc: int):
        from mien.identity import knn

        self.ix = knn.build_index("exact", DIM)
        self.knobs = (0,)

    def set_knob(self, v):
        pass


ADAPTERS: dict[str, Callable[[int, int], Adapter]] = {
    "usearch": USearch, "faiss": FaissHNSW, "faiss-ivf": FaissIVF, "hnswlib": HNSWLib, "mien": Mien,
    "mien-exact": MienExact,
}


# ---------------------------------------------------------------------------------------------------------------
# measurement helpers
def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def timed(fn: Callable, *a) -> float:
    t = time.perf_counter()
    fn(*a)
    return time.perf_counter() - t


def latencies_ms(fn: Callable[[np.ndarray], object], queries: np.ndarray, batch: int = 1) -> np.ndarray:
    out = []
    for s in range(0, len(queries) - batch + 1, batch):
        q = queries[s:s + batch]
        t = time.perf_counter()
        fn(q)
        out.append(1000 * (time.perf_counter() - t))
    return np.array(out)


def recall(found: np.ndarray, true_d2: np.ndarray, gallery: np.ndarray, queries: np.ndarray) -> float:
    """Share of queries whose returned top-1 is as near as the exact top-1 (ties count as hits)."""
    ok = found >= 0
    d2 = np.full(len(queries), np.inf, np.float32)
    d2[ok] = 2.0 - 2.0 * np.einsum("ij,ij->i", queries[ok], gallery[found[ok]])
    return float(np.mean(d2 <= true_d2 + 1e-5))


# ---------------------------------------------------------------------------------------------------------------
def bench_size(n: int, libs: list[str], args) -> dict:
    targets = ("known", "unknown") if args.target == "all" else ("known",)
    faces = Faces(seed=n)
    t0 = time.perf_counter()
    centres = faces.centres(n // PER_ID)
    x = faces.photos(centres, PER_ID)
    ids = np.arange(len(x), dtype=np.int64)  # row == id, so recall can look vectors up directly
    nq = args.queries
    known = faces.photos(centres[faces.rng.choice(len(centres), nq // 2)], 1)
    unknown = faces.photos(faces.centres(nq - nq // 2), 1)
    queries = np.concatenate([known, unknown])
    true_idx, true_d2 = exact_top1(x, queries)
    out: dict = {"n": len(x), "data_s": time.perf_counter() - t0}
    m = min(2000, len(centres) - 1)
    same = np.linalg.norm(x[0::PER_ID][:m] - x[1::PER_ID][:m], axis=1)
    diff = np.linalg.norm(x[0::PER_ID][:m] - x[PER_ID::PER_ID][:m], axis=1)
    out["distances"] = {"same_person_median": float(np.median(same)), "other_person_median": float(np.median(diff))}

    # exact numpy: one query = matrix-vector product + argpartition. OpenBLAS uses every core by default; on a
    # busy machine waking its second thread can cost a scheduler slice (~8 ms), so it is also timed on 1 thread.
    from threadpoolctl import threadpool_limits

    for key, limit in (("exact", None), ("exact-1t", 1)):
        with threadpool_limits(limits=limit, user_api="blas"):
            single = latencies_ms(lambda q: exact_one(x, q[0]), queries[:min(nq, 200)])
            batch = latencies_ms(lambda q: exact_top1(x, q), queries[:min(nq, 320)], batch=32)
        out[key] = {"p50_ms": float(np.median(single)), "p95_ms": float(np.percentile(single, 95)),
                    "batch32_ms": float(np.median(batch)), "recall_known": 1.0, "recall_unknown": 1.0,
                    "mem_mb": x.nbytes / 2**20, "file_mb": x.nbytes / 2**20, "deletes": "yes",
                    "build_s": 0.0, "add_person_ms": 0.0, "remove_person_ms": 0.0,
                    "knob": "all cores" if limit is None else "1 thread"}
    print(f"  n={len(x)}: exact p50 {out['exact']['p50_ms']:.2f} ms, 1 thread {out['exact-1t']['p50_ms']:.2f} ms",
          flush=True)

    for lib in libs:
        gc.collect()
        r: dict = {}
        try:
            a = ADAPTERS[lib](args.m, args.efc)
            before = rss_mb()
            r["build_s"] = timed(a.build, ids, x, args.threads)
            r["mem_mb"] = rss_mb() - before
            # add / remove one person (5 photos), median of 5 people
            new = faces.photos(faces.centres(5), PER_ID)
            new_ids = np.arange(len(x), len(x) + len(new), dtype=np.int64)
            adds = [timed(a.add, new_ids[i * PER_ID:(i + 1) * PER_ID], new[i * PER_ID:(i + 1) * PER_ID])
                    for i in range(5)]
            r["add_person_ms"] = 1000 * float(np.median(adds))
            try:
                rems = [timed(a.remove, new_ids[i * PER_ID:(i + 1) * PER_ID]) for i in range(5)]
                r["remove_person_ms"] = 1000 * float(np.median(rems))
            except Exception as e:  # noqa: BLE001 - a library without deletion
                r["remove_person_ms"] = None
                r["remove_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:80]}"
            r["deletes"] = a.deletes
            lookup = np.concatenate([x, new])  # a library that cannot delete still holds the added people
            # knob sweep: recall@1 and 1-thread latency per ef / nprobe
            r["sweep"] = {}
            for v in a.knobs:
                a.set_knob(v)
                a.threads(1)
                found = a.search(queries, 1)[:, 0]
                lat = latencies_ms(lambda q: a.search(q, 1), queries[:200])
                b = latencies_ms(lambda q: a.search(q, 1), queries[:320], batch=32)
                r["sweep"][v] = {"recall_known": recall(found[:nq // 2], true_d2[:nq // 2], lookup, known),
                                 "recall_unknown": recall(found[nq // 2:], true_d2[nq // 2:], lookup, unknown),
                                 "p50_ms": float(np.median(lat)), "p95_ms": float(np.percentile(lat, 95)),
                                 "batch32_ms": float(np.median(b))}
            # headline: the smallest knob reaching recall@1 >= 0.99 on the target queries, else the largest
            good = [v for v in a.knobs if min(r["sweep"][v][f"recall_{t}"] for t in targets) >= 0.99]
            r["knob"] = "" if a.knob == "-" else f"{a.knob}={good[0] if good else a.knobs[-1]}"
            r.update(r["sweep"][good[0] if good else a.knobs[-1]])
            with tempfile.TemporaryDirectory() as d:
                p = os.path.join(d, "index.bin")
                r["save_s"] = timed(a.save, p)
                r["file_mb"] = os.path.getsize(p) / 2**20
            del a
        except Exception as e:  # noqa: BLE001 - report a library that is missing or fails, keep going
            r = {"error": f"{type(e).__name__}: {e}"}
        out[lib] = r
        print(f"  n={len(x)}: {lib} done" + (f" ({r['error']})" if "error" in r else ""), flush=True)
    return out


def print_table(results: list[dict], libs: list[str]) -> None:
    hdr = (f"{'n':>8} {'library':<10} {'knob':<9} {'build s':>8} {'add 1p ms':>9} {'rm 1p ms':>9} {'p50 ms':>7} "
           f"{'p95 ms':>7} {'b32 ms':>7} {'x exact':>8} {'R@1 kn':>7} {'R@1 unk':>7} {'RSS MB':>7} {'file MB':>7}"
           "  deletes")
    print(hdr)
    print("-" * len(hdr))
    f = lambda v, w, p: f"{v:>{w}.{p}f}" if isinstance(v, (int, float)) else f"{'-':>{w}}"  # noqa: E731
    for res in results:
        ex = res["exact"]["p50_ms"]
        for lib in ["exact", "exact-1t", *libs]:
            r = res.get(lib, {})
            if "error" in r:
                print(f"{res['n']:>8} {lib:<10} ERROR {r['error'][:100]}")
                continue
            ratio = ex / r["p50_ms"] if r.get("p50_ms") else None
            print(f"{res['n']:>8} {lib:<10} {r.get('knob', ''):<9} {f(r['build_s'], 8, 2)} "
                  f"{f(r['add_person_ms'], 9, 2)} {f(r['remove_person_ms'], 9, 3)} {f(r['p50_ms'], 7, 3)} "
                  f"{f(r['p95_ms'], 7, 3)} {f(r['batch32_ms'], 7, 2)} {f(ratio, 8, 1)} {f(r['recall_known'], 7, 4)} "
                  f"{f(r['recall_unknown'], 7, 4)} {f(r['mem_mb'], 7, 0)} {f(r['file_mb'], 7, 1)}  {r['deletes']}")
    print("\nknob sweep (recall@1 known/unknown, p50 ms 1 thread):")
    for res in results:
        for lib in libs:
            sw = res.get(lib, {}).get("sweep", {})
            if sw:
                cells = "  ".join(f"{k}: {v['recall_known']:.3f}/{v['recall_unknown']:.3f} {v['p50_ms']:.3f}ms"
                                  for k, v in sw.items())
                print(f"  {res['n']:>8} {lib:<10} {cells}")


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--libraries", nargs="+", default=["usearch", "faiss", "hnswlib"], choices=LIBRARIES)
    ap.add_argument("--m", type=int, default=16, help="HNSW connectivity (M)")
    ap.add_argument("--efc", type=int, default=128, help="HNSW ef_construction")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for the initial build")
    ap.add_argument("--queries", type=int, default=1000, help="queries for recall (half known, half strangers)")
    ap.add_argument("--target", choices=("known", "all"), default="known",
                    help="queries the headline ef/nprobe must reach recall@1 >= 0.99 on: enrolled people's photos "
                         "(a stranger's nearest neighbour is rejected by the distance threshold whichever it is) "
                         "or strangers too")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)

    versions = {}
    from importlib import metadata

    for dist in ("numpy", "usearch", "faiss-cpu", "hnswlib"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    meta = {"python": platform.python_version(), "cpus": os.cpu_count(), "load_avg": os.getloadavg(),
            "versions": versions, "m": args.m, "efc": args.efc}
    print(f"python {meta['python']}, {meta['cpus']} cpus, load {meta['load_avg'][0]:.1f}, {versions}", flush=True)
    results = [bench_size(n, args.libraries, args) for n in args.sizes]
    print()
    print_table(results, args.libraries)
    print("x exact = exact numpy p50 (all cores) / index p50 (same run); indexes search on 1 thread. "
          "add/remove 1p = one person of 5 photos, 1 thread.\nR@1 kn = recall@1 vs exact for photos of enrolled "
          "people, R@1 unk = for strangers. RSS MB = RSS growth while building (exact: the vectors).")
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str))
    return results


if __name__ == "__main__":
    main()
