"""Images through the product: ingest a folder into an image collection, search by example,
keyword search over file names, near-duplicates, bad files reported, the CLI's --image."""

from __future__ import annotations

import json

import pytest

from embedstack import Collection
from embedstack.errors import CollectionError, InvalidInputError
from tests.cli.test_cli import assert_one_line_error, run
from tests.ingest.photos import png_header, query_photo, write_photo_folder

pytest.importorskip("PIL")
IMAGE_MODEL = "efficientnet-lite0"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    written = write_photo_folder(folder / "album")
    (folder / "album" / "notes.txt").write_text("not an image: a folder walk leaves it out")
    (folder / "album" / "truncated.jpg").write_bytes(written["china"][0].read_bytes()[:3000])
    (folder / "album" / "letter.png").write_text("Dear diary, this is text named .png")
    (folder / "album" / "huge.png").write_bytes(png_header(20_000, 20_000))  # no pixels in it
    return folder, written


@pytest.fixture(scope="module")
def album(photos):
    folder, written = photos
    kb = Collection.open(folder / "kb", model=IMAGE_MODEL)
    report = kb.ingest(folder / "album")
    yield kb, report, written
    kb.close()


def test_ingest_stores_one_row_per_image_and_reports_bad_files(album, photos):
    kb, report, written = album
    assert kb.modality == "image" and kb.info()["modality"] == "image"
    assert len(report.added) == 6 and kb.count() == 6  # notes.txt is not walked
    failed = {problem.path.rsplit("/", 1)[-1]: problem.reason for problem in report.failed}
    assert set(failed) == {"truncated.jpg", "letter.png", "huge.png"}, failed
    assert "too many pixels" in failed["huge.png"]
    assert all(reason and "\n" not in reason for reason in failed.values())
    china = kb.get(str(written["china"][0]))[0]
    assert china.text == "china.jpg"
    assert china.metadata["format"] == "image" and china.metadata["image_format"] == "JPEG"
    assert (china.metadata["width"], china.metadata["height"]) == (640, 427)
    again = kb.ingest(photos[0] / "album")  # unchanged files are skipped
    assert len(again.unchanged) == 6 and not again.added and kb.count() == 6


def test_search_by_example_image_finds_the_same_photo(album, tmp_path):
    kb, _, written = album
    for name in ("china", "flower"):
        hits = kb.search(query_photo(tmp_path, name), k=3)
        assert {hit.id for hit in hits} == {str(path) for path in written[name]}, name
        assert hits[0].score > 0.8 and "dense" in hits[0].scores_by_stage


def test_similar_duplicates_clusters_and_maps_use_the_image_vectors(album):
    kb, _, written = album
    like = kb.similar(str(written["flower"][0]), k=2)
    assert {hit.id for hit in like} == {str(path) for path in written["flower"][1:]}
    groups = kb.duplicates(threshold=0.8)
    as_sets = sorted(sorted(member.id for member in group) for group in groups)
    assert as_sets == sorted(sorted(str(p) for p in files) for files in written.values())
    clusters = kb.cluster(n_clusters=2)
    found = sorted(sorted(c.id for c in clusters.members(label)) for label in (0, 1))
    assert found == as_sets
    drawn = kb.map_points(method="pca", n_clusters=2)
    assert len(drawn["points"]) == 6 and len(drawn["clusters"]) == 2


def test_keyword_search_reads_file_names_and_text_only_features_refuse(album):
    kb, _, _ = album
    hits = kb.search("flower", mode="keyword")
    assert hits and all(hit.text.startswith("flower") for hit in hits)
    with pytest.raises(InvalidInputError, match="rerankers read text"):
        kb.search("flower", mode="keyword", rerank="builtin")
    with pytest.raises(InvalidInputError, match="answered from text"):
        kb.ask("what is in the photos?")
    with pytest.raises(InvalidInputError, match="flower.jpg"):
        kb.search("flower.jpg")  # not a file: the encoder names what it could not read


def test_text_options_and_reindex_are_refused(album):
    from embedstack.reindex import reindex

    kb, _, _ = album
    with pytest.raises(InvalidInputError, match="chunk_tokens: only for text"):
        kb.ingest(kb.folder, chunk_tokens=64)
    with pytest.raises(InvalidInputError, match="language: only for text"):
        kb.ingest(kb.folder, language="en")
    with pytest.raises(CollectionError, match="reindex re-embeds text"):
        reindex(kb.folder, "all-MiniLM-L6-v2")


def test_a_text_collection_reports_an_image_instead_of_reading_it(photos, tmp_path):
    folder, written = photos
    with Collection.open(tmp_path / "text-kb") as kb:
        report = kb.ingest(written["china"][0])
    assert report.failed and "image collection" in report.failed[0].reason


def test_cli_search_by_image(album, tmp_path):
    kb, _, written = album
    found = run("search", kb.folder, "--image", query_photo(tmp_path, "china"), "-k", "2", "--json")
    assert found.returncode == 0, found.stderr
    assert {hit["id"] for hit in json.loads(found.stdout)} <= {str(p) for p in written["china"]}
    words = run("search", kb.folder, "temple")
    assert_one_line_error(words, "image collection: search it by example (--image PATH)")
    names = run("search", kb.folder, "flower", "--mode", "keyword", "--json")
    assert names.returncode == 0 and json.loads(names.stdout)[0]["text"].startswith("flower")
