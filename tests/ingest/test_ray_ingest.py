"""Ingest through a real local Ray cluster against the plain ingest: same chunks and vectors,
the same report for bad files, unchanged files skipped, and every Ray socket on loopback."""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from embedstack import Collection
from tests.ingest.makers import geology_pdf
from tests.ingest.test_ingest import good_folder

if importlib.util.find_spec("ray") is None:  # not imported here: see ray_cluster
    pytest.skip("the ray extra is not installed", allow_module_level=True)
psutil = pytest.importorskip("psutil")

OPTIONS = {"chunk_tokens": 48, "batch_chunks": 8}  # many chunks, embedded across files


OTHERS: set[int] = set()  # children of this process from other tests' fixtures (servers)


def ray_processes() -> list[psutil.Process]:
    """This process (the driver) and everything Ray started: GCS, raylet, agents, workers."""
    me = psutil.Process()
    return [me, *(p for p in me.children(recursive=True) if p.pid not in OTHERS)]


def listening_sockets(pids: set[int]) -> list[tuple[str, str]]:
    """(protocol, local address) of every TCP/UDP socket these processes listen on."""
    found = []
    for protocol, flag in (("tcp", "-ltnpH"), ("udp", "-lunpH")):
        lines = subprocess.run(["ss", flag], capture_output=True, text=True, check=True).stdout
        for line in lines.splitlines():
            fields = line.split()
            if len(fields) >= 6 and any(f"pid={pid}," in line for pid in pids):
                found.append((protocol, fields[3]))
    return found


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]").split("%")[0]
    if host in ("*", ""):
        return False
    ip = ipaddress.ip_address(host)
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


@pytest.fixture(scope="module")
def local_ray():
    """One local cluster for the module (starting one takes ~15 s on 2 cores); every ingest
    below finds it initialised and uses it. Stopped after, with nothing left running."""
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is needed to check what Ray listens on")
    from embedstack.ingest.distributed import ray_cluster

    OTHERS.update(p.pid for p in psutil.Process().children(recursive=True))
    with ray_cluster("local", num_cpus=2):
        yield
        started = ray_processes()[1:]
    gone, alive = psutil.wait_procs(started, timeout=30)
    assert not alive, f"Ray processes left running: {[p.pid for p in alive]}"


def pdf_report_folder(root: Path) -> Path:
    """The ingest test's good files, plus a truncated PDF and an empty file."""
    good_folder(root)
    pdf = geology_pdf(root / "whole.pdf").read_bytes()
    (root / "whole.pdf").unlink()
    (root / "truncated.pdf").write_bytes(pdf[: len(pdf) // 2])
    (root / "zero.md").write_bytes(b"")
    return root


def stored(kb: Collection) -> tuple[dict[str, tuple[str, dict]], np.ndarray]:
    ids = sorted(kb.ids())
    chunks = {c.id: (c.text, c.metadata) for c in kb.get(ids)}
    return chunks, kb._store.vectors(ids)


def test_ray_ingest_matches_plain_ingest(tmp_path, model, local_ray):
    docs = pdf_report_folder(tmp_path / "docs")
    with Collection.open(tmp_path / "plain", model) as plain:
        expected = plain.ingest(docs, **OPTIONS)
        plain_chunks, plain_vectors = stored(plain)

    sockets: list[tuple[str, str]] = []

    def while_running(event: str, n: int) -> None:
        if event == "chunks_done" and not sockets:  # the actors are up and embedding
            sockets.extend(listening_sockets({p.pid for p in ray_processes()}))

    with Collection.open(tmp_path / "ray", model) as kb:
        report = kb.ingest(docs, ray="local", on_progress=while_running, **OPTIONS)
        ray_chunks, ray_vectors = stored(kb)
        assert report.added == expected.added and len(report.added) == 7
        assert [(f.path, f.reason) for f in report.failed] == [
            (f.path, f.reason) for f in expected.failed
        ]
        assert {Path(f.path).name for f in report.failed} == {"truncated.pdf", "zero.md"}
        assert report.chunks_added == expected.chunks_added > 7
        assert ray_chunks == plain_chunks  # same ids, texts and metadata
        cosines = np.sum(plain_vectors * ray_vectors, axis=1)
        assert cosines.min() >= 0.999, cosines.min()
        assert {s.path for s in kb.sources()} == set(report.added)

        again = kb.ingest(docs, ray="local", **OPTIONS)  # unchanged files are skipped
        assert sorted(again.unchanged) == sorted(report.added) and again.chunks_added == 0
        assert len(again.failed) == 2 and stored(kb)[0] == ray_chunks

    assert len(sockets) >= 4, sockets  # GCS, raylet (2), the driver and each worker
    outside = [s for s in sockets if not is_loopback(s[1])]
    assert not outside, f"Ray listens beyond loopback: {outside}"


def test_cli_ray_flag(tmp_path, model, local_ray):
    from typer.testing import CliRunner

    from embedstack.cli.app import app, with_flag_values

    docs = pdf_report_folder(tmp_path / "docs")
    kb = str(tmp_path / "kb")
    result = CliRunner().invoke(app, ["ingest", kb, str(docs / "notes"), "--ray", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["added"] == 2 and report["count"] == report["chunks_added"] >= 2

    # --ray=ADDRESS, as `embedstack` reads its command line (main)
    args = with_flag_values(["ingest", kb, str(docs), "--ray=local", "--json"])
    assert args[-3:] == ["--ray-address", "local", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1  # the truncated PDF and the empty file
    report = json.loads(result.stdout)
    assert report["unchanged"] == 2 and report["added"] == 5 and report["failed"] == 2


def test_a_worker_without_the_drivers_runtime_embeds_on_its_own_choice(monkeypatch, model):
    """The driver's `auto` may have picked a runtime (bf16 on an AMX CPU) that a worker's node
    lacks: the worker then loads the model on its own choice instead of failing."""
    from embedstack.ingest.distributed import ChunkEmbedder, ModelName
    from embedstack.models.cpu import this_cpu

    if this_cpu().has_bf16:
        pytest.skip("this CPU runs bf16: no runtime here to lack")
    monkeypatch.setenv("EMBEDSTACK_THREADS", "1")  # the actor sets it: undone after the test
    embedder = ChunkEmbedder(ModelName(model.name, "openvino-bf16"))
    assert embedder.model.backend == model.backend  # this machine's own `auto` choice
    vector = embedder.model.encode(["a worker on another node"])
    assert vector.shape == (1, model.dim)
