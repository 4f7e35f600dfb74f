"""The ingest run: discover files, skip unchanged ones, parse, chunk, embed, commit in batches.

A thread prepares (reads, parses, chunks) the next files while earlier ones are embedded.
Embedding and committing are batched across files by a token budget: one encoder call on many
chunks is faster than many small calls, and one transaction per batch saves an fsync per file.
Each file is still all or nothing (old chunks out, new chunks and manifest entry in, together),
so a crash leaves every file either as it was or fully updated.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedstack.errors import EmbedstackError, IngestError, InvalidInputError
from embedstack.ingest.chunking import Chunker, TextChunk
from embedstack.ingest.detect import detect_format
from embedstack.ingest.discovery import FileProblem, discover, os_reason, read_file
from embedstack.ingest.documents import Document
from embedstack.ingest.items import ITEM_MODALITIES, Item, extensions, reader
from embedstack.ingest.loaders import load_documents
from embedstack.ingest.loaders.audio import AudioProgress, SpeechOptions
from embedstack.ingest.options import IngestOptions
from embedstack.ingest.report import IngestReport
from embedstack.ingest.tokens import TokenCounter, token_budget
from embedstack.models import EmbeddingModel
from embedstack.progress import Bar, progress_tasks
from embedstack.rows import validate_rows
from embedstack.store.base import FileRows, IngestStore
from embedstack.types import SourceRecord

log = logging.getLogger(__name__)

# Progress for callers other than the terminal (the HTTP server's ingest jobs): called with
# ("files_total", n) once, then ("files_done", n) and ("chunks_done", n) as work completes.
OnProgress = Callable[[str, int], None]

MAX_BYTES_PER_CHAR = 4  # UTF-8 and UTF-16 both need at most 4 bytes for one character
RECIPE_VERSION = 1  # bump when loaders or chunking change what a file turns into
MIN_FILES_AHEAD = 2  # one file has nothing to overlap with
PREFETCH_FILES = 16  # prepared ahead of the encoder: what bounds memory on a big folder
ITEM_TOKENS = 64  # an image or sequence counts as this many tokens in the batch budget
CONTEXT_TOKENS = 32  # room for the "file — title / heading" line embedded with each chunk
RESERVED_KEYS = (
    "source", "file_name", "format", "title", "chunk", "start", "end", "page", "page_end",
    "heading", "row", "time_start", "time_end", "duration", "language",
)  # fmt: skip


@dataclass
class Prepared:
    """A parsed and chunked file waiting for its embeddings."""

    record: SourceRecord
    texts: list[str]
    metadatas: list[dict[str, Any]]
    embed_inputs: list[str]  # what the model reads: chunk text with its context line, a path
    is_update: bool
    tokens: int = 0  # word pieces in its chunks, for the batch budget (an item: ITEM_TOKENS)


class FilePreparer:
    """Turns one file into a `Prepared` (chunks, metadata, what the model reads).

    It holds no model weights and no store, only the tokenizer and the recipe, so it can be
    pickled and sent to other processes (the Ray workers of `ingest.distributed`).
    """

    def __init__(self, model: EmbeddingModel, options: IngestOptions) -> None:
        chunk_tokens, overlap = options.chunk_tokens, options.overlap
        text_field = options.text_field
        self.modality = model.modality
        self.max_bytes = int(options.max_file_mb * 1e6)
        self.max_chars = options.max_chars
        self.speech = SpeechOptions(options.language, options.beam_size)
        self.audio_progress: AudioProgress | None = None
        if model.modality != "text":
            self._init_items(model, options)
            return
        self.extensions: frozenset[str] | None = None  # the text formats' (detect.EXTENSIONS)
        self.counter = TokenCounter.for_model(model)
        budget = token_budget(model, self.counter)
        if chunk_tokens is not None and chunk_tokens > budget:
            raise InvalidInputError(
                f"--chunk-tokens {chunk_tokens} is more than {model.name!r} reads "
                f"({budget} tokens of text); chunks that long would be truncated"
            )
        reserve = min(CONTEXT_TOKENS, budget // 4) if options.contextual else 0
        self.chunk_tokens = chunk_tokens or budget - reserve
        self.context_tokens = min(reserve, budget - self.chunk_tokens)
        self.chunker = Chunker(self.counter, self.chunk_tokens, overlap)
        self.text_field = text_field
        recipe: dict[str, Any] = {
            "version": RECIPE_VERSION,
            "chunk_tokens": self.chunk_tokens,
            "overlap": overlap,
            "context_tokens": self.context_tokens,
            "text_field": text_field,
        }
        # Speech settings join the recipe only when set: collections made before audio
        # existed keep their recipe (and are not re-ingested for nothing).
        if options.language is not None:
            recipe["language"] = options.language
        if options.beam_size != 1:
            recipe["beam_size"] = options.beam_size
        self.recipe = json.dumps(recipe, sort_keys=True)

    def _init_items(self, model: EmbeddingModel, options: IngestOptions) -> None:
        """Set up for a collection of images or sequences: one row per item, no chunking."""
        modality = model.modality
        if modality not in ITEM_MODALITIES:
            raise InvalidInputError(f"{model.name} embeds {modality}: files cannot be ingested")
        text_only = {
            "chunk_tokens": options.chunk_tokens is not None,
            "overlap": options.overlap != 0,
            "text_field": options.text_field is not None,
            "language": options.language is not None,
            "beam_size": options.beam_size != 1,
        }
        if any(text_only.values()):
            given = ", ".join(name for name, set_ in text_only.items() if set_)
            raise InvalidInputError(f"{given}: only for text; this is a {modality} collection")
        self.extensions = extensions(modality)
        self.read_items = reader(modality)
        self.recipe = json.dumps({"version": RECIPE_VERSION, "items": modality}, sort_keys=True)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["audio_progress"] = None  # a progress bar of this process's terminal
        return state

    # ---- one file --------------------------------------------------------------------------

    def prepare_or_problem(
        self, path: Path, known: SourceRecord | None
    ) -> Prepared | FileProblem | None:
        """`prepare`, with a failure given back as the file's problem (and the reason)."""
        try:
            return self.prepare(path, known)
        except EmbedstackError as exc:
            reason = str(exc)
        except OSError as exc:
            reason = os_reason(exc)
        except Exception as exc:  # a bug on one odd file must not lose the rest of the run
            log.exception("unexpected error while reading %s", path)
            reason = f"unexpected error (please report it): {type(exc).__name__}: {exc}"
        if known is not None:  # a failed read deletes nothing: say what stays searchable
            reason += "; the chunks of its last good version are kept"
        return FileProblem(str(path), reason)

    def prepare(self, path: Path, known: SourceRecord | None) -> Prepared | None:
        """Parse and chunk one file, or None when the manifest says it is unchanged."""
        data = read_file(path, self.max_bytes)
        content_hash = hashlib.sha256(data).hexdigest()
        if known and known.content_hash == content_hash and known.recipe == self.recipe:
            return None
        if self.modality != "text":
            return self._prepare_items(path, data, content_hash, known)
        format = detect_format(path, data)
        if (
            format in ("text", "markdown", "html")
            and len(data) > MAX_BYTES_PER_CHAR * self.max_chars
        ):
            # Surely too long, whatever the encoding: fail before decoding 100s of MB.
            raise IngestError(
                f"text too long: {len(data):,} bytes, more than {self.max_chars:,} characters "
                "in any encoding (raise the limit with --max-chars)"
            )
        try:
            documents = load_documents(
                path, data, format, self.text_field, self.speech, self.audio_progress
            )
        except EmbedstackError:
            raise
        except Exception as exc:  # third-party parsers raise anything on malformed files
            raise IngestError(f"cannot read as {format}: {type(exc).__name__}: {exc}") from exc
        longest = max(len(d.text) for d in documents)  # per row for CSV/JSONL, else per file
        if longest > self.max_chars:
            raise IngestError(self._too_long(longest))
        ids: list[str] = []
        texts: list[str] = []
        metadatas: list[dict[str, Any]] = []
        embed_inputs: list[str] = []
        tokens = 0
        for document in documents:
            for index, chunk in enumerate(self.chunker.split(document)):
                tokens += chunk.tokens + self.context_tokens
                row = f"row{document.record}/" if document.record is not None else ""
                metadata = _metadata(path, format, document, index, chunk)
                ids.append(f"{path}#{row}{index}")
                texts.append(chunk.text)
                metadatas.append(metadata)
                embed_inputs.append(
                    embedding_text(chunk.text, metadata, self.counter, self.context_tokens)
                )
        if not texts:
            raise IngestError("no text found")
        validate_rows(texts, ids, metadatas)
        record = SourceRecord(str(path), content_hash, self.recipe, format, tuple(ids), time.time())
        return Prepared(record, texts, metadatas, embed_inputs, known is not None, tokens)

    def _prepare_items(
        self, path: Path, data: bytes, content_hash: str, known: SourceRecord | None
    ) -> Prepared:
        """An image file or a sequence file as rows: one per image, one per record."""
        if not data:
            raise IngestError("empty file (0 bytes)")
        try:
            format, items = self.read_items(path, data)
        except EmbedstackError:
            raise
        except Exception as exc:  # third-party parsers raise anything on malformed files
            raise IngestError(f"cannot read: {type(exc).__name__}: {exc}") from exc
        if not items:
            raise IngestError(f"no {self.modality} found")
        ids = [f"{path}#{item.key}" if item.key else str(path) for item in items]
        metadatas = [_item_metadata(path, format, item) for item in items]
        texts = [item.text for item in items]
        validate_rows(texts, ids, metadatas)
        record = SourceRecord(str(path), content_hash, self.recipe, format, tuple(ids), time.time())
        embed_inputs = [item.embed_input for item in items]
        slots = len(items) * ITEM_TOKENS
        return Prepared(record, texts, metadatas, embed_inputs, known is not None, slots)

    def _too_long(self, chars: int) -> str:
        return (
            f"text too long: {chars:,} characters (limit {self.max_chars:,}; "
            "raise it with --max-chars)"
        )


class Ingestor:
    """Turns files into chunks in a store; see `IngestOptions` and `Collection.ingest`.

    `run` walks the files and reports; `_ingest_files` turns the files to (re)do into stored
    chunks, here in this process (`ingest.distributed` overrides it to use a Ray cluster).
    """

    def __init__(
        self,
        model: EmbeddingModel,
        store: IngestStore,
        options: IngestOptions | None = None,
        *,
        show_progress: bool = False,
        on_progress: OnProgress | None = None,
    ) -> None:
        options = options or IngestOptions()
        options.check()
        self.model = model
        self.store = store
        self.preparer = FilePreparer(model, options)
        self.glob = options.glob
        self.sync = options.sync
        self.batch_chunks = options.batch_chunks
        self.batch_tokens = options.batch_tokens
        self.show_progress = show_progress
        self.on_progress = on_progress or (lambda event, n: None)

    def run(self, paths: Sequence[str | Path]) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport()
        found = discover(list(paths), self.glob, self.preparer.extensions)
        report.failed.extend(found.problems)
        known = {record.path: record for record in self.store.sources()}
        self.on_progress("files_total", len(found.files))
        with progress_tasks(
            [("Files", len(found.files), "files"), ("Chunks", None, "chunks"),
             ("Audio", 0, "s")],
            enabled=self.show_progress,
            hidden=("Audio",),
        ) as (files_bar, chunks_bar, audio_bar):  # fmt: skip
            self.preparer.audio_progress = _AudioBar(audio_bar)

            def files_done(n: int) -> None:
                files_bar(n)
                self.on_progress("files_done", n)

            def chunks_done(n: int) -> None:
                chunks_bar(n)
                self.on_progress("chunks_done", n)

            self._ingest_files(found.files, known, report, files_done, chunks_done)
            if self.sync:
                self._remove_missing(found.roots, set(map(str, found.files)), known, report)
        report.seconds = time.perf_counter() - started
        return report

    def _ingest_files(
        self,
        files: list[Path],
        known: dict[str, SourceRecord],
        report: IngestReport,
        files_done: Callable[[int], None],
        chunks_done: Callable[[int], None],
    ) -> None:
        """Prepare files (a thread ahead) while earlier ones are embedded here; embed and commit
        in batches across files, by a token budget (each file still all or nothing)."""
        pending: list[Prepared] = []
        tokens = 0
        # closing(): on an error here the thread stops now, not when the generator is collected
        with contextlib.closing(prepare_ahead(self.preparer, files, known)) as stream:
            for path, prepared in stream:
                if not isinstance(prepared, Prepared):  # unchanged or failed: nothing to embed
                    report_skipped(report, str(path), prepared)
                    files_done(1)
                    continue
                pending.append(prepared)
                tokens += prepared.tokens
                if tokens >= self.batch_tokens:
                    self._commit(pending, report, files_done, chunks_done)
                    pending, tokens = [], 0
        self._commit(pending, report, files_done, chunks_done)

    # ---- writing ---------------------------------------------------------------------------

    def _commit(self, pending: list[Prepared], report: IngestReport, files_done, chunks_done):
        """Embed the pending files' chunks (in slices, for progress), then store them in one
        transaction: one fsync per batch instead of one per file."""
        if not pending:
            return
        inputs = [item for prepared in pending for item in prepared.embed_inputs]
        vectors = np.empty((len(inputs), self.model.dim), dtype=np.float32)
        try:
            for start in range(0, len(inputs), self.batch_chunks):
                piece = inputs[start : start + self.batch_chunks]
                vectors[start : start + len(piece)] = self.model.encode_document(piece)
                chunks_done(len(piece))
        except InvalidInputError as exc:  # an item the model cannot embed (a letter it lacks)
            if len(pending) > 1:  # find its file: the others are stored
                for prepared in pending:
                    self._commit([prepared], report, files_done, chunks_done)
            else:
                report.failed.append(FileProblem(pending[0].record.path, str(exc)))
                files_done(1)
            return
        files, offset = [], 0
        for prepared in pending:
            rows = len(prepared.texts)
            vector_rows = vectors[offset : offset + rows]
            files.append(FileRows(prepared.record, prepared.texts, prepared.metadatas, vector_rows))
            offset += rows
        removed = self.store.replace_sources(files)  # one transaction for the whole batch
        for prepared, gone in zip(pending, removed, strict=True):
            self._count_stored(prepared, gone, report)
        files_done(len(pending))

    def _store_file(self, prepared: Prepared, vectors: np.ndarray, report: IngestReport) -> None:
        """One file's transaction: its old chunks out, the new ones and its manifest entry in."""
        removed = self.store.replace_source(
            prepared.record, prepared.texts, prepared.metadatas, vectors
        )
        self._count_stored(prepared, removed, report)

    @staticmethod
    def _count_stored(prepared: Prepared, removed: int, report: IngestReport) -> None:
        (report.updated if prepared.is_update else report.added).append(prepared.record.path)
        report.chunks_added += len(prepared.texts)
        report.chunks_removed += removed

    def _remove_missing(
        self, roots: list[Path], present: set[str], known: dict[str, SourceRecord], report
    ) -> None:
        """--sync: drop manifest files under the walked folders that are no longer on disk.

        Not merely those this walk did not list: a --glob leaves files out, and so does a
        sub-folder the walk could not read; their chunks stay."""
        prefixes = tuple(str(root) + os.sep for root in roots)
        for path in sorted(known):
            if path.startswith(prefixes) and path not in present and _deleted(path):
                report.chunks_removed += self.store.remove_source(path)
                report.removed.append(path)


def _deleted(path: str) -> bool:
    """True only when the file is known to be gone; a path that cannot be checked (a folder
    without permission on the way) is not."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        pass
    return False


def prepare_ahead(
    preparer: FilePreparer, files: list[Path], known: dict[str, SourceRecord]
) -> Generator[tuple[Path, Prepared | FileProblem | None], None, None]:
    """Each file prepared, in order, by a thread that keeps up to PREFETCH_FILES ahead: reading,
    hashing, parsing and chunking overlap the embedding of earlier files.

    A thread, not a process: the heavy parts (hashing, tokenizers, pypdfium2, the encoder's
    ONNX Runtime) release the GIL; a spawned process re-runs the caller's script when it lacks
    a `__main__` guard, forking a process that runs ONNX Runtime threads is unsafe, and on 2
    cores a process was slower (2,000 files: 243 s against 166 s in line, docs/benchmarks.md).
    """
    if len(files) < MIN_FILES_AHEAD:
        for path in files:
            yield path, preparer.prepare_or_problem(path, known.get(str(path)))
        return
    with ThreadPoolExecutor(1, thread_name_prefix="ingest-prepare") as pool:

        def submit(path: Path) -> tuple[Path, Future]:
            return path, pool.submit(preparer.prepare_or_problem, path, known.get(str(path)))

        waiting = iter(files)
        ahead = deque(submit(path) for path in itertools.islice(waiting, PREFETCH_FILES))
        try:
            while ahead:
                path, future = ahead.popleft()
                following = next(waiting, None)
                if following is not None:
                    ahead.append(submit(following))
                yield path, future.result()
        finally:  # stopped early (an error, Ctrl-C): files not started are not read
            for _, future in ahead:
                future.cancel()


def report_skipped(report: IngestReport, path: str, problem: FileProblem | None) -> None:
    """A file with nothing to embed: unchanged (no problem) or failed."""
    if problem is None:
        report.unchanged.append(path)
    else:
        report.failed.append(problem)


def _metadata(
    path: Path, format: str, document: Document, index: int, chunk: TextChunk
) -> dict[str, Any]:
    """Where the chunk came from; a CSV/JSONL row's other fields join in (renamed on clash)."""
    meta: dict[str, Any] = {
        "source": str(path),
        "file_name": path.name,
        "format": format,
        "chunk": index,
        "start": chunk.start,
        "end": chunk.end,
    }
    if chunk.page is not None:
        meta["page"] = chunk.page
        meta["page_end"] = chunk.page_end
    if chunk.heading_path:
        meta["heading"] = " > ".join(chunk.heading_path)
    if chunk.time_start is not None:
        meta["time_start"] = chunk.time_start
        meta["time_end"] = chunk.time_end
        for key in ("duration", "language"):
            if key in document.metadata:
                meta[key] = document.metadata[key]
    if document.title:
        meta["title"] = document.title
    if document.record is not None:
        meta["row"] = document.record
        for key, value in document.metadata.items():
            meta[f"field_{key}" if key in RESERVED_KEYS else key] = value
    return meta


def _item_metadata(path: Path, format: str, item: Item) -> dict[str, Any]:
    """Where the item came from, then what its reader found (renamed on clash)."""
    meta: dict[str, Any] = {"source": str(path), "file_name": path.name, "format": format}
    for key, value in item.metadata.items():
        meta[f"field_{key}" if key in meta else key] = value
    return meta


class _AudioBar:
    """Seconds of audio transcribed, on the "Audio" bar (shown once a recording is opened)."""

    def __init__(self, bar: Bar) -> None:
        self.bar = bar

    def add_total(self, seconds: float) -> None:
        self.bar.add_total(seconds)

    def advance(self, seconds: float) -> None:
        self.bar(seconds)


def embedding_text(
    text: str, metadata: Mapping[str, Any], counter: TokenCounter, context_tokens: int
) -> str:
    """What ingest embeds for a chunk: its text under a context header (not stored).

    The header is rebuilt from the chunk's stored metadata alone, so that `reindex` can embed
    stored chunks with another model exactly as ingest would have.
    """
    header = context_header(metadata, counter, context_tokens)
    return f"{header}\n\n{text}" if header else text


def context_header(metadata: Mapping[str, Any], counter: TokenCounter, context_tokens: int) -> str:
    """The header "file — title / heading path", cut to `context_tokens`: what a chunk deep
    inside a file no longer says itself. CSV/JSONL rows ("row" in the metadata) get none."""
    source = metadata.get("source")
    if not context_tokens or not isinstance(source, str) or not source or "row" in metadata:
        return ""
    stem = Path(source).stem
    title = metadata.get("title")
    line = stem
    if isinstance(title, str) and title and title.lower() != stem.lower():
        line += f" — {title}"
    heading = metadata.get("heading")
    if isinstance(heading, str) and heading:
        line += f" / {heading}"
    windows = counter.windows(line, context_tokens, 0)
    return line[: windows[0][1]] if windows else ""


def recipe_context_tokens(recipe: str) -> int:
    """The context header's token budget a manifest entry's chunks were embedded with."""
    try:
        tokens = json.loads(recipe).get("context_tokens", 0)
    except (ValueError, AttributeError):
        return 0
    return tokens if isinstance(tokens, int) and tokens > 0 else 0
