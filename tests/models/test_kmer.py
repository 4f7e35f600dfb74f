"""K-mer profiles on real genes and proteins: counts against a naive count, reverse-complement
invariance, IDF against scikit-learn's TfidfVectorizer, files, names, and every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction.text import TfidfVectorizer

from embedstack import load_model
from embedstack.errors import (
    InvalidInputError,
    LimitExceededError,
    ModelLoadError,
    ModelNotFoundError,
)
from embedstack.models import CATALOG, find_spec, kmer_backend
from embedstack.models.cache import CachedEncoder, EmbeddingCache
from embedstack.models.kmer import CONFIG_FILE, IDF_FILE, MAX_DIM, KmerModel, KmerProfile
from tests.sequence_samples import COR_GENBANK, YERSINIA_PLASMID, YERSINIA_PROTEINS

COMPLEMENT = str.maketrans("ACGT", "TGCA")


def genbank_sequences() -> list[str]:
    """The letters of the two cor6.6/Kin1 records (ORIGIN blocks), without parsing them."""
    out = []
    for record in COR_GENBANK.split("//\n")[:2]:
        origin = record.split("ORIGIN")[1]
        out.append("".join(c for c in origin if c.isalpha()))
    return out


COR66, KIN1 = genbank_sequences()
PROTEINS = ["".join(p.splitlines()[1:]) for p in YERSINIA_PROTEINS.split(">")[1:]]


def naive_counts(sequence: str, letters: str, k: int) -> dict[str, int]:
    """Every window of k letters that are all in `letters` (U read as T, any case)."""
    sequence = sequence.upper().replace("U", "T") if letters == "ACGT" else sequence.upper()
    counts: dict[str, int] = {}
    for i in range(len(sequence) - k + 1):
        word = sequence[i : i + k]
        if all(c in letters for c in word):
            counts[word] = counts.get(word, 0) + 1
    return counts


def as_dict(profile: KmerProfile, row: np.ndarray) -> dict[str, int]:
    names = profile.get_feature_names_out()
    return {str(names[i]): int(row[i]) for i in np.flatnonzero(row)}


def test_lengths_match_the_real_records():
    assert (len(COR66), len(KIN1), len(YERSINIA_PLASMID)) == (513, 441, 600)
    assert [len(p) for p in PROTEINS] == [340, 260, 64]


@pytest.mark.parametrize("k", [1, 3, 5])
def test_dna_counts_equal_a_naive_count_with_ambiguity_codes_rna_and_case(k):
    # A real gene, made messy the ways files are: lower case, N runs, IUPAC codes, RNA's U,
    # and alignment gaps (dropped: they are not residues).
    messy = COR66[:200].lower() + "NNNN" + COR66[200:300] + "RY" + KIN1[:150].replace("T", "U")
    messy = messy[:50] + "--" + messy[50:]
    profile = KmerProfile("dna", k, idf=False)
    counts = profile.counts([messy])[0]
    assert as_dict(profile, counts) == naive_counts(messy.replace("-", ""), "ACGT", k)
    assert profile.dim == 4**k


def test_protein_counts_skip_ambiguous_residues_and_stops():
    protein = PROTEINS[0][:120] + "X" + PROTEINS[0][120:200] + "BZJUO" + PROTEINS[1] + "*"
    profile = KmerProfile("protein", 2, idf=False)
    counts = profile.counts([protein.lower()])[0]
    assert as_dict(profile, counts) == naive_counts(protein, "ACDEFGHIKLMNPQRSTVWY", 2)
    assert profile.dim == 400


def test_vectors_are_unit_float32_with_sublinear_counts():
    profile = KmerProfile("dna", 3, idf=False)
    vector = profile.transform([COR66])[0]
    counts = profile.counts([COR66])[0]
    assert vector.dtype == np.float32 and abs(float(np.linalg.norm(vector)) - 1) < 1e-6
    expected = np.where(counts > 0, 1 + np.log(np.maximum(counts, 1)), 0)
    np.testing.assert_allclose(vector, expected / np.linalg.norm(expected), rtol=1e-6)


def test_homologous_genes_are_closer_than_unrelated_dna():
    model = load_model("kmer-dna")
    cor66, kin1, plasmid = model.encode([COR66, KIN1, YERSINIA_PLASMID])
    assert float(cor66 @ kin1) > float(cor66 @ plasmid) + 0.1


@pytest.mark.parametrize("k", [4, 5, 6])
def test_canonical_kmers_give_a_strand_the_same_vector_as_its_reverse_complement(k):
    reverse = YERSINIA_PLASMID.translate(COMPLEMENT)[::-1]
    canonical = KmerProfile("dna", k, idf=False, canonical=True)
    forward_vec, reverse_vec = canonical.transform([YERSINIA_PLASMID, reverse])
    np.testing.assert_allclose(forward_vec, reverse_vec, atol=1e-6)
    plain = KmerProfile("dna", k, idf=False).transform([YERSINIA_PLASMID, reverse])
    assert float(plain[0] @ plain[1]) < 0.9  # without canonical k-mers the strands differ
    # one dimension per (k-mer, reverse complement) pair; palindromes (even k) alone
    assert canonical.dim == (4**k + (4 ** (k // 2) if k % 2 == 0 else 0)) // 2
    names = canonical.get_feature_names_out()
    assert all(name <= name.translate(COMPLEMENT)[::-1] for name in names)


def test_idf_fit_equals_scikit_learns_tfidf_with_sublinear_counts():
    k = 3
    profile = KmerProfile("dna", k, idf=True).fit([COR66, KIN1, YERSINIA_PLASMID])
    vocabulary = list(profile.get_feature_names_out())
    reference = TfidfVectorizer(
        analyzer=lambda s: [s[i : i + k] for i in range(len(s) - k + 1)],
        vocabulary=vocabulary,
        sublinear_tf=True,
        lowercase=False,
    ).fit([COR66.upper(), KIN1.upper(), YERSINIA_PLASMID])
    np.testing.assert_allclose(profile.idf_, reference.idf_)
    queries = [COR66[:300], YERSINIA_PLASMID[100:]]
    expected = reference.transform([q.upper() for q in queries]).toarray()
    np.testing.assert_allclose(profile.transform(queries), expected, atol=1e-6)
    np.testing.assert_allclose(
        profile.fit_transform([COR66, KIN1, YERSINIA_PLASMID]),
        reference.transform([COR66.upper(), KIN1.upper(), YERSINIA_PLASMID]).toarray(),
        atol=1e-6,
    )
    assert profile.n_sequences_ == 3


def test_an_idf_profile_must_be_fitted_and_a_plain_one_need_not():
    with pytest.raises(NotFittedError):
        KmerProfile("dna", 3, idf=True).transform([COR66])
    assert KmerProfile("dna", 3, idf=False).transform([COR66]).shape == (1, 64)


def test_clone_and_params_follow_scikit_learn():
    profile = KmerProfile("protein", 2, idf=True, canonical=False).fit(PROTEINS)
    params = profile.get_params()
    assert params == {"alphabet": "protein", "k": 2, "idf": True, "canonical": False}
    copy = clone(profile)
    assert copy.get_params() == params and not hasattr(copy, "idf_")
    copy.set_params(k=1)
    assert copy.fit(PROTEINS).transform(PROTEINS).shape == (3, 20)


def test_save_and_load_round_trip_by_class_and_by_load_model(tmp_path):
    profile = KmerProfile("protein", 2, idf=True).fit(PROTEINS)
    folder = profile.save(tmp_path / "yersinia-dipeptides")
    assert sorted(p.name for p in folder.iterdir()) == [IDF_FILE, CONFIG_FILE]
    config = json.loads((folder / CONFIG_FILE).read_text())
    assert config["name"] == "yersinia-dipeptides" and config["dim"] == 400
    loaded = KmerProfile.load(folder)
    assert loaded.get_params() == profile.get_params()
    np.testing.assert_array_equal(loaded.idf_, profile.idf_)
    model = load_model(str(folder))
    assert isinstance(model, KmerModel) and model.name == "yersinia-dipeptides"
    assert (model.modality, model.backend, model.dim, model.asymmetric) == (
        "sequence",
        "kmer",
        400,
        False,
    )
    np.testing.assert_array_equal(model.encode(PROTEINS), profile.transform(PROTEINS))
    assert model.encode(PROTEINS[0]).shape == (400,)
    with pytest.raises(ModelNotFoundError, match="runs on kmer, not 'onnx'"):
        load_model(str(folder), backend="onnx")


def test_a_plain_profile_saves_without_weights(tmp_path):
    folder = KmerProfile("dna", 4, idf=False).save(tmp_path / "plain")
    assert not (folder / IDF_FILE).exists()
    assert load_model(str(folder)).dim == 256


def test_damaged_profile_folders_are_one_line_load_errors(tmp_path):
    folder = KmerProfile("dna", 3, idf=True).fit([COR66, KIN1]).save(tmp_path / "p")
    np.save(folder / IDF_FILE, np.ones(10))
    with pytest.raises(ModelLoadError, match="idf.npy is not 64 positive weights"):
        load_model(str(folder))
    (folder / CONFIG_FILE).write_text("{not json")
    with pytest.raises(ModelLoadError, match="not a readable k-mer profile"):
        load_model(str(folder))
    (folder / CONFIG_FILE).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ModelLoadError, match="is not an embedstack k-mer profile"):
        KmerProfile.load(folder)


def test_catalog_names_and_kmer_names_load_without_fitting():
    dna, protein = load_model("kmer-dna"), load_model("kmer-protein")
    assert (dna.dim, protein.dim) == (1024, 400)
    assert find_spec("kmer-dna").modality == "sequence" and find_spec("kmer-dna").installed()
    assert load_model("kmer-dna-k5").name == "kmer-dna"  # an alias of the catalog entry
    assert load_model("kmer-dna-k6").dim == 4096
    assert load_model("kmer-protein-k3").dim == 8000
    assert load_model("kmer-dna-k4-canonical").dim == 136
    with pytest.raises(ModelNotFoundError, match="runs on kmer, not 'onnx'"):
        load_model("kmer-dna-k6", backend="onnx")
    with pytest.raises(ModelNotFoundError, match="kmer-dna runs on kmer, not 'torch'"):
        load_model("kmer-dna", backend="torch")
    with pytest.raises(LimitExceededError, match="use k ≤ 3"):
        load_model("kmer-protein-k4")
    with pytest.raises(ModelNotFoundError, match="has no weights to locate"):
        CATALOG["kmer-dna"].locate()
    assert kmer_backend.CONFIG_FILE == CONFIG_FILE


def test_the_embedding_cache_keys_sequences_by_their_letters(tmp_path):
    model = load_model("kmer-dna")
    cached = CachedEncoder(model, EmbeddingCache(tmp_path / "cache.db"))
    assert cached.item_bytes(COR66) == COR66.encode()  # letters, not a file path
    first = cached.encode([COR66, KIN1])
    np.testing.assert_array_equal(cached.encode([KIN1, COR66]), first[::-1])
    assert len(cached.cache) == 2


def test_a_megabase_is_counted_quickly():
    rng = np.random.default_rng(0)
    genome = "".join(rng.choice(list("ACGT"), 1_000_000))
    profile = KmerProfile("dna", 8, idf=False)
    started = time.perf_counter()
    counts = profile.counts([genome])[0]
    elapsed = time.perf_counter() - started
    assert counts.sum() == 1_000_000 - 8 + 1
    assert elapsed < 5, f"{elapsed:.1f} s for 1 Mb"


@pytest.mark.parametrize(
    ("sequences", "error", "message"),
    [
        ([""], InvalidInputError, "sequence 0: empty sequence"),
        ([COR66, "NNNNACGNNNN"], InvalidInputError, "sequence 1: no 5-mer without an ambiguity"),
        ([COR66[:16] + "J" + COR66], InvalidInputError, "invalid letter 'J' at position 17"),
        ([COR66 + " "], InvalidInputError, "invalid letter ' '"),
        ([12345], InvalidInputError, "a sequence must be a string, not int"),
        ([], InvalidInputError, "no sequences given"),
        (COR66, InvalidInputError, "pass a list of sequences, not one string"),
    ],
)
def test_bad_sequences_are_one_line_errors(sequences, error, message):
    with pytest.raises(error, match=message):
        KmerProfile("dna", 5, idf=False).transform(sequences)


def test_bad_parameters_are_one_line_errors():
    with pytest.raises(LimitExceededError, match=f"over the limit of {MAX_DIM:,}; use k ≤ 8"):
        KmerProfile("dna", 9, idf=False).transform([COR66])
    with pytest.raises(InvalidInputError, match="k must be a whole number ≥ 1"):
        KmerProfile("dna", 0, idf=False).transform([COR66])
    with pytest.raises(InvalidInputError, match="alphabet must be one of dna, protein"):
        KmerProfile("rna", 3, idf=False).transform([COR66])
    with pytest.raises(InvalidInputError, match="canonical k-mers .* are for DNA only"):
        KmerProfile("protein", 2, idf=False, canonical=True).transform(PROTEINS)
    with pytest.raises(InvalidInputError, match="invalid letter 'E' at position 3 for DNA"):
        load_model("kmer-dna").encode("ACEGT")


def test_the_cli_embeds_sequences_with_a_kmer_name():
    code = "from embedstack.cli.app import main; main()"
    out = subprocess.run(
        [sys.executable, "-c", code, "embed", "--model", "kmer-dna-k4", "--json"],
        input=COR66 + "\n" + KIN1 + "\n",
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["model"] == "kmer-dna-k4" and answer["dim"] == 256
    expected = load_model("kmer-dna-k4").encode([COR66, KIN1])
    np.testing.assert_allclose([d["embedding"] for d in answer["data"]], expected, atol=1e-6)


def test_importing_embedstack_loads_neither_scikit_learn_nor_the_kmer_module():
    code = (
        "import sys, embedstack; from embedstack import load_model; "
        "print(sorted(m for m in ('sklearn', 'Bio', 'embedstack.models.kmer') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
