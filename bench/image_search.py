"""Image search quality and speed: CNN embeddings against a colour-histogram baseline.

    .venv/bin/python bench/image_search.py [--stamps /usr/share/tuxpaint/stamps] [--int8]

Data: the photographs among Tux Paint's stamps, Debian package `tuxpaint-stamps-default`
(2022.06.04, GPL-2, `make image-data` installs it; the images are in the package, nothing is
downloaded at run time): real photos of objects cut out on a transparent background (laid on
white when read), one folder per kind. Ten folders with photos, not drawings, are the
classes (CLASSES below; "cartoon" sub-folders and SVG files are left out).

For every encoder, side by side in one run:
- p@10: same-class precision of the 10 nearest other images (image-to-image search, the query
  left out), averaged over all images as queries;
- kNN accuracy: stratified 5-fold cross-validation, cosine k-NN with k = 5 and k = 10;
- images/s: `encode(paths)` end to end (decode, resize, crop, CNN; batches of 32 on the
  backend's sessions, two one-thread sessions on 2 cores) and the CNN alone (`encode_arrays`
  on all preprocessed pixels as one batch, so on ONNX Runtime one session on one core);
- cosine of each backend's vectors to the fp32 ONNX ones (mean / min).
The baseline is an 8x8x8 RGB histogram, Hellinger-normalised (square root, then L2).

`--int8` also builds ONNX Runtime static QDQ int8 models (per-channel weights, calibrated on
scikit-image's and scikit-learn's bundled photos, never on the bench images) and reports them
as candidates: none is a shipped backend unless it is faithful (mean cosine >= 0.99, min >=
0.97 to fp32).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import cpu_line

CLASSES = (
    "animals/birds",
    "animals/fish",
    "animals/insects",
    "animals/mammals/bovines",
    "food/fruit",
    "food/vegetables",
    "household/tools",
    "plants/flowers",
    "space/planets",
    "sports",
)


def load_stamps(root: Path) -> tuple[list[str], np.ndarray, list[str]]:
    paths, labels = [], []
    for label, folder in enumerate(CLASSES):
        files = sorted((root / folder).glob("*.png"))
        if not files:
            raise SystemExit(f"no PNG files in {root / folder}: run `make image-data`")
        paths += [str(f) for f in files]
        labels += [label] * len(files)
    return paths, np.array(labels), list(CLASSES)


def colour_histograms(paths: list[str]) -> np.ndarray:
    """8x8x8 RGB histogram of the whole picture, Hellinger-normalised."""
    from embedstack.models.image_files import read_image

    out = np.empty((len(paths), 512), dtype=np.float32)
    for row, path in enumerate(paths):
        pixels = np.asarray(read_image(path)[0], dtype=np.uint16) // 32
        bins = (pixels[..., 0] * 64 + pixels[..., 1] * 8 + pixels[..., 2]).ravel()
        hist = np.bincount(bins, minlength=512).astype(np.float32)
        out[row] = np.sqrt(hist / hist.sum())
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def precision_at(vectors: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)  # leave the query out
    nearest = np.argsort(-similarity, axis=1)[:, :k]
    return float((labels[nearest] == labels[:, None]).mean())


def knn_accuracy(vectors: np.ndarray, labels: np.ndarray, k: int) -> float:
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    knn = KNeighborsClassifier(n_neighbors=k, metric="cosine")
    return float(cross_val_score(knn, vectors, labels, cv=folds).mean())


def timed(function, *args, repeats: int = 2):
    """The best of `repeats` runs (the machine is shared): (seconds, result)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function(*args)
        best = min(best, time.perf_counter() - started)
    return best, result


def calibration_pixels(model, n: int = 96) -> np.ndarray:
    """Preprocessed crops and flips of the photos bundled with scikit-image and scikit-learn."""
    import skimage.data as data
    from PIL import Image
    from sklearn.datasets import load_sample_images

    names = ("astronaut", "chelsea", "coffee", "rocket", "cat", "immunohistochemistry")
    photos = [getattr(data, name)() for name in names] + list(load_sample_images().images)
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        image = Image.fromarray(photos[i % len(photos)]).convert("RGB")
        w, h = image.size
        side = int(min(w, h) * rng.uniform(0.5, 1.0))
        left, top = rng.integers(0, w - side + 1), rng.integers(0, h - side + 1)
        crop = image.crop((left, top, left + side, top + side))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        out.append(model.preprocess(crop))
    return np.stack(out)


def static_int8(fp32: Path, target: Path, calibration: np.ndarray, variant: str) -> Path:
    """ONNX Runtime static QDQ quantisation, per-channel int8 weights, uint8 activations."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(
                [{"pixels": calibration[i : i + 8]} for i in range(0, len(calibration), 8)]
            )

        def get_next(self):
            return next(self.batches, None)

    prepared = target.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(prepared))
    convs = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type == "Conv"]
    exclude = [convs[0], convs[-1]] if "edges" in variant else []
    method = CalibrationMethod.Percentile if "percentile" in variant else CalibrationMethod.MinMax
    with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints its progress
        _quantize(quantize_static, prepared, target, Reader(), method, exclude)
    return target


def _quantize(quantize_static, prepared, target, reader, method, exclude) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    quantize_static(
        str(prepared),
        str(target),
        reader,
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=method,
        nodes_to_exclude=exclude,
        extra_options={"CalibPercentile": 99.99} if method == CalibrationMethod.Percentile else {},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stamps", type=Path, default=Path("/usr/share/tuxpaint/stamps"))
    parser.add_argument("--models", default="efficientnet-lite0,mobilenet-v2")
    parser.add_argument("--int8", action="store_true", help="also try static int8 models")
    args = parser.parse_args()

    from embedstack import load_model
    from embedstack.models import find_spec
    from embedstack.models.image_cnn import ImageEncoder, onnx_model_file
    from embedstack.models.image_files import read_image
    from embedstack.models.onnx_backend import OnnxTransformer

    paths, labels, classes = load_stamps(args.stamps)
    counts = np.bincount(labels)
    print(cpu_line())
    print(
        f"data: {len(paths)} photos in {len(classes)} classes "
        f"({min(counts)}-{max(counts)} a class) from {args.stamps}\n"
    )
    header = (
        f"{'encoder':68} {'p@10':>6} {'kNN k=5':>8} {'kNN k=10':>9} {'img/s':>7} "
        f"{'CNN img/s':>10} {'cos to fp32 mean/min':>21}"
    )
    print(header)
    print("-" * len(header), flush=True)

    def row(label, vectors, per_second, cnn_per_second=None, cosine=None) -> None:
        cnn_text = f"{cnn_per_second:10.1f}" if cnn_per_second else f"{'-':>10}"
        cos_text = f"{cosine[0]:.4f} / {cosine[1]:.4f}" if cosine else "-"
        print(
            f"{label:68} {precision_at(vectors, labels):6.3f} "
            f"{knn_accuracy(vectors, labels, 5):8.3f} {knn_accuracy(vectors, labels, 10):9.3f} "
            f"{per_second:7.1f} {cnn_text} {cos_text:>21}",
            flush=True,
        )

    seconds, vectors = timed(colour_histograms, paths)
    row("RGB histogram 8x8x8 (Hellinger)", vectors, len(paths) / seconds)

    for name in args.models.split(","):
        onnx_model = load_model(name, backend="onnx")
        torch_model = load_model(name, backend="torch")
        pixels = np.stack([onnx_model.preprocess(read_image(p)[0]) for p in paths])
        reference = None
        encoders: list[tuple[str, ImageEncoder]] = [("onnx", onnx_model), ("torch", torch_model)]
        if args.int8:
            fp32_file = onnx_model_file(name, onnx_model.recipe, find_spec(name).locate())
            calibration = calibration_pixels(onnx_model)
            work = Path(tempfile.mkdtemp(prefix="int8-"))
            for variant in ("minmax", "percentile", "minmax-edges", "percentile-edges"):
                started = time.perf_counter()
                file = static_int8(fp32_file, work / f"{variant}.onnx", calibration, variant)
                build = time.perf_counter() - started
                runner = OnnxTransformer(file)
                model = ImageEncoder(name, f"int8 static {variant}", runner, onnx_model.recipe)
                encoders.append((f"int8 static QDQ {variant} (built in {build:.0f} s)", model))
        for backend, model in encoders:
            end_to_end, vectors = timed(model.encode, paths)
            cnn, _ = timed(model.encode_arrays, pixels)
            if reference is None:
                reference = vectors
            cosines = (vectors * reference).sum(axis=1)
            row(
                f"{name} {backend}",
                vectors,
                len(paths) / end_to_end,
                len(paths) / cnn,
                (float(cosines.mean()), float(cosines.min())),
            )


if __name__ == "__main__":
    main()
