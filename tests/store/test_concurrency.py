"""One collection, many readers, one writer: threads of one process, then separate processes.

Every write adds or deletes a whole "round" of rows in one transaction, so a reader that sees
a committed state sees each round either complete or absent, and every row with the text and
metadata it was written with. Readers check exactly that, while the writer keeps writing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from embedstack import Collection
from tests.conftest import PROJECT, unit_vectors

ROUND = 10  # rows per write
THREAD_SECONDS = float(os.environ.get("EMBEDSTACK_STRESS_SECONDS", 20))
PROCESS_SECONDS = float(os.environ.get("EMBEDSTACK_STRESS_SECONDS", 10))


def row_text(round_: int, n: int) -> str:
    return f"Round {round_} row {n}: a note about topic {n % 5} written in round {round_}."


def check_hits(hits, where_round: int | None = None) -> None:
    for hit in hits:
        round_, n = hit.metadata["round"], hit.metadata["n"]
        assert hit.id == f"r{round_}-{n}", hit
        assert hit.text == row_text(round_, n), hit
        if where_round is not None:
            assert round_ == where_round, hit


def test_eight_threads_search_while_one_writes(tmp_path, model):
    with Collection.open(tmp_path / "kb", model) as kb:
        kb.add([row_text(0, n) for n in range(ROUND)], ids=[f"r0-{n}" for n in range(ROUND)],
               metadata=[{"round": 0, "n": n} for n in range(ROUND)])  # fmt: skip
        stop = threading.Event()
        errors: list[BaseException] = []
        searches = [0] * 8
        written: list[int] = []

        def writer() -> None:
            round_ = 1
            try:
                while not stop.is_set():
                    kb.add([row_text(round_, n) for n in range(ROUND)],
                           ids=[f"r{round_}-{n}" for n in range(ROUND)],
                           metadata=[{"round": round_, "n": n} for n in range(ROUND)])  # fmt: skip
                    written.append(round_)
                    if round_ % 3 == 0:  # delete an older round, whole
                        old = round_ - 2
                        assert kb.delete([f"r{old}-{n}" for n in range(ROUND)]) == ROUND
                    round_ += 1
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                stop.set()

        def reader(slot: int) -> None:
            rng = np.random.default_rng(slot)
            try:
                while not stop.is_set():
                    round_ = int(rng.integers(0, max(written[-1:] or [1]) + 1))
                    topic = int(rng.integers(0, 5))
                    check_hits(kb.search(f"a note about topic {topic}", k=5))
                    check_hits(kb.search(f"round {round_}", k=5, mode="keyword"))
                    filtered = kb.search("note", k=ROUND, filter={"round": round_})
                    check_hits(filtered, where_round=round_)
                    assert kb.count({"round": round_}) in (0, ROUND)
                    searches[slot] += 1
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                stop.set()

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
        threads.append(threading.Thread(target=writer))
        for thread in threads:
            thread.start()
        time.sleep(THREAD_SECONDS)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, repr(errors[0])
        assert min(searches) > 0 and len(written) > 3, (searches, len(written))
        deleted = sum(1 for r in range(1, written[-1] + 1) if r % 3 == 0 and r - 2 >= 1)
        assert kb.count() == ROUND * (1 + len(written) - deleted)


READER = """
import sys, time
import numpy as np
from embedstack import Collection
from tests.store.test_concurrency import ROUND, check_hits
from tests.conftest import unit_vectors

folder, seconds, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(seed)
searches = 0
with Collection.open(folder) as kb:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        round_ = int(rng.integers(0, 50))
        check_hits(kb.search(unit_vectors(1, 384, searches)[0], k=10))
        check_hits(kb.search(f"round {round_}", k=5, mode="keyword"))
        check_hits(kb.search(f"round {round_}", k=ROUND, mode="keyword",
                             filter={"round": round_}), where_round=round_)
        assert kb.count({"round": round_}) in (0, ROUND)
        searches += 1
print(searches)
"""

WRITER = """
import sys, time
from embedstack import Collection
from tests.store.test_concurrency import ROUND, row_text
from tests.conftest import unit_vectors

folder, seconds = sys.argv[1], float(sys.argv[2])
rounds = 0
with Collection.open(folder) as kb:
    deadline = time.monotonic() + seconds
    round_ = 1
    while time.monotonic() < deadline:
        kb.add([row_text(round_, n) for n in range(ROUND)],
               ids=[f"r{round_}-{n}" for n in range(ROUND)],
               metadata=[{"round": round_, "n": n} for n in range(ROUND)],
               embeddings=unit_vectors(ROUND, 384, round_))
        if round_ % 3 == 0:
            kb.delete([f"r{round_ - 2}-{n}" for n in range(ROUND)])
        round_ += 1
print(round_ - 1)
"""


def test_reader_processes_search_while_a_writer_process_writes(tmp_path):
    folder = tmp_path / "kb"
    with Collection.open(folder) as kb:  # no model needed: vectors come with the rows
        kb.add([row_text(0, n) for n in range(ROUND)], ids=[f"r0-{n}" for n in range(ROUND)],
               metadata=[{"round": 0, "n": n} for n in range(ROUND)],
               embeddings=unit_vectors(ROUND, 384, 0))  # fmt: skip

    def start(script: str, *args: object) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script), str(folder), *map(str, args)],
            cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    readers = [start(READER, PROCESS_SECONDS, seed) for seed in range(3)]
    writer = start(WRITER, PROCESS_SECONDS)
    outputs = [process.communicate(timeout=PROCESS_SECONDS + 120) for process in readers]
    rounds_out, writer_err = writer.communicate(timeout=PROCESS_SECONDS + 120)
    for process, (out, err) in zip(readers, outputs, strict=True):
        assert process.returncode == 0, err[-2000:]
        assert int(out.strip()) > 0
    assert writer.returncode == 0, writer_err[-2000:]
    rounds = int(rounds_out.strip())
    assert rounds > 3
    deleted = sum(1 for r in range(3, rounds + 1, 3))
    with Collection.open(folder) as kb:
        assert kb.count() == ROUND * (1 + rounds - deleted)
        assert kb.check() == []


@pytest.mark.parametrize("mode", ["dense", "keyword"])
def test_a_reader_is_not_blocked_by_another_process_holding_the_write_lock(tmp_path, mode):
    """WAL: while another process holds a write transaction open (a long ingest), opening
    and searching the collection still works at once; before, readers waited 30 s and
    failed with "database is locked"."""
    folder = tmp_path / "kb"
    vectors = unit_vectors(3, 384, 1)
    with Collection.open(folder) as kb:
        kb.add(["alpha one", "beta two", "gamma three"], ids=["a", "b", "c"], embeddings=vectors)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sqlite3, sys, time
            db = sqlite3.connect({str(folder / "embedstack.db")!r}, isolation_level=None)
            db.execute("BEGIN IMMEDIATE")
            db.execute("UPDATE meta SET value = value WHERE key = 'generation'")
            print("locked", flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with Collection.open(folder) as kb:
            query = vectors[1] if mode == "dense" else "beta"
            assert kb.search(query, k=1, mode=mode)[0].id == "b"
            assert kb.count() == 3
        assert time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait()


def test_a_busy_writer_never_makes_searches_wait_for_a_rebuild(tmp_path, monkeypatch):
    """HNSW graphs keep deleted rows as tombstones and are rebuilt once a quarter is dead.
    With a writer that never pauses, the rebuild runs in the background and takes the
    writes made meanwhile along; searches neither wait for it nor rebuild themselves (they
    used to: a reader mistook this process's own commit for another process's, reloaded,
    and came back behind the writer again)."""
    from embedstack.store.local import LocalStore

    reloads: list[str] = []
    original = LocalStore._reload

    def recorded(store: LocalStore) -> None:
        reloads.append(threading.current_thread().name)
        original(store)

    monkeypatch.setattr(LocalStore, "_reload", recorded)
    base = unit_vectors(2000, 384, 5)
    with Collection.open(tmp_path / "kb", index="hnsw") as kb:
        kb.add([f"row {i}" for i in range(2000)], ids=[f"b{i}" for i in range(2000)],
               embeddings=base)  # fmt: skip
        stop = threading.Event()
        rounds = [0]

        def writer() -> None:
            while not stop.is_set():
                n = rounds[0]
                ids = [f"w{n}-{i}" for i in range(50)]
                kb.add(["busy"] * 50, ids=ids, embeddings=unit_vectors(50, 384, 100 + n))
                kb.delete(ids)
                rounds[0] += 1

        thread = threading.Thread(target=writer)
        thread.start()
        slowest = 0.0
        try:
            for i in range(300):
                started = time.perf_counter()
                assert kb.search(base[i], k=1)[0].id == f"b{i}"
                slowest = max(slowest, time.perf_counter() - started)
        finally:
            stop.set()
            thread.join()
        assert rounds[0] >= 10, rounds  # a quarter of the graph was deleted, more than once
        assert reloads and set(reloads) == {"embedstack-index-rebuild"}, reloads
        assert slowest < 2.0, slowest
        assert kb.count() == 2000
