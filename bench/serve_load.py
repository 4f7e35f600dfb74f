"""Load test of `embedstack serve` against infinity-emb on the same machine and model (issue 13).

    PYTHONPATH=src .venv/bin/python bench/serve_load.py [--part embed|search|all] [--quick]
        [--servers embedstack,infinity] [--clients 1,8,32] [--duration 20] [--rounds 1]
        [--infinity-venv /work/infinity-venv] [--infinity-engine optimum-int8]
        [--infinity-batch-size 32] [--build-only] [--searches 1600] [--asks 32]
        [--collection /work/benchdata/collections/news-100k] [--json results.json]

Part `embed`: starts each server in turn (never both at once) as a subprocess on 127.0.0.1 at a
free port, waits for its health route, warms it up, then for each workload (short sentences;
passages cut to 256 MiniLM tokens) and each client count runs that many concurrent clients for
--duration seconds. With --rounds N it does that N times, the servers in turn and in reverse order
every other round, and judges the target on the median of the rounds' ratios: on a shared VM
one server's rate moved by up to a third between back-to-back runs (infinity's sentences 276
and 365/s). Every request carries ONE text to the server's OpenAI-style embeddings route
(`{"input": text, "model": ..., "encoding_format": "float"}`), over a kept-alive HTTP/1.1
connection per client. Prints texts/s, p50/p99 latency, the CPU the server and this client used
(in cores), and the ratio embedstack/infinity at each client count.

Part `search`: builds (once, resumably, in time-boxed runs) a 100,000-chunk collection of
20 Newsgroups posts cut into 48-word chunks, starts `embedstack serve` on it, and measures
`POST /collections/{name}/search` (hybrid, k=10; 1,600 distinct 20NG test-split subjects) and
non-streamed `POST /collections/{name}/ask` (32 questions, `max_tokens` 32, all sent at once: the
local LLM answers them in turn, so the latency is mostly queueing) with 32 concurrent clients.
`--build-only` just builds (or goes on building) the collection, under ~10 minutes a run.
`--quick`: 3-second cells, 64 searches, 4 asks (a smoke run, about 2 minutes).

Texts: short sentences (STS-B, then Banking77 queries, 20 Newsgroups subjects and sentences of
5-30 words from 20 Newsgroups posts: about 198k, so that no text is sent twice to a server in a
run, where a server-side embedding cache would flatter it) and passages (SciFact title + abstract,
then 20 Newsgroups posts, each cut to exactly 254 word pieces, i.e. 256 tokens with [CLS]/[SEP],
MiniLM's limit, so both servers do the same work: about 16k). Data come from ../shared/data
(relative to the repository root); without it the script says so and exits 0.

The client is one asyncio process with a minimal HTTP/1.1 client (prebuilt request bytes; replies
are checked for the expected field, and the first reply per cell is parsed and its vector
checked), so that its own CPU cost stays small (0.01-0.07 cores). The table shows the cores the
server, this client and everything else on the machine used during each cell. On a 2-core machine
the client and the server share the cores: the figures are for that set-up, not for a dedicated
server.

infinity: infinity-emb 0.0.78 in its own virtual environment (pip install torch==2.13.0
"infinity-emb[server,torch,optimum]==0.0.78" "optimum[onnxruntime]==1.24.0" "numpy<2"
"pyarrow<20" "datasets<4"; infinity 0.0.78 cannot load a local ONNX folder with optimum 2.x: it
passes an absolute file name that optimum 2 rejects). Its engine here, `optimum-int8` (default of
--infinity-engine), is infinity's `optimum` (ONNX Runtime) engine on an ONNX export of the same
MiniLM weights, quantised to int8 the way embedstack's default backend is (dynamic, weight MatMuls
only, per-channel scales: optimum's avx512_vnni preset with operators_to_quantize=["MatMul"]) and
saved as `model_quantized.onnx`, the name infinity's CPU path picks; infinity then runs ONNX
Runtime's transformer graph optimiser on it. The folders are made once, with the infinity venv's
optimum (prepare_infinity_model). Why this engine: it is infinity's fastest CPU engine that runs
offline here. At 32 clients, 2026-12-01 (texts/s, sentences / passages): optimum-int8 545-609 /
63-68; `optimum` on the fp32 export 287 / 42; `torch` (sentence-transformers) 200 / 20; optimum's
own int8 preset (every quantisable operator, embedding tables too) was no faster (600 / 64) and
its vectors are worse (mean cosine to sentence-transformers 0.959, min 0.899, against 0.993 /
0.983 for the MatMul-only model and 0.993 for embedstack's int8), so it is not used. Settings:
infinity's defaults (`--batch-size 32`, dynamic batching) plus `--device cpu`,
`--no-vector-disk-cache` (its default anyway), HF_HUB_OFFLINE=1, telemetry off. A batch-size sweep
at 32 clients (1/4/8/16/32) found 16 best for sentences (622 against 600 at 32) and 4 for passages
(82 against 74): --infinity-batch-size to try others.

Heavy runs share this machine: wrap them in `flock /tmp/heavy.lock ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import gzip
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from machine import machine

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data"
MODEL = "all-MiniLM-L6-v2"
PASSAGE_PIECES = 254  # + [CLS] and [SEP] = 256 tokens, MiniLM's max_seq_length
CHUNK_WORDS = 48
COLLECTION_CHUNKS = 100_000

# ---- machine ------------------------------------------------------------------------------------

# ---- texts --------------------------------------------------------------------------------------


def short_sentences() -> list[str]:
    """Unique short sentences: STS-B first, then Banking77 queries, 20NG subjects, then sentences
    of 5-30 words from 20NG posts (enough that no text is sent twice in a run)."""
    seen: dict[str, None] = {}
    for name in ("sts-train.csv", "sts-dev.csv", "sts-test.csv"):
        for line in (DATA / "stsbenchmark" / name).read_text(encoding="utf-8").splitlines():
            for text in line.split("\t")[5:7]:
                seen.setdefault(text.strip(), None)
    banking = DATA / "banking77"
    for name in ("train.csv", "test.csv"):
        if (banking / name).is_file():
            with (banking / name).open(encoding="utf-8", newline="") as rows:
                for row in csv.DictReader(rows):
                    seen.setdefault(row["text"].strip(), None)
    posts = newsgroup_posts()
    for post_ in posts:
        subject = re.sub(r"^(re:\s*)+", "", post_.get("subject", ""), flags=re.I).strip()
        if len(subject.split()) >= 3:
            seen.setdefault(subject, None)
    for post_ in posts:
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(post_["text"].split())):
            if 5 <= len(sentence.split()) <= 30 and sentence[:1].isupper():
                seen.setdefault(sentence, None)
    return [text for text in seen if text]


def passages(tokenizer_file: Path, pieces: int = PASSAGE_PIECES) -> list[str]:
    """Texts cut to exactly `pieces` word pieces (shorter ones skipped): SciFact abstracts (title +
    text), then 20NG posts."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    with (DATA / "scifact" / "corpus.jsonl").open(encoding="utf-8") as lines:
        docs = [json.loads(line) for line in lines]
    texts = [f"{doc.get('title', '')} {doc['text']}".strip() for doc in docs]
    texts += [" ".join(post_["text"].split()[:400]) for post_ in newsgroup_posts()]
    out: dict[str, None] = {}
    encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
    cuts = [
        text[: encoding.offsets[pieces - 1][1]]
        for text, encoding in zip(texts, encodings, strict=True)
        if len(encoding.ids) >= pieces
    ]
    for cut, encoding in zip(
        cuts, tokenizer.encode_batch(cuts, add_special_tokens=False), strict=True
    ):
        if len(encoding.ids) == pieces:
            out.setdefault(cut, None)
    return list(out)


def newsgroup_posts() -> list[dict]:
    with gzip.open(DATA / "20newsgroups" / "20news-bydate.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def data_missing() -> list[str]:
    wanted = [
        "stsbenchmark/sts-train.csv",
        "scifact/corpus.jsonl",
        "20newsgroups/20news-bydate.jsonl.gz",
    ]
    return [name for name in wanted if not (DATA / name).is_file()]


# ---- a small HTTP/1.1 client --------------------------------------------------------------------


class Connection:
    """One kept-alive HTTP/1.1 connection; requests are prebuilt bytes."""

    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        try:
            self.writer.write(raw)
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            if "content-length" in headers:
                body = await self.reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                parts = []
                while True:
                    size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    if size == 0:
                        await self.reader.readuntil(b"\r\n")
                        break
                    parts.append(await self.reader.readexactly(size))
                    await self.reader.readexactly(2)
                body = b"".join(parts)
            else:
                body = await self.reader.read()
                headers["connection"] = "close"
            if headers.get("connection", "").lower() == "close":
                self.close()
            return status, body
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def post(path: str, port: int, payload: dict) -> bytes:
    body = json.dumps(payload).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# ---- servers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    command: list[str]
    embeddings_path: str
    model_name: str
    env: dict = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen | None = None
    log: Path | None = None
    settings: str = ""

    def start(self, logdir: Path, timeout: float) -> None:
        self.log = logdir / f"{self.name}.log"
        started = time.perf_counter()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        while time.perf_counter() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self.process.returncode}):\n{self.tail()}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5):
                    print(
                        f"{self.name} up in {time.perf_counter() - started:.0f} s "
                        f"(pid {self.process.pid}, port {self.port})",
                        flush=True,
                    )
                    return
            except OSError:
                time.sleep(1)
        self.stop()
        raise RuntimeError(f"{self.name} not healthy after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        if self.log is None or not self.log.is_file():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process and its children so far."""
        import psutil

        try:
            root = psutil.Process(self.process.pid)  # type: ignore[union-attr]
            total = 0.0
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    total += times.user + times.system
            return total
        except psutil.Error:
            return 0.0


def embedstack_server(collections: Path, extra: list[str]) -> Server:
    port = free_port()
    launcher = "import sys; from embedstack.cli.app import main; sys.argv[0] = 'embedstack'; main()"
    command = [
        sys.executable,
        "-c",
        launcher,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--collections",
        str(collections),
        "--model",
        MODEL,
        *extra,
    ]
    return Server(
        "embedstack",
        command,
        "/v1/embeddings",
        MODEL,
        port=port,
        settings=f"`embedstack serve --model {MODEL}` (defaults){' ' + ' '.join(extra)}",
    )


INFINITY_ENGINES = {
    # name: (infinity --engine, model folder variant)
    "optimum-int8": ("optimum", "int8"),
    "optimum-int8-all-ops": ("optimum", "int8all"),
    "optimum": ("optimum", "fp32"),
    "torch": ("torch", "st"),
}

PREPARE = r"""
import shutil, sys
from pathlib import Path
src, dst, variant = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
tmp = dst.with_name(dst.name + ".tmp")
shutil.rmtree(tmp, ignore_errors=True)
import torch.onnx
_export = torch.onnx.export
def export_legacy(*args, **kwargs):  # optimum 1.24 predates torch's dynamo exporter default
    kwargs.setdefault("dynamo", False)
    return _export(*args, **kwargs)
torch.onnx.export = export_legacy
from optimum.onnxruntime import ORTModelForFeatureExtraction
model = ORTModelForFeatureExtraction.from_pretrained(src, export=True)
model.save_pretrained(tmp)
for name in ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"):
    if (src / name).is_file():
        shutil.copy(src / name, tmp / name)
if (src / "1_Pooling").is_dir():
    shutil.copytree(src / "1_Pooling", tmp / "1_Pooling")
from transformers import AutoTokenizer
AutoTokenizer.from_pretrained(src).save_pretrained(tmp)
if variant.startswith("int8"):
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig
    quantizer = ORTQuantizer.from_pretrained(tmp, file_name="model.onnx")
    if variant == "int8":  # embedstack's recipe: weight MatMuls only, per-channel scales
        config = AutoQuantizationConfig.avx512_vnni(
            is_static=False, per_channel=True, operators_to_quantize=["MatMul"]
        )
    else:  # optimum's preset: every quantisable operator (embedding Gathers too)
        config = AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=False)
    quantizer.quantize(save_dir=tmp, quantization_config=config)  # -> model_quantized.onnx
    (tmp / "model.onnx").unlink()
shutil.rmtree(dst, ignore_errors=True)
tmp.rename(dst)
"""


def prepare_infinity_model(python: Path, source: Path, folder: Path, variant: str) -> Path:
    """An ONNX copy of the model for infinity's optimum engine (fp32 or int8), made once."""
    if variant == "st":
        return source
    if not any(folder.glob("*.onnx")):
        print(f"exporting {variant} ONNX for infinity into {folder} ...", flush=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(python), "-c", PREPARE, str(source), str(folder), variant],
            check=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    return folder


def infinity_server(
    venv: Path, engine: str, model_dir: Path, scratch: Path, batch_size: int
) -> Server:
    port = free_port()
    infinity_engine, _ = INFINITY_ENGINES[engine]
    flags = ["--engine", infinity_engine, "--device", "cpu", "--no-vector-disk-cache"]
    flags += ["--batch-size", str(batch_size)]
    command = [
        str(venv / "bin" / "infinity_emb"),
        "v2",
        "--model-id",
        str(model_dir),
        "--served-model-name",
        MODEL,
        *flags,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    env = {
        "HF_HUB_OFFLINE": "1",
        "DO_NOT_TRACK": "1",
        "INFINITY_ANONYMOUS_USAGE_STATS": "0",
        "HF_HOME": str(scratch / "hf-home"),
    }
    settings = f"`infinity_emb v2 {' '.join(flags)}`, engine {engine}"
    return Server("infinity", command, "/embeddings", MODEL, env=env, port=port, settings=settings)


# ---- load ---------------------------------------------------------------------------------------


@dataclass
class Cell:
    server: str
    workload: str
    clients: int
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    other_cpu: float = 0.0  # CPU the rest of the machine used meanwhile (other users' jobs)
    client_cpu: float = 0.0
    first_error: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")

    def row(self) -> dict:
        return {
            "server": self.server,
            "workload": self.workload,
            "clients": self.clients,
            "requests": self.ok,
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
            "per_s": round(self.rate, 2),
            "p50_ms": round(self.pct(50), 1),
            "p99_ms": round(self.pct(99), 1),
            "server_cores": round(self.server_cpu / self.seconds, 2) if self.seconds else 0,
            "client_cores": round(self.client_cpu / self.seconds, 2) if self.seconds else 0,
            "other_cores": round(self.other_cpu / self.seconds, 2) if self.seconds else 0,
            "first_error": self.first_error,
            **self.extra,
        }


class Feed:
    """Hands out request bodies in order, wrapping round when the texts run out."""

    def __init__(self, bodies: list[bytes]):
        self.bodies, self.next, self.wrapped = bodies, 0, False

    def take(self) -> bytes:
        body = self.bodies[self.next]
        self.next += 1
        if self.next == len(self.bodies):
            self.next, self.wrapped = 0, True
        return body


def check_reply(kind: str, body: bytes) -> None:
    reply = json.loads(body)
    if kind == "embeddings":
        vector = reply["data"][0]["embedding"]
        if len(vector) != 384 or abs(sum(v * v for v in vector) - 1) > 1e-2:
            raise RuntimeError(f"unexpected embedding: {len(vector)}-d")
    elif kind == "search":
        if not reply["hits"]:
            raise RuntimeError("search returned no hits")
    elif kind == "ask" and not reply.get("text", reply.get("answer")):
        raise RuntimeError(f"ask returned no text: {str(reply)[:200]}")


async def load(
    server: Server,
    feed: Feed,
    cell: Cell,
    kind: str,
    duration: float | None,
    total: int | None,
    timeout: float,
) -> Cell:
    """`cell.clients` clients, each sending one request at a time until `duration` seconds have
    passed or `total` requests have been started."""
    marker = {"embeddings": b'"embedding"', "search": b'"hits"', "ask": b'"'}[kind]
    started = time.perf_counter()
    deadline = started + duration if duration else float("inf")
    remaining = [total if total is not None else -1]
    checked = [False]

    async def client() -> None:
        connection = Connection(server.port)
        while time.perf_counter() < deadline and remaining[0] != 0:
            remaining[0] -= 1
            raw = feed.take()
            sent = time.perf_counter()
            try:
                status, body = await asyncio.wait_for(connection.request(raw), timeout)
            except (
                OSError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ValueError,
                TimeoutError,
            ) as error:
                connection.close()
                cell.errors += 1
                cell.first_error = cell.first_error or f"{type(error).__name__}: {error}"
                continue
            elapsed = time.perf_counter() - sent
            if status != 200 or marker not in body:
                cell.errors += 1
                cell.first_error = cell.first_error or f"HTTP {status}: {body[:300]!r}"
                continue
            if not checked[0]:
                checked[0] = True
                check_reply(kind, body)
            if kind == "ask":  # few and slow: read each answer
                answer = json.loads(body)
                cell.extra["grounded"] = cell.extra.get("grounded", 0) + bool(answer["grounded"])
                cell.extra["answer_words"] = cell.extra.get("answer_words", 0) + len(
                    answer["text"].split()
                )
                cell.extra["server_seconds"] = cell.extra.get("server_seconds", 0.0) + float(
                    answer.get("seconds") or 0.0
                )
            cell.ok += 1
            cell.latencies.append(elapsed)
        connection.close()

    cpu0, client0, busy0 = server.cpu_seconds(), time.process_time(), machine_busy()
    await asyncio.gather(*(client() for _ in range(cell.clients)))
    cell.seconds = time.perf_counter() - started
    cell.server_cpu = server.cpu_seconds() - cpu0
    cell.client_cpu = time.process_time() - client0
    cell.other_cpu = max(0.0, machine_busy() - busy0 - cell.server_cpu - cell.client_cpu)
    return cell


def machine_busy() -> float:
    """CPU seconds all cores have spent busy since boot (from /proc/stat; 0 where absent)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def metrics(server: Server) -> dict[str, float]:
    """embedstack's batch histograms (sum and count), to report mean batch sizes per cell."""
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            text = reply.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        match = re.match(
            r"^(embedstack_batch_(?:texts|tokens)_(?:sum|count))(?:\{[^}]*\})? (\S+)$", line
        )
        if match:
            out[match.group(1)] = float(match.group(2))
    return out


def batch_means(before: dict, after: dict) -> dict:
    out = {}
    for what in ("texts", "tokens"):
        count = after.get(f"embedstack_batch_{what}_count", 0) - before.get(
            f"embedstack_batch_{what}_count", 0
        )
        if count:
            total = after[f"embedstack_batch_{what}_sum"] - before[f"embedstack_batch_{what}_sum"]
            out[f"mean_batch_{what}"] = round(total / count, 1)
    return out


def start_server(
    name: str, args: argparse.Namespace, source: Path, logdir: Path, info: dict, first: bool
) -> Server:
    """The server `name` as --embedstack-args / --infinity-* say (not started yet)."""
    if name == "embedstack":
        server = embedstack_server(logdir / "collections", args.embedstack_args)
    elif name == "infinity":
        _, variant = INFINITY_ENGINES[args.infinity_engine]
        folder = prepare_infinity_model(
            args.infinity_venv / "bin" / "python",
            source,
            args.infinity_models / f"minilm-onnx-{variant}",
            variant,
        )
        server = infinity_server(
            args.infinity_venv, args.infinity_engine, folder, logdir, args.infinity_batch_size
        )
    else:
        raise SystemExit(f"unknown server {name!r}")
    if first:
        info["settings"].append(f"- {name}: {server.settings}")
        print(f"{name}: {' '.join(server.command)}", flush=True)
    return server


def run_embed_server(
    server: Server,
    workloads: dict[str, list[str]],
    clients: list[int],
    duration: float,
    warmup: float,
    logdir: Path,
    startup: float,
) -> list[Cell]:
    cells = []
    server.start(logdir, startup)
    try:
        for workload, texts in workloads.items():
            bodies = [
                post(
                    server.embeddings_path,
                    server.port,
                    {"input": text, "model": server.model_name, "encoding_format": "float"},
                )
                for text in texts
            ]
            feed = Feed(bodies)
            warm = Cell(server.name, workload, 8)
            asyncio.run(load(server, feed, warm, "embeddings", warmup, None, 120))
            if warm.ok == 0:
                raise RuntimeError(f"warm-up failed: {warm.first_error}\n{server.tail()}")
            for n in clients:
                time.sleep(1)
                before = metrics(server) if server.name == "embedstack" else {}
                cell = asyncio.run(
                    load(
                        server,
                        feed,
                        Cell(server.name, workload, n),
                        "embeddings",
                        duration,
                        None,
                        120,
                    )
                )
                if before:
                    cell.extra.update(batch_means(before, metrics(server)))
                cell.extra["texts_reused"] = feed.wrapped
                cells.append(cell)
                r = cell.row()
                print(
                    f"  {server.name:10} {workload:9} {n:>2} clients: {r['per_s']:8.1f} texts/s "
                    f"p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  errors {cell.errors}"
                    f"  cores: server {r['server_cores']}, client {r['client_cores']}, "
                    f"other {r['other_cores']}",
                    flush=True,
                )
    finally:
        server.stop()
    return cells


# ---- the 100k-chunk collection ------------------------------------------------------------------


def newsgroup_chunks(limit: int = COLLECTION_CHUNKS, words: int = CHUNK_WORDS) -> list[tuple]:
    """(id, text, metadata) for posts cut into `words`-word chunks, the first `limit` of them."""
    out: list[tuple] = []
    for number, post_ in enumerate(newsgroup_posts()):
        tokens = post_["text"].split()
        for start in range(0, len(tokens), words):
            text = " ".join(tokens[start : start + words])
            meta = {
                "label": post_["label"],
                "split": post_["split"],
                "post": number,
                "subject": post_.get("subject", "")[:200],
            }
            out.append((f"ng{number}-{start // words}", text, meta))
            if len(out) == limit:
                return out
    return out


def build_collection(folder: Path, budget: float) -> bool:
    """Add the chunks the collection lacks, in batches, for at most `budget` seconds.
    Returns True once it holds all of them."""
    from embedstack import Collection

    chunks = newsgroup_chunks()
    started = time.perf_counter()
    kb = Collection.open(folder, MODEL, index="hnsw", cache_size=0)
    try:
        have = set(kb.ids())
        missing = [chunk for chunk in chunks if chunk[0] not in have]
        print(f"collection {folder}: {len(have):,} chunks, {len(missing):,} to add", flush=True)
        for start in range(0, len(missing), 2000):
            if time.perf_counter() - started > budget:
                print(
                    f"build paused after {time.perf_counter() - started:.0f} s with "
                    f"{kb.count():,} chunks; run again to go on",
                    flush=True,
                )
                return False
            batch = missing[start : start + 2000]
            kb.add(
                [c[1] for c in batch],
                ids=[c[0] for c in batch],
                metadata=[c[2] for c in batch],
                show_progress=True,
            )
            print(
                f"  {kb.count():,} / {len(chunks):,} chunks "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
        return kb.count() >= len(chunks)
    finally:
        kb.close()


def search_queries() -> tuple[list[str], list[str]]:
    """Distinct 20 Newsgroups test-split subjects as search queries, and questions made of them."""
    subjects: dict[str, None] = {}
    for post_ in newsgroup_posts():
        subject = re.sub(r"^(re:\s*)+", "", post_.get("subject", ""), flags=re.I).strip()
        if post_["split"] == "test" and len(subject.split()) >= 3:
            subjects.setdefault(subject, None)
    queries = list(subjects)
    questions = [f"What do the posts say about {subject.rstrip('?.!')}?" for subject in queries]
    return queries, questions[::-1]


def run_search_part(args: argparse.Namespace, logdir: Path) -> list[Cell]:
    folder = args.collection
    if not build_collection(folder, args.build_budget):
        raise SystemExit(3)
    server = embedstack_server(folder.parent, args.embedstack_args)
    queries, questions = search_queries()
    name = folder.name
    search_bodies = [
        post(f"/collections/{name}/search", server.port, {"query": q, "k": 10}) for q in queries
    ]
    ask_bodies = [
        post(
            f"/collections/{name}/ask",
            server.port,
            {"question": q, "max_tokens": args.ask_max_tokens},
        )
        for q in questions[: args.asks + 1]
    ]
    ask_warm = ask_bodies.pop()  # not among the measured questions
    cells = []
    server.start(logdir, args.startup_timeout)
    try:
        warm = Cell("embedstack", "search warm-up", 4)
        asyncio.run(load(server, Feed(search_bodies[-64:]), warm, "search", None, 32, 120))
        if warm.ok == 0:
            raise RuntimeError(f"search warm-up failed: {warm.first_error}\n{server.tail()}")
        feed = Feed(search_bodies)
        cell = asyncio.run(
            load(
                server,
                feed,
                Cell("embedstack", "search (hybrid, k=10)", args.search_clients),
                "search",
                None,
                args.searches,
                120,
            )
        )
        cells.append(cell)
        print(f"  search: {cell.row()}", flush=True)
        warm = Cell("embedstack", "ask warm-up", 1)  # loads the LLM
        asyncio.run(load(server, Feed([ask_warm]), warm, "ask", None, 1, 900))
        if warm.ok == 0:
            raise RuntimeError(f"ask warm-up failed: {warm.first_error}\n{server.tail()}")
        cell = asyncio.run(
            load(
                server,
                Feed(ask_bodies),
                Cell(
                    "embedstack",
                    f"ask (max_tokens {args.ask_max_tokens})",
                    min(args.search_clients, len(ask_bodies)),
                ),
                "ask",
                None,
                len(ask_bodies),
                1800,
            )
        )
        cells.append(cell)
        print(f"  ask: {cell.row()}", flush=True)
    finally:
        server.stop()
    return cells


# ---- report -------------------------------------------------------------------------------------


class Comparison(NamedTuple):
    """One cell (workload, clients) over the rounds: embedstack against infinity."""

    ratio: float  # the median of the rounds' ratios: what the target is judged on
    rounds: list[float]  # each round's ratio
    ours: float  # median texts/s
    theirs: float
    ours_p99: float  # the worst round's, ms
    theirs_p99: float


def compare(ours: list[Cell], theirs: list[Cell]) -> Comparison:
    rounds = [
        e.rate / i.rate if i.rate else float("nan") for e, i in zip(ours, theirs, strict=True)
    ]
    return Comparison(
        statistics.median(rounds),
        rounds,
        statistics.median(c.rate for c in ours),
        statistics.median(c.rate for c in theirs),
        max(c.pct(99) for c in ours),
        max(c.pct(99) for c in theirs),
    )


def _round(cell: Cell) -> str:
    return f" (round {cell.extra['round'] + 1})" if "round" in cell.extra else ""


def report(info: dict, cells: list[Cell], search_cells: list[Cell], argv: list[str]) -> str:
    lines = [
        f'Machine: {info["cores"]} vCPU "{info["cpu"]}" ({", ".join(info["simd"]) or "no"} '
        f"flags), Python {info['python']}, {info['date']}. Client and server share these cores.",
        "",
        f"Command: `{' '.join(argv)}`",
        "",
    ]
    if cells:
        lines += info.get("settings", [])
        lines += [
            "",
            "| server | workload | clients | texts/s | p50 ms | p99 ms | requests | errors "
            "| server cores | client cores | other cores |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in cells:
            r = c.row()
            lines.append(
                f"| {c.server}{_round(c)} | {c.workload} | {c.clients} | {r['per_s']:.1f} | "
                f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {c.ok} | {c.errors} | "
                f"{r['server_cores']:.2f} | {r['client_cores']:.2f} | {r['other_cores']:.2f} |"
            )
        by: dict[tuple[str, str, int], list[Cell]] = {}
        for c in cells:
            by.setdefault((c.server, c.workload, c.clients), []).append(c)
        pairs = [(w, n) for (s, w, n) in by if s == "embedstack" and ("infinity", w, n) in by]
        if pairs:
            lines += [
                "",
                "| workload | clients | embedstack texts/s | infinity texts/s | "
                "embedstack / infinity | embedstack p99 ms | infinity p99 ms |",
                "|---|---|---|---|---|---|---|",
            ]
            compared = {pair: compare(by[("embedstack", *pair)], by[("infinity", *pair)])
                        for pair in pairs}  # fmt: skip
            for (w, n), c in compared.items():
                each = f" ({', '.join(f'{r:.2f}' for r in c.rounds)})" if len(c.rounds) > 1 else ""
                lines.append(
                    f"| {w} | {n} | {c.ours:.1f} | {c.theirs:.1f} | **{c.ratio:.2f}x**{each} | "
                    f"{c.ours_p99:.0f} | {c.theirs_p99:.0f} |"
                )
            top = max(n for _, n in pairs)
            verdicts = []
            for (w, n), c in compared.items():
                if n != top:
                    continue
                ok = c.ratio >= 1.5 and c.ours_p99 < 1000
                verdicts.append(
                    f"{w}: {c.ratio:.2f}x, p99 {c.ours_p99:.0f} ms ({'met' if ok else 'NOT met'})"
                )
            lines += [
                "",
                f"Target at {top} clients (>= 1.5x infinity, p99 < 1 s): " + "; ".join(verdicts),
            ]
        batches = [c for c in cells if "mean_batch_texts" in c.extra]
        if batches:
            lines += [
                "",
                "embedstack mean batch (texts / tokens) per cell: "
                + "; ".join(
                    f"{c.workload} x{c.clients}: {c.extra['mean_batch_texts']} / "
                    f"{c.extra.get('mean_batch_tokens', '?')}"
                    for c in batches
                ),
            ]
        if any(c.extra.get("texts_reused") for c in cells):
            lines += [
                "",
                "Note: the text pool ran out and wrapped round in some cells (texts sent twice).",
            ]
    if search_cells:
        lines += [
            "",
            f"Collection: {info.get('collection', '')}",
            "",
            "| request | clients | requests | per s | p50 ms | p99 ms | max ms | errors |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for c in search_cells:
            r = c.row()
            lines.append(
                f"| {c.workload} | {c.clients} | {c.ok} | {r['per_s']:.2f} | "
                f"{r['p50_ms']:.0f} | {r['p99_ms']:.0f} | "
                f"{max(c.latencies, default=0) * 1000:.0f} | {c.errors} |"
            )
    for c in search_cells:
        if "grounded" in c.extra and c.ok:
            lines.append(
                f"\n{c.workload}: {c.extra['grounded']} of {c.ok} answers grounded (the others: "
                f"no relevant evidence, no LLM call); {c.extra['answer_words'] / c.ok:.0f} words "
                f"per answer; the server's own `seconds` per answer "
                f"{c.extra['server_seconds'] / c.ok:.1f} s on average; {c.ok} answers in "
                f"{c.seconds:.0f} s = one every {c.seconds / c.ok:.1f} s."
            )
    errors = [c for c in cells + search_cells if c.first_error]
    for c in errors:
        lines.append(f"\nFirst error, {c.server} {c.workload} x{c.clients}: {c.first_error}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["embed", "search", "all"], default="embed")
    parser.add_argument("--quick", action="store_true", help="smoke run: short cells, few asks")
    parser.add_argument("--servers", default="embedstack,infinity")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--workloads", default="sentences,passages")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per cell")
    parser.add_argument("--rounds", type=int, default=1, help="servers in turn, N times")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds per workload")
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument("--infinity-venv", type=Path, default=Path("/work/infinity-venv"))
    parser.add_argument("--infinity-engine", choices=list(INFINITY_ENGINES), default="optimum-int8")
    parser.add_argument(
        "--infinity-batch-size", type=int, default=32, help="its --batch-size (32: its default)"
    )
    parser.add_argument(
        "--infinity-models",
        type=Path,
        default=Path("/work/benchdata"),
        help="where the ONNX copies of the model for infinity are kept",
    )
    parser.add_argument(
        "--embedstack-args", default="", help="extra `embedstack serve` flags, one string"
    )
    parser.add_argument(
        "--collection", type=Path, default=Path("/work/benchdata/collections/news-100k")
    )
    parser.add_argument(
        "--build-budget",
        type=float,
        default=540.0,
        help="seconds of collection building per run (it resumes)",
    )
    parser.add_argument(
        "--build-only", action="store_true", help="only build (or go on building) the collection"
    )
    parser.add_argument("--search-clients", type=int, default=32)
    parser.add_argument("--searches", type=int, default=1600)
    parser.add_argument("--asks", type=int, default=32)
    parser.add_argument("--ask-max-tokens", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    args.embedstack_args = args.embedstack_args.split()
    if args.quick:
        args.duration, args.warmup = min(args.duration, 3.0), min(args.warmup, 2.0)
        args.searches, args.asks = min(args.searches, 64), min(args.asks, 4)

    missing = data_missing()
    if missing:
        print(f"skipped: shared data not found under {DATA.resolve()} ({', '.join(missing)})")
        return
    if args.build_only:
        done = build_collection(args.collection, args.build_budget)
        raise SystemExit(0 if done else 3)
    info = machine()
    print(
        f"{info['cores']} vCPU {info['cpu']} ({' '.join(info['simd'])}), {info['date']}; "
        "client and servers share these cores",
        flush=True,
    )
    logdir = Path(tempfile.mkdtemp(prefix="serve-load-"))
    cells: list[Cell] = []
    search_cells: list[Cell] = []
    if args.part in ("embed", "all"):
        from embedstack.models.catalog import find_spec

        source = Path(find_spec(MODEL).locate())
        all_workloads = {
            "sentences": short_sentences(),
            "passages": passages(source / "tokenizer.json"),
        }
        workloads = {w: all_workloads[w] for w in args.workloads.split(",")}
        print("texts: " + ", ".join(f"{len(t):,} {w}" for w, t in workloads.items()), flush=True)
        clients = [int(n) for n in args.clients.split(",")]
        info["settings"] = []
        names = args.servers.split(",")
        for turn in range(args.rounds):
            for name in names if turn % 2 == 0 else names[::-1]:
                round_cells = run_embed_server(
                    start_server(name, args, source, logdir, info, first=turn == 0),
                    workloads, clients, args.duration, args.warmup, logdir, args.startup_timeout,
                )  # fmt: skip
                if args.rounds > 1:
                    for cell in round_cells:
                        cell.extra["round"] = turn
                cells += round_cells
    if args.part in ("search", "all"):
        info["collection"] = (
            f"{args.collection} ({COLLECTION_CHUNKS:,} chunks of "
            f"{CHUNK_WORDS} words from 20 Newsgroups posts, HNSW)"
        )
        search_cells = run_search_part(args, logdir)
    text = report(info, cells, search_cells, ["python", "bench/serve_load.py", *sys.argv[1:]])
    print("\n" + text)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "embed": [c.row() for c in cells],
                    "search": [c.row() for c in search_cells],
                },
                indent=1,
            )
        )
    shutil.rmtree(logdir, ignore_errors=True)


if __name__ == "__main__":
    main()
