"""Bad input and broken disks: a one-line error, and nothing stored is lost.

The read-only and full-disk cases run on a real tmpfs mounted in a private mount namespace
(`unshare --mount`, as root or with user namespaces); where that is not allowed they skip.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from embedstack import Collection
from embedstack.errors import (
    CollectionNotFoundError,
    CorruptCollectionError,
    EmbedstackError,
    InvalidInputError,
    LimitExceededError,
    ModelNotFoundError,
)
from tests.conftest import PROJECT, unit_vectors

TEXTS = ["Paris is in France.", "Berlin is in Germany.", "Rome is in Italy."]


@pytest.fixture
def kb(tmp_path):
    with Collection.open(tmp_path / "kb") as collection:
        collection.add(TEXTS, ids=["paris", "berlin", "rome"], embeddings=unit_vectors(3, 384))
        yield collection


def snapshot(kb: Collection) -> dict:
    return {c.id: (c.text, c.metadata) for c in kb.get(kb.ids())}


@pytest.mark.parametrize(
    "bad_call, error, message",
    [
        (lambda kb: kb.search(unit_vectors(1, 384)[0], k=2.5), InvalidInputError,
         "k must be a whole number, got 2.5"),
        (lambda kb: kb.search(unit_vectors(1, 384)[0], k="5"), InvalidInputError,
         "k must be a whole number, got '5'"),
        (lambda kb: kb.search(unit_vectors(1, 384)[0], k=True), InvalidInputError, "whole number"),
        (lambda kb: kb.search(unit_vectors(1, 384)[0], k=10**6), LimitExceededError,
         "the limit is 10,000"),
        (lambda kb: kb.add(None), InvalidInputError,
         "texts must be a string or a list, got NoneType"),
        (lambda kb: kb.add(["x"], ids=None, metadata={"a": 1}), InvalidInputError,
         "metadata must be a string or a list, got dict"),
        (lambda kb: kb.add(["bad \ud800 text"], embeddings=unit_vectors(1, 384)),
         InvalidInputError, "text: not valid Unicode text \\(a lone surrogate"),
        (lambda kb: kb.add(["ok"], metadata=[{"k": "\udcff"}], embeddings=unit_vectors(1, 384)),
         InvalidInputError, "metadata: not valid Unicode"),
        (lambda kb: kb.search("caf\udce9", k=2), InvalidInputError, "query 0: not valid Unicode"),
        (lambda kb: kb.search(None), InvalidInputError, "a query is a text or a vector"),
        (lambda kb: kb.search(["a", "b"]), InvalidInputError, "a query is a text or a vector"),
        (lambda kb: kb.search(unit_vectors(1, 384)[0], mode="fuzzy"), InvalidInputError,
         "mode must be one of"),
        (lambda kb: kb.search(unit_vectors(1, 384)[0], colour="red"), InvalidInputError,
         "unknown SearchOptions field"),
        (lambda kb: kb.delete(None), InvalidInputError, "ids must be a string or a list"),
        (lambda kb: kb.count({"year": {"$gte": [1]}}), InvalidInputError, "single value"),
        (lambda kb: kb.count({"city": "caf\udce9"}), InvalidInputError,
         "a value of field 'city': not valid Unicode text"),
        (lambda kb: kb.get(["paris", object()]), InvalidInputError, "id 1 is object, not a string"),
        (lambda kb: Collection.open(kb.folder, model="all-MiniLM-L6-v3"), ModelNotFoundError,
         "unknown model 'all-MiniLM-L6-v3'"),
        (lambda kb: kb.ingest([], chunk_tokens=2.5), InvalidInputError,
         "chunk_tokens must be a whole number, got 2.5"),
        (lambda kb: kb.ingest([], overlap=-1), InvalidInputError, "overlap must be at least 0"),
        (lambda kb: Collection.open(kb.folder, model=123), InvalidInputError,
         "model must be a model name"),
        (lambda kb: Collection.open(kb.folder, cache_size="big"), InvalidInputError,
         "cache_size must be a whole number"),
    ],
)
def test_bad_calls_give_one_line_errors_and_change_nothing(kb, bad_call, error, message):
    before = snapshot(kb)
    with pytest.raises(error, match=message) as caught:
        bad_call(kb)
    assert "\n" not in str(caught.value)
    assert snapshot(kb) == before


def test_opening_nothing_is_a_not_found_error(tmp_path):
    with pytest.raises(CollectionNotFoundError) as caught:
        Collection.open(tmp_path / "missing", create=False)
    assert caught.value.status == 404


def test_opening_an_existing_collection_writes_nothing(tmp_path):
    folder = tmp_path / "kb"
    with Collection.open(folder) as kb:
        kb.add(TEXTS, ids=["a", "b", "c"], embeddings=unit_vectors(3, 384))
    def files() -> dict:
        """Everything but SQLite's shared-memory sidecars, which WAL readers write to."""
        return {
            p.name: (p.stat().st_mtime_ns, p.read_bytes())
            for p in folder.iterdir()
            if not p.name.endswith(("-shm", "-wal"))
        }

    before = files()
    assert sorted(before) == ["collection.toml", "embedstack.db", "vectors-0.f32"]
    with Collection.open(folder) as kb:
        assert kb.search(unit_vectors(3, 384)[1], k=1)[0].id == "b"
        assert kb.search("Berlin", k=1, mode="keyword")[0].id == "b"
        assert kb.count() == 3
    assert files() == before


def damage(path: Path, offset: int, size: int = 4096) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(bytes(np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8)))


def test_a_damaged_database_is_reported_not_served(tmp_path):
    folder = tmp_path / "kb"
    with Collection.open(folder) as kb:
        kb.add([f"text number {i} " * 20 for i in range(400)], ids=[str(i) for i in range(400)],
               embeddings=unit_vectors(400, 384))  # fmt: skip
    for checkpoint in folder.glob("vectors-*.faiss"):
        checkpoint.unlink()  # the checkpoint disagrees: open must check the database
    database = folder / "embedstack.db"
    damage(database, database.stat().st_size // 2)
    with pytest.raises(CorruptCollectionError, match="is damaged") as caught:
        Collection.open(folder)
    assert caught.value.status == 503 and "embedstack check" in str(caught.value)


def test_garbage_instead_of_a_database_is_a_clear_error(tmp_path):
    folder = tmp_path / "kb"
    Collection.open(folder).close()
    (folder / "embedstack.db").write_bytes(b"this is not a database " * 100)
    with pytest.raises(CorruptCollectionError, match="is damaged"):
        Collection.open(folder)


def generation(kb: Collection) -> int:
    with closing(sqlite3.connect(kb.folder / "embedstack.db")) as db:
        return int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])


def test_writes_that_change_nothing_commit_nothing(kb):
    """No new generation: other processes need not reload their index for nothing."""
    before = generation(kb)
    assert kb.delete(["no-such-id"]) == 0
    assert kb._store.remove_source("/never/ingested.md") == 0
    assert generation(kb) == before
    kb.delete(["rome"])
    assert generation(kb) == before + 1


def test_a_failed_index_update_after_commit_loses_nothing(kb, monkeypatch):
    """The row is committed before the in-memory index is updated; if that update fails (here
    FAISS runs out of memory), the write still succeeds and the next search reloads the index
    from SQLite."""
    vector = unit_vectors(1, 384, 9)

    def out_of_memory(*args, **kwargs):
        raise MemoryError("simulated")

    monkeypatch.setattr(kb._store._index, "add", out_of_memory)
    kb.add(["Madrid is in Spain."], ids=["madrid"], embeddings=vector)
    assert kb.get("madrid")[0].text == "Madrid is in Spain."
    assert kb.search(vector[0], k=1)[0].id == "madrid"


def test_check_finds_derived_data_that_disagrees_with_the_rows(kb):
    assert kb.check() == []
    vector_file = kb.folder / "vectors-0.f32"  # simulate a bug or a hand edit: cut a row off
    with open(vector_file, "r+b") as handle:
        handle.truncate(vector_file.stat().st_size - 384 * 4)
    problems = kb.check()
    assert problems == ["vectors-0.f32 holds 2 vectors, the database 3"]


# ---- real read-only and full filesystems --------------------------------------------------

def in_private_mount(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run `script` (Python) as root in a private mount namespace; skip where not allowed."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare not found")
    probe = subprocess.run([unshare, "--mount", "--map-root-user", "true"], capture_output=True)
    plain = subprocess.run([unshare, "--mount", "true"], capture_output=True)
    if plain.returncode == 0:
        command = [unshare, "--mount", "--propagation", "private"]
    elif probe.returncode == 0:
        command = [unshare, "--mount", "--map-root-user", "--propagation", "private"]
    else:
        pytest.skip("cannot create a mount namespace here")
    path = tmp_path / "scenario.py"
    path.write_text(textwrap.dedent(script))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT), *sys.path])}
    return subprocess.run(
        [*command, sys.executable, str(path), str(tmp_path)],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


READ_ONLY = """
import json, subprocess, sys
from pathlib import Path
from embedstack import Collection
from embedstack.errors import ReadOnlyCollectionError
from tests.conftest import unit_vectors

mount = Path(sys.argv[1]) / "mnt"
mount.mkdir()
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)], check=True)
folder = mount / "kb"
vectors = unit_vectors(3, 384, 4)
with Collection.open(folder) as kb:
    kb.add(["alpha one", "beta two", "gamma three"], ids=["a", "b", "c"], embeddings=vectors)
subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
result = {}
with Collection.open(folder) as kb:
    result["dense"] = kb.search(vectors[2], k=1)[0].id
    result["keyword"] = kb.search("beta", k=1, mode="keyword")[0].id
    result["count"] = kb.count()
    try:
        kb.add(["delta"], ids=["d"], embeddings=vectors[:1])
    except ReadOnlyCollectionError as exc:
        result["write"] = [type(exc).__name__, str(exc)]
print(json.dumps(result))
"""


def test_a_collection_on_a_read_only_filesystem_can_be_searched(tmp_path):
    done = in_private_mount(READ_ONLY, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["dense"] == "c" and result["keyword"] == "b" and result["count"] == 3
    assert result["write"][0] == "ReadOnlyCollectionError" and "read-only" in result["write"][1]


DISK_FULL = """
import json, os, subprocess, sys
from pathlib import Path
from embedstack import Collection
from embedstack.errors import StorageError
from tests.conftest import unit_vectors

root = Path(sys.argv[1])
mount = root / "mnt"
mount.mkdir()
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=True)
folder = mount / "kb"
with Collection.open(folder, index="hnsw") as kb:  # an index with files to save
    kb.add([f"row {i}" for i in range(600)], ids=[f"id{i}" for i in range(600)],
           embeddings=unit_vectors(600, 384, 1))
before = None
with Collection.open(folder) as kb:
    before = {c.id: c.text for c in kb.get(kb.ids())}

def fill(leave: int) -> None:
    filler = mount / "filler"
    filler.unlink(missing_ok=True)
    free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
    with open(filler, "wb") as handle:
        handle.write(b"\\0" * max(0, free - leave))

result = {}
# 1. A write that cannot fit: one clear error, the collection exactly as before.
fill(leave=64 * 1024)
kb = Collection.open(folder)
try:
    kb.add([f"big {i} " * 50 for i in range(2000)], ids=[f"big{i}" for i in range(2000)],
           embeddings=unit_vectors(2000, 384, 2))
except StorageError as exc:
    result["error"] = [type(exc).__name__, str(exc)]
result["count_after_failed_write"] = kb.count()
kb.close()
(mount / "filler").unlink()
with Collection.open(folder) as kb:
    result["unchanged"] = {c.id: c.text for c in kb.get(kb.ids())} == before

# 2. A write that commits while the vector checkpoint no longer fits: the CLI exits 0.
rows = root / "rows.jsonl"
rows.write_text("".join(json.dumps({"id": f"new{i}", "text": f"new row {i}"}) + "\\n"
                        for i in range(3)))
for saved in folder.glob("index-*.faiss"):
    saved.unlink()  # so the next close saves the whole index, which no longer fits
fill(leave=300 * 1024)
cli = str(Path(sys.executable).parent / "embedstack")
done = subprocess.run([cli, "add", str(folder), "--jsonl", str(rows)],
                      capture_output=True, text=True)
result["cli"] = [done.returncode, done.stderr]
result["tmp_files"] = sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))
(mount / "filler").unlink()
with Collection.open(folder) as kb:
    result["count_after_commit"] = kb.count()
    result["found"] = kb.search("new row 2", k=1, mode="keyword")[0].id
print(json.dumps(result))
"""


def test_a_full_disk_loses_nothing_and_says_so(tmp_path):
    done = in_private_mount(DISK_FULL, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["error"][0] == "StorageError" and "full" in result["error"][1]
    assert result["count_after_failed_write"] == 600 and result["unchanged"]
    code, stderr = result["cli"]
    assert code == 0 and "Traceback" not in stderr, stderr
    assert "could not checkpoint the vector index" in stderr  # the case really happened
    assert result["tmp_files"] == []
    assert result["count_after_commit"] == 603 and result["found"] == "new2"


def test_every_error_class_has_an_http_status():
    import embedstack.errors as errors

    classes = [
        value for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, EmbedstackError)
    ]  # fmt: skip
    assert len(classes) >= 15
    for cls in classes:
        assert cls.status in (400, 404, 409, 413, 422, 502, 503), cls
