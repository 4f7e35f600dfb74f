"""Fine-tuning for real, kept tiny: the real MiniLM, real pairs, a few steps."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from transformers import TrainerCallback

from embedstack import Collection, load_model
from embedstack.errors import DatasetError, InvalidInputError, ModelNotFoundError
from embedstack.models.catalog import find_spec
from embedstack.training import FinetuneOptions, finetune
from embedstack.training.trainer import FinetuneInterrupted
from tests.http_helpers import wait_for_health
from tests.rag.test_ask import free_port

pytest.importorskip("datasets")

PAIRS = [
    ("What is the capital of France?", "Paris is the capital and largest city of France."),
    ("How do plants make food?", "Photosynthesis turns light, water and CO2 into sugar."),
    ("Who wrote Hamlet?", "Hamlet is a tragedy written by William Shakespeare around 1600."),
    ("What causes tides?", "The Moon's gravity pulls on the oceans and raises the tides."),
    ("How fast is light?", "Light travels at about 299,792 kilometres per second."),
    ("What is DNA?", "DNA is the molecule that carries genetic instructions."),
    ("Why is the sky blue?", "Rayleigh scattering of sunlight makes the sky look blue."),
    ("What is inflation?", "Inflation is the rate at which the price level rises."),
]
TINY = FinetuneOptions(batch_size=4, max_steps=2)
CLI = Path(sys.executable).with_name("embedstack")


def write_pairs(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    return write_pairs(tmp_path / "pairs.jsonl", [{"query": q, "positive": p} for q, p in PAIRS])


def folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A real two-step fine-tune, shared by the tests that use its result."""
    folder = tmp_path_factory.mktemp("tiny")
    pairs = write_pairs(folder / "pairs.jsonl", [{"query": q, "positive": p} for q, p in PAIRS])
    base_before = folder_digest(find_spec("all-MiniLM-L6-v2").locate())
    report = finetune("all-MiniLM-L6-v2", pairs, folder / "models" / "tiny", TINY)
    return report, base_before


def test_finetuned_model_works_through_the_product(tiny_model, tmp_path):
    report, base_before = tiny_model
    out = Path(report.model)
    base = find_spec("all-MiniLM-L6-v2").locate()

    assert report.steps == 2 and report.pairs == {"labelled": len(PAIRS)}
    assert len(report.losses) == 2 and all(np.isfinite(loss) for _, loss in report.losses)
    provenance = json.loads((out / "embedstack_training.json").read_text())
    assert provenance["base"] == "all-MiniLM-L6-v2" and provenance["steps"] == 2
    assert folder_digest(base) == base_before  # the base model never changes
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no work left

    # The weights moved, and the model loads like any other: int8 ONNX close to its fp32
    # (as close as the base model's own export: mean 0.992, min 0.980 in docs/benchmarks.md).
    texts = [p for _, p in PAIRS]
    fp32 = load_model(str(out), "onnx").encode(texts)
    cosines = np.sum(fp32 * load_model(str(out)).encode(texts), axis=1)
    assert cosines.mean() >= 0.99 and cosines.min() >= 0.98
    assert not np.allclose(fp32, load_model("all-MiniLM-L6-v2", "onnx").encode(texts), atol=1e-4)

    kb = Collection.open(tmp_path / "kb", model=str(out))
    kb.add(texts, ids=[f"d{i}" for i in range(len(texts))])
    assert kb.search("Who wrote the play Hamlet?", k=1)[0].id == "d2"
    kb.close()


def test_finetuned_model_served_on_v1_embeddings(tiny_model, tmp_path):
    report, _ = tiny_model
    port = free_port()
    server = subprocess.Popen(
        [str(CLI), "serve", "--port", str(port), "--collections", str(tmp_path / "kbs"),
         "--model", report.model],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_health(url, server)
        texts = ["Who wrote Hamlet?", "Light is fast."]
        reply = httpx.post(f"{url}/v1/embeddings", json={"input": texts}, timeout=120)
        assert reply.status_code == 200, reply.text
        served = np.array([row["embedding"] for row in reply.json()["data"]], dtype=np.float32)
        local = load_model(report.model).encode(texts)
        assert np.min(np.sum(served * local, axis=1)) > 0.999
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_ctrl_c_keeps_the_last_checkpoint(pairs_file, tmp_path):
    class CtrlC(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt

    out = tmp_path / "stopped"
    options = FinetuneOptions(batch_size=4, max_steps=6, checkpoint_minutes=1e-9)  # every step
    with pytest.raises(FinetuneInterrupted) as stopped:
        finetune("all-MiniLM-L6-v2", pairs_file, out, options, callbacks=[CtrlC()])
    assert stopped.value.saved == out and stopped.value.step == 2 and stopped.value.total == 6
    assert not (out / "optimizer.pt").exists()  # a model folder, not a trainer checkpoint
    vector = load_model(str(out), "onnx").encode(["a usable model"])
    assert vector.shape == (1, 384) and abs(float(np.linalg.norm(vector)) - 1) < 1e-4
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_hard_negatives_from_a_beir_folder(tmp_path):
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    topics = ["cells", "stars", "rivers", "proteins", "volcanoes", "genes", "planets", "oceans"]
    docs = [f"Document {i} about {topic}." for i, topic in enumerate(topics)]
    write_pairs(folder / "corpus.jsonl", [{"_id": f"d{i}", "title": "", "text": t}
                                          for i, t in enumerate(docs)])  # fmt: skip
    queries = ["what are cells", "tell me about stars", "rivers", "protein folding"]
    write_pairs(folder / "queries.jsonl", [{"_id": f"q{i}", "text": q}
                                           for i, q in enumerate(queries)])  # fmt: skip
    (folder / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(4))
    )
    options = FinetuneOptions(batch_size=4, max_steps=1, hard_negatives=1)
    report = finetune("all-MiniLM-L6-v2", folder, tmp_path / "hn", options)
    assert report.pairs == {"labelled": 4} and report.steps == 1


def test_pseudo_queries_from_a_collection_without_labels(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.md").write_text(
        "# Caring for sourdough starters\n\n"
        "A sourdough starter needs flour and water every day to stay active. "
        "Keep the jar at room temperature and discard half before each feeding. "
        "A healthy starter doubles in size within eight hours of being fed. "
        "If a grey liquid appears on top, the starter is hungry and should be fed soon.\n\n"
        "## Baking schedule for weekend bread loaves\n\n"
        "Mix the dough on Friday evening and let it ferment slowly overnight in the fridge. "
        "Shape the loaves on Saturday morning and proof them for two more hours. "
        "Bake at a high temperature in a covered pot for the first twenty minutes. "
        "Let the bread cool completely before slicing, or the crumb turns gummy.\n",
        encoding="utf-8",
    )
    kb = Collection.open(tmp_path / "kb")
    kb.ingest(docs, chunk_tokens=64)
    kb.close()
    before = folder_digest(tmp_path / "kb")
    report = finetune("all-MiniLM-L6-v2", tmp_path / "kb", tmp_path / "m", TINY)
    assert report.pairs.get("title", 0) >= 2 and report.pairs.get("ict", 0) >= 2
    assert folder_digest(tmp_path / "kb") == before  # training reads the collection only

    from embedstack.training.pseudo_queries import collection_chunks, ict_pairs, title_pairs

    with Collection.open(tmp_path / "kb", create=False) as kb:
        chunks = collection_chunks(kb)
    titles = {pair.query for pair in title_pairs(chunks)}
    assert "Baking schedule for weekend bread loaves" in titles
    for pair in ict_pairs(chunks):  # the sentence is the query and is cut from its chunk
        assert pair.query not in pair.positive
        assert any(pair.query in chunk.text for chunk in chunks)


def test_llm_written_questions(tmp_path):
    pytest.importorskip("xllamacpp")
    from embedstack.rag.loader import load_llm
    from embedstack.training.pseudo_queries import ask_for_question

    llm = load_llm("smollm2")
    question = ask_for_question(
        llm, "The Eiffel Tower in Paris was completed in 1889 and is 330 metres tall."
    )
    assert question is None or (question.endswith("?") and len(question.split()) >= 3)


def test_bad_input_fails_in_one_line_and_changes_nothing(pairs_file, tmp_path):
    missing = write_pairs(tmp_path / "bad.jsonl", [{"query": "q", "positive": "p"}, {"query": "q"}])
    with pytest.raises(DatasetError, match=r"bad.jsonl:2: 'positive'"):
        finetune("all-MiniLM-L6-v2", missing, tmp_path / "a", TINY)
    existing = tmp_path / "exists"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="already exists"):
        finetune("all-MiniLM-L6-v2", pairs_file, existing, TINY)
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]
    with pytest.raises(ModelNotFoundError, match="cannot be fine-tuned"):
        finetune("glove-6b-50d", pairs_file, tmp_path / "b", TINY)
    empty = Collection.open(tmp_path / "empty")
    empty.close()
    with pytest.raises(DatasetError, match="empty"):
        finetune("all-MiniLM-L6-v2", tmp_path / "empty", tmp_path / "c", TINY)
    with pytest.raises(InvalidInputError, match="matryoshka"):
        finetune("all-MiniLM-L6-v2", pairs_file, tmp_path / "d", FinetuneOptions(matryoshka=(512,)))
    assert not any((tmp_path / name).exists() for name in "abcd")


def test_mlflow_run_reads_back(pairs_file, tmp_path):
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    report = finetune("all-MiniLM-L6-v2", pairs_file, tmp_path / "tracked", TINY, mlflow=uri)

    mlflow.set_tracking_uri(uri)
    run = mlflow.get_run(report.mlflow_run)
    assert run.info.status == "FINISHED"
    assert run.data.params["base"] == "all-MiniLM-L6-v2" and run.data.params["loss"] == "mnrl"
    history = mlflow.MlflowClient(uri).get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in history] == [1, 2]
    assert (tmp_path / "mlartifacts").is_dir()  # the model is kept beside the database
    provenance = json.loads((tmp_path / "tracked" / "embedstack_training.json").read_text())
    assert provenance["mlflow_run"] == run.info.run_id
    model = mlflow.sentence_transformers.load_model(f"runs:/{run.info.run_id}/model")
    ours = load_model(str(tmp_path / "tracked"), "onnx").encode(["tracked model"])
    theirs = model.encode(["tracked model"], normalize_embeddings=True)
    assert float(np.dot(ours[0], theirs[0])) > 0.999


def test_cli_errors_are_one_line(pairs_file, tmp_path):
    from tests.cli.test_cli import assert_one_line_error, run

    bad = write_pairs(tmp_path / "bad.jsonl", [{"query": "q"}])
    result = run("finetune", "--train", bad, "--out", tmp_path / "m")
    assert_one_line_error(result, "bad.jsonl:1", "positive")
    result = run("finetune", "--train", pairs_file, "--out", tmp_path / "m", "--base", "glove")
    assert_one_line_error(result, "cannot be fine-tuned")
    result = run("finetune", "--train", pairs_file, "--out", tmp_path, "--loss", "mnrl")
    assert_one_line_error(result, "already exists")
    assert not (tmp_path / "m").exists()


def test_pairs_without_a_mined_negative_are_kept():
    from datasets import Dataset

    from embedstack.training.trainer import keep_unmined

    pairs = Dataset.from_dict({"anchor": ["q1", "q2", "q2"], "positive": ["p1", "p2", "p3"]})
    mined = Dataset.from_dict({"anchor": ["q1"], "positive": ["p1"], "negative_1": ["p2"]})
    corpus = ["p1", "p2", "p3", "other"]
    kept = keep_unmined(pairs, mined, corpus, seed=0)
    assert list(zip(kept["anchor"], kept["positive"], strict=True)) == [
        ("q1", "p1"), ("q2", "p2"), ("q2", "p3")]  # fmt: skip
    assert all(negative in ("p1", "other") for negative in kept["negative_1"][1:])


@pytest.mark.parametrize(
    ("loss", "matryoshka"), [("cached-mnrl", ()), ("gist", ()), ("mnrl", (384, 128, 64))]
)
def test_each_loss_trains(pairs_file, tmp_path, loss, matryoshka):
    options = FinetuneOptions(batch_size=4, max_steps=1, loss=loss, matryoshka=matryoshka,
                              hard_negatives=0)  # fmt: skip
    report = finetune("all-MiniLM-L6-v2", pairs_file, tmp_path / loss, options)
    assert report.steps == 1 and np.isfinite(report.losses[0][1])
    assert load_model(str(tmp_path / loss)).dim == 384


def test_e5_trains_with_the_prompts_it_reads(tmp_path):
    """A model with prompts (E5: "query: ", "passage: ") is mined and trained with them, and the
    new model keeps them: otherwise it would be tuned for inputs it never gets."""
    from sentence_transformers import SentenceTransformer

    from embedstack.training.trainer import column_prompts

    spec = find_spec("multilingual-e5-small")
    if not spec.installed():
        pytest.skip("needs embedstack[e5]")
    e5 = SentenceTransformer(str(spec.locate()), device="cpu")
    columns = ["anchor", "positive", "negative_1"]
    assert column_prompts(e5, columns) == {
        "anchor": "query: ", "positive": "passage: ", "negative_1": "passage: "
    }  # fmt: skip
    minilm = SentenceTransformer(str(find_spec("all-MiniLM-L6-v2").locate()), device="cpu")
    assert column_prompts(minilm, columns) == {}
    pairs = write_pairs(tmp_path / "pairs.jsonl", [{"query": q, "positive": p} for q, p in PAIRS])
    options = FinetuneOptions(batch_size=4, max_steps=1)
    report = finetune("multilingual-e5-small", pairs, tmp_path / "e5-tuned", options)
    assert report.steps == 1
    tuned = load_model(str(tmp_path / "e5-tuned"), backend="onnx")
    assert tuned.asymmetric  # the prompts came along
    query, passage = tuned.encode_query("dog"), tuned.encode_document("dog")
    assert float(query @ passage) < 0.999
