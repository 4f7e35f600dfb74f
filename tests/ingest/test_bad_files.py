"""Bad files among good ones, on disk: each run ends with a report (never a traceback or a
hang), stores the good files, reports or cleans the bad one, and leaves earlier data alone.

Each ingest runs with a deadline (a thread, or a subprocess where a regression would read
without end), so a file that hangs the ingest fails its test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from embedstack import Collection
from embedstack.errors import IngestError
from embedstack.ingest import discovery
from embedstack.ingest.discovery import read_file
from embedstack.ingest.pipeline import IngestReport
from tests.ingest.makers import HTML_PAGE, MARKDOWN_NOTE, png_bytes

DEADLINE_S = 90  # a few small files take seconds; a hang must fail, not block the suite
CLI = Path(sys.executable).with_name("embedstack")
NEW_GOOD = ("kettle.txt", "The kettle in the kitchen descales itself every Monday morning.\n")


def write_good_files(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "solar.txt").write_text("Plain text about solar panels on the roof.\n")
    (folder / "garden.md").write_text(MARKDOWN_NOTE, encoding="utf-8")
    (folder / "faq.jsonl").write_text(
        json.dumps({"text": "Lunch is served at noon in the canteen.", "team": "facilities"}) + "\n"
    )
    (folder / "tickets.csv").write_text(
        "body,priority\nThe coffee machine leaks water onto the floor.,2\n"
    )


def bytes_path(folder: Path, name: bytes) -> Path:
    """A path whose last part is `name`, bytes that need not be UTF-8 (as Python sees it)."""
    return Path(os.fsdecode(os.path.join(os.fsencode(folder), name)))


def write_bytes_named(folder: Path, name: bytes, data: bytes) -> Path:
    fd = os.open(os.path.join(os.fsencode(folder), name), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return bytes_path(folder, name)


def ingest_with_deadline(kb_path: Path, model, paths: Sequence[Path]) -> IngestReport:
    """`Collection.ingest` in a thread (SQLite wants the collection opened there), failing
    the test if it has not returned after DEADLINE_S; its exception, if any, is re-raised."""
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            with Collection.open(kb_path, model) as kb:
                result["report"] = kb.ingest(list(paths))
        except BaseException as exc:  # handed to the test thread
            result["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    if thread.is_alive():
        pytest.fail(f"ingest still running after {DEADLINE_S} s: it hangs on a bad file")
    if "error" in result:
        raise result["error"]
    return result["report"]


def stored(kb_path: Path, model) -> dict[str, tuple[str, list]]:
    """source path -> (content hash, its chunks with text and metadata)."""
    with Collection.open(kb_path, model) as kb:
        return {s.path: (s.content_hash, kb.get(list(s.chunk_ids))) for s in kb.sources()}


def run_with_bad_files(
    tmp_path: Path,
    model,
    add_bad: Callable[[Path], object],
    extra_paths: Sequence[Path] = (),
    ingest: Callable[..., Any] = ingest_with_deadline,
) -> tuple[Any, dict[str, tuple[str, list]], Path]:
    """Ingest good files; add the bad ones and one more good file; ingest again. Checks the
    earlier files are unchanged and the new good file is stored; returns (second report,
    what is stored after it, the folder)."""
    docs = tmp_path / "docs"
    write_good_files(docs)
    kb_path = tmp_path / "kb"
    first = ingest_with_deadline(kb_path, model, [docs])
    assert first.ok and len(first.added) == 4, first.failed
    before = stored(kb_path, model)

    add_bad(docs)
    kettle = docs / NEW_GOOD[0]
    kettle.write_text(NEW_GOOD[1])
    report = ingest(kb_path, model, [docs, *extra_paths])

    after = stored(kb_path, model)
    assert {path: after[path] for path in before} == before  # earlier data untouched
    assert [chunk.text for chunk in after[str(kettle)][1]] == [NEW_GOOD[1].strip()]
    unchanged = report.unchanged if isinstance(report, IngestReport) else None
    if unchanged is not None:
        assert sorted(unchanged) == sorted(before)
    return report, after, docs


def failures(report: IngestReport) -> dict[str, str]:
    return {problem.path: problem.reason for problem in report.failed}


# ---- 1. lone surrogates ------------------------------------------------------------------------


def test_lone_surrogates_become_replacement_characters(tmp_path, model):
    def add_bad(docs: Path) -> None:
        # JSON escapes for lone surrogates: in the text, in another field, in a key.
        (docs / "escaped.jsonl").write_text(
            '{"text": "bad \\ud800 text", "tag": "\\udcff", "\\ud800key": 1}\n'
            '{"text": "a pair \\ud83d\\ude00 is fine"}\n'
        )
        # A lone surrogate encoded in otherwise valid UTF-8 (as JavaScript and Java write it).
        (docs / "surrogate.md").write_bytes(
            b"# Caf\xc3\xa9 \xed\xa0\x80 notes\n\nThe cr\xc3\xa8me \xed\xb3\xbf is off.\n"
        )
        (docs / "surrogate.csv").write_bytes(b"text,tag\nhello \xed\xa0\x80 caf\xc3\xa9,x\n")
        # And in UTF-16 with a BOM: an unpaired high surrogate.
        (docs / "surrogate16.txt").write_bytes(
            b"\xff\xfe"
            + "Lone ".encode("utf-16-le")
            + b"\x00\xd8"
            + " surrogate in UTF-16.".encode("utf-16-le")
        )

    report, after, docs = run_with_bad_files(tmp_path, model, add_bad)
    assert report.failed == []
    new = ("escaped.jsonl", "surrogate.md", "surrogate.csv", "surrogate16.txt", NEW_GOOD[0])
    assert sorted(report.added) == sorted(str(docs / name) for name in new)

    jsonl = after[str(docs / "escaped.jsonl")][1]
    assert [c.text for c in jsonl] == ["bad \ufffd text", "a pair \U0001f600 is fine"]
    assert jsonl[0].metadata["tag"] == "\ufffd" and jsonl[0].metadata["\ufffdkey"] == 1

    markdown = after[str(docs / "surrogate.md")][1]
    assert "The crème \ufffd is off." in markdown[0].text  # UTF-8, not a guessed code page
    assert markdown[0].metadata["title"] == "Café \ufffd notes"
    assert markdown[0].metadata["heading"] == "Café \ufffd notes"

    csv_rows = after[str(docs / "surrogate.csv")][1]
    assert [(c.text, c.metadata["tag"]) for c in csv_rows] == [("hello \ufffd café", "x")]
    utf16 = after[str(docs / "surrogate16.txt")][1]
    assert [c.text for c in utf16] == ["Lone \ufffd surrogate in UTF-16."]


# ---- 2. file names that are not UTF-8 ----------------------------------------------------------


def test_names_that_are_not_utf8_are_reported_with_a_printable_path(tmp_path, model):
    outside = tmp_path / "outside"
    outside.mkdir()
    explicit = write_bytes_named(outside, b"r\xe9sum\xe9.md", b"# CV\n\nTwenty years of cheese.\n")

    def add_bad(docs: Path) -> None:
        write_bytes_named(docs, b"caf\xe9.txt", b"Coffee notes, named in Latin-1.\n")
        folder = os.path.join(os.fsencode(docs), b"d\xfcnn")  # a folder: reported once
        os.mkdir(folder)
        for name, data in ((b"notes.md", b"# Notes\n\nThin.\n"), (b"t.csv", b"text\nrow\n")):
            write_bytes_named(Path(os.fsdecode(folder)), name, data)

    report, after, docs = run_with_bad_files(tmp_path, model, add_bad, extra_paths=[explicit])
    assert failures(report) == {
        f"{docs}/caf\\xe9.txt": "file name is not valid UTF-8",
        f"{docs}/d\\xfcnn": "folder name is not valid UTF-8",
        f"{outside}/r\\xe9sum\\xe9.md": "file name is not valid UTF-8",
    }
    assert report.added == [str(docs / NEW_GOOD[0])]
    for path in after:
        path.encode("utf-8")  # nothing stored under a name UTF-8 cannot hold


# ---- 3. named pipes (and sockets) --------------------------------------------------------------


def test_named_pipes_and_sockets_are_skipped_not_waited_for(tmp_path, model):
    explicit = tmp_path / "explicit.txt"
    os.mkfifo(explicit)
    listener = socket.socket(socket.AF_UNIX)

    def add_bad(docs: Path) -> None:
        os.mkfifo(docs / "x.txt")
        listener.bind(str(docs / "socket.md"))

    with listener:
        report, _, docs = run_with_bad_files(tmp_path, model, add_bad, extra_paths=[explicit])
    assert failures(report) == {
        str(docs / "x.txt"): "not a regular file (named pipe)",
        str(explicit): "not a regular file (named pipe)",
        str(docs / "socket.md"): "not a regular file (socket)",
    }
    assert report.added == [str(docs / NEW_GOOD[0])]


# ---- 4. a symlink to /dev/zero -----------------------------------------------------------------

INGEST_SCRIPT = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a regression fails, not the host
from embedstack import Collection
with Collection.open(sys.argv[1]) as kb:
    print(json.dumps(kb.ingest(sys.argv[2:]).to_dict()))
"""


def ingest_in_subprocess(kb_path: Path, model, paths: Sequence[Path]) -> dict:
    """For files that, unfixed, are read without end: a deadline and a memory limit."""
    result = subprocess.run(
        [sys.executable, "-c", INGEST_SCRIPT, str(kb_path), *map(str, paths)],
        capture_output=True, text=True, timeout=DEADLINE_S,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_symlink_to_dev_zero_is_skipped_not_read(tmp_path, model):
    def add_bad(docs: Path) -> None:
        (docs / "zeros.txt").symlink_to("/dev/zero")

    report, _, docs = run_with_bad_files(
        tmp_path, model, add_bad, extra_paths=[Path("/dev/zero")], ingest=ingest_in_subprocess
    )
    failed = {f["path"]: f["reason"] for f in report["files"]["failed"]}
    assert failed == {
        str(docs / "zeros.txt"): "not a regular file (character device)",
        "/dev/zero": "not a regular file (character device)",
    }
    assert report["files"]["added"] == [str(docs / NEW_GOOD[0])] and report["unchanged"] == 4


def read_with_deadline(path: Path, max_bytes: int) -> bytes | Exception:
    result: list[bytes | Exception] = []

    def work() -> None:
        try:
            result.append(read_file(path, max_bytes))
        except Exception as exc:
            result.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():
        pytest.fail(f"read_file({path}) still running after 10 s")
    return result[0]


@pytest.mark.parametrize(
    ("special", "kind"), [("pipe", "named pipe"), ("/dev/zero", "character device")]
)
def test_read_file_checks_the_open_file_so_a_swap_cannot_hang_it(
    tmp_path, monkeypatch, special, kind
):
    """As if a regular file were swapped for a pipe or device between the stat and the open:
    the check before opening passes; the one on the open file must catch it, without waiting
    for a writer to the pipe or reading zeros without end."""
    path = Path(special)
    if special == "pipe":
        path = tmp_path / "pipe.txt"
        os.mkfifo(path)
    checks: list[int] = []
    check = discovery._require_regular

    def all_but_the_first(mode: int) -> None:
        checks.append(mode)
        if len(checks) > 1:
            check(mode)

    monkeypatch.setattr(discovery, "_require_regular", all_but_the_first)
    error = read_with_deadline(path, 10_000)
    assert isinstance(error, IngestError) and str(error) == f"not a regular file ({kind})"
    assert len(checks) == 2


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="no /proc")
def test_read_file_stops_at_the_limit_whatever_stat_says():
    status = Path("/proc/self/status")  # a regular file whose st_size is 0
    assert os.stat(status).st_size == 0
    assert len(read_file(status, 1_000_000)) > 200
    error = read_with_deadline(status, 200)
    assert isinstance(error, IngestError)
    assert str(error).startswith("file too large: over 0.0002 MB when read (limit 0.0002 MB;")


# ---- 5. UTF-16 without a BOM -------------------------------------------------------------------

UTF16_TEXT = "Hello world, this is UTF-16 text.\n"


def elf_bytes() -> bytes:
    with open(os.path.realpath(sys.executable), "rb") as handle:
        data = handle.read(65536)
    assert data.startswith(b"\x7fELF")
    return data


def test_utf16_without_bom_is_read_and_binary_still_rejected(tmp_path, model):
    def add_bad(docs: Path) -> None:
        (docs / "hello-le.txt").write_bytes(UTF16_TEXT.encode("utf-16-le"))
        (docs / "hello-be.txt").write_bytes(UTF16_TEXT.encode("utf-16-be"))
        (docs / "bikes.html").write_bytes(HTML_PAGE.encode("utf-16-le"))
        (docs / "random.txt").write_bytes(random.Random(7).randbytes(8192))
        (docs / "image.txt").write_bytes(png_bytes())
        (docs / "program").write_bytes(elf_bytes())

    report, after, docs = run_with_bad_files(tmp_path, model, add_bad)
    assert failures(report) == {
        **{
            str(docs / name): "binary content, not text (NUL bytes)"
            for name in ("random.txt", "program")
        },
        str(docs / "image.txt"): (
            "an image: images go into an image collection (e.g. --model efficientnet-lite0)"
        ),
    }
    for name in ("hello-le.txt", "hello-be.txt"):
        chunks = after[str(docs / name)][1]
        assert [c.text for c in chunks] == [UTF16_TEXT.strip()]
    html = after[str(docs / "bikes.html")][1]
    assert html[0].metadata["format"] == "html"
    assert html[0].metadata["title"] == "Bicycle maintenance"
    assert not any("Navigation menu" in chunk.text for chunk in html)


# ---- the command line --------------------------------------------------------------------------


def test_cli_prints_one_failed_line_and_exits_1(tmp_path):
    docs = tmp_path / "docs"
    write_good_files(docs)
    write_bytes_named(docs, b"caf\xe9.txt", b"Coffee notes, named in Latin-1.\n")
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [str(CLI), "ingest", str(tmp_path / "kb"), str(docs)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("failed: ")]
    assert lines == [f"failed: {docs}/caf\\xe9.txt: file name is not valid UTF-8"], result.stderr

    as_json = subprocess.run(
        [str(CLI), "ingest", str(tmp_path / "kb"), str(docs), "--json"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert as_json.returncode == 1 and "Traceback" not in as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["files"]["failed"] == [
        {"path": f"{docs}/caf\\xe9.txt", "reason": "file name is not valid UTF-8"}
    ]
    assert report["unchanged"] == 4
