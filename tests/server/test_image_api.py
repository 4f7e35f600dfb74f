"""Images over HTTP on a real server: create an image collection, upload photos to ingest,
search by an uploaded example, thumbnails; a path sent as a text query is refused."""

from __future__ import annotations

import io

import pytest

from tests.ingest.photos import query_photo, write_photo_folder

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def image_collection(client, tmp_path_factory):
    folder = tmp_path_factory.mktemp("upload-photos")
    written = write_photo_folder(folder)
    created = client.post("/collections", json={"name": "photos", "model": "efficientnet-lite0"})
    assert created.status_code == 201, created.text
    assert created.json()["modality"] == "image"
    files = [
        ("files", (path.name, path.read_bytes())) for paths in written.values() for path in paths
    ]
    files.append(("files", ("broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")))
    job = client.post("/collections/photos/files", files=files).json()["job"]
    client.get(f"/jobs/{job['id']}/events")  # streams until the job ends
    report = client.get(f"/jobs/{job['id']}").json()["report"]
    assert report["added"] == 6 and report["failed"] == 1
    return folder


def test_search_by_an_uploaded_example_image(client, image_collection):
    query = query_photo(image_collection, "flower")
    answer = client.post(
        "/collections/photos/search/image",
        files={"file": ("query.jpg", query.read_bytes(), "image/jpeg")},
        data={"k": "3"},
    )
    assert answer.status_code == 200, answer.text
    names = [hit["metadata"]["file_name"] for hit in answer.json()["hits"]]
    assert sorted(names) == ["flower-crop.webp", "flower-mirrored.png", "flower.jpg"]
    filtered = client.post(
        "/collections/photos/search/image",
        files={"file": ("query.jpg", query.read_bytes(), "image/jpeg")},
        data={"k": "3", "filter": '{"image_format": "PNG"}'},
    ).json()["hits"]
    assert [hit["metadata"]["file_name"] for hit in filtered][:1] == ["flower-mirrored.png"]


def test_thumbnails_are_small_jpegs_of_stored_images(client, image_collection):
    hit = client.post(
        "/collections/photos/search", json={"query": "china", "mode": "keyword", "k": 1}
    ).json()["hits"][0]
    thumb = client.get("/collections/photos/thumbnail", params={"id": hit["id"], "size": 96})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumb.content)) as image:
        assert max(image.size) == 96
    missing = client.get("/collections/photos/thumbnail", params={"id": "nope"})
    assert missing.status_code == 404


def test_bad_image_requests_get_clear_errors(client, image_collection):
    as_text = client.post("/collections/photos/search", json={"query": "/etc/passwd"})
    assert as_text.status_code == 422 and "upload an example" in as_text.json()["error"]["message"]
    not_image = client.post(
        "/collections/photos/search/image", files={"file": ("notes.jpg", b"hello", "image/jpeg")}
    )
    assert not_image.status_code == 422, not_image.text
    assert not_image.json()["error"]["message"].startswith("notes.jpg: ")  # not a server path
    assert client.post("/collections", json={"name": "texts-for-images"}).status_code == 201
    wrong = client.post(
        "/collections/texts-for-images/search/image",
        files={"file": ("query.jpg", query_photo(image_collection, "china").read_bytes())},
    )
    assert wrong.status_code == 422 and "not images" in wrong.json()["error"]["message"]
