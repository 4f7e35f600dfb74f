"""Typer app: thin wrappers over the Python API, Rich output, `--json` for machines.

Every user error prints one line, `error: ...`, on stderr and exits with code 2.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from embedstack.collection import Collection
from embedstack.errors import EmbedstackError
from embedstack.ingest.limits import DEFAULT_MAX_CHARS, DEFAULT_MAX_FILE_MB
from embedstack.models import DEFAULT_MODEL

app = typer.Typer(
    help="embedstack: embed, store, search and evaluate text on your own machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
eval_app = typer.Typer(
    help="Evaluate models and pipelines on standard data sets.", no_args_is_help=True
)
app.add_typer(eval_app, name="eval")
models_app = typer.Typer(help="The model catalog.", invoke_without_command=True)
app.add_typer(models_app, name="models")
words_app = typer.Typer(help="Word vectors: similar words and analogies.", no_args_is_help=True)
app.add_typer(words_app, name="words")

out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

CollectionArg = Annotated[Path, typer.Argument(help="Collection folder.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")]
ModelOpt = Annotated[
    str, typer.Option(help="Catalog name, model folder/.onnx path, or openai:NAME with --base-url.")
]
BaseUrlOpt = Annotated[
    str | None, typer.Option(help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1.")
]
BackendOpt = Annotated[
    str | None,
    typer.Option(help="onnx-int8 | onnx | torch (others: see `embedstack models info`)."),
]
BatchOpt = Annotated[int, typer.Option(help="Texts per encoder batch.")]
SplitOpt = Annotated[str, typer.Option(help="Split to evaluate.")]
ModeOpt = Annotated[str, typer.Option(help="hybrid | dense | keyword.")]
RerankOpt = Annotated[
    str | None,
    typer.Option(help="Rerank the top candidates: 'builtin' or a CrossEncoder folder."),
]


def fail(message: str) -> None:
    print("error: " + " ".join(message.split()), file=sys.stderr)
    raise typer.Exit(2)


def user_errors(command: F) -> F:
    """Turn EmbedstackError (and OS errors on user paths) into one line and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except EmbedstackError as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"{exc.filename or ''}: {exc.strerror or exc}")

    return wrapper  # type: ignore[return-value]


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")


def parse_filter(raw: str | None) -> dict | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        fail(f"--filter is not valid JSON: {exc.msg} at position {exc.pos}")
    if not isinstance(value, dict):
        fail('--filter must be a JSON object, e.g. \'{"lang": "en"}\'')
    return value


def open_existing(path: Path) -> Collection:
    return Collection.open(path, create=False)


def load_model_with_status(kb: Collection) -> None:
    """Loading a model takes seconds: show a spinner instead of a silent pause."""
    with err.status(f"Loading {kb.config.model}…"):
        _ = kb.model


@app.command()
@user_errors
def add(
    collection: CollectionArg,
    jsonl: Annotated[Path, typer.Option(help='JSON lines: {"id", "text", ...metadata}.')],
    model: Annotated[
        str | None, typer.Option(help=f"Model for a new collection [default: {DEFAULT_MODEL}].")
    ] = None,
    index: Annotated[
        str | None, typer.Option(help="Index for a new collection: flat (default) | hnsw.")
    ] = None,
    batch_size: BatchOpt = 32,
    as_json: JsonOpt = False,
) -> None:
    """Add (or update, by id) the records of a JSON-lines file."""
    from embedstack.cli.records import read_jsonl_records

    records = read_jsonl_records(jsonl)
    with Collection.open(collection, model, index=index) as kb:
        load_model_with_status(kb)
        kb.add(
            records.texts,
            ids=records.ids,
            metadata=records.metadata,
            batch_size=batch_size,
            show_progress=True,
        )
        count = kb.count()
    if as_json:
        print_json({"added": len(records.ids), "count": count})
    else:
        out.print(f"Added {len(records.ids)} records to {collection} (now {count}).")


@app.command()
@user_errors
def ingest(
    collection: CollectionArg,
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (read recursively).")],
    glob: Annotated[
        str | None, typer.Option(help='Only files matching this pattern, e.g. "*.pdf".')
    ] = None,
    sync: Annotated[
        bool, typer.Option("--sync", help="Remove files that are gone from the folders.")
    ] = False,
    chunk_tokens: Annotated[
        int | None, typer.Option(help="Tokens per chunk [default: what the model reads].")
    ] = None,
    overlap: Annotated[int, typer.Option(help="Tokens shared by consecutive chunks.")] = 0,
    text_field: Annotated[
        str | None, typer.Option(help="CSV column / JSONL field with the text [default: auto].")
    ] = None,
    context: Annotated[
        bool, typer.Option(help="Embed each chunk with its file name, title and headings.")
    ] = True,
    max_file_mb: Annotated[float, typer.Option(help="Skip files larger than this.")] = (
        DEFAULT_MAX_FILE_MB
    ),
    max_chars: Annotated[int, typer.Option(help="Skip files (CSV/JSONL: rows) with more text.")] = (
        DEFAULT_MAX_CHARS
    ),
    model: Annotated[
        str | None, typer.Option(help=f"Model for a new collection [default: {DEFAULT_MODEL}].")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest documents (PDF, DOCX, HTML, Markdown, text, CSV, JSONL); unchanged files are skipped.

    Exits with 1 when some files could not be ingested (each is listed with the reason).
    """
    with Collection.open(collection, model) as kb:
        load_model_with_status(kb)
        report = kb.ingest(
            paths, glob=glob, sync=sync, chunk_tokens=chunk_tokens, overlap=overlap,
            text_field=text_field, contextual=context, max_file_mb=max_file_mb,
            max_chars=max_chars, show_progress=not as_json,
        )  # fmt: skip
        count = kb.count()
    if as_json:
        print_json({**report.to_dict(), "count": count})
    else:
        print_ingest_report(report, collection, count)
    if report.failed:
        raise typer.Exit(1)


def print_ingest_report(report, collection: Path, count: int) -> None:
    table = Table("added", "updated", "removed", "unchanged", "failed", "chunks +/-", "seconds")
    table.add_row(
        *(str(n) for n in (len(report.added), len(report.updated), len(report.removed),
                           len(report.unchanged), len(report.failed))),
        f"+{report.chunks_added} / -{report.chunks_removed}",
        f"{report.seconds:.1f}",
    )  # fmt: skip
    out.print(table)
    for path in report.removed:
        out.print(Text(f"removed: {path}"), soft_wrap=True)
    for problem in report.failed:
        err.print(Text(f"failed: {problem.path}: {problem.reason}", style="red"), soft_wrap=True)
    out.print(f"{collection} now holds {count} chunks.")


@app.command()
@user_errors
def search(
    collection: CollectionArg,
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", "--k", help="Number of hits.")] = 5,
    filter: Annotated[
        str | None, typer.Option("--filter", help='Metadata filter, e.g. \'{"lang": "en"}\'.')
    ] = None,
    mode: ModeOpt = "hybrid",
    rerank: RerankOpt = None,
    diversity: Annotated[
        float, typer.Option(help="MMR diversity, 0 (off) to 1: fewer near-duplicates.")
    ] = 0.0,
    fusion: Annotated[str, typer.Option(help="Hybrid fusion: rrf | weighted.")] = "rrf",
    explain: Annotated[
        bool, typer.Option("--explain", help="Show each stage's score and rank per hit.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Search a collection: hybrid (BM25 + meaning) by default."""
    where = parse_filter(filter)
    with open_existing(collection) as kb:
        load_model_with_status(kb)
        hits = kb.search(
            query, k=k, filter=where, mode=mode, rerank=rerank, diversity=diversity, fusion=fusion
        )
    if as_json:
        print_json([{**hit.to_dict(), "stages": hit.scores_by_stage} for hit in hits])
        return
    table = Table(title=Text(f"{len(hits)} hits for {query!r} ({mode})"))
    columns = ("#", "score", "stages", "id", "text") if explain else ("#", "score", "id", "text")
    for column in (*columns, "from"):
        table.add_column(column, overflow="fold")
    for rank, hit in enumerate(hits, start=1):
        snippet = hit.text if len(hit.text) <= 160 else hit.text[:157] + "…"
        metadata = describe_origin(hit.metadata)
        # Text(), not str: stored text is data, and must not be read as Rich markup.
        cells = [str(rank), f"{hit.score:.4f}"]
        if explain:
            cells.append(describe_stages(hit.scores_by_stage))
        table.add_row(*cells, Text(hit.id), Text(snippet), Text(metadata))
    out.print(table)


def describe_origin(metadata: dict) -> str:
    """'guide.pdf p.3 · Setup > Install' for ingested chunks; the metadata JSON otherwise."""
    if "file_name" not in metadata:
        return json.dumps(metadata, ensure_ascii=False)
    origin = str(metadata["file_name"])
    if "page" in metadata:
        origin += f" p.{metadata['page']}"
    if "row" in metadata:
        origin += f" row {metadata['row']}"
    if "heading" in metadata:
        origin += f" · {metadata['heading']}"
    return origin


def describe_stages(stages: dict[str, float]) -> str:
    """'dense 0.61 (#2) · keyword 7.93 (#1) · hybrid 0.0325 (#1)': one line per hit."""
    parts = []
    for stage in ("dense", "keyword", "hybrid", "rerank"):
        if stage in stages:
            parts.append(f"{stage} {stages[stage]:.4g} (#{int(stages[stage + '_rank'])})")
        elif stage + "_rank" not in stages and stage in ("dense", "keyword"):
            parts.append(f"{stage} –")
    if "mmr_rank" in stages:
        parts.append(f"mmr #{int(stages['mmr_rank'])}")
    return " · ".join(parts)


@app.command()
@user_errors
def ask(
    collection: CollectionArg,
    question: Annotated[str, typer.Argument(help="The question.")],
    k: Annotated[int, typer.Option("-k", "--k", help="Chunks to retrieve.")] = 5,
    llm: Annotated[
        str, typer.Option(help="smollm2 (local, offline) or openai:MODEL with --base-url.")
    ] = "smollm2",
    base_url: BaseUrlOpt = None,
    stream: Annotated[bool, typer.Option("--stream", help="Print the answer as it arrives.")] = (
        False
    ),
    history: Annotated[
        Path | None,
        typer.Option(help="Conversation file (JSON); read for follow-ups, then appended to."),
    ] = None,
    min_relevance: Annotated[
        float | None, typer.Option(help="Below this cosine, answer that the documents do not say.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question from the collection's documents, with numbered citations."""
    from embedstack.rag.history import read_history, write_history

    turns = read_history(history) if history else []
    with open_existing(collection) as kb:
        load_model_with_status(kb)
        with err.status(f"Loading {llm}…"):
            result = kb.ask(
                question, k=k, llm=llm, base_url=base_url, stream=stream and not as_json,
                history=turns, min_relevance=min_relevance,
            )  # fmt: skip
        if stream and not as_json:
            for piece in result:
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
            answer = result.answer
        else:
            answer = result
    if history:
        write_history(history, [*turns, {"role": "user", "content": question},
                                {"role": "assistant", "content": answer.text}])  # fmt: skip
    if as_json:
        print_json(answer.to_dict())
        return
    if not stream:
        out.print(Text(answer.text))
    if not answer.text.strip():
        err.print(f"({answer.llm} gave an empty answer; a larger model via --llm may do better)")
    for citation in answer.citations:
        out.print(
            Text(f"[{citation.number}] {citation.label} — {citation.chunk_id}"), soft_wrap=True
        )
    if answer.dropped_citations:
        err.print(f"(removed citations to sources that were not given: {answer.dropped_citations})")


@app.command("serve-llm")
@user_errors
def serve_llm(
    llm: Annotated[str, typer.Option(help="Local model to serve.")] = "smollm2",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
) -> None:
    """Serve a local LLM as an OpenAI-compatible /v1/chat/completions endpoint."""
    import uvicorn

    from embedstack.rag.loader import load_llm
    from embedstack.rag.server import create_app

    with err.status(f"Loading {llm}…"):
        model = load_llm(llm)
    err.print(f"Serving {llm} at http://{host}:{port}/v1 (OpenAI-compatible chat)")
    uvicorn.run(create_app(model), host=host, port=port, log_level="warning")


@app.command()
@user_errors
def info(collection: CollectionArg, as_json: JsonOpt = False) -> None:
    """Show a collection's model, index and size."""
    with open_existing(collection) as kb:
        details = kb.info()
    if as_json:
        print_json(details)
        return
    table = Table(show_header=False)
    for key, value in details.items():
        table.add_row(key, Text(str(value)))
    out.print(table)


@app.command()
@user_errors
def delete(
    collection: CollectionArg,
    ids: Annotated[list[str], typer.Argument(help="Ids to delete.")],
    as_json: JsonOpt = False,
) -> None:
    """Delete records by id."""
    with open_existing(collection) as kb:
        deleted = kb.delete(ids)
        count = kb.count()
    if as_json:
        print_json({"deleted": deleted, "missing": len(set(ids)) - deleted, "count": count})
    else:
        out.print(f"Deleted {deleted} of {len(set(ids))} ids from {collection} (now {count}).")


def check_model(model: str, base_url: str | None) -> None:
    """Fail on an unknown model name before reading a large input."""
    from embedstack.models import find_spec

    if base_url is None and not model.startswith("openai:") and not Path(model).exists():
        find_spec(model)


def load_encoder(model: str, backend: str | None, base_url: str | None = None):
    from embedstack.models import load_model

    with err.status(f"Loading {model}…"):
        return load_model(model, backend, base_url=base_url)


def print_report(title: str, rows: list[tuple[str, str]]) -> None:
    table = Table(title=Text(title))
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)


@eval_app.command("retrieval")
@user_errors
def eval_retrieval(
    data: Annotated[Path, typer.Option(help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/.")],
    split: SplitOpt = "test",
    model: ModelOpt = DEFAULT_MODEL,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    batch_size: BatchOpt = 32,
    mode: ModeOpt = "hybrid",
    rerank: RerankOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """nDCG@10, recall@10/100 and MRR@10 on a BEIR data set, for the chosen search pipeline."""
    from embedstack.evaluation import evaluate_retrieval, load_beir

    check_model(model, base_url)
    dataset = load_beir(data, split)  # a corrupt data set fails before the model loads
    encoder = load_encoder(model, backend, base_url)
    result = evaluate_retrieval(
        dataset, encoder, split=split, batch_size=batch_size, mode=mode, rerank=rerank,
        show_progress=True,
    )  # fmt: skip
    if as_json:
        print_json(result)
        return
    rows = [(key, f"{result[key]:.5f}") for key in ("ndcg@10", "recall@10", "recall@100", "mrr@10")]
    rows += [
        ("docs/s", f"{result['docs_per_s']:.1f}"),
        ("queries/s", f"{result['queries_per_s']:.1f}"),
        ("documents · queries", f"{result['n_docs']} · {result['n_queries']}"),
    ]
    pipeline = mode + (f" + rerank {rerank}" if rerank else "")
    print_report(f"{data} ({split}) · {result['model']} ({result['backend']}) · {pipeline}", rows)


@eval_app.command("sts")
@user_errors
def eval_sts(
    data: Annotated[Path, typer.Option(help="STS Benchmark folder with sts-<split>.csv.")],
    split: SplitOpt = "test",
    model: ModelOpt = DEFAULT_MODEL,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    batch_size: BatchOpt = 32,
    as_json: JsonOpt = False,
) -> None:
    """Spearman correlation of cosine similarity with gold scores (MTEB's STS protocol)."""
    from embedstack.evaluation import evaluate_sts, load_sts

    check_model(model, base_url)
    pairs = load_sts(data, split)
    encoder = load_encoder(model, backend, base_url)
    result = evaluate_sts(pairs, encoder, split=split, batch_size=batch_size, show_progress=True)
    if as_json:
        print_json(result)
        return
    rows = [
        ("spearman", f"{result['spearman']:.5f}"),
        ("pearson", f"{result['pearson']:.5f}"),
        ("sentences/s", f"{result['sentences_per_s']:.1f}"),
        ("pairs", str(result["n_pairs"])),
    ]
    print_report(f"{data} ({split}) · {result['model']} ({result['backend']})", rows)


@models_app.callback()
@user_errors
def models_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the models embedstack can load by name."""
    from embedstack.models import CATALOG

    if ctx.invoked_subcommand is not None:
        return
    entries = [spec.describe() for spec in CATALOG.values()]
    if as_json:
        print_json(entries)
        return
    table = Table(title="Model catalog")
    for column in ("name", "dim", "max tokens", "licence", "installed", "when to use"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(
            entry["name"],
            str(entry["dim"]),
            str(entry["max_tokens"]),
            entry["license"],
            "yes" if entry["installed"] else entry["install"],
            entry["when_to_use"],
        )
    out.print(table)


@models_app.command("info")
@user_errors
def models_info(
    name: Annotated[str, typer.Argument(help="Model name or alias.")], as_json: JsonOpt = False
) -> None:
    """Details of one catalog model."""
    from embedstack.models import find_spec

    entry = find_spec(name).describe()
    if as_json:
        print_json(entry)
        return
    table = Table(show_header=False, title=Text(entry["name"]))
    for key, value in entry.items():
        shown = ", ".join(value) if isinstance(value, list | tuple) else str(value)
        table.add_row(key, Text(shown))
    out.print(table)


@app.command()
@user_errors
def embed(
    model: ModelOpt = DEFAULT_MODEL,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    input: Annotated[
        Path | None, typer.Option("--input", help="Text file, one text per line [default: stdin].")
    ] = None,
    npy: Annotated[Path | None, typer.Option(help="Also save the vectors as a .npy file.")] = None,
    batch_size: BatchOpt = 32,
    as_json: JsonOpt = False,
) -> None:
    """Embed texts (one per line) and print the vectors."""
    import numpy as np

    from embedstack.errors import InvalidInputError

    check_model(model, base_url)
    try:
        raw = input.read_text(encoding="utf-8") if input else sys.stdin.read()
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{input or 'stdin'} is not UTF-8 text ({exc.reason})") from exc
    texts = [line for line in raw.splitlines() if line.strip()]
    if not texts:
        raise InvalidInputError(f"no text to embed in {input or 'stdin'}")
    encoder = load_encoder(model, backend, base_url)
    vectors = encoder.encode(texts, batch_size=batch_size, show_progress_bar=len(texts) > 64)
    if npy is not None:
        np.save(npy, vectors)
    if as_json:
        data = [
            {"index": i, "text": t, "embedding": v.tolist()}
            for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
        ]
        print_json(
            {"model": encoder.name, "backend": encoder.backend, "dim": encoder.dim, "data": data}
        )
        return
    table = Table(title=Text(f"{len(texts)} vectors · {encoder.name} ({encoder.backend})"))
    for column in ("#", "text", f"first dims of {encoder.dim}"):
        table.add_column(column, overflow="fold")
    for i, (text, vector) in enumerate(zip(texts, vectors, strict=True)):
        head = " ".join(f"{x:+.3f}" for x in vector[:6]) + " …"
        table.add_row(str(i), Text(text if len(text) <= 80 else text[:77] + "…"), head)
    out.print(table)


WordModelOpt = Annotated[str, typer.Option(help="A word-vector model from the catalog.")]
WordK = Annotated[int, typer.Option("-k", "--k", help="How many words.")]


def print_words(title: str, pairs: list[tuple[str, float]], as_json: bool) -> None:
    if as_json:
        print_json([{"word": word, "score": score} for word, score in pairs])
        return
    table = Table(title=Text(title))
    table.add_column("word")
    table.add_column("cosine", justify="right")
    for word, score in pairs:
        table.add_row(Text(word), f"{score:.4f}")
    out.print(table)


def load_word_vectors(model: str):
    from embedstack.errors import InvalidInputError
    from embedstack.models.word_vectors import WordVectors

    vectors = load_encoder(model, None)
    if not isinstance(vectors, WordVectors):
        raise InvalidInputError(f"{model} is not a word-vector model (try glove-6b-50d)")
    return vectors


@words_app.command("similar")
@user_errors
def words_similar(
    words: Annotated[list[str], typer.Argument(help="Word(s); several are added together.")],
    minus: Annotated[list[str] | None, typer.Option(help="Word(s) to subtract.")] = None,
    model: WordModelOpt = "glove-6b-50d",
    k: WordK = 10,
    as_json: JsonOpt = False,
) -> None:
    """Nearest words to the sum of WORDS minus --minus words."""
    pairs = load_word_vectors(model).most_similar(words, minus or [], k=k)
    title = " + ".join(words) + "".join(f" - {w}" for w in minus or [])
    print_words(title, pairs, as_json)


@words_app.command("analogy")
@user_errors
def words_analogy(
    a: str,
    b: str,
    c: str,
    model: WordModelOpt = "glove-6b-50d",
    k: WordK = 5,
    as_json: JsonOpt = False,
) -> None:
    """A is to B as C is to ?  (man king woman -> queen)"""
    print_words(f"{a} : {b} = {c} : ?", load_word_vectors(model).analogy(a, b, c, k=k), as_json)


def main() -> None:
    app()
