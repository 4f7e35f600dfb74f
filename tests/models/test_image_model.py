"""The image encoders on real photos (scikit-image's and scikit-learn's bundled pictures).

Each test writes real files (JPEG, PNG, GIF, WebP, ...) with Pillow and embeds them by path,
as a user would. The ONNX files are exported once per test run (into the run's own cache).
"""

from __future__ import annotations

import io
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from embedstack import load_model
from embedstack.errors import InvalidInputError, ModelNotFoundError
from embedstack.models.cache import CachedEncoder, EmbeddingCache
from embedstack.models.image_files import IMAGE_EXTENSIONS, MAX_PIXELS, read_image
from tests.ingest.photos import png_header

Image = pytest.importorskip("PIL.Image")
skimage_data = pytest.importorskip("skimage.data")
pytest.importorskip("efficientnet_lite_pytorch")


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    """Six real photos: a cat, a cup of coffee, a rocket, an astronaut, a temple, a flower."""
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    named = {n: getattr(skimage_data, n)() for n in ("chelsea", "coffee", "rocket", "astronaut")}
    return {**named, "china": china, "flower": flower}


@pytest.fixture(scope="module")
def folder(tmp_path_factory, photos) -> Path:
    out = tmp_path_factory.mktemp("photos")
    for name, pixels in photos.items():
        Image.fromarray(pixels).save(out / f"{name}.jpg", quality=92)
    return out


@pytest.fixture(scope="module")
def effnet():
    return load_model("efficientnet-lite0")  # the catalog's default backend: ONNX, fp32


@pytest.fixture(scope="module")
def mobilenet():
    return load_model("mobilenet-v2", backend="onnx")


def paths(folder: Path, *names: str) -> list[str]:
    return [str(folder / f"{name}.jpg") for name in names]


def test_loaded_by_catalog_name_and_alias(effnet):
    assert effnet.modality == "image" and effnet.dim == 1280 and effnet.backend == "onnx"
    assert load_model("effnet-lite0", backend="torch").name == "efficientnet-lite0"
    with pytest.raises(ModelNotFoundError, match="runs on onnx, torch, not 'onnx-int8'"):
        load_model("mobilenet-v2", backend="onnx-int8")


@pytest.mark.parametrize("which", ["effnet", "mobilenet"])
def test_an_edited_copy_is_closer_than_another_photo(which, request, folder, photos):
    model = request.getfixturevalue(which)
    cat = Image.fromarray(photos["chelsea"])
    width, height = cat.size
    edited = folder / f"cat-edited-{which}.png"  # mirrored, cropped, shrunk, another format
    cat.transpose(Image.Transpose.FLIP_LEFT_RIGHT).crop((20, 10, width - 30, height - 15)).resize(
        (300, 200)
    ).save(edited)
    vectors = model.encode([*paths(folder, "chelsea"), str(edited), *paths(folder, "coffee")])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 1280)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cat_vs_copy, cat_vs_coffee = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert cat_vs_copy > 0.85 and cat_vs_copy > cat_vs_coffee + 0.3


@pytest.mark.parametrize("name", ["efficientnet-lite0", "mobilenet-v2"])
def test_onnx_matches_torch(name, folder):
    files = paths(folder, "chelsea", "coffee", "rocket", "astronaut", "china", "flower")
    onnx = load_model(name, backend="onnx").encode(files, batch_size=4)
    torch = load_model(name, backend="torch").encode(files)
    assert ((onnx * torch).sum(axis=1) >= 0.999).all()


def test_single_path_gives_a_vector_and_batching_does_not_change_it(effnet, folder):
    files = paths(folder, "chelsea", "coffee", "rocket", "astronaut", "china", "flower")
    one = effnet.encode(files[2])
    assert one.shape == (1280,)
    np.testing.assert_allclose(effnet.encode(files, batch_size=1)[2], one, atol=1e-5)
    np.testing.assert_allclose(effnet.encode(files, batch_size=32)[2], one, atol=1e-5)
    assert effnet.encode([]).shape == (0, 1280)


def test_exif_orientation_is_applied(effnet, tmp_path, photos):
    """A camera stores the sensor's pixels and an orientation tag; the picture is upright."""
    upright = Image.fromarray(photos["chelsea"][:288, :448])  # whole 16-px JPEG blocks
    upright.save(tmp_path / "upright.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    sideways = upright.transpose(Image.Transpose.ROTATE_90)  # what the sensor stored
    sideways.save(tmp_path / "camera.jpg", quality=95, exif=exif.tobytes())
    sideways.save(tmp_path / "no-tag.jpg", quality=95)
    picture, info = read_image(tmp_path / "camera.jpg")
    assert picture.size == upright.size and (info.width, info.height) == sideways.size
    up, camera, no_tag = effnet.encode(
        [str(tmp_path / f) for f in ("upright.jpg", "camera.jpg", "no-tag.jpg")]
    )
    assert float(up @ camera) > 0.995
    assert float(up @ no_tag) < float(up @ camera) - 0.05  # the tag is what made them agree


def test_every_format_reads_as_the_same_picture(effnet, tmp_path, photos):
    from PIL import features

    cat = Image.fromarray(photos["chelsea"])
    formats = ["png", "jpg", "gif", "bmp", "tiff"] + (["webp"] if features.check("webp") else [])
    for ext in formats:
        cat.save(tmp_path / f"cat.{ext}")
    assert {f".{ext}" for ext in formats} <= IMAGE_EXTENSIONS
    rgba = cat.convert("RGBA")
    rgba.putalpha(255)
    rgba.save(tmp_path / "cat-rgba.png")
    cat.convert("CMYK").save(tmp_path / "cat-cmyk.jpg")
    wide = (np.asarray(cat.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "cat-16bit.png")  # 16-bit grey: scaled, not clipped
    cat.convert("L").save(tmp_path / "cat-grey.png")
    names = [f"cat.{e}" for e in formats] + ["cat-rgba.png", "cat-cmyk.jpg", "cat-16bit.png"]
    vectors = effnet.encode([str(tmp_path / n) for n in [*names, "cat-grey.png"]])
    reference = vectors[0]
    assert ((vectors[:-2] @ reference) > 0.9).all()  # GIF's 256 colours cost the most
    assert float(vectors[-2] @ vectors[-1]) > 0.99  # 16-bit grey == 8-bit grey
    formats_read = {read_image(tmp_path / n)[1].format for n in names}
    assert formats_read >= {"PNG", "JPEG", "GIF", "BMP", "TIFF"}


def test_an_animated_gif_gives_its_first_frame(tmp_path, photos):
    frames = [Image.fromarray(photos[n]).resize((200, 150)) for n in ("chelsea", "coffee")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    picture, info = read_image(tmp_path / "anim.gif")
    assert info.frames == 2 and info.format == "GIF" and picture.mode == "RGB"
    first = np.asarray(frames[0], dtype=np.float32)
    assert np.abs(np.asarray(picture, dtype=np.float32) - first).mean() < 12


def test_transparent_pixels_are_laid_on_white(tmp_path):
    clear = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    clear.save(tmp_path / "clear.png")
    picture, info = read_image(tmp_path / "clear.png")
    assert info.mode == "RGBA" and np.asarray(picture).min() == 255


def test_exif_date_and_camera_are_kept(tmp_path, photos):
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS 5D"
    exif.get_ifd(0x8769)[0x9003] = "2021:07:14 09:30:05"
    Image.fromarray(photos["coffee"]).save(tmp_path / "c.jpg", exif=exif.tobytes())
    _, info = read_image(tmp_path / "c.jpg")
    assert info.taken_at == "2021-07-14T09:30:05" and info.camera == "Canon EOS 5D"
    assert info.to_metadata()["width"] == photos["coffee"].shape[1]
    _, plain = read_image(tmp_path / "c.jpg", data=(tmp_path / "c.jpg").read_bytes())
    assert plain == info  # bytes given by the caller: the same reading


def _bad_files(folder: Path, tmp_path: Path) -> dict[str, str]:
    """file name -> the reason its error must give."""
    good = (folder / "coffee.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "notes.png").write_text("these are my notes, not a picture\n")
    (tmp_path / "huge.png").write_bytes(png_header(20_000, 20_000))  # past Pillow's own limit
    side = int(MAX_PIXELS**0.5) + 100
    (tmp_path / "big.png").write_bytes(png_header(side, side))  # past ours only
    (tmp_path / "empty.jpg").write_bytes(b"")
    return {
        "truncated.jpg": "cannot decode the image",
        "notes.png": "not an image",
        "huge.png": "too many pixels",
        "big.png": f"too many pixels \\({side:,} x {side:,}\\)",
        "empty.jpg": "not an image",
    }


def test_bad_files_fail_fast_with_one_line_naming_the_file(effnet, folder, tmp_path):
    for name, reason in _bad_files(folder, tmp_path).items():
        path = tmp_path / name
        tracemalloc.start()
        started = time.perf_counter()
        with pytest.raises(InvalidInputError, match=reason) as caught:
            read_image(path)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and "\n" not in message
        assert seconds < 1.0 and peak < 20 * 2**20, (name, seconds, peak)
        with pytest.raises(InvalidInputError, match=f"{name}: "):
            effnet.encode([str(folder / "chelsea.jpg"), str(path)])
    with pytest.raises(InvalidInputError, match="missing.jpg: cannot read"):
        effnet.encode(str(tmp_path / "missing.jpg"))
    with pytest.raises(InvalidInputError, match="image at position 1 is int"):
        effnet.encode([str(folder / "chelsea.jpg"), 7])  # type: ignore[list-item]


def test_the_embedding_cache_keys_on_file_content(effnet, folder, tmp_path):
    cache = EmbeddingCache(tmp_path / "cache.db")
    cached = CachedEncoder(effnet, cache)
    files = paths(folder, "chelsea", "rocket")
    first = cached.encode(files)
    np.testing.assert_allclose(first, effnet.encode(files), atol=1e-6)
    assert len(cache) == 2
    copy = tmp_path / "renamed-cat.jpg"
    copy.write_bytes((folder / "chelsea.jpg").read_bytes())
    np.testing.assert_array_equal(cached.encode(str(copy)), first[0])
    assert len(cache) == 2  # same bytes elsewhere: a lookup, no new entry
    copy.write_bytes((folder / "flower.jpg").read_bytes())  # same name, new picture
    assert float(cached.encode(str(copy)) @ first[0]) < 0.9 and len(cache) == 3


def test_preprocess_and_encode_arrays_are_the_steps_of_encode(effnet, folder):
    picture, _ = read_image(folder / "rocket.jpg")
    pixels = effnet.preprocess(picture)
    assert pixels.shape == (3, 224, 224) and pixels.dtype == np.float32
    assert pixels.min() >= -1.0 and pixels.max() <= 1.0  # EfficientNet-Lite: mean = std = 0.5
    vector = effnet.encode_arrays(pixels[None])[0]
    np.testing.assert_allclose(vector, effnet.encode(str(folder / "rocket.jpg")), atol=1e-5)
    with pytest.raises(InvalidInputError, match=r"pixels must be \(n, 3, 224, 224\)"):
        effnet.encode_arrays(np.zeros((1, 3, 100, 100), dtype=np.float32))


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_with_the_same_vector(effnet, tmp_path, photos):
    big = Image.fromarray(photos["astronaut"]).resize((2048, 2048), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    big.save(buffer, format="JPEG", quality=95)
    (tmp_path / "big.jpg").write_bytes(buffer.getvalue())
    reduced, info = read_image(tmp_path / "big.jpg", min_side=512)  # what encode asks for
    assert (info.width, info.height) == (2048, 2048) and reduced.size == (512, 512)
    full, _ = read_image(tmp_path / "big.jpg")
    a, b = effnet.encode_arrays(np.stack([effnet.preprocess(reduced), effnet.preprocess(full)]))
    assert float(a @ b) > 0.98


def test_a_thin_panorama_is_cropped_before_it_is_resized(effnet, tmp_path, photos):
    """Resizing 60,000 x 3 pixels to a 256-pixel short side would build 5 G pixels first."""
    strip = np.repeat(photos["coffee"][200:203], 100, axis=1)  # 3 x 60,000 pixels
    Image.fromarray(strip).save(tmp_path / "strip.png")
    started = time.perf_counter()
    vector = effnet.encode(str(tmp_path / "strip.png"))
    assert time.perf_counter() - started < 5  # Pillow's buffers are not seen by tracemalloc
    assert vector.shape == (1280,) and np.isfinite(vector).all()
