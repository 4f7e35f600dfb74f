"""Collections created, deleted and uploaded to at the same time, against a live server.

Each race is forced, not hoped for: the slow step (saving an upload, loading a model, removing
a folder) waits on a `threading.Event` until the test has sent the competing request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import threading
import time
from types import SimpleNamespace

import pytest
from starlette.datastructures import UploadFile

import embedstack.server.registry as registry_module
import embedstack.server.routes.ingest as ingest_route
from embedstack.errors import CollectionNotFoundError
from embedstack.server.registry import CollectionRegistry

WAIT = 60  # seconds a paused step waits for the test before it goes on regardless
QUICK = 10  # seconds a request that must not wait may take (it takes milliseconds)


@pytest.fixture
def pool():
    with concurrent.futures.ThreadPoolExecutor(4) as executor:
        yield executor


def finished_job(client, job_id: str) -> dict:
    deadline = time.monotonic() + 120
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if job["state"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def test_delete_during_an_upload_leaves_the_name_reusable(client, live_server, monkeypatch, pool):
    assert client.post("/collections", json={"name": "race-upload"}).status_code == 201
    paused, resume = threading.Event(), threading.Event()
    save = ingest_route._save

    async def save_slowly(upload, target):  # the second file saves after the DELETE
        if target.name == "b.txt":
            paused.set()
            await asyncio.to_thread(resume.wait, WAIT)
        return await save(upload, target)

    monkeypatch.setattr(ingest_route, "_save", save_slowly)
    files = [("files", ("a.txt", b"alpha: the first file")), ("files", ("b.txt", b"beta text"))]
    uploading = pool.submit(client.post, "/collections/race-upload/files", files=files)
    try:
        assert paused.wait(WAIT)
        deleted = client.delete("/collections/race-upload")
    finally:
        resume.set()
    uploaded = uploading.result(timeout=WAIT)
    assert deleted.status_code == 409, deleted.text  # in use: the upload holds it
    assert uploaded.status_code == 202, uploaded.text
    job = finished_job(client, uploaded.json()["job"]["id"])
    assert job["state"] == "done", job
    assert sorted(job["report"]["files"]["added"]) == ["a.txt", "b.txt"], job
    # Now it goes, and leaves nothing behind: the name can be used again.
    assert client.delete("/collections/race-upload").status_code == 200
    assert not (live_server.root / "race-upload").exists()
    assert client.get("/collections/race-upload").status_code == 404
    assert client.post("/collections", json={"name": "race-upload"}).status_code == 201
    assert client.delete("/collections/race-upload").status_code == 200


def test_an_upload_to_a_collection_deleted_meanwhile_is_not_found(client, live_server):
    """The upload's files never bring a deleted collection's folder back."""
    assert client.post("/collections", json={"name": "race-gone"}).status_code == 201
    folder = live_server.state.collections.uploads("race-gone")
    assert client.delete("/collections/race-gone").status_code == 200
    upload = UploadFile(io.BytesIO(b"late text"), filename="a.txt")
    with pytest.raises(CollectionNotFoundError, match="race-gone"):
        asyncio.run(ingest_route._save(upload, folder / "a.txt"))
    assert not (live_server.root / "race-gone").exists()
    assert client.post("/collections", json={"name": "race-gone"}).status_code == 201
    assert client.delete("/collections/race-gone").status_code == 200


def test_duplicate_file_names_in_one_upload_are_refused(client, live_server):
    assert client.post("/collections", json={"name": "race-dup"}).status_code == 201
    for second in ("a.txt", "folder/a.txt"):  # the same name once the folder is dropped
        files = [("files", ("a.txt", b"first file")), ("files", (second, b"second file"))]
        response = client.post("/collections/race-dup/files", files=files)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_input" and error["param"] == "files"
        assert "'a.txt'" in error["message"]
    assert not (live_server.root / "race-dup" / "files").exists()  # nothing was saved
    assert client.get("/collections/race-dup").json()["count"] == 0
    # The refused uploads did not leave the collection marked busy.
    assert client.delete("/collections/race-dup").status_code == 200


def test_a_job_that_cannot_start_does_not_keep_the_collection_busy(
    client, live_server, monkeypatch
):
    assert client.post("/collections", json={"name": "race-nojob"}).status_code == 201

    def refuse(*args, **kwargs):
        raise RuntimeError("cannot schedule new futures after shutdown")

    monkeypatch.setattr(live_server.state.jobs, "start", refuse)
    files = [("files", ("a.txt", b"some text"))]
    with live_server.client() as own:  # the server drops a connection that saw a 500
        assert own.post("/collections/race-nojob/files", files=files).status_code == 500
    assert client.delete("/collections/race-nojob").status_code == 200


def test_requests_do_not_wait_while_a_create_loads_its_model(
    client, live_server, monkeypatch, pool
):
    assert client.post("/collections", json={"name": "race-steady"}).status_code == 201
    registry = live_server.state.collections
    loading, resume = threading.Event(), threading.Event()
    shared = registry._shared

    def load_slowly(model):  # as a model not loaded yet would
        loading.set()
        resume.wait(WAIT)
        return shared(model)

    monkeypatch.setattr(registry, "_shared", load_slowly)
    body = {"name": "race-new", "model": "all-MiniLM-L6-v2"}
    creating = pool.submit(client.post, "/collections", json=body)
    try:
        assert loading.wait(WAIT)
        steady = pool.submit(client.get, "/collections/race-steady").result(timeout=QUICK)
        assert steady.status_code == 200, steady.text
        records = {"records": [{"id": "r", "text": "added while another collection loads"}]}
        added = pool.submit(client.post, "/collections/race-steady/records", json=records)
        assert added.result(timeout=QUICK).status_code == 200
        # The name being created is taken, but not there yet.
        again = pool.submit(client.post, "/collections", json=body).result(timeout=QUICK)
        assert again.status_code == 409, again.text
        new = pool.submit(client.get, "/collections/race-new").result(timeout=QUICK)
        assert new.status_code == 404, new.text
        listed = pool.submit(client.get, "/collections").result(timeout=QUICK)
        assert "race-new" not in {c["name"] for c in listed.json()["collections"]}
        assert "race-steady" in {c["name"] for c in listed.json()["collections"]}
    finally:
        resume.set()
    assert creating.result(timeout=WAIT).status_code == 201
    assert client.get("/collections/race-new").json()["model"] == "all-MiniLM-L6-v2"
    for name in ("race-new", "race-steady"):
        assert client.delete(f"/collections/{name}").status_code == 200


def test_requests_do_not_wait_while_a_delete_removes_a_folder(
    client, live_server, monkeypatch, pool
):
    for name in ("race-stays", "race-goes"):
        assert client.post("/collections", json={"name": name}).status_code == 201
    removing, resume = threading.Event(), threading.Event()
    rmtree = registry_module.shutil.rmtree

    def remove_slowly(path):  # a big folder on a slow disk
        removing.set()
        resume.wait(WAIT)
        rmtree(path)

    monkeypatch.setattr(registry_module, "shutil", SimpleNamespace(rmtree=remove_slowly))
    deleting = pool.submit(client.delete, "/collections/race-goes")
    try:
        assert removing.wait(WAIT)
        stays = pool.submit(client.get, "/collections/race-stays").result(timeout=QUICK)
        assert stays.status_code == 200, stays.text
        goes = pool.submit(client.get, "/collections/race-goes").result(timeout=QUICK)
        assert goes.status_code == 404, goes.text
        body = {"name": "race-goes"}
        again = pool.submit(client.post, "/collections", json=body).result(timeout=QUICK)
        assert again.status_code == 409, again.text
    finally:
        resume.set()
    assert deleting.result(timeout=WAIT).status_code == 200
    assert client.post("/collections", json={"name": "race-goes"}).status_code == 201
    for name in ("race-stays", "race-goes"):
        assert client.delete(f"/collections/{name}").status_code == 200


def test_mark_busy_on_a_deleted_collection_is_not_found(live_server):
    registry: CollectionRegistry = live_server.state.collections
    registry.create("race-marked", None, None)
    registry.delete("race-marked")
    with pytest.raises(CollectionNotFoundError):
        registry.mark_busy("race-marked", True)
    registry.mark_busy("race-marked", False)  # releasing what was never marked is harmless
    registry.create("race-marked", None, None)
    registry.delete("race-marked")


def test_a_request_on_a_collection_deleted_meanwhile_is_not_found(client, live_server, monkeypatch):
    """A request that looked the collection up just before a DELETE closed it: 404, and no
    server folder in the message (it was a 503 naming the folder)."""
    assert client.post("/collections", json={"name": "race-closed"}).status_code == 201
    added = client.post(
        "/collections/race-closed/records", json={"records": [{"id": "a", "text": "alpha"}]}
    )
    assert added.status_code == 200, added.text
    registry = live_server.state.collections
    looked_up, get = registry.get("race-closed"), registry.get
    assert client.delete("/collections/race-closed").status_code == 200
    monkeypatch.setattr(
        registry, "get", lambda name: looked_up if name == "race-closed" else get(name)
    )
    answers = [
        client.post("/collections/race-closed/search", json={"query": "alpha"}),
        client.get("/collections/race-closed/records"),
        client.post(
            "/collections/race-closed/records", json={"records": [{"id": "b", "text": "beta"}]}
        ),
    ]
    for answer in answers:
        assert answer.status_code == 404, answer.text
        error = answer.json()["error"]
        assert error["code"] == "collection_not_found"
        assert str(registry.root) not in error["message"]
