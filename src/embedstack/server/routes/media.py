"""Images over HTTP: search an image collection by an uploaded example, and thumbnails of the
stored images for the web page.

A query image is uploaded, never named by path: a path would let a client make the server
read any file it can. Thumbnails are served only for rows of an image collection, from the
file that row was ingested from, and only when that file is in the collection's manifest (an
upload, or a folder its owner ingested): a row that names any other file is a 404, whether or
not the file exists.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from embedstack.collection import Collection
from embedstack.errors import InvalidInputError, RecordNotFoundError
from embedstack.server.deps import State
from embedstack.server.errors import HTTPError
from embedstack.server.routes.ingest import COPY_BYTES

router = APIRouter(prefix="/collections", tags=["images"])

THUMBNAIL_SIZES = (64, 512)  # the smallest and largest edge a client may ask for
MAX_SUFFIX = 10  # characters of an upload's extension kept on the query's temporary file


def _query_suffix(file_name: str | None) -> str:
    """The upload's extension, lower-cased, when it is short and plain; else none. The
    image is recognised by its content, so the suffix only makes the temporary file tidier;
    a client's long or odd name must not reach the file system."""
    stem, dot, extension = (file_name or "").rpartition(".")
    plain = extension.isascii() and extension.isalnum() and len(extension) <= MAX_SUFFIX
    return f".{extension.lower()}" if dot and stem and plain else ""


def _image_collection(state: State, name: str) -> Collection:
    collection = state.collections.get(name)
    if collection.modality != "image":
        raise HTTPError(
            422, f"{name!r} holds {collection.modality}, not images", "invalid_input", "name"
        )
    return collection


@router.post("/{name}/search/image", summary="Search an image collection by an example image")
async def search_by_image(
    name: str,
    state: State,
    file: Annotated[UploadFile, File(description="The example image (JPEG, PNG, GIF, WebP…)")],
    k: Annotated[int, Form(ge=1, le=10_000)] = 10,
    filter: Annotated[str | None, Form(description="A metadata filter, as JSON")] = None,
) -> dict[str, Any]:
    collection = _image_collection(state, name)
    where = _filter(filter)
    started = time.perf_counter()
    handle, temporary = tempfile.mkstemp(prefix=".query-", suffix=_query_suffix(file.filename))
    try:
        with os.fdopen(handle, "wb") as out:
            while chunk := await file.read(COPY_BYTES):
                out.write(chunk)
        try:
            hits = await run_in_threadpool(collection.search, temporary, k, where)
        except InvalidInputError as exc:  # name the upload, not the server's temporary file
            reason = str(exc).replace(temporary, "").replace(Path(temporary).name, "")
            raise InvalidInputError(
                f"{file.filename or 'the image'}: {reason.lstrip(': ')}"
            ) from None
    finally:
        Path(temporary).unlink(missing_ok=True)
    return {
        "hits": [hit.to_dict() for hit in hits],
        "seconds": round(time.perf_counter() - started, 4),
    }


def _filter(text: str | None) -> dict[str, Any] | None:
    if text is None or not text.strip():
        return None
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise InvalidInputError(f"filter is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidInputError("filter must be a JSON object")
    return parsed


@router.get("/{name}/thumbnail", summary="A stored image, shrunk to fit a square (JPEG)")
def thumbnail(
    name: str,
    state: State,
    id: Annotated[str, Query(description="The image's record id")],
    size: Annotated[int, Query(ge=THUMBNAIL_SIZES[0], le=THUMBNAIL_SIZES[1])] = 160,
) -> Response:
    from embedstack.models.image_files import read_image

    collection = _image_collection(state, name)
    found = collection.get(id)
    if not found:
        raise RecordNotFoundError(f"no record with id {id!r} in {name!r}")
    path = _ingested_file(collection, found[0].metadata.get("source"))
    if path is None:  # one answer for "elsewhere" and "gone": no probing the server's disk
        raise RecordNotFoundError(f"the image of {id!r} is not among the collection's files")
    try:
        image, _ = read_image(path, min_side=size)  # upright (EXIF), as it was embedded
    except InvalidInputError as exc:  # name the record, not the server's path
        reason = str(exc).removeprefix(f"{path}: ").replace(str(path), path.name)
        raise InvalidInputError(f"the image of {id!r}: {reason}") from None
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=85)
    return Response(
        buffer.getvalue(), media_type="image/jpeg", headers={"Cache-Control": "max-age=300"}
    )


def _ingested_file(collection: Collection, source: Any) -> Path | None:
    """`source` when it is a file the collection ingested and it is still there; else None.
    A row added with a made-up source (Python API) names no manifest entry."""
    if not isinstance(source, str) or not source or collection.source(source) is None:
        return None
    try:
        return Path(source) if Path(source).is_file() else None
    except (OSError, ValueError):  # a NUL byte, a name too long, …
        return None
