"""Vector search at scale, side by side: the local store itself (`embedstack-auto`, through
Collection.add and Collection.search), FAISS candidates for it, and peer engines, on the same
N x 384 vectors (real all-MiniLM-L6-v2 embeddings padded with generated ones, see
bench/scale_data.py), against exact search.

Each engine builds in one process and is opened and queried in a fresh one, so open time and
memory are its own: memory is the query process's RSS growth from opening the index to the end
of the queries (VmRSS, peak VmHWM, and the anonymous part: pages of a memory-mapped file are page
cache the kernel can drop). pgvector's memory lives in the server: its processes' PSS.
Queries run one at a time on one thread (and batched on one thread where the engine takes a
batch); settings are swept from cheapest up and the first reaching recall@10 >= 0.95 is timed.

    flock /tmp/heavy.lock python bench/scale.py --n 100000
    flock /tmp/heavy.lock python bench/scale.py --n 1000000 --engines faiss-ivfpq-rerank,hnswlib
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_line, machine  # noqa: E402
from scale_data import CACHE, HELD_OUT, dataset  # noqa: E402

TARGET = 0.95
SERVER_SIDE = ("pgvector",)  # its search runs in the server, not in this process
LANCE = [(10, 5), (20, 5), (20, 10), (40, 10), (80, 10), (80, 20)]  # (nprobes, refine_factor)
CHROMA_PYTHON = os.environ.get("SCALE_CHROMA_PYTHON", "/work/bench-venv-scale/bin/python")


def configs(n: int) -> dict[str, dict]:
    """name -> engine, build params, search settings (cheapest first)."""
    nlist = 1 << max(6, round(math.log2(4 * math.sqrt(n))))  # 100k: 1024, 1M: 4096
    ivf = [(8, 4), (16, 4), (16, 8), (32, 8), (48, 10), (64, 10), (96, 16), (128, 20)]
    ivf += [(192, 24), (256, 32), (384, 40), (512, 50)]  # 1M needs these
    ivf_settings = [{"search": f"nprobe={p}", "rerank": r} for p, r in ivf]
    hnsw = [16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]
    return {
        "embedstack-auto": {
            "engine": "embedstack",
            "params": {"index": "auto"},
            "settings": ["store defaults"],
        },
        "faiss-hnsw-flat": {
            "engine": "faiss",
            "params": {"factory": "HNSW32", "ef_construction": 80},
            "settings": [{"search": f"efSearch={ef}"} for ef in hnsw],
        },
        "faiss-ivfpq-rerank": {
            "engine": "faiss",
            "params": {"factory": f"IVF{nlist},PQ48", "rerank": True},
            "settings": ivf_settings,
        },
        "faiss-ivfpq-fs-rerank": {
            "engine": "faiss",
            "params": {"factory": f"IVF{nlist},PQ96x4fs", "rerank": True},
            "settings": ivf_settings,
        },
        "faiss-ivfsq8-rerank": {
            "engine": "faiss",
            "params": {"factory": f"IVF{nlist},SQ8", "rerank": True},
            "settings": [
                {"search": f"nprobe={p}", "rerank": 2}
                for p in (8, 16, 24, 32, 48, 64, 96, 128, 192)
            ],
        },
        "faiss-hnsw-sq8-rerank": {
            "engine": "faiss",
            "params": {"factory": "HNSW32,SQ8", "ef_construction": 80, "rerank": True},
            "settings": [{"search": f"efSearch={ef}", "rerank": 2} for ef in hnsw],
        },
        "faiss-binary-rerank": {
            "engine": "faiss",
            "params": {"binary": True, "rerank": True},
            "settings": [{"rerank": r} for r in (5, 10, 20, 30, 50, 100)],
        },
        "hnswlib": {
            "engine": "hnswlib",
            "params": {"M": 16, "ef_construction": 100},
            "settings": hnsw,
        },
        "chroma": {
            "engine": "chroma",
            "params": {"M": 16, "ef_construction": 100},
            "settings": [16, 32, 64, 128, 256, 512],
        },
        "lancedb": {
            "engine": "lancedb",
            # From 1M on, LanceDB's own default partitioning (8,192 rows a partition: 122 at
            # 1M): nlist // 4 = 1,024 partitions would train k-means on 262k samples: an estimated
            # hour or more on 2 cores from the 100k build (256 partitions, 263 s).
            "params": {"partitions": nlist // 4 if n < 1_000_000 else None, "sub_vectors": 48},
            "settings": [{"nprobes": p, "refine": r} for p, r in LANCE],
        },
        "qdrant-edge": {
            "engine": "qdrant-edge",
            "params": {"M": 16, "ef_construction": 100},
            "settings": hnsw,
        },
        "qdrant-local": {"engine": "qdrant", "params": {}, "settings": [None]},
        "pgvector": {
            "engine": "pgvector",
            "params": {"M": 16, "ef_construction": 64, "workers": 1},
            "settings": [20, 40, 80, 160, 320],
        },
        "pgvector-halfvec": {  # float16 column and index: 0.57x the index at 100k
            "engine": "pgvector",
            "params": {"M": 16, "ef_construction": 64, "workers": 1, "vectors": "halfvec"},
            "settings": [20, 40, 80, 160, 320],
        },
    }


def truth(n: int, base_path: Path, query_path: Path) -> Path:
    """Exact top-10 by inner product (= cosine: all vectors are unit length), FAISS flat."""
    path = CACHE / f"truth-{query_path.stem}.npy"
    if not path.exists():
        import faiss

        base = np.load(base_path, mmap_mode="r")
        queries = np.load(query_path)
        index = faiss.IndexFlatIP(base.shape[1])
        for start in range(0, len(base), 100_000):
            index.add(np.ascontiguousarray(base[start : start + 100_000]))
        np.save(path, index.search(queries, 10)[1])
    return path


def run_child(phase: str, spec: dict, spec_path: Path, timeout: float) -> dict:
    spec_path.write_text(json.dumps(spec))
    python = CHROMA_PYTHON if spec["engine"] == "chroma" else sys.executable
    # One thread for builds too: on a shared 2-CPU machine FAISS's OpenMP threads spin at every
    # barrier while the other CPU is busy, and an IVF-PQ build at 100k took minutes instead of
    # seconds; and one thread makes the build times comparable between engines.
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    script = Path(__file__).resolve().parent / "scale_engines.py"
    try:
        proc = subprocess.run(
            [python, str(script), phase, str(spec_path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"{phase} took over {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": f"{phase} failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]}


def run(
    name: str, cfg: dict, n: int, paths: tuple[Path, Path, Path], args: argparse.Namespace
) -> dict:
    base_path, query_path, truth_path = paths
    folder = Path(args.workdir) / f"{name}-{n}"
    spec = {
        **cfg,
        "name": name,
        "folder": str(folder),
        "base": str(base_path),
        "queries": str(query_path),
        "truth": str(truth_path),
        "dim": 384,
        "target": TARGET,
        "tune_queries": args.tune_queries,
        "time_limit": args.time_limit,
        "batched": cfg["engine"] in ("faiss", "hnswlib", "chroma", "embedstack"),
    }
    spec_path = Path(args.workdir) / f"{name}-{n}.json"
    result = {"name": name, "engine": cfg["engine"], "n": n, "params": cfg["params"]}
    done = folder / "build.json"
    if args.reuse_builds and done.exists():
        built = json.loads(done.read_text())
    else:
        built = run_child("build", spec, spec_path, args.build_timeout)
        if "error" not in built:
            done.write_text(json.dumps(built))
    result.update(built)
    if "error" not in built:
        result.update(run_child("query", spec, spec_path, args.build_timeout))
        if cfg["params"].get("rerank") and "disk_mb" in result:
            result["float_file_mb"] = base_path.stat().st_size / 2**20
    return result


def fmt_setting(setting: object) -> str:
    if isinstance(setting, dict):
        parts = [
            str(setting.get("search", "")),
            f"rerank x{setting['rerank']}" if "rerank" in setting else "",
        ]
        rest = {k: v for k, v in setting.items() if k not in ("search", "rerank")}
        parts += [f"{k}={v}" for k, v in rest.items()]
        return " ".join(p for p in parts if p)
    if isinstance(setting, str):
        return setting
    return "exact" if setting is None else f"ef={setting}"


def table(results: list[dict]) -> str:
    head = (
        "| engine | index params | search setting | N | build s | disk MB | open s "
        "| RSS MB | peak MB | anon MB | recall@10 | QPS 1 by 1 | per CPU-s | QPS batch |"
    )
    lines = [head, "|" + "---|" * 14]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['name']} | {json.dumps(r['params'])} | {r['error']} |" + " |" * 11)
            continue
        disk = f"{r['disk_mb']:.0f}"
        if "float_file_mb" in r:
            disk += f" + {r['float_file_mb']:.0f} floats"
        mem = [f"{r['rss_mb']:.0f}", f"{r['peak_mb']:.0f}", f"{r['anon_mb']:.0f}"]
        if "server_pss_mb" in r:
            mem = [f"server PSS {r['server_pss_mb']:.0f} (index {r['index_mb']:.0f})", "", ""]
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
        batch = f"{r['batch_qps']:.0f}" if "batch_qps" in r else "–"
        # process_time counts all threads of the query process; pgvector searches in its server
        cpu = "–" if r["engine"] in SERVER_SIDE else f"{r['qps_cpu']:.0f}"
        lines.append(
            f"| {r['name']} | {params} | {fmt_setting(r['setting'])} | {r['n']:,} | "
            f"{r['build_s']:.1f} | {disk} | {r['open_s']:.2f} | {' | '.join(mem)} | "
            f"{r['recall']:.3f} | {r['qps']:.0f} | {cpu} | {batch} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--engines", default="all", help="comma-separated names, or 'all'")
    parser.add_argument("--workdir", default=str(CACHE / "indexes"))
    parser.add_argument("--tune-queries", type=int, default=500)
    parser.add_argument("--time-limit", type=float, default=20.0, help="seconds of 1-by-1 queries")
    parser.add_argument("--build-timeout", type=float, default=3600.0)
    parser.add_argument("--held-out", type=int, default=HELD_OUT, help="passages kept as queries")
    parser.add_argument(
        "--reuse-builds", action="store_true", help="query indexes already built in --workdir"
    )
    parser.add_argument("--json", help="append the results to this JSON-lines file")
    args = parser.parse_args()
    all_configs = configs(args.n)
    # qdrant-client's local mode writes each point in a transaction of its own (~15 ms a point
    # here): 100k take ~25 min, so "all" leaves it out; qdrant-edge is Qdrant's own engine.
    default = [name for name in all_configs if name != "qdrant-local"]
    names = default if args.engines == "all" else args.engines.split(",")
    unknown = [name for name in names if name not in all_configs]
    if unknown:
        parser.error(f"unknown engines {unknown}; known: {', '.join(all_configs)}")
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    base_path, query_path, facts = dataset(args.n, args.held_out)
    paths = (base_path, query_path, truth(args.n, base_path, query_path))
    info = machine()
    print(cpu_line(), "·", info["date"], flush=True)
    print(
        f"N={args.n:,} x 384: {facts['real']:,} real MiniLM passage vectors + "
        f"{facts['generated']:,} generated (Gaussian, the real vectors' mean and covariance, "
        f"normalised); queries: {facts['queries']}",
        flush=True,
    )
    results = []
    for name in names:
        start = time.perf_counter()
        result = run(name, all_configs[name], args.n, paths, args)
        result["wall_s"] = time.perf_counter() - start
        results.append(result)
        print(f"{name}: {json.dumps(result)}", flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps({**result, "machine": info}) + "\n")
    print()
    print(table(results))


if __name__ == "__main__":
    main()
