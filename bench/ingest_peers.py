"""Ingest speed and quality side by side: embedstack vs Chroma, LangChain + FAISS, txtai, LanceDB.

    flock /tmp/heavy.lock .venv/bin/python bench/ingest_peers.py [--corpus scifact|sec|both]
        [--engines embedstack,chroma,langchain,txtai,lancedb] [--limit N] [--pdf-limit N]
        [--data ../shared/data] [--peer-python ../bench-venv-ingest/bin/python]

Every engine runs in a process of its own (so peak RSS and import costs are its own), with
all-MiniLM-L6-v2 loaded from the local sentence-transformers folder that embedstack ships, each
in its own default pipeline. "seconds" is the ingest: from the raw files (SciFact's
corpus.jsonl, the SEC PDFs) to an index that has answered one search (load, chunk, embed,
store); importing and loading the model come before it ("startup s"). Quality is measured
afterwards: SciFact nDCG@10 on the 300 test queries (trec_eval, chunks folded to their document
by best score), SEC: share of the 195 questions with a chunk of a gold file (the question's
`Source Docs` glob) in the top 5. embedstack runs from the project's venv, the peers from a
venv of their own, made with:

    python3.11 -m venv ../bench-venv-ingest && ../bench-venv-ingest/bin/pip install torch==2.13.0
    ../bench-venv-ingest/bin/pip install sentence-transformers chromadb langchain \
        langchain-community langchain-huggingface langchain-text-splitters faiss-cpu pypdf \
        txtai lancedb pyarrow psutil

No child may reach the network: hub downloads, tracing and telemetry are off in their env.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("embedstack", "chroma", "langchain", "txtai", "lancedb")
SEC_K = 5
SCIFACT_K = 100  # chunks asked per query; folded to documents before nDCG@10
WINDOW, OVERLAP = 1000, 200  # the simple character split for engines without a splitter
QUIET_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "ANONYMIZED_TELEMETRY": "False",  # Chroma
    "DO_NOT_TRACK": "1",
    "POSTHOG_DISABLED": "1",
    "SCARF_NO_ANALYTICS": "true",
    "LANGCHAIN_TRACING_V2": "false",  # LangSmith
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING": "false",
    "ORT_DISABLE_TELEMETRY": "1",  # ONNX Runtime's 1DS telemetry (txtai's import starts it)
    "TQDM_DISABLE": "1",
}

# A worker's answer per query: (key, score) best first; key = document id (SciFact) or file
# name (SEC).
Ranked = list[list[tuple[str, float]]]


class Row(NamedTuple):
    engine: str
    rate: float  # docs or pages per second of ingest
    seconds: float
    peak_mb: float
    quality: float
    startup: float
    notes: str


# ---- the workers: one function per engine, run in a child process ---------------------------


def read_scifact(spec: dict) -> list[tuple[str, str]]:
    """(doc id, title + " " + text) for the first `limit` documents, as MTEB encodes them."""
    docs = []
    with open(spec["scifact"] / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            docs.append((str(record["_id"]), f"{record['title']} {record['text']}".strip()))
            if spec["limit"] and len(docs) == spec["limit"]:
                break
    return docs


FAILED: list[str] = []  # files a peer's loader could not read: skipped, named in the table


def pypdf_pages(path: Path) -> list[str]:
    from pypdf import PdfReader

    try:
        return [page.extract_text() or "" for page in PdfReader(path).pages]
    except Exception as exc:  # skipped like a bad file in any ingest; counted in the notes
        FAILED.append(f"{path.name}: {type(exc).__name__}")
        return []


def windows(text: str) -> list[str]:
    """The simple split: WINDOW characters, each starting WINDOW - OVERLAP after the last."""
    text = text.strip()
    step = WINDOW - OVERLAP
    return (
        [text[i : i + WINDOW] for i in range(0, max(len(text) - OVERLAP, 1), step)] if text else []
    )


def plain_documents(spec: dict) -> list[tuple[str, str]]:
    """SciFact documents whole; PDFs as pypdf page text cut into character windows."""
    if spec["corpus"] == "scifact":
        return read_scifact(spec)
    return [
        (path.name, chunk)
        for path in spec["pdfs"]
        for page in pypdf_pages(path)
        for chunk in windows(page)
    ]


def run_embedstack(spec: dict) -> dict:
    """Collection.open (default model and backend) + kb.ingest(files); default search."""
    from embedstack import Collection

    kb = Collection.open(spec["work"] / "kb")
    kb.model.encode(["warm up"])
    setup = time.perf_counter()
    if spec["corpus"] == "scifact":
        jsonl = spec["work"] / "scifact.jsonl"
        with open(jsonl, "w", encoding="utf-8") as out:
            for doc_id, text in read_scifact(spec):
                out.write(json.dumps({"doc_id": doc_id, "text": text}) + "\n")
        report = kb.ingest([jsonl], text_field="text")
        key = "doc_id"
    else:
        report = kb.ingest(spec["pdfs"])
        key = "file_name"
    failed = [f"{Path(p.path).name}: {p.reason}" for p in report.failed]
    kb.search("warm up", k=1)
    seconds = time.perf_counter() - setup

    def ranked(mode: str | None) -> Ranked:
        options = {"mode": mode} if mode else {}
        found = kb.search_batch(spec["queries"], k=spec["k"], **options)
        return [[(str(hit.metadata[key]), hit.score) for hit in hits] for hits in found]

    extra = {"dense": ranked("dense")}
    return {
        "seconds": seconds,
        "setup_end": setup,
        "chunks": kb.count(),
        "ranked": ranked(None),
        "extra": extra,
        "failed": failed,
    }


def peer_result(
    seconds: float, setup: float, loaded: float, chunks: int, ranked: Ranked, **more: str
) -> dict:
    """What a peer's worker reports: its timing (parse = reading and splitting), size, ranking."""
    return {
        "seconds": seconds,
        "setup_end": setup,
        "chunks": chunks,
        "ranked": ranked,
        "parse": loaded - setup,
        **more,
    }


def run_chroma(spec: dict) -> dict:
    """PersistentClient + SentenceTransformerEmbeddingFunction, collection.add(documents=...)."""
    import chromadb
    from chromadb.config import Settings
    from chromadb.utils.embedding_functions import SentenceTransformerEmbeddingFunction

    embed = SentenceTransformerEmbeddingFunction(model_name=spec["model"])
    embed(["warm up"])
    setup = time.perf_counter()
    docs = plain_documents(spec)
    loaded = time.perf_counter()
    client = chromadb.PersistentClient(
        path=str(spec["work"] / "chroma"), settings=Settings(anonymized_telemetry=False)
    )
    collection = client.create_collection("bench", embedding_function=embed)
    step = client.get_max_batch_size()
    for start in range(0, len(docs), step):
        part = docs[start : start + step]
        collection.add(
            ids=[str(i) for i in range(start, start + len(part))], documents=[t for _, t in part]
        )
    collection.query(query_texts=["warm up"], n_results=1)
    seconds = time.perf_counter() - setup
    found = collection.query(
        query_texts=spec["queries"], n_results=spec["k"], include=["distances"]
    )
    ranked = [
        [(docs[int(i)][0], -d) for i, d in zip(ids, dists, strict=True)]
        for ids, dists in zip(found["ids"], found["distances"], strict=True)
    ]
    return peer_result(seconds, setup, loaded, len(docs), ranked)


def run_langchain(spec: dict) -> dict:
    """The RAG tutorial: loader -> RecursiveCharacterTextSplitter(1000, 200) ->
    HuggingFaceEmbeddings -> FAISS.from_documents; similarity_search_with_score."""
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    embeddings = HuggingFaceEmbeddings(model_name=spec["model"])
    embeddings.embed_query("warm up")
    setup = time.perf_counter()
    if spec["corpus"] == "scifact":
        docs = [Document(page_content=t, metadata={"key": k}) for k, t in read_scifact(spec)]
    else:
        from langchain_community.document_loaders import PyPDFLoader

        docs = []
        for path in spec["pdfs"]:
            try:
                pages = PyPDFLoader(str(path)).load()
            except Exception as exc:  # skipped like a bad file; counted in the notes
                FAILED.append(f"{path.name}: {type(exc).__name__}")
                continue
            for page in pages:
                page.metadata["key"] = path.name
                docs.append(page)
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=1000, chunk_overlap=200, add_start_index=True
    )
    chunks = splitter.split_documents(docs)
    loaded = time.perf_counter()
    store = FAISS.from_documents(chunks, embeddings)
    store.similarity_search("warm up", k=1)
    seconds = time.perf_counter() - setup
    ranked = [
        [
            (doc.metadata["key"], -float(d))
            for doc, d in store.similarity_search_with_score(q, k=spec["k"])
        ]
        for q in spec["queries"]
    ]
    return peer_result(seconds, setup, loaded, len(chunks), ranked)


def run_txtai(spec: dict) -> dict:
    """Embeddings(path=model, content=True).index(...); batchsearch. Textractor needs Apache
    Tika (a jar fetched at run time) or docling, so PDFs come from pypdf + the simple split."""
    from txtai import Embeddings

    embeddings = Embeddings(path=spec["model"], content=True)
    embeddings.transform("warm up")
    setup = time.perf_counter()
    docs = plain_documents(spec)
    loaded = time.perf_counter()
    embeddings.index([(str(i), text, None) for i, (_, text) in enumerate(docs)])
    embeddings.search("warm up", 1)
    seconds = time.perf_counter() - setup
    found = embeddings.batchsearch(spec["queries"], spec["k"])
    built = embeddings.config.get("build", {}).get("settings", {})
    ranked = [[(docs[int(hit["id"])][0], float(hit["score"])) for hit in hits] for hits in found]
    return peer_result(
        seconds, setup, loaded, len(docs), ranked, info=f"faiss {built.get('components')}"
    )


def run_lancedb(spec: dict) -> dict:
    """Embedding registry "sentence-transformers" + a LanceModel schema; table.add(rows);
    table.search(text) (no ANN index: LanceDB's default is a brute-force scan)."""
    import lancedb
    from lancedb.embeddings import get_registry
    from lancedb.pydantic import LanceModel, Vector

    func = get_registry().get("sentence-transformers").create(name=spec["model"], device="cpu")
    func.generate_embeddings(["warm up"])

    class Row(LanceModel):
        text: str = func.SourceField()
        vector: Vector(func.ndims()) = func.VectorField()  # type: ignore[valid-type]
        key: str

    setup = time.perf_counter()
    docs = plain_documents(spec)
    loaded = time.perf_counter()
    table = lancedb.connect(spec["work"] / "lance").create_table("bench", schema=Row)
    table.add([{"text": text, "key": key} for key, text in docs])
    table.search("warm up").limit(1).to_list()
    seconds = time.perf_counter() - setup
    ranked = [
        [(row["key"], -row["_distance"]) for row in table.search(q).limit(spec["k"]).to_list()]
        for q in spec["queries"]
    ]
    return peer_result(seconds, setup, loaded, len(docs), ranked)


WORKERS: dict[str, Callable[[dict], dict]] = {
    "embedstack": run_embedstack,
    "chroma": run_chroma,
    "langchain": run_langchain,
    "txtai": run_txtai,
    "lancedb": run_lancedb,
}


def block_network() -> None:
    """Refuse, at Python's socket layer, every host that is not loopback (OpenVINO's converter,
    which embedstack's first-use model export imports, sends a Google Analytics event)."""
    import ipaddress
    import socket

    def loopback(host: object) -> bool:
        if host is None or host in ("localhost", b"localhost"):
            return True
        try:
            name = host.decode() if isinstance(host, bytes) else str(host)
            return ipaddress.ip_address(name.split("%")[0]).is_loopback
        except ValueError:
            return False

    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not loopback(host):
            raise socket.gaierror(socket.EAI_NONAME, f"no network in this benchmark: {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not loopback(address[0]):
            raise OSError(f"no network in this benchmark: {address!r}")
        return real_connect(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect  # type: ignore[method-assign]


def worker(spec_path: str) -> None:
    started = time.perf_counter()
    block_network()
    spec = json.loads(Path(spec_path).read_text())
    for name in ("scifact", "work"):
        spec[name] = Path(spec[name])
    spec["pdfs"] = [Path(p) for p in spec["pdfs"]]
    result = WORKERS[spec["engine"]](spec)
    result["startup"] = result.pop("setup_end") - started
    result["failed"] = result.get("failed", FAILED)
    Path(spec["result"]).write_text(json.dumps(result))


# ---- the driver: runs each engine, scores the answers, prints the tables ----------------------


def spawn(python: str, spec: dict, work: Path) -> tuple[dict | None, float, float]:
    """Run one worker; (its result or None, peak RSS in MB from wait4, wall seconds)."""
    spec_path, log_path = work / "spec.json", work / "log.txt"
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, **QUIET_ENV}
    started = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [python, str(Path(__file__).resolve()), "--worker", str(spec_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    result_path = Path(spec["result"])
    if proc.returncode != 0 or not result_path.exists():
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
        print(f"  {spec['engine']} failed (exit {proc.returncode}):", *tail, sep="\n    ")
        return None, usage.ru_maxrss / 1024, wall
    return json.loads(result_path.read_text()), usage.ru_maxrss / 1024, wall


def scifact_task(args: argparse.Namespace) -> tuple[dict, Callable[[Ranked], float], int] | None:
    """The spec fields, the scorer (nDCG@10) and the document count; None when data is missing."""
    from embedstack.evaluation import load_beir
    from embedstack.evaluation.metrics import retrieval_metrics

    folder = args.data / "scifact"
    if not (folder / "corpus.jsonl").is_file():
        print(f"SciFact skipped: no {folder}/corpus.jsonl")
        return None
    data = load_beir(folder)
    kept = set(list(data.corpus)[: args.limit or None])
    qrels = {q: {d: r for d, r in rel.items() if d in kept} for q, rel in data.qrels.items()}
    qrels = {q: rel for q, rel in qrels.items() if any(r > 0 for r in rel.values())}
    ids = list(qrels)

    def score(ranked: Ranked) -> float:
        run: dict[str, dict[str, float]] = {}
        for query_id, hits in zip(ids, ranked, strict=True):
            best = run.setdefault(query_id, {})
            for doc_id, value in hits:  # a document's best chunk stands for it
                best[doc_id] = max(value, best.get(doc_id, float("-inf")))
        return retrieval_metrics(qrels, run)["ndcg@10"]

    spec = {"queries": [data.queries[q] for q in ids], "k": SCIFACT_K, "pdfs": []}
    return spec, score, len(kept)


def sec_task(args: argparse.Namespace) -> tuple[dict, Callable[[Ranked], float], int] | None:
    """The spec fields, the scorer (top-5 gold-file hit rate) and the page count."""
    import pypdfium2 as pdfium

    folder = args.data / "sec10q" / "sec-10-q" / "data" / "v1"
    pdfs = sorted((folder / "docs").glob("*.pdf"))[: args.pdf_limit or None]
    if not pdfs or not (folder / "qna_data.csv").is_file():
        print(f"SEC skipped: no PDFs or qna_data.csv under {folder}")
        return None
    with open(folder / "qna_data.csv", encoding="utf-8-sig", newline="") as handle:
        rows = [(row["Question"], row["Source Docs"]) for row in csv.DictReader(handle)]
    names = [p.name for p in pdfs]  # with --pdf-limit, only questions whose gold file is there
    rows = [(q, glob) for q, glob in rows if any(fnmatch.fnmatch(n, glob) for n in names)]
    pages = sum(len(pdfium.PdfDocument(p)) for p in pdfs)

    def score(ranked: Ranked) -> float:
        hits = sum(
            any(fnmatch.fnmatch(name, glob) for name, _ in found[:SEC_K])
            for (_, glob), found in zip(rows, ranked, strict=True)
        )
        return hits / len(rows)

    spec = {"queries": [q for q, _ in rows], "k": SEC_K, "pdfs": [str(p) for p in pdfs]}
    return spec, score, pages


def bench_corpus(corpus: str, args: argparse.Namespace, engines: list[str], model: str) -> None:
    task = scifact_task(args) if corpus == "scifact" else sec_task(args)
    if task is None:
        return
    fields, score, units = task
    unit, metric = ("docs", "nDCG@10") if corpus == "scifact" else ("pages", f"top-{SEC_K} hit")
    rows: list[Row] = []
    for engine in engines:
        python = sys.executable if engine == "embedstack" else str(args.peer_python)
        print(f"  {corpus}: {engine} ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix=f"ingest-{engine}-") as tmp:
            work = Path(tmp)
            spec = {
                **fields,
                "engine": engine,
                "corpus": corpus,
                "model": model,
                "scifact": str(args.data / "scifact"),
                "limit": args.limit,
                "work": str(work),
                "result": str(work / "result.json"),
            }
            result, peak_mb, wall = spawn(python, spec, work)
        if result is None:
            continue
        quality = score(result["ranked"])
        notes = [f"{result['chunks']:,} chunks"]
        if "parse" in result:
            notes.append(f"load + split {result['parse']:.1f} s")
        if "info" in result:
            notes.append(result["info"])
        notes.append(f"process {wall:.0f} s")
        if result["failed"]:
            notes.append(f"files skipped (loader failed): {', '.join(result['failed'])}")
        if "dense" in result.get("extra", {}):
            notes.append(f"dense-only search: {score(result['extra']['dense']):.4f}")
        seconds = result["seconds"]
        rows.append(
            Row(
                engine,
                units / seconds,
                seconds,
                peak_mb,
                quality,
                result["startup"],
                "; ".join(notes),
            )
        )
        print(f"  {engine}: {result['seconds']:.1f} s, {metric} {quality:.4f}", file=sys.stderr)
    speed = {row.engine: row.rate for row in rows}
    label = f"SciFact ({units:,} docs)" if corpus == "scifact" else f"SEC 10-Q ({units:,} pages)"
    print(f"\n{label}\n")
    print(
        f"| engine | {unit}/s | seconds | peak RSS MB | {metric} | embedstack speed ÷ this "
        "| startup s | notes |\n|---|---|---|---|---|---|---|---|"
    )
    for row in rows:
        ratio = f"{speed['embedstack'] / row.rate:.2f}×" if "embedstack" in speed else "–"
        print(
            f"| {row.engine} | {row.rate:.1f} | {row.seconds:.1f} | {row.peak_mb:.0f} "
            f"| {row.quality:.4f} | {ratio} | {row.startup:.1f} | {row.notes} |"
        )
    peers = [row for row in rows if row.engine != "embedstack"]
    if "embedstack" in speed and peers:
        fastest = max(peers, key=lambda row: row.rate)
        mine = next(row for row in rows if row.engine == "embedstack")
        verdict = "equal or better" if mine.quality >= fastest.quality else "lower"
        print(
            f"\nembedstack vs the fastest peer ({fastest.engine}): "
            f"{mine.rate / fastest.rate:.2f}× the {unit}/s (target ≥ 3×), "
            f"{metric} {mine.quality:.4f} vs {fastest.quality:.4f} ({verdict})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=("scifact", "sec", "both"), default="both")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma list")
    parser.add_argument("--limit", type=int, default=0, help="first N SciFact documents only")
    parser.add_argument("--pdf-limit", type=int, default=0, help="first N SEC PDFs only")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument(
        "--peer-python", type=Path, default=ROOT.parent / "bench-venv-ingest" / "bin" / "python"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return

    from machine import cpu_line, machine

    from embedstack.models import find_spec

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engines: {', '.join(sorted(unknown))} (known: {', '.join(ENGINES)})")
    if any(e != "embedstack" for e in engines) and not args.peer_python.exists():
        print(f"peers skipped: no peer python at {args.peer_python} (see --peer-python)")
        engines = [e for e in engines if e == "embedstack"]
    if not args.data.is_dir():
        print(f"skipped: no data folder at {args.data} (see --data)")
        return
    model = str(find_spec("all-MiniLM-L6-v2").locate())
    print(f"{cpu_line()} · {machine()['date']}")
    print(f"model: all-MiniLM-L6-v2 from {model}; command: {' '.join(sys.argv)}")
    started = time.perf_counter()
    for corpus in ("scifact", "sec") if args.corpus == "both" else (args.corpus,):
        bench_corpus(corpus, args, engines, model)
    print(f"\ntotal wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
