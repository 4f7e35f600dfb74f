"""`reindex` and `embedstack reindex`: real models, real files, real folders."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from embedstack import Collection, load_model
from embedstack.collection import CACHE_FILE
from embedstack.config import CollectionConfig
from embedstack.errors import (
    CollectionError,
    CollectionNotFoundError,
    ModelLoadError,
    ModelNotFoundError,
)
from embedstack.models import find_spec
from embedstack.reindex import ReindexReport, reindex, swap_folders

EMBEDSTACK = Path(sys.executable).parent / "embedstack"
NEW_MODEL = "paraphrase-MiniLM-L3-v2"
GARDEN = """# Growing tomatoes

Tomatoes want the sunniest spot of the garden and a rich, well drained soil. Plant them out
once the nights stay above ten degrees, and set a stake beside each plant before it grows tall.

## Watering

Water deeply twice a week rather than a little every day, so that the roots grow down. Water
the soil, not the leaves: wet leaves in the evening invite blight. A layer of straw mulch keeps
the soil moist and stops the fruit from splitting after a sudden downpour.

## Pruning

Pinch out the side shoots that grow between the main stem and the branches. Once the plant has
set four or five trusses of flowers, pinch out the growing tip so that the fruit ripens before
the first frosts of autumn.
"""
BIKES = """Oil the bicycle chain every month, and after every ride in the rain. Wipe off the old oil
first, then put one drop on each link and wipe off what is left.

Check the tyre pressure every week: the right pressure is printed on the side of the tyre.
Brake pads wear out; replace them when the grooves are gone.
"""
TICKETS = "body,priority\nThe coffee machine leaks water onto the floor.,2\nThe printer jams.,1\n"
LOOSE = {
    "paris": ("Paris is the capital of France.", {"lang": "en"}),
    "tea": ("Green tea contains antioxidants.", {"lang": "en", "year": 2022}),
}


@pytest.fixture(scope="module")
def new_model():
    return load_model(NEW_MODEL)


def write_docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "garden.md").write_text(GARDEN, encoding="utf-8")
    (folder / "bikes.txt").write_text(BIKES, encoding="utf-8")
    (folder / "tickets.csv").write_text(TICKETS, encoding="utf-8")
    return folder


def build(kb: Path, model, docs: Path, **options) -> None:
    """A closed collection with ingested files and rows added by id."""
    with Collection.open(kb, model) as collection:
        report = collection.ingest(docs, chunk_tokens=48, **options)
        assert report.ok and len(report.added) == 3
        collection.add(
            [text for text, _ in LOOSE.values()],
            ids=list(LOOSE),
            metadata=[meta for _, meta in LOOSE.values()],
        )


def stored(kb: Path) -> dict[str, tuple[str, dict, np.ndarray]]:
    """id -> (text, metadata, vector), straight from the database."""
    with closing(sqlite3.connect(kb / "embedstack.db")) as db:
        rows = db.execute("SELECT id, text, metadata, vid FROM chunks ORDER BY vid").fetchall()
        epoch = db.execute("SELECT value FROM meta WHERE key = 'vector_epoch'").fetchone()[0]
    dim = CollectionConfig.read(kb).dim
    matrix = np.fromfile(kb / f"vectors-{epoch}.f32", dtype="<f4").reshape(-1, dim)
    return {r[0]: (r[1], json.loads(r[2]), matrix[r[3]].copy()) for r in rows}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def leftovers(kb: Path) -> list[str]:
    return sorted(p.name for p in kb.parent.iterdir() if p.name.startswith(f"{kb.name}.reindex"))


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_same_model_with_force_gives_the_vectors_ingest_stored(tmp_path, model):
    kb = tmp_path / "kb"
    build(kb, model, write_docs(tmp_path / "docs"))
    before = stored(kb)
    assert (kb / CACHE_FILE).exists()
    with pytest.raises(CollectionError, match="nothing to do"):
        reindex(kb, model)

    report = reindex(kb, model, force=True)

    assert isinstance(report, ReindexReport)
    assert (report.rows, report.sources, report.long_chunks) == (len(before), 3, 0)
    after = stored(kb)
    assert list(after) == list(before)  # same ids, same order
    cosines = {id_: float(before[id_][2] @ after[id_][2]) for id_ in before}
    assert min(cosines.values()) > 0.999, cosines
    # The check can fail: a chunk under a heading embedded bare is another vector.
    watering = next(
        id_ for id_, row in before.items() if row[1].get("heading", "").endswith("Watering")
    )
    bare = model.encode_document([before[watering][0]])[0]
    assert float(bare @ before[watering][2]) < 0.99
    assert not (kb / CACHE_FILE).exists()  # no old vectors carried over
    with Collection.open(kb, model) as collection:
        again = collection.ingest(tmp_path / "docs", chunk_tokens=48)
    assert len(again.unchanged) == 3 and not again.added and not again.updated


def test_another_model_keeps_rows_manifest_and_uploaded_files(tmp_path, model, new_model):
    kb = tmp_path / "kb"
    docs = write_docs(kb / "files")  # where `embedstack serve` keeps uploads
    build(kb, model, docs, contextual=False)
    with Collection.open(kb) as collection:
        sources = collection.sources()
    before = stored(kb)

    report = reindex(kb, NEW_MODEL)

    assert (report.old_model, report.new_model, report.rows) == (model.name, NEW_MODEL, len(before))
    after = stored(kb)
    assert [(id_, text, meta) for id_, (text, meta, _) in after.items()] == [
        (id_, text, meta) for id_, (text, meta, _) in before.items()
    ]
    assert leftovers(kb) == [] and (docs / "garden.md").read_text(encoding="utf-8") == GARDEN
    with Collection.open(kb, new_model) as collection:
        assert collection.config.model == NEW_MODEL
        assert collection.sources() == sources
        assert collection.check() == []
        hit = collection.search("how often should I oil my bike chain?", k=1, mode="dense")[0]
        assert hit.metadata["file_name"] == "bikes.txt"
        assert collection.search("French capital city", k=1, mode="dense")[0].id == "paris"
        same = collection.ingest(docs, chunk_tokens=48, contextual=False)
        assert len(same.unchanged) == 3 and not same.added and not same.updated
        rechunked = collection.ingest(docs)  # another recipe: the files are chunked again
        assert len(rechunked.updated) == 3


def rows_written(kb: Path) -> int:
    """Rows already committed in the folder a running reindex builds (0 if none yet)."""
    for name in leftovers(kb):
        database = kb.parent / name / "embedstack.db"
        if database.exists():
            with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
                return db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    return 0


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failure_mid_way_leaves_the_old_collection_byte_identical(
    tmp_path, model, new_model, monkeypatch, error
):
    kb = tmp_path / "kb"
    build(kb, model, write_docs(tmp_path / "docs"))
    before = snapshot(kb)
    monkeypatch.setattr("embedstack.reindex.BATCH_ROWS", 2)  # write in small steps
    encode = new_model.encode_document

    def crash_once_rows_are_written(texts, **options):
        if rows_written(kb):
            raise error("simulated crash")
        return encode(texts, **options)

    monkeypatch.setattr(new_model, "encode_document", crash_once_rows_are_written)
    with pytest.raises(error, match="simulated crash"):
        reindex(kb, new_model, batch_size=2)

    assert snapshot(kb) == before and leftovers(kb) == []
    with Collection.open(kb, model) as collection:
        assert collection.config.model == model.name
        assert collection.search("French capital city", k=1, mode="dense")[0].id == "paris"


def test_a_write_during_the_reindex_fails_it_instead_of_being_lost(tmp_path, model, new_model):
    kb = tmp_path / "kb"
    build(kb, model, write_docs(tmp_path / "docs"))

    class WrittenMeanwhile:
        """The new model, while another writer adds a row to the old collection."""

        def __getattr__(self, name):
            return getattr(new_model, name)

        def encode_document(self, texts, **options):
            with Collection.open(kb, model) as other:
                other.add(["Written during the reindex."], ids=[f"late-{len(texts)}"])
            return new_model.encode_document(texts, **options)

    with pytest.raises(CollectionError, match="changed while it was re-embedded"):
        reindex(kb, WrittenMeanwhile())

    assert leftovers(kb) == []
    with Collection.open(kb, model) as collection:
        assert collection.config.model == model.name
        assert any(id_.startswith("late-") for id_ in collection.ids())


def test_errors_leave_the_collection_as_it_was(tmp_path, model):
    kb = tmp_path / "kb"
    with Collection.open(kb, model) as collection:
        collection.add(["Paris is the capital of France."], ids=["paris"])
    before = snapshot(kb)
    broken = tmp_path / "broken.onnx"  # a damaged model file with a good tokenizer beside it
    broken.write_bytes(b"not an onnx graph")
    tokenizer = find_spec("all-MiniLM-L6-v2").locate() / "tokenizer.json"
    (tmp_path / "tokenizer.json").write_bytes(tokenizer.read_bytes())
    cases = [
        (tmp_path / "nowhere", NEW_MODEL, CollectionNotFoundError, "no collection at"),
        (kb, "sentence-transformers/all-MiniLM-L6-v2", CollectionError, "nothing to do"),
        (kb, "no-such-model", ModelNotFoundError, "unknown model 'no-such-model'"),
        (kb, str(broken), ModelLoadError, "cannot load"),
    ]
    for path, name, kind, words in cases:
        with pytest.raises(kind, match=words) as caught:
            reindex(path, name)
        assert "\n" not in str(caught.value)
        assert snapshot(kb) == before and leftovers(kb) == []


def test_the_folders_are_exchanged_in_one_step(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("renameat2 is Linux's")
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "old").touch()
    (tmp_path / "kb.reindex-1-ab").mkdir()
    (tmp_path / "kb.reindex-1-ab" / "new").touch()
    old_place = swap_folders(tmp_path / "kb", tmp_path / "kb.reindex-1-ab")
    assert old_place == tmp_path / "kb.reindex-1-ab"
    assert os.listdir(tmp_path / "kb") == ["new"] and os.listdir(old_place) == ["old"]


def test_two_renames_where_there_is_no_exchange_and_recovery_after_a_crash(
    tmp_path, model, new_model, monkeypatch
):
    monkeypatch.setattr("embedstack.reindex._exchange", lambda first, second: False)
    kb = tmp_path / "kb"
    with Collection.open(kb, model) as collection:
        collection.add(["Paris is the capital of France."], ids=["paris"])
    # A run killed between the two renames: the old folder aside, the new one not in place.
    pid = dead_pid()
    os.rename(kb, tmp_path / f"kb.reindex-old-{pid}-00c0ffee")
    (tmp_path / f"kb.reindex-{pid}-00c0ffee").mkdir()

    report = reindex(kb, new_model)  # puts the old one back, then re-embeds it

    assert report.old_model == model.name and report.rows == 1
    assert leftovers(kb) == []
    with Collection.open(kb, new_model) as collection:
        assert collection.ids() == ["paris"]


def test_cli_reindex(tmp_path, model):
    kb = tmp_path / "kb"
    with Collection.open(kb, model) as collection:
        collection.add(["Paris is the capital of France."], ids=["paris"])

    def run(*args: str | Path) -> subprocess.CompletedProcess:
        command = [str(EMBEDSTACK), "reindex", *map(str, args)]
        return subprocess.run(command, capture_output=True, text=True, timeout=300)

    done = run(kb, "--model", NEW_MODEL, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) | {"seconds": 0} == {
        "path": str(kb), "old_model": model.name, "new_model": NEW_MODEL, "old_dim": 384,
        "new_dim": 384, "rows": 1, "sources": 0, "long_chunks": 0, "seconds": 0,
    }  # fmt: skip
    failed = run(kb, "--model", NEW_MODEL)  # now the collection's own model
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert failed.stderr.startswith("error: ") and failed.stderr.count("\n") == 1, failed.stderr
    assert "nothing to do" in failed.stderr
