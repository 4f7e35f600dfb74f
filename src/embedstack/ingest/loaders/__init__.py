"""One loader per format; each turns a file's bytes into cleaned `Document`s."""

from __future__ import annotations

from pathlib import Path

from embedstack.ingest.documents import Document
from embedstack.ingest.loaders.audio import AudioProgress, SpeechOptions, load_audio
from embedstack.ingest.loaders.docx import load_docx
from embedstack.ingest.loaders.html import load_html
from embedstack.ingest.loaders.markdown import load_markdown
from embedstack.ingest.loaders.pdf import load_pdf
from embedstack.ingest.loaders.tabular import load_csv, load_jsonl
from embedstack.ingest.loaders.text import load_text

_LOADERS = {
    "pdf": load_pdf,
    "docx": load_docx,
    "html": load_html,
    "markdown": load_markdown,
    "text": load_text,
}
_TABULAR = {"csv": load_csv, "jsonl": load_jsonl}


def load_documents(
    path: Path,
    data: bytes,
    format: str,
    text_field: str | None = None,
    speech: SpeechOptions | None = None,
    audio_progress: AudioProgress | None = None,
) -> list[Document]:
    """Parse `data` (the bytes of `path`) as `format` into cleaned documents."""
    if format == "audio":
        return load_audio(path, data, speech, audio_progress)
    if format in _TABULAR:
        return _TABULAR[format](path, data, text_field)
    return _LOADERS[format](path, data)
