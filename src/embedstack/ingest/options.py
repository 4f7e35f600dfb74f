"""`IngestOptions`: how files become chunks, as the Python API, the CLI and the server pass it."""

from __future__ import annotations

from dataclasses import dataclass

from embedstack.errors import InvalidInputError
from embedstack.ingest.limits import DEFAULT_MAX_CHARS, DEFAULT_MAX_FILE_MB
from embedstack.rows import check_whole_number


@dataclass(frozen=True)
class IngestOptions:
    glob: str | None = None  # only files matching this pattern (in folders)
    sync: bool = False  # also remove files gone from the folders walked
    chunk_tokens: int | None = None  # default: what the model reads, less the context line
    overlap: int = 0  # tokens repeated at the start of the next chunk
    text_field: str | None = None  # CSV/JSONL: the column with the text (default: guessed)
    contextual: bool = True  # embed each chunk with its file name, title and headings
    max_file_mb: float = DEFAULT_MAX_FILE_MB
    max_chars: int = DEFAULT_MAX_CHARS
    batch_chunks: int = 256  # chunks embedded per encoder call, across files
    # Word pieces of chunk text per embed-and-commit batch, across files: many short chunks
    # (CSV rows) make few large batches, long ones smaller batches; bounds memory either way.
    batch_tokens: int = 65_536
    language: str | None = None  # audio: the spoken language ("en", "de"); None: detected
    beam_size: int = 1  # audio: Whisper's beam (1 is greedy: fastest, a little less accurate)

    def check(self) -> None:
        if self.chunk_tokens is not None:
            check_whole_number("chunk_tokens", self.chunk_tokens, 1)
        check_whole_number("overlap", self.overlap, 0)
        check_whole_number("max_chars", self.max_chars, 1)
        check_whole_number("batch_chunks", self.batch_chunks, 1)
        check_whole_number("batch_tokens", self.batch_tokens, 1)
        check_whole_number("beam_size", self.beam_size, 1)
        if self.language is not None and not (
            isinstance(self.language, str) and self.language.isascii() and self.language.isalpha()
        ):
            raise InvalidInputError(
                f"language must be a language code such as 'en' or 'de', got {self.language!r}"
            )
        if isinstance(self.max_file_mb, bool) or not isinstance(self.max_file_mb, int | float):
            raise InvalidInputError(f"max_file_mb must be a number, got {self.max_file_mb!r}")
        if self.max_file_mb <= 0:
            raise InvalidInputError("max_file_mb must be more than 0")
