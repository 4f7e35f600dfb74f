"""The local store at scale: vectors once in a memory-mapped file, compressed FAISS indexes with
exact re-ranking, incremental index files, the automatic switch, migration and compaction —
each checked on real files, and against kill -9 where it writes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

import faiss
import numpy as np
import pytest

import embedstack.store.vector_index as vector_index
from embedstack import Collection
from embedstack.errors import InvalidInputError
from tests.conftest import PROJECT

DIM = 384


def clustered(n: int, seed: int = 0, centers: int = 40) -> np.ndarray:
    """Unit vectors around a few dozen topics, like sentence embeddings (random uniform
    vectors in 384-d have no neighbours worth finding)."""
    rng = np.random.default_rng(seed)
    middle = rng.standard_normal((centers, DIM)).astype(np.float32)
    points = middle[rng.integers(0, centers, n)] + 0.6 * rng.standard_normal((n, DIM))
    points = points.astype(np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def fill(kb: Collection, vectors: np.ndarray, start: int = 0) -> list[str]:
    ids = [f"v{i}" for i in range(start, start + len(vectors))]
    kb.add([f"row {i}" for i in range(start, start + len(vectors))], ids=ids, embeddings=vectors)
    return ids


def recall_at_10(kb: Collection, vectors: np.ndarray, queries: np.ndarray) -> float:
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    hits = 0
    for query, truth in zip(queries, exact, strict=True):
        found = {h.id for h in kb.search(query, k=10, mode="dense")}
        hits += len(found & {f"v{i}" for i in truth})
    return hits / (10 * len(queries))


def run(script: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT / "src"), str(PROJECT)])}
    if crash_at:
        env["EMBEDSTACK_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return clustered(5000, seed=1), clustered(40, seed=2)


# Sign bits rank these 40 near-equal topics coarsely: the store re-ranks the Hamming top 1,000
# (a fifth of the rows here). Real MiniLM vectors reach 0.969 at 100k (docs/benchmarks.md).
MIN_RECALL = {"binary": 0.85}


@pytest.mark.parametrize("index", ["hnsw", "SQ8", "binary", "IVF64,SQ8", "IVF32,PQ16"])
def test_each_index_kind_finds_the_exact_neighbours(tmp_path, data, index):
    vectors, queries = data
    folder = tmp_path / "kb"
    with Collection.open(folder, index=index) as kb:
        fill(kb, vectors)
    with Collection.open(folder) as kb:
        store = kb._store
        assert store._index.segments, "the approximate index was built"
        assert recall_at_10(kb, vectors, queries) >= MIN_RECALL.get(index, 0.9)
        top = kb.search(vectors[7], k=1, mode="dense")[0]
        assert top.id == "v7" and top.score == pytest.approx(1.0, abs=1e-5)  # exact re-rank
    files = sorted(p.name for p in folder.iterdir())
    assert "vectors-0.f32" in files and any(n.startswith("index-0-0-5000") for n in files)
    with closing(sqlite3.connect(folder / "embedstack.db")) as db:  # the floats are stored once
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "vectors" not in tables
    assert (folder / "vectors-0.f32").stat().st_size == 5000 * DIM * 4


def test_a_bad_index_string_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidInputError, match="FAISS factory string") as caught:
        Collection.open(tmp_path / "kb", index="IVF64,PQ7")  # 384 is not a multiple of 7
    assert "\n" not in str(caught.value) and not (tmp_path / "kb" / "collection.toml").exists()


def test_a_close_after_a_small_add_writes_a_small_file(tmp_path, data):
    vectors, _ = data
    folder = tmp_path / "kb"
    with Collection.open(folder, index="IVF64,SQ8") as kb:
        fill(kb, vectors[:4900])
    base = folder / "index-0-0-4900.faiss"
    before = base.stat()
    with Collection.open(folder) as kb:
        fill(kb, vectors[4900:], start=4900)
        written = kb._store.flush()
    delta = folder / "index-0-4900-5000.faiss"
    assert base.stat().st_mtime_ns == before.st_mtime_ns  # the big segment is not rewritten
    assert 0 < written == delta.stat().st_size < before.st_size / 10
    with Collection.open(folder) as kb:
        assert kb.search(vectors[4950], k=1, mode="dense")[0].id == "v4950"
        assert kb.check() == []


def test_segments_merge_as_they_pile_up(tmp_path, data):
    vectors, _ = data
    folder = tmp_path / "kb"
    with Collection.open(folder, index="SQ8") as kb:
        fill(kb, vectors[:3000])
    for start in range(3000, 3600, 100):  # six small closes
        with Collection.open(folder) as kb:
            fill(kb, vectors[start : start + 100], start=start)
    segments = sorted(p.name for p in folder.glob("index-0-*-*.faiss"))
    assert 2 <= len(segments) <= 3 and "index-0-0-3000.faiss" in segments
    with Collection.open(folder) as kb:
        assert [h.id for h in kb.search(vectors[3550], k=1, mode="dense")] == ["v3550"]


def test_auto_switches_to_an_approximate_index_past_its_threshold(tmp_path, data, monkeypatch):
    monkeypatch.setattr(vector_index, "AUTO_THRESHOLD", 3000)
    vectors, queries = data
    folder = tmp_path / "kb"
    with Collection.open(folder) as kb:
        assert kb.config.index == "auto"
        fill(kb, vectors[:2000])
        kb.search(vectors[0], k=1, mode="dense")
        assert not kb._store._index.segments  # exact below the threshold
        fill(kb, vectors[2000:], start=2000)
        assert kb.search(vectors[4321], k=1, mode="dense")[0].id == "v4321"  # exact meanwhile
        deadline = time.monotonic() + 60
        while not kb._store._index.segments and time.monotonic() < deadline:
            time.sleep(0.2)  # the switch is built in the background
            kb.search(vectors[1], k=1, mode="dense")
        assert kb._store._index.segments
        assert "PQ" in type(faiss.downcast_index(kb._store._index.segments[0].index.index)).__name__
        assert recall_at_10(kb, vectors, queries) >= 0.9
    assert (folder / "index-0-trained.faiss").exists()


OLD_LAYOUT = """
CREATE TABLE vectors (vid INTEGER PRIMARY KEY, vector BLOB NOT NULL);
DELETE FROM meta WHERE key = 'vector_epoch';
"""


def make_old_layout(folder: Path, vectors: np.ndarray) -> dict:
    """A collection as embedstack wrote it before the vector file: floats in SQLite."""
    with Collection.open(folder, index="hnsw") as kb:
        ids = fill(kb, vectors)
        kb.delete(ids[:10])
        expected = {h.id: round(h.score, 5) for h in kb.search(vectors[20], k=5, mode="dense")}
    with closing(sqlite3.connect(folder / "embedstack.db")) as db, db:
        db.executescript(OLD_LAYOUT)
        db.executemany(
            "INSERT INTO vectors VALUES (?, ?)",
            [(vid, vectors[vid].tobytes()) for (vid,) in db.execute("SELECT vid FROM chunks")],
        )
    for path in folder.iterdir():
        if path.name.startswith(("vectors-", "index-")):
            path.unlink()
    return expected


def test_an_old_collection_is_migrated_once(tmp_path, data):
    vectors = data[0][:600]
    folder = tmp_path / "kb"
    expected = make_old_layout(folder, vectors)
    with Collection.open(folder) as kb:
        got = {h.id: round(h.score, 5) for h in kb.search(vectors[20], k=5, mode="dense")}
        assert got == expected and kb.count() == 590 and kb.check() == []
        assert np.array_equal(kb._store.vectors(["v33"])[0], vectors[33])
        fill(kb, vectors[:1], start=1000)  # writable in the new layout
    with closing(sqlite3.connect(folder / "embedstack.db")) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
        epoch = db.execute("SELECT value FROM meta WHERE key = 'vector_epoch'").fetchone()
    assert "vectors" not in tables and epoch == ("0",)
    assert (folder / "vectors-0.f32").stat().st_size == 601 * DIM * 4


OPEN_AND_SEARCH = """
import json, sys
import numpy as np
from embedstack import Collection
with Collection.open({folder!r}) as kb:
    {action}
"""


@pytest.mark.parametrize("point", ["migrate-file-written", "migrate-renamed", "migrate-committed"])
def test_kill_9_during_a_migration_leaves_it_openable(tmp_path, data, point):
    vectors = data[0][:600]
    folder = tmp_path / "kb"
    expected = make_old_layout(folder, vectors)
    done = run(OPEN_AND_SEARCH.format(folder=str(folder), action="pass"), crash_at=point)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    with Collection.open(folder) as kb:
        got = {h.id: round(h.score, 5) for h in kb.search(vectors[20], k=5, mode="dense")}
        assert got == expected and kb.count() == 590 and kb.check() == []


def test_compact_reclaims_space_and_keeps_results(tmp_path, data):
    vectors = data[0][:3000]
    folder = tmp_path / "kb"
    with Collection.open(folder, index="SQ8") as kb:
        ids = fill(kb, vectors)
        kb.add(["a needle about harbours"], ids=["needle"], embeddings=vectors[:1],
               metadata=[{"tag": "x"}])  # fmt: skip
        kb.delete(ids[:2000])
        before = [(h.id, round(h.score, 5)) for h in kb.search(vectors[2500], k=10, mode="dense")]
        report = kb.compact()
        assert report["rows"] == 1001 and report["reclaimed_rows"] == 2000
        assert report["bytes_after"] < report["bytes_before"]
        after = [(h.id, round(h.score, 5)) for h in kb.search(vectors[2500], k=10, mode="dense")]
        assert after == before
    assert sorted(p.name for p in folder.glob("vectors-*")) == ["vectors-1.f32"]
    assert (folder / "vectors-1.f32").stat().st_size == 1001 * DIM * 4
    with Collection.open(folder) as kb:
        assert [(h.id, round(h.score, 5)) for h in kb.search(vectors[2500], k=10, mode="dense")] \
            == before  # fmt: skip
        assert kb.search("harbours needle", k=1, mode="keyword")[0].id == "needle"
        assert [h.id for h in kb.search(vectors[0], k=3, filter={"tag": "x"})] == ["needle"]
        assert kb.ids()[0] == "v2000" and kb.count() == 1001 and kb.check() == []
        assert np.allclose(kb._store.vectors(["v2999"])[0], vectors[2999], atol=1e-6)


@pytest.mark.parametrize(
    "point", ["compact-file-written", "compact-before-commit", "compact-committed"]
)
def test_kill_9_during_compact_leaves_the_last_committed_state(tmp_path, data, point):
    vectors = data[0][:1000]
    folder = tmp_path / "kb"
    with Collection.open(folder) as kb:
        ids = fill(kb, vectors)
        kb.delete(ids[::2])
        before = [(h.id, round(h.score, 5)) for h in kb.search(vectors[501], k=10, mode="dense")]
    done = run(OPEN_AND_SEARCH.format(folder=str(folder), action="kb.compact()"), crash_at=point)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    with Collection.open(folder) as kb:
        assert kb.count() == 500 and kb.check() == []
        got = [(h.id, round(h.score, 5)) for h in kb.search(vectors[501], k=10, mode="dense")]
        assert got == before
        kb.compact()  # and a compact after the crash finishes the job
        assert [p.name for p in folder.glob("vectors-*")] in (["vectors-1.f32"], ["vectors-2.f32"])
        got = [(h.id, round(h.score, 5)) for h in kb.search(vectors[501], k=10, mode="dense")]
        assert got == before


def test_another_process_compacting_does_not_confuse_an_open_collection(tmp_path, data):
    vectors = data[0][:1000]
    folder = tmp_path / "kb"
    with Collection.open(folder) as kb:
        ids = fill(kb, vectors)
        kb.delete(ids[:900])
        before = [h.id for h in kb.search(vectors[950], k=5, mode="dense")]
        done = run(OPEN_AND_SEARCH.format(folder=str(folder), action="kb.compact()"))
        assert done.returncode == 0, done.stderr[-2000:]
        assert [h.id for h in kb.search(vectors[950], k=5, mode="dense")] == before
        assert kb.search("row 950", k=1, mode="keyword")[0].id == "v950"
        fill(kb, vectors[:1], start=5000)  # writes go to the new file
        assert kb.search(vectors[0], k=1, mode="dense")[0].id == "v5000"


def test_a_damaged_segment_is_reported_and_rebuilt_not_served(tmp_path, data):
    vectors, _ = data
    folder = tmp_path / "kb"
    with Collection.open(folder, index="SQ8") as kb:
        fill(kb, vectors[:3000])
    segment = folder / "index-0-0-3000.faiss"
    segment.write_bytes(b"not an index" * 100)
    with Collection.open(folder) as kb:
        assert kb.check() == [
            "index-0-0-3000.faiss is unreadable or lacks stored vectors (rebuilt on open)"
        ]
        assert kb.search(vectors[42], k=1, mode="dense")[0].id == "v42"
    with Collection.open(folder) as kb:  # the close saved a good one
        assert kb.check() == []


def test_the_compact_command(tmp_path, data):
    vectors = data[0][:500]
    folder = tmp_path / "kb"
    with Collection.open(folder) as kb:
        kb.delete(fill(kb, vectors)[:300])
    cli = Path(sys.executable).parent / "embedstack"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT / "src"), str(PROJECT)])}
    done = subprocess.run([str(cli), "compact", str(folder), "--json"], capture_output=True,
                          text=True, env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rows"] == 200 and report["reclaimed_rows"] == 300
    assert report["bytes_after"] < report["bytes_before"]
    missing = subprocess.run([str(cli), "compact", str(tmp_path / "nothing")], capture_output=True,
                             text=True, env=env, timeout=120)  # fmt: skip
    assert missing.returncode != 0 and "Traceback" not in missing.stderr


READ_ONLY_OLD_LAYOUT = """
import json, subprocess, sys
from pathlib import Path
from embedstack import Collection
from tests.store.test_scale_store import clustered, make_old_layout

mount = Path(sys.argv[1]) / "mnt"
mount.mkdir()
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)], check=True)
folder = mount / "kb"
vectors = clustered(300, seed=3)
expected = make_old_layout(folder, vectors)
subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
with Collection.open(folder) as kb:
    got = {h.id: round(h.score, 5) for h in kb.search(vectors[20], k=5, mode="dense")}
    result = {"same": got == expected, "count": kb.count(),
              "files": sorted(p.name for p in folder.iterdir())}
print(json.dumps(result))
"""


def test_an_old_collection_on_a_read_only_disk_is_searched_unmigrated(tmp_path):
    from tests.store.test_failures import in_private_mount

    done = in_private_mount(READ_ONLY_OLD_LAYOUT, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["same"] and result["count"] == 290
    assert "vectors-0.f32" not in result["files"]
