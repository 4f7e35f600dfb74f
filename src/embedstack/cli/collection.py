"""Collection commands: add, ingest, search, info, check, reindex, delete (see app.py).

Named `collection`, not `collections`: a module named like the standard library's would
shadow it whenever this folder is on sys.path (a script or a REPL started here).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from embedstack.cli.common import (
    BackendOpt,
    BatchOpt,
    CollectionArg,
    JsonOpt,
    ModeOpt,
    RerankOpt,
    StoreOpt,
    err,
    escape_controls,
    load_model_with_status,
    open_existing,
    out,
    parse_filter,
    print_json,
    user_errors,
)
from embedstack.collection import Collection
from embedstack.errors import CorruptCollectionError, InvalidInputError
from embedstack.ingest.limits import DEFAULT_MAX_CHARS, DEFAULT_MAX_FILE_MB
from embedstack.models import DEFAULT_MODEL
from embedstack.timecode import timecode


@user_errors
def add(
    collection: CollectionArg,
    jsonl: Annotated[Path, typer.Option(help='JSON lines: {"id", "text", ...metadata}.')],
    model: Annotated[
        str | None, typer.Option(help=f"Model for a new collection [default: {DEFAULT_MODEL}].")
    ] = None,
    index: Annotated[
        str | None,
        typer.Option(
            help="Index for a new collection: auto (default) | flat | hnsw | binary | a FAISS "
            "factory string such as IVF1024,PQ48."
        ),
    ] = None,
    store: StoreOpt = None,
    batch_size: BatchOpt = 32,
    as_json: JsonOpt = False,
) -> None:
    """Add (or update, by id) the records of a JSON-lines file."""
    from embedstack.cli.records import read_jsonl_records

    records = read_jsonl_records(jsonl)
    with Collection.open(collection, model, index=index, store=store) as kb:
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
    store: StoreOpt = None,
    language: Annotated[
        str | None, typer.Option(help='Audio: the spoken language, e.g. "en" [default: detect].')
    ] = None,
    beam_size: Annotated[
        int, typer.Option(help="Audio: Whisper's beam size (1: fastest).", min=1, max=10)
    ] = 1,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Parse and embed on a Ray cluster: a local one, or --ray=ADDRESS "
            "(the same as --ray-address ADDRESS).",
        ),
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help='With --ray: a cluster to join ("HOST:6379", "ray://HOST:10001", "auto") '
            "[default: a local cluster on 127.0.0.1]; needs embedstack[ray]."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest documents (PDF, DOCX, HTML, Markdown, text, CSV, JSONL, audio); unchanged files are
    skipped. Speech (WAV, MP3, FLAC, OGG, M4A, WebM) is transcribed with Whisper base.

    A collection made with an image model (--model efficientnet-lite0) takes images instead,
    one row each; one made with a sequence model (--model kmer-dna) takes FASTA, FASTQ and
    GenBank files, one row per record. Exits with 1 when some files could not be ingested
    (each is listed with the reason).
    """
    with Collection.open(collection, model, store=store) as kb:
        load_model_with_status(kb)
        report = kb.ingest(
            paths, glob=glob, sync=sync, chunk_tokens=chunk_tokens, overlap=overlap,
            text_field=text_field, contextual=context, max_file_mb=max_file_mb,
            max_chars=max_chars, language=language, beam_size=beam_size,
            show_progress=not as_json,
            ray=(ray_address or "local") if ray or ray_address else None,
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
        out.print(Text(f"removed: {escape_controls(path)}"), soft_wrap=True)
    for problem in report.failed:
        line = f"failed: {escape_controls(problem.path)}: {escape_controls(problem.reason)}"
        err.print(Text(line, style="red"), soft_wrap=True)
    out.print(f"{collection} now holds {count} chunks.")


@user_errors
def search(
    collection: CollectionArg,
    query: Annotated[
        str | None,
        typer.Argument(help="What to look for (a sequence, in a sequence collection)."),
    ] = None,
    image: Annotated[
        Path | None,
        typer.Option("--image", help="Search an image collection by this example image."),
    ] = None,
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
    """Search a collection: hybrid (BM25 + meaning) by default; by example in an image
    (--image) or sequence collection, or by file name there with --mode keyword."""
    where = parse_filter(filter)
    with open_existing(collection) as kb:
        query = search_query(kb, query, image, mode)
        if mode != "keyword":
            load_model_with_status(kb)
        hits = kb.search(
            query, k=k, filter=where, mode=mode, rerank=rerank, diversity=diversity, fusion=fusion
        )
        if kb.modality != "text" and mode == "hybrid":
            mode = "dense"  # what an example is searched by
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


def search_query(kb: Collection, query: str | None, image: Path | None, mode: str) -> str:
    """The query to search with: the text, the sequence, or the example image's path."""
    if image is not None:
        if query is not None:
            raise InvalidInputError("give a query or --image, not both")
        if kb.modality != "image":
            raise InvalidInputError(
                f"--image searches an image collection; {kb.folder} holds {kb.modality}"
            )
        return str(image)
    if query is None:
        raise InvalidInputError("what to look for: give a query (or --image for images)")
    if kb.modality == "image" and mode != "keyword" and not Path(query).is_file():
        raise InvalidInputError(
            f"{kb.folder} is an image collection: search it by example (--image PATH), "
            "or its file names with --mode keyword"
        )
    return query


def describe_origin(metadata: dict) -> str:
    """'guide.pdf p.3 · Setup > Install', 'meeting.mp3 at 12:31' for ingested chunks; the
    metadata JSON otherwise."""
    if "file_name" not in metadata:
        return json.dumps(metadata, ensure_ascii=False)
    origin = str(metadata["file_name"])
    if "record_id" in metadata:  # a sequence
        length, alphabet = metadata.get("length", "?"), metadata.get("alphabet", "")
        origin += f" {metadata['record_id']} ({length} {alphabet})"
    if "width" in metadata and "height" in metadata:  # an image
        origin += f" {metadata['width']}×{metadata['height']}"
    if "page" in metadata:
        origin += f" p.{metadata['page']}"
    if isinstance(metadata.get("time_start"), int | float):
        origin += f" at {timecode(metadata['time_start'])}"
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


@user_errors
def check(collection: CollectionArg, as_json: JsonOpt = False) -> None:
    """Check a collection's database and derived data; exits with 1 when something is wrong.

    Runs SQLite's integrity check, then compares the vectors, metadata rows, keyword index,
    ingest manifest and vector checkpoint with the stored rows.
    """
    try:
        with open_existing(collection) as kb:
            problems = kb.check()
            count = kb.count()
    except CorruptCollectionError as exc:  # too damaged to open: that is the finding
        problems, count = [str(exc)], None
    if as_json:
        print_json({"ok": not problems, "problems": problems, "count": count})
    elif problems:
        for problem in problems:
            err.print(Text(f"problem: {escape_controls(problem)}", style="red"), soft_wrap=True)
    else:
        out.print(f"{collection}: ok ({count} chunks)")
    if problems:
        raise typer.Exit(1)


@user_errors
def compact(collection: CollectionArg, as_json: JsonOpt = False) -> None:
    """Reclaim the space deleted records still take (vector file, index, database).

    Safe to interrupt: a kill at any point leaves the collection as it was or compacted.
    """
    with open_existing(collection) as kb:
        report = kb.compact()
    if as_json:
        print_json(report)
        return
    out.print(
        f"Compacted {collection}: {report['rows']} records kept, {report['reclaimed_rows']} "
        f"deleted dropped; {report['bytes_before']:,} -> {report['bytes_after']:,} bytes."
    )


@user_errors
def reindex(
    collection: CollectionArg,
    model: Annotated[
        str, typer.Option(help="The new model: a catalog name or a model folder/.onnx path.")
    ],
    backend: BackendOpt = None,
    batch_size: BatchOpt = 32,
    force: Annotated[
        bool,
        typer.Option("--force", help="Re-embed with the same model (after its files changed)."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-embed a collection with another model; it keeps serving until an atomic swap.

    Ids, texts, metadata and the ingest manifest are kept. On any error the collection is
    left as it was. Restart servers that have it open: they keep the old files until then.
    """
    from embedstack.reindex import reindex as run_reindex

    report = run_reindex(
        collection, model, backend=backend, batch_size=batch_size, force=force,
        show_progress=not as_json,
    )  # fmt: skip
    if as_json:
        print_json(report.to_dict())
        return
    out.print(
        Text(
            f"Re-embedded {report.rows} rows ({report.sources} files) of {collection} with "
            f"{report.new_model} ({report.new_dim}-d; was {report.old_model}, "
            f"{report.old_dim}-d) in {report.seconds:.1f} s."
        ),
        soft_wrap=True,
    )
    if report.long_chunks:
        err.print(
            Text(
                f"note: {report.long_chunks} chunks are longer than {report.new_model} reads "
                "and were cut; ingest their files again to re-chunk them",
                style="yellow",
            ),
            soft_wrap=True,
        )


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
