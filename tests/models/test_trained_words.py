"""Word vectors trained with gensim (word2vec, FastText) on real posts, loaded as models.

Each model trains on 400 20 Newsgroups posts (hockey and Windows) in about a second, on one
thread with a fixed seed so the vectors are the same every run. gensim's own KeyedVectors,
read from the saved files, is the reference for lookups.
"""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from embedstack import load_model
from embedstack.errors import InvalidInputError, ModelLoadError, ModelNotFoundError
from tests.conftest import SHARED_DATA

gensim = pytest.importorskip("gensim")

NEWSGROUPS = SHARED_DATA / "20newsgroups" / "20news-bydate.jsonl.gz"
HOCKEY, WINDOWS = "rec.sport.hockey", "comp.os.ms-windows.misc"


def newsgroup_posts(groups: tuple[str, ...] = (HOCKEY, WINDOWS), per_group: int = 200) -> dict:
    """The first `per_group` training posts of each group, by group; skips without the data."""
    if not NEWSGROUPS.is_file():
        pytest.skip(f"20 Newsgroups not found at {NEWSGROUPS}")
    return _read_posts(groups, per_group)


@functools.cache
def _read_posts(groups: tuple[str, ...], per_group: int) -> dict[str, list[str]]:
    posts: dict[str, list[str]] = {group: [] for group in groups}
    with gzip.open(NEWSGROUPS, "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            wanted = posts.get(row["label"])
            if row["split"] == "train" and wanted is not None and len(wanted) < per_group:
                wanted.append(row["text"])
            if all(len(p) == per_group for p in posts.values()):
                break
    return posts


def train(texts, out: Path, algorithm: str, **options):
    from embedstack.models.word_training import train_word_vectors

    settings = dict(algorithm=algorithm, dim=32, epochs=10, min_count=3, workers=1, seed=7)
    return train_word_vectors(texts, out, **{**settings, "buckets": 50_000, **options})


@pytest.fixture(scope="module")
def posts() -> list[str]:
    by_group = newsgroup_posts()
    return by_group[HOCKEY] + by_group[WINDOWS]


@pytest.fixture(scope="module")
def word2vec(posts, tmp_path_factory):
    return train(posts, tmp_path_factory.mktemp("w2v") / "model", "word2vec")


@pytest.fixture(scope="module")
def fasttext(posts, tmp_path_factory):
    return train(posts, tmp_path_factory.mktemp("ft") / "model", "fasttext")


def keyed(path: str):
    from gensim.models import KeyedVectors

    return KeyedVectors.load(str(Path(path) / "vectors.kv"))


def test_trained_folder_loads_as_a_word_vector_model(word2vec, posts):
    from embedstack.models import WORD_VECTORS

    model = load_model(word2vec.path)
    assert model.modality == "text" and model.backend == "static" and model.dim == 32
    assert model.capabilities == {WORD_VECTORS}
    assert model.name == str(Path(word2vec.path).resolve())
    m = word2vec.manifest
    assert (m.algorithm, m.texts, m.gensim_version) == ("word2vec", len(posts), gensim.__version__)
    assert m.vocab_size == len(model.words) > 1000 and m.corpus_words > 50_000
    saved = json.loads((Path(word2vec.path) / "embedstack_words.json").read_text())
    assert saved["algorithm"] == "word2vec" and saved["vocab_size"] == m.vocab_size


def test_most_similar_matches_gensim_and_learns_the_domain(word2vec):
    from collections import Counter

    from embedstack.models.word_training import tokenize

    model = load_model(word2vec.path)
    reference = keyed(word2vec.path)
    ours = model.most_similar("hockey", k=5)
    assert [w for w, _ in ours] == [w for w, _ in reference.most_similar("hockey", topn=5)]
    assert all(word in model for word, _ in ours) and "hockey" not in dict(ours)
    scores = [score for _, score in ours]
    assert scores == sorted(scores, reverse=True)
    assert model.analogy("nhl", "hockey", "windows", k=3)[0][0] in model.words
    # Trained on hockey and Windows posts: most neighbours of "hockey" are words of the
    # hockey posts, and most neighbours of "windows" words of the Windows posts.
    by_group = newsgroup_posts()
    counts = {g: Counter(w for t in texts for w in tokenize(t)) for g, texts in by_group.items()}
    for word, group, other in [("hockey", HOCKEY, WINDOWS), ("windows", WINDOWS, HOCKEY)]:
        near = [w for w, _ in model.most_similar(word, k=10)]
        assert sum(counts[group][w] > counts[other][w] for w in near) >= 7, near


def test_sentence_vector_is_the_normalised_mean_of_unit_word_vectors(word2vec):
    model = load_model(word2vec.path)
    reference = keyed(word2vec.path)
    text = "The Penguins won the game in overtime, zzqxv!"
    words = [w for w in ["the", "penguins", "won", "the", "game", "in", "overtime"] if w in model]
    mean = np.mean([reference.get_vector(w, norm=True) for w in words], axis=0)
    np.testing.assert_allclose(model.encode(text), mean / np.linalg.norm(mean), atol=1e-5)
    assert not model.encode("zzqxv qqzvx").any()  # no known word: zeros, as GloVe
    with pytest.raises(InvalidInputError, match="not in .* vocabulary"):
        model.most_similar("zzqxv")  # word2vec has no vector for an unseen word


def test_fasttext_builds_vectors_for_unseen_words(fasttext):
    model = load_model(fasttext.path)
    assert "goaltenderz" not in model and "goaltender" in model
    unseen = model.vector("goaltenderz")
    assert np.linalg.norm(unseen) == pytest.approx(1.0, abs=1e-5)
    assert float(unseen @ model.vector("goaltender")) > float(unseen @ model.vector("windows"))
    assert "goaltender" in [w for w, _ in model.most_similar("goaltenderz", k=10)]
    np.testing.assert_allclose(unseen, model.encode("goaltenderz"), atol=1e-5)


def test_one_shot_iterators_and_reading_functions_both_train(posts, tmp_path):
    first = train(iter(posts[:100]), tmp_path / "a", "word2vec", epochs=1)
    again = train(lambda: iter(posts[:100]), tmp_path / "b", "word2vec", epochs=1)
    assert first.manifest.corpus_words == again.manifest.corpus_words > 0
    assert first.manifest.vocab_size == again.manifest.vocab_size


@pytest.mark.parametrize(
    "options, message",
    [
        ({"dim": 0}, "dim must be at least 1"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"algorithm": "glove"}, "algorithm must be one of word2vec, fasttext"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, options, message):
    with pytest.raises(InvalidInputError, match=message):
        train(["some text here"], tmp_path / "out", options.pop("algorithm", "word2vec"), **options)
    assert not (tmp_path / "out").exists()


def test_existing_output_is_refused_and_kept(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="already exists"):
        train(["a b c"] * 10, out, "word2vec")
    assert (out / "keep.txt").read_text() == "mine"


def test_texts_with_no_frequent_word_train_nothing(tmp_path):
    with pytest.raises(InvalidInputError, match="nothing to train"):
        train(["", "!!! ???", "once"], tmp_path / "out", "word2vec")
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())


def test_damaged_or_foreign_folders_fail_clearly(word2vec, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(word2vec.path, broken)
    (broken / "embedstack_words.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="cannot read .*embedstack_words.json"):
        load_model(str(broken))
    with pytest.raises(ModelNotFoundError, match="run on 'static', not 'onnx'"):
        load_model(word2vec.path, backend="onnx")
    newer = json.loads((Path(word2vec.path) / "embedstack_words.json").read_text())
    (broken / "embedstack_words.json").write_text(json.dumps({**newer, "format": 99}))
    with pytest.raises(ModelLoadError, match="format 99"):
        load_model(str(broken))
