"""Collections and their records: list, create, info, delete; add, browse, get, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from embedstack.collection import content_id
from embedstack.errors import LimitExceededError, RecordNotFoundError
from embedstack.server.deps import State
from embedstack.server.errors import HTTPError

router = APIRouter(prefix="/collections", tags=["collections"])


class CreateCollection(BaseModel):
    name: str
    model: str | None = Field(None, description="A catalog model; the server's default if empty.")
    index: str | None = Field(
        None,
        description='"auto" (default), "flat", "hnsw", "binary" or a FAISS factory string '
        '("IVF1024,PQ96x4fs"); an unknown one is a 422.',
        max_length=200,
    )


@router.get("", summary="Every collection with its stats")
def list_collections(state: State) -> dict[str, Any]:
    return {"collections": [state.collections.info(name) for name in state.collections.names()]}


@router.post("", status_code=201, summary="Create an empty collection")
def create_collection(request: CreateCollection, state: State) -> dict[str, Any]:
    state.collections.create(request.name, request.model, request.index)
    return state.collections.info(request.name)


@router.get("/{name}", summary="A collection's model, size and files")
def collection_info(name: str, state: State) -> dict[str, Any]:
    return state.collections.info(name)


@router.delete("/{name}", summary="Delete a collection and everything in it")
def delete_collection(name: str, state: State) -> dict[str, Any]:
    state.collections.delete(name)
    return {"deleted": name}


class Record(BaseModel):
    text: str
    id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class AddRecords(BaseModel):
    records: list[Record]


# Models of these kinds embed a record's text itself; image and audio models read the file
# that the text names, which over HTTP would be a path on the server's disk.
INLINE_MODALITIES = ("text", "sequence")


@router.post("/{name}/records", summary="Insert or replace records (all or nothing)")
async def add_records(name: str, request: AddRecords, state: State) -> dict[str, Any]:
    limit = state.config.max_inputs
    if len(request.records) > limit:
        raise LimitExceededError(f"{len(request.records)} records is more than the limit of "
                                 f"{limit}; send them in several requests")  # fmt: skip
    collection = state.collections.get(name)
    if collection.modality not in INLINE_MODALITIES:
        raise HTTPError(
            422, f"{name!r} holds {collection.modality}: a record of it would name a file on the "
            f"server; upload the files to POST /collections/{name}/files instead",
            "invalid_input", "records",
        )  # fmt: skip
    texts = [r.text for r in request.records]
    metadata = [r.metadata for r in request.records]
    ids = None
    if any(r.id is not None for r in request.records):
        ids = [r.id if r.id is not None else content_id(r.text) for r in request.records]
    written = await run_in_threadpool(collection.add, texts, ids, metadata)
    return {"ids": written}


def _record(chunk: Any) -> dict[str, Any]:
    return {"id": chunk.id, "text": chunk.text, "metadata": chunk.metadata}


@router.get("/{name}/records", summary="Browse records, oldest first")
def list_records(
    name: str,
    state: State,
    offset: int = Query(0, ge=0),
    limit: int = Query(20, ge=1, le=1000),
) -> dict[str, Any]:
    collection = state.collections.get(name)
    ids = collection.ids()
    page = collection.get(ids[offset : offset + limit])
    return {"total": len(ids), "records": [_record(chunk) for chunk in page]}


@router.get("/{name}/records/{record_id:path}", summary="One record by id")  # ids may hold "/"
def get_record(name: str, record_id: str, state: State) -> dict[str, Any]:
    found = state.collections.get(name).get(record_id)
    if not found:
        raise RecordNotFoundError(f"no record with id {record_id!r} in {name!r}")
    return _record(found[0])


@router.delete("/{name}/records/{record_id:path}", summary="Delete one record by id")
def delete_record(name: str, record_id: str, state: State) -> dict[str, Any]:
    if not state.collections.get(name).delete(record_id):
        raise RecordNotFoundError(f"no record with id {record_id!r} in {name!r}")
    return {"deleted": 1}
