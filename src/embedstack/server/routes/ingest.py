"""Upload files to a collection and follow the ingest job that embeds them."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import StreamingResponse

from embedstack.errors import (
    CollectionNotFoundError,
    InvalidInputError,
    LimitExceededError,
    StorageError,
)
from embedstack.ingest.options import IngestOptions
from embedstack.server.deps import State
from embedstack.server.errors import HTTPError
from embedstack.server.registry import safe_file_name
from embedstack.server.routes.search import sse

router = APIRouter(tags=["ingest"])

COPY_BYTES = 1024 * 1024


@router.post("/collections/{name}/files", status_code=202, summary="Upload files to ingest")
async def upload(
    name: str,
    state: State,
    files: Annotated[
        list[UploadFile], File(description="The documents (PDF, DOCX, HTML, …, speech audio)")
    ],
    chunk_tokens: Annotated[int | None, Form(ge=8, le=8192)] = None,
    overlap: Annotated[int | None, Form(ge=0, le=4096)] = None,
    language: Annotated[
        str | None,
        Form(max_length=8, description='Audio: the spoken language ("en"); detected when absent'),
    ] = None,
) -> dict[str, Any]:
    # Busy from the start, so that a DELETE waits for the upload and its job instead of
    # removing the folder between two saves; released if the job does not start.
    collection = state.collections.acquire(name)
    started = False
    try:
        if not files:
            raise InvalidInputError("no files were uploaded (send them as 'files' fields)")
        if len(files) > state.config.max_inputs:
            raise LimitExceededError(f"{len(files)} files is more than the limit of "
                                     f"{state.config.max_inputs}")  # fmt: skip
        options = IngestOptions(
            chunk_tokens=chunk_tokens, overlap=overlap or 0, language=language or None
        )
        options.check()
        names = [safe_file_name(f.filename) for f in files]
        _check_distinct(names)
        folder = state.collections.uploads(name)
        paths = [
            await _save(upload, folder / file_name)
            for upload, file_name in zip(files, names, strict=True)
        ]
        job = state.jobs.start(
            name, collection, paths, options,
            finished=lambda: state.collections.mark_busy(name, False),
        )  # fmt: skip
        started = True
    finally:
        if not started:
            state.collections.mark_busy(name, False)
    return {"job": job.to_dict()}


def _check_distinct(names: list[str]) -> None:
    """Two files of one upload saved under one name: the second would replace the first."""
    seen: set[str] = set()
    for file_name in names:
        if file_name in seen:
            raise HTTPError(
                422, f"more than one uploaded file is named {file_name!r}; "
                "give each file of an upload its own name", "invalid_input", "files",
            )  # fmt: skip
        seen.add(file_name)


async def _save(upload: UploadFile, target: Path) -> Path:
    """Copy the upload next to its final name, then rename: a failure leaves no half file."""
    try:
        # Never the collection's folder itself (no `parents`): a collection deleted meanwhile
        # stays deleted.
        target.parent.mkdir(exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(handle, "wb") as out:
                while chunk := await upload.read(COPY_BYTES):
                    out.write(chunk)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except FileNotFoundError as exc:
        if not target.parent.parent.is_dir():
            raise CollectionNotFoundError(
                f"no collection named {target.parent.parent.name!r} (it was deleted)"
            ) from exc
        raise StorageError(f"cannot store the upload {target.name}: {exc.strerror}") from exc
    except OSError as exc:
        raise StorageError(f"cannot store the upload {target.name}: {exc.strerror or exc}") from exc
    return target


@router.get("/jobs/{job_id}", summary="An ingest job's progress and report")
def job(job_id: str, state: State) -> dict[str, Any]:
    return state.jobs.snapshot(job_id)


@router.get("/jobs/{job_id}/events", summary="An ingest job's progress as server-sent events")
def job_events(job_id: str, state: State) -> StreamingResponse:
    state.jobs.get(job_id)  # 404 before the stream starts

    async def events() -> AsyncIterator[str]:
        async for current in state.jobs.changes(job_id):
            finished = current["state"] in ("done", "failed")
            yield sse(current["state"] if finished else "progress", current)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})  # fmt: skip
