"""Images over HTTP never reach files a collection did not ingest: records of an image
collection cannot name server paths, thumbnails come only from files in the collection's
manifest, and an upload's name never reaches the file system as it was sent."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

Image = pytest.importorskip("PIL.Image")

NAME = "safety-photos"
MODEL = "efficientnet-lite0"  # the image model of test_image_api.py


def _picture(path: Path, colour: tuple[int, int, int]) -> Path:
    """A real picture: a coloured square with a darker stripe, so it is not one flat colour."""
    image = Image.new("RGB", (200, 120), colour)
    image.paste(tuple(c // 3 for c in colour), (40, 30, 160, 60))
    image.save(path)
    return path


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (160, 160), colour).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photos(client, live_server):
    """An image collection holding two uploaded pictures; the collection object itself."""
    created = client.post("/collections", json={"name": NAME, "model": MODEL})
    assert created.status_code == 201, created.text
    files = [
        ("files", ("red.jpg", _jpeg((220, 30, 30)), "image/jpeg")),
        ("files", ("blue.jpg", _jpeg((30, 30, 220)), "image/jpeg")),
    ]
    job = client.post(f"/collections/{NAME}/files", files=files).json()["job"]
    client.get(f"/jobs/{job['id']}/events")  # streams until the job ends
    report = client.get(f"/jobs/{job['id']}").json()["report"]
    assert report["added"] == 2, report
    yield live_server.state.collections.get(NAME)
    client.delete(f"/collections/{NAME}")


@pytest.fixture
def secret(tmp_path) -> Path:
    """An image on the server's disk, outside every collection."""
    return _picture(tmp_path / "secret.png", (250, 10, 10))


def _uploaded_id(collection) -> str:
    return next(c.id for c in collection.get(collection.ids()) if c.text == "red.jpg")


def test_records_naming_server_paths_are_refused_on_image_collections(client, photos, secret):
    before = len(photos)
    answers = [
        client.post(f"/collections/{NAME}/records", json={"records": [record]})
        for record in (
            {"id": "s", "text": str(secret)},
            {"id": "t", "text": str(secret), "metadata": {"source": str(secret)}},
            {"id": "p", "text": "/etc/passwd"},  # exists, not an image
            {"id": "m", "text": str(secret.with_name("missing.png"))},
        )
    ]
    for answer in answers:
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["code"] == "invalid_input" and error["param"] == "records"
        assert f"/collections/{NAME}/files" in error["message"]
    # The same answer whatever the path: nothing about the server's files leaks.
    assert len({answer.text for answer in answers}) == 1
    assert len(photos) == before
    assert client.get(f"/collections/{NAME}/records/t").status_code == 404
    assert client.get(f"/collections/{NAME}/thumbnail", params={"id": "t"}).status_code == 404


def test_text_collections_still_take_records(client):
    assert client.post("/collections", json={"name": "safety-texts"}).status_code == 201
    try:
        added = client.post(
            "/collections/safety-texts/records",
            json={"records": [{"id": "a", "text": "/etc/passwd is just text here"}]},
        )
        assert added.status_code == 200 and added.json() == {"ids": ["a"]}
    finally:
        client.delete("/collections/safety-texts")


def test_thumbnails_come_only_from_ingested_files(client, photos, secret, tmp_path):
    # An older collection may hold rows whose source is anywhere (added through the Python
    # API, or over HTTP before records were refused): the server must not serve them.
    files = Path(photos.folder) / "files"
    link = files / "link-to-secret.png"
    os.symlink(secret, link)
    missing = secret.with_name("missing.png")
    photos.add(
        [str(secret), str(secret), str(secret), str(secret)],
        ids=["outside", "outside-text-only", "via-link", "gone"],
        metadata=[{"source": str(secret)}, {}, {"source": str(link)}, {"source": str(missing)}],
    )
    answers = {
        id_: client.get(f"/collections/{NAME}/thumbnail", params={"id": id_, "size": 64})
        for id_ in ("outside", "outside-text-only", "via-link", "gone")
    }
    for id_, answer in answers.items():
        assert answer.status_code == 404, (id_, answer.status_code, answer.text[:200])
        assert answer.headers["content-type"].startswith("application/json")
        error = answer.json()["error"]
        assert error["code"] == "record_not_found" and str(secret.parent) not in error["message"]
    # An existing file and a missing one answer alike (no probing the server's disk).
    messages = {answer.json()["error"]["message"].replace(repr(id_), "ID")
                for id_, answer in answers.items()}  # fmt: skip
    assert len(messages) == 1, messages
    # The collection's own uploads are served, and so is a folder its owner ingested.
    album = tmp_path / "album"
    album.mkdir()
    _picture(album / "green.png", (20, 200, 40))
    assert photos.ingest([album]).added == [str(album / "green.png")]
    ingested = next(c.id for c in photos.get(photos.ids()) if c.text == "green.png")
    for id_, colour in ((_uploaded_id(photos), "red"), (ingested, "green")):
        own = client.get(f"/collections/{NAME}/thumbnail", params={"id": id_})
        assert own.status_code == 200 and own.headers["content-type"] == "image/jpeg"
        with Image.open(io.BytesIO(own.content)) as image:
            rgb = image.convert("RGB").getpixel((image.width // 2, image.height // 2))
            assert max(zip(rgb, ("red", "green", "blue"), strict=True))[1] == colour


@pytest.mark.parametrize(
    "file_name",
    ["q." + "j" * 300, "q" * 300 + ".jpg", "q." + "é" * 200, "../../q.jpg", "q.jpg/../../x"],
    ids=["long-extension", "long-stem", "long-unicode-extension", "dots", "slashes"],
)
def test_odd_upload_names_on_image_search_are_never_a_500(client, photos, file_name):
    answer = client.post(
        f"/collections/{NAME}/search/image",
        files={"file": (file_name, _jpeg((210, 40, 40)), "image/jpeg")},
        data={"k": "1"},
    )
    assert answer.status_code == 200, answer.text  # recognised by its content, not its name
    assert answer.json()["hits"][0]["text"] == "red.jpg"
    not_image = client.post(
        f"/collections/{NAME}/search/image",
        files={"file": (file_name, b"hello, not a picture", "image/jpeg")},
    )
    assert not_image.status_code == 422, not_image.text
