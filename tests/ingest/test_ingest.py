"""Collection.ingest and `embedstack ingest` on real folders: sync, bad input, crashes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from embedstack import Collection
from tests.ingest.makers import HTML_PAGE, MARKDOWN_NOTE, geology_pdf, write_docx, write_pdf

PROJECT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("embedstack")


def good_folder(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    geology_pdf(root / "geology.pdf")
    write_docx(root / "handbook.docx")
    (root / "bikes.html").write_text(HTML_PAGE, encoding="utf-8")
    (root / "notes").mkdir(exist_ok=True)
    (root / "notes" / "garden.md").write_text(MARKDOWN_NOTE, encoding="utf-8")
    (root / "notes" / "faq.jsonl").write_text(
        json.dumps({"text": "Lunch is served at noon in the canteen.", "team": "facilities"})
        + "\n",
        encoding="utf-8",
    )
    (root / "tickets.csv").write_text(
        "body,priority\nThe coffee machine leaks water onto the floor.,2\n", encoding="utf-8"
    )
    (root / "readme.txt").write_text("Plain text about solar panels on the roof.\n")
    return root


def rows(folder: Path) -> dict[str, tuple[int, str]]:
    """id -> (vid, text) straight from the database, to see exactly what a write changed."""
    with sqlite3.connect(folder / "embedstack.db") as db:
        return {r[0]: (r[1], r[2]) for r in db.execute("SELECT id, vid, text FROM chunks")}


def test_ingest_search_and_incremental_sync(tmp_path, model):
    docs = good_folder(tmp_path / "docs")
    kb = Collection.open(tmp_path / "kb", model)
    report = kb.ingest(docs)
    assert report.ok and len(report.added) == 7 and report.chunks_added >= 7
    assert {Path(s.path).name for s in kb.sources()} == {
        "geology.pdf", "handbook.docx", "bikes.html", "garden.md", "faq.jsonl", "tickets.csv",
        "readme.txt",
    }  # fmt: skip
    hit = kb.search("how often should I oil my bicycle chain?", k=1)[0]
    assert hit.metadata["file_name"] == "bikes.html"
    assert hit.metadata["heading"] == "Bicycle maintenance > Chains"
    glacier = kb.search("glaciers carving valleys", k=1, filter={"format": "pdf"})[0]
    assert glacier.metadata["page"] <= 3 <= glacier.metadata["page_end"]
    lunch = kb.search("when is lunch?", k=1)[0]
    assert lunch.metadata["team"] == "facilities" and lunch.metadata["row"] == 1

    before = rows(kb.folder)
    again = kb.ingest(docs)
    assert again.chunks_added == 0 and len(again.unchanged) == 7 and rows(kb.folder) == before

    garden = docs / "notes" / "garden.md"
    garden.write_text(MARKDOWN_NOTE.replace("Beer traps", "Copper tape"), encoding="utf-8")
    changed = kb.ingest(docs)
    assert changed.updated == [str(garden)] and len(changed.unchanged) == 6
    after = rows(kb.folder)
    others = {i: r for i, r in before.items() if not i.startswith(str(garden))}
    assert {i: r for i, r in after.items() if not i.startswith(str(garden))} == others
    assert any("Copper tape" in text for _, text in after.values())
    assert not any("Beer traps" in text for _, text in after.values())

    (docs / "readme.txt").unlink()
    kept = kb.ingest(docs)
    assert kept.removed == [] and kb.count({"file_name": "readme.txt"}) == 1
    synced = kb.ingest(docs, sync=True)
    assert synced.removed == [str(docs / "readme.txt")]
    assert kb.count({"file_name": "readme.txt"}) == 0 and synced.chunks_removed == 1
    kb.close()


def test_sync_drops_only_deleted_files(tmp_path, model):
    """Files a --glob leaves out, or that fail to read, are still on disk: --sync keeps
    their chunks."""
    docs = good_folder(tmp_path / "docs")
    with Collection.open(tmp_path / "kb", model) as kb:
        kb.ingest(docs)
        before = rows(kb.folder)
        markdown_only = kb.ingest(docs, glob="*.md", sync=True)
        assert markdown_only.removed == [] and len(markdown_only.unchanged) == 1
        assert rows(kb.folder) == before
        (docs / "readme.txt").write_bytes(b"")  # a failed read deletes nothing, and says so
        (failed,) = kb.ingest(docs, sync=True).failed
        assert "last good version are kept" in failed.reason and rows(kb.folder) == before
        (docs / "readme.txt").unlink()
        synced = kb.ingest(docs, glob="*.md", sync=True)
        assert synced.removed == [str(docs / "readme.txt")]
        assert len(kb.sources()) == 6


def test_changed_settings_rechunk_files(tmp_path, model):
    docs = good_folder(tmp_path / "docs")
    with Collection.open(tmp_path / "kb", model) as kb:
        kb.ingest(docs)
        report = kb.ingest(docs, chunk_tokens=16)
        assert len(report.updated) == 7
        assert all(c.metadata for c in kb.get(list(rows(kb.folder))))


def unreadable_file(folder: Path) -> Path:
    """A file this process cannot read: chmod 000, or, as root (who reads anything), a
    symlink to a write-only kernel setting."""
    path = folder / "secret.txt"
    if os.geteuid() != 0:
        path.write_text("classified")
        path.chmod(0)
        return path
    for target in ("/proc/sys/vm/drop_caches", "/proc/sys/vm/compact_memory"):
        try:
            open(target).close()
        except PermissionError:
            path.symlink_to(target)
            return path
        except OSError:
            continue
    pytest.skip("no unreadable file can be made here")


def bad_folder(root: Path) -> dict[str, str]:
    """Bad files mixed with good ones; returns file name -> expected words in the reason."""
    good_folder(root)
    pdf = geology_pdf(root / "whole.pdf").read_bytes()
    (root / "truncated.pdf").write_bytes(pdf[: len(pdf) // 2])
    write_pdf(root / "locked.pdf", [["top secret plans"]], password="hunter2")
    (root / "zero.md").write_bytes(b"")
    (root / "binary.txt").write_bytes(bytes(range(256)) * 64)
    (root / "latin1.txt").write_bytes("Le café crème coûte trois euros.".encode("latin-1"))
    with open(root / "huge.txt", "w") as handle:  # 50 MB on one line
        for _ in range(50):
            handle.write("lorem ipsum " * 87_382)
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "ping.md").symlink_to(root / "pong.md")
    (root / "pong.md").symlink_to(root / "ping.md")
    unreadable_file(root)
    (root / "whole.pdf").unlink()
    return {
        "truncated.pdf": "truncated",
        "locked.pdf": "encrypted",
        "zero.md": "empty",
        "binary.txt": "binary",
        "huge.txt": "too long",
        "loop": "symlink loop",
        "ping.md": "symlink loop",
        "pong.md": "symlink loop",
        "secret.txt": "permission denied",
    }


def run_cli(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CLI), *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def test_bad_files_are_reported_and_good_ones_ingested(tmp_path, model):
    kb_path = tmp_path / "kb"
    earlier = tmp_path / "earlier.md"
    earlier.write_text("# Earlier\n\nThis note was stored before the bad batch.\n")
    assert run_cli("ingest", kb_path, earlier, "--json").returncode == 0
    expected = bad_folder(tmp_path / "mixed")

    result = run_cli("ingest", kb_path, tmp_path / "mixed", "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    reasons = {Path(f["path"]).name: f["reason"] for f in report["files"]["failed"]}
    assert set(reasons) == set(expected)
    for name, words in expected.items():
        assert words in reasons[name], (name, reasons[name])
    added = {Path(p).name for p in report["files"]["added"]}
    assert {"latin1.txt", "geology.pdf", "handbook.docx", "bikes.html", "garden.md"} <= added

    with Collection.open(kb_path, model) as kb:
        assert kb.count({"source": str(earlier)}) == 1  # nothing stored earlier was lost
        cafe = kb.search("coffee with cream price", k=1, filter={"file_name": "latin1.txt"})
        assert "café crème" in cafe[0].text

    table = run_cli("ingest", kb_path, tmp_path / "mixed")
    assert table.returncode == 1 and "locked.pdf: encrypted PDF" in table.stderr


CRASH_SCRIPT = """
import sys
from embedstack import Collection
from embedstack.ingest.options import IngestOptions
from embedstack.ingest.pipeline import Ingestor
kb = Collection.open(sys.argv[1])
options = IngestOptions(chunk_tokens=48, batch_chunks=1, batch_tokens=1)  # a commit per file
Ingestor(kb.model, kb._store, options).run([sys.argv[2]])
"""


def consistent(folder: Path) -> dict[str, str]:
    """Check the manifest and the chunks agree exactly; return path -> content hash."""
    with sqlite3.connect(folder / "embedstack.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        chunk_ids = {r[0] for r in db.execute("SELECT id FROM chunks")}
        sources = db.execute("SELECT path, content_hash, chunk_ids FROM sources").fetchall()
        epoch = db.execute("SELECT value FROM meta WHERE key = 'vector_epoch'").fetchone()[0]
        next_vid = int(db.execute("SELECT value FROM meta WHERE key = 'next_vid'").fetchone()[0])
        top_vid = db.execute("SELECT MAX(vid) FROM chunks").fetchone()[0]
    listed = [i for _, _, ids in sources for i in json.loads(ids)]
    assert sorted(listed) == sorted(chunk_ids)
    # Every stored chunk's vector is in the vector file (written before the row's COMMIT).
    stored_rows = (folder / f"vectors-{epoch}.f32").stat().st_size // (384 * 4)
    assert top_vid is None or top_vid < next_vid <= stored_rows
    return {path: content_hash for path, content_hash, _ in sources}


def test_kill_9_mid_ingest_leaves_each_file_old_or_new(tmp_path, model):
    docs = tmp_path / "docs"
    docs.mkdir()
    paragraph = "Paragraph {i} of file {n} describes harbour logistics and cargo cranes. " * 4
    for n in range(16):
        text = "\n\n".join(paragraph.format(i=i, n=n) for i in range(12))
        (docs / f"file{n:02d}.md").write_text(f"# File {n}\n\n{text}\n")
    kb_path = tmp_path / "kb"
    with Collection.open(kb_path, model) as kb:
        kb.ingest(docs / "file00.md", chunk_tokens=48)
    first = consistent(kb_path)
    (docs / "file00.md").write_text("# File 0\n\nRewritten: now about mountain railways.\n")

    process = subprocess.Popen(
        [sys.executable, "-c", CRASH_SCRIPT, str(kb_path), str(docs)],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    committed = 1
    while time.monotonic() < deadline and process.poll() is None:
        with sqlite3.connect(kb_path / "embedstack.db", timeout=30) as db:
            committed = db.execute("SELECT COUNT(*) FROM sources").fetchone()[0]
        if committed >= 5:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 5 <= committed < 16, "the ingest finished before it could be killed"

    after = consistent(kb_path)
    assert len(after) >= committed
    file00 = str(docs / "file00.md")
    assert after[file00] in {first[file00]} | {
        __import__("hashlib").sha256((docs / "file00.md").read_bytes()).hexdigest()
    }
    with Collection.open(kb_path, model) as kb:
        report = kb.ingest(docs, chunk_tokens=48)
        assert report.ok and len(report.unchanged) == len(after) - (after[file00] == first[file00])
        assert len(consistent(kb_path)) == 16
        assert kb.search("mountain railways", k=1)[0].metadata["file_name"] == "file00.md"


def test_the_text_limit_counts_characters_not_bytes(tmp_path, model):
    """80 characters of UTF-16 are 162 bytes: within a 100-character limit; 120 are not."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "short.txt").write_bytes(("Grüße aus Köln, " * 5).encode("utf-16"))
    (folder / "long.txt").write_bytes(("Grüße aus Köln, " * 8).encode("utf-16"))
    with Collection.open(tmp_path / "kb", model) as kb:
        report = kb.ingest(folder, max_chars=100)
        assert [Path(p).name for p in report.added] == ["short.txt"]
        assert [(Path(f.path).name, f.reason.split(":")[0]) for f in report.failed] == [
            ("long.txt", "text too long")
        ]


def test_files_prepared_ahead_come_back_in_order_with_their_problems(tmp_path, model):
    """The prefetch thread keeps order, reports a bad file in its place, and a consumer that
    stops early leaves the files not yet started unread."""
    from embedstack.ingest.discovery import FileProblem
    from embedstack.ingest.options import IngestOptions
    from embedstack.ingest.pipeline import PREFETCH_FILES, FilePreparer, Prepared, prepare_ahead

    files = []
    for i in range(PREFETCH_FILES + 8):
        path = tmp_path / f"note-{i:02d}.md"
        path.write_text(f"# Note {i}\n\nA short note about topic number {i}.\n" if i != 5 else "")
        files.append(path)
    preparer = FilePreparer(model, IngestOptions())
    results = list(prepare_ahead(preparer, files, {}))
    assert [path for path, _ in results] == files
    assert isinstance(results[5][1], FileProblem) and "empty" in results[5][1].reason
    prepared = [p for _, p in results if isinstance(p, Prepared)]
    assert [p.record.path for p in prepared] == [str(f) for f in files if f != files[5]]
    assert all(p.tokens > 0 for p in prepared)

    started: list[Path] = []

    class Counting:  # the real preparer, its calls counted
        def prepare_or_problem(self, path, known):
            started.append(path)
            return preparer.prepare_or_problem(path, known)

    stream = prepare_ahead(Counting(), files, {})  # type: ignore[arg-type]
    next(stream)
    stream.close()  # stop after the first: nothing hangs, and files never queued are unread
    assert len(started) <= PREFETCH_FILES + 1 < len(files)


def test_a_folder_commits_in_batches_and_every_file_is_searchable(tmp_path):
    """Many small files go in as a few transactions (token budget), each file complete."""
    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(40):
        (folder / f"n{i}.md").write_text(f"# Topic {i}\n\nNote {i} is about subject {i}.\n")
    kb = Collection.open(tmp_path / "kb")
    batches: list[int] = []
    write = kb._store.replace_sources

    def counted(files):  # the real write, counted
        batches.append(len(files))
        return write(files)

    kb._store.replace_sources = counted
    report = kb.ingest([folder], batch_tokens=200)  # a few files per batch
    assert len(report.added) == 40 and report.chunks_added == 40 and not report.failed
    assert sum(batches) == 40 and 1 < len(batches) < 40 and max(batches) > 1
    assert {s.path for s in kb._store.sources()} == {str(p) for p in folder.iterdir()}
    hit = kb.search("Note 17 is about subject 17", k=1)[0]
    assert hit.metadata["file_name"] == "n17.md"
