"""Maps of embeddings: a PNG (matplotlib) or one self-contained interactive HTML page.

Both project the vectors to 2-D (see projection) and colour points by cluster, label or a
metadata field. The HTML page carries everything inline (no network): the points, their texts,
every colouring and each point's nearest neighbours in the ORIGINAL space (cosine, computed
here), because a 2-D layout distorts distances and neighbours should not be guessed from it.
Files are written atomically: a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import IO, Any

import numpy as np

from embedstack.analysis.projection import Projector, check_vectors, exact_neighbours
from embedstack.errors import InvalidInputError, StorageError

SUFFIXES = (".png", ".html", ".htm")
MAX_CATEGORIES = 20  # legend entries per colouring; rarer values share "other"
HTML_TEXT_CHARS = 500  # text kept per point in the page (hover shows less)
PNG_SIZE = (16, 12)  # inches at 100 dpi: 1600 × 1200 pixels
TEMPLATE = Path(__file__).with_name("map_template.html")

# tab20 without its greys, strong shades first: distinct at 10 and still readable at 20.
PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
    "#17becf", "#393b79", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#dbdb8d", "#9edae5", "#7b4173",
]  # fmt: skip
OTHER_COLOR = "#8c8c8c"  # values beyond the legend
MUTED_COLOR = "#cfcfcf"  # outliers (label -1) and missing values
PLAIN_COLOR = "#1f77b4"  # no colouring
VIRIDIS = [
    "#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30",
    "#fde725",
]  # fmt: skip
OUTLIER, MISSING, OTHER = "outlier", "(missing)", "other"
POINT_ALPHA, MUTED_ALPHA = 0.85, 0.55  # PNG: overlaps stay visible; grey points recede


@dataclass
class Coloring:
    """One way to colour the points: categories with a colour each, or numbers on a scale."""

    name: str
    kind: str  # "categorical" | "numeric" | "none"
    codes: list[int] = field(default_factory=list)  # categorical: index into categories
    categories: list[str] = field(default_factory=list)
    colors: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)  # numeric; None = missing

    def to_json(self) -> dict[str, Any]:
        if self.kind == "numeric":
            present = [v for v in self.values if v is not None]
            return {
                "name": self.name,
                "kind": "numeric",
                "values": self.values,
                "min": min(present, default=0.0),
                "max": max(present, default=0.0),
                "colors": VIRIDIS,
                "missing": MUTED_COLOR,
            }
        return {
            "name": self.name,
            "kind": self.kind,
            "codes": self.codes,
            "categories": self.categories,
            "colors": self.colors,
            "counts": self.counts,
        }


# ---- the public function -----------------------------------------------------------------


def write_map(
    path: str | Path,
    vectors: Any,
    *,
    texts: Sequence[str],
    ids: Sequence[Any] | None = None,
    metadata: Sequence[Mapping[str, Any] | None] | None = None,
    labels: Sequence[Any] | None = None,
    color_by: str | None = None,
    method: str = "umap",
    title: str | None = None,
    neighbours: int = 5,
    random_state: int | None = 42,
) -> Path:
    """Project `vectors` to 2-D and write a map; the format follows the suffix (.png, .html).

    `labels` (cluster ids, -1 = outlier, or class names) and every metadata field become
    colourings; `color_by` picks a metadata field (or "cluster"/"label" for `labels`), else
    `labels` colour the map when given. `neighbours`: how many nearest neighbours (cosine, in
    the original space) a click on a point lists in the HTML page.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidInputError(
            f"cannot write a map to {target.name!r}: use a .png or .html file name"
        )
    matrix = check_vectors(vectors)
    n = matrix.shape[0]
    texts = _check_texts(texts, n)
    id_list = [str(i) for i in range(n)] if ids is None else _check_ids(ids, n)
    rows = _check_metadata(metadata, n)
    if isinstance(neighbours, bool) or not isinstance(neighbours, Integral) or neighbours < 0:
        raise InvalidInputError(f"neighbours must be a whole number ≥ 0, got {neighbours!r}")
    colorings = _colorings(labels, rows, n)
    initial = _initial_coloring(colorings, color_by, labels is not None)
    figure_class = _figure_class() if suffix == ".png" else None  # fail before the slow part

    projector = Projector(method=method, random_state=random_state)
    coords = _normalise(projector.fit_transform(matrix))
    title = title if title is not None else "embedstack map"
    subtitle = f"{n:,} points · {projector.method_.upper()} projection"
    if figure_class is not None:
        _render_png(figure_class, target, coords, colorings[initial], title, subtitle)
    else:
        near, scores = nearest_neighbours(matrix, int(neighbours))
        payload = {
            "title": title,
            "method": projector.method_,
            "x": [round(float(v), 5) for v in coords[:, 0]],
            "y": [round(float(v), 5) for v in coords[:, 1]],
            "ids": id_list,
            "texts": [_shorten(text, HTML_TEXT_CHARS) for text in texts],
            "colorings": [coloring.to_json() for coloring in colorings],
            "initial": initial,
            "neighbours": near.tolist(),
            "scores": np.round(scores, 4).tolist(),
        }
        page = render_html(payload, title)
        _write_atomically(target, lambda out: out.write(page.encode("utf-8")))
    return target


# ---- input checks --------------------------------------------------------------------------


def _check_texts(texts: Any, n: int) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise InvalidInputError("texts must be a list of strings, one per vector")
    if len(texts) != n:
        raise InvalidInputError(f"texts has {len(texts)} items but vectors has {n} rows")
    bad = next((i for i, text in enumerate(texts) if not isinstance(text, str)), None)
    if bad is not None:
        raise InvalidInputError(f"texts[{bad}] is {type(texts[bad]).__name__}, not a string")
    return list(texts)


def _check_ids(ids: Any, n: int) -> list[str]:
    ids = ids if isinstance(ids, str) else list(ids)
    if isinstance(ids, str) or len(ids) != n:
        count = 1 if isinstance(ids, str) else len(ids)
        raise InvalidInputError(f"ids has {count} items but vectors has {n} rows")
    return [str(item) for item in ids]


def _check_metadata(metadata: Any, n: int) -> list[Mapping[str, Any]]:
    if metadata is None:
        return [{} for _ in range(n)]
    if isinstance(metadata, Mapping | str) or len(metadata) != n:
        count = 1 if isinstance(metadata, Mapping | str) else len(metadata)
        raise InvalidInputError(f"metadata has {count} items but vectors has {n} rows")
    rows: list[Mapping[str, Any]] = []
    for number, row in enumerate(metadata):
        if row is None:
            row = {}
        if not isinstance(row, Mapping):
            raise InvalidInputError(f"metadata[{number}] is {type(row).__name__}, not a dict")
        rows.append(row)
    return rows


# ---- colourings ----------------------------------------------------------------------------


def _colorings(labels: Any, rows: list[Mapping[str, Any]], n: int) -> list[Coloring]:
    """ "none", then `labels` (as "cluster" or "label"), then each metadata field."""
    colorings = [Coloring("none", "none", [0] * n, ["all points"], [PLAIN_COLOR], [n])]
    if labels is not None:
        values = list(np.asarray(labels).tolist()) if isinstance(labels, np.ndarray) else labels
        if isinstance(values, str) or len(values) != n:
            count = 1 if isinstance(values, str) else len(values)
            raise InvalidInputError(f"labels has {count} items but vectors has {n} rows")
        clusters = all(isinstance(v, Integral) and not isinstance(v, bool) for v in values)
        colorings.append(_categorical("cluster" if clusters else "label", values, clusters))
    fields: dict[str, None] = {}
    for row in rows:
        fields.update(dict.fromkeys(str(key) for key in row))
    for name in fields:
        values = [row.get(name) for row in rows]
        numeric = all(
            v is None or (isinstance(v, Real) and not isinstance(v, bool)) for v in values
        ) and any(v is not None for v in values)
        colorings.append(_numeric(name, values) if numeric else _categorical(name, values))
    return colorings


def _initial_coloring(colorings: list[Coloring], color_by: str | None, has_labels: bool) -> int:
    names = [coloring.name for coloring in colorings]
    if color_by is None:
        return 1 if has_labels else 0
    if color_by in names[1:]:
        return names.index(color_by, 1)
    if has_labels and color_by in ("cluster", "label", "labels"):
        return 1
    known = ", ".join(names[1 + has_labels :]) or "none"
    raise InvalidInputError(f"unknown color_by field {color_by!r}; metadata fields: {known}")


def _display(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Mapping | list | tuple):
        return _shorten(json.dumps(value, sort_keys=True, default=str), 60)
    return _shorten(str(value), 60)


def _categorical(name: str, values: Sequence[Any], clusters: bool = False) -> Coloring:
    """Up to MAX_CATEGORIES legend entries in natural order; the rest share "other"."""
    shown: list[str] = []
    raw: list[str | None] = []
    for value in values:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raw.append(None)
        elif clusters and value == -1:
            raw.append(OUTLIER)
        else:
            raw.append(_display(value))
    counts = Counter(v for v in raw if v not in (None, OUTLIER))
    if len(counts) > MAX_CATEGORIES:
        kept = {value for value, _ in counts.most_common(MAX_CATEGORIES - 1)}
    else:
        kept = set(counts)
    shown = sorted(kept, key=_natural_key)
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(shown))]
    extra = [
        (OTHER, OTHER_COLOR, any(v is not None and v != OUTLIER and v not in kept for v in raw)),
        (OUTLIER, MUTED_COLOR, OUTLIER in raw),
        (MISSING, MUTED_COLOR, None in raw),
    ]
    for label, color, present in extra:
        if present:
            shown.append(label)
            colors.append(color)
    index = {label: i for i, label in enumerate(shown)}
    codes = []
    for value in raw:
        if value is None:
            codes.append(index[MISSING])
        elif value == OUTLIER or value in kept:
            codes.append(index[value])
        else:
            codes.append(index[OTHER])
    tally = Counter(codes)
    return Coloring(
        name, "categorical", codes, shown, colors, [tally[i] for i in range(len(shown))]
    )


def _numeric(name: str, values: Sequence[Any]) -> Coloring:
    numbers: list[float | None] = []
    for value in values:
        number = None if value is None else float(value)
        numbers.append(number if number is not None and math.isfinite(number) else None)
    return Coloring(name, "numeric", values=numbers)


def _natural_key(value: str) -> tuple[tuple[int, int, str], ...]:
    """Numbers inside names in numeric order: "g2" before "g10", "2" before "10"."""
    parts = re.split(r"(\d+)", value.casefold())
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in parts)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _normalise(coords: np.ndarray) -> np.ndarray:
    """Shift and scale to [0, 1], keeping the aspect ratio (the page and PNG fit it)."""
    coords = np.asarray(coords, dtype=np.float64)[:, :2]
    low = coords.min(axis=0)
    span = float((coords.max(axis=0) - low).max()) or 1.0
    return (coords - low) / span


# ---- neighbours in the original space ------------------------------------------------------


def nearest_neighbours(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's `k` nearest other rows by cosine (exact, FAISS), and their cosines."""
    n = vectors.shape[0]
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros((n, 0), dtype=np.int64), np.zeros((n, 0), dtype=np.float32)
    found, distances = exact_neighbours(vectors, vectors, k + 1, "cosine")
    scores = 1.0 - distances
    # Drop each row itself; a duplicate can outrank it, then the last hit goes instead.
    itself = found == np.arange(n)[:, None]
    itself[~itself.any(axis=1), -1] = True
    keep = ~itself
    return found[keep].reshape(n, k), scores[keep].reshape(n, k)


# ---- PNG -----------------------------------------------------------------------------------


def _figure_class() -> Any:
    """matplotlib's Figure: drawn on the Agg canvas, so no display and no pyplot state."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise InvalidInputError(
            "a PNG map needs matplotlib: pip install 'embedstack[analysis]' (or write .html)"
        ) from exc
    return Figure


def _render_png(
    figure_class: Any,
    target: Path,
    coords: np.ndarray,
    coloring: Coloring,
    title: str,
    subtitle: str,
) -> None:
    n = coords.shape[0]
    size = float(np.clip(40_000 / n, 3, 60))  # marker area: big for few points, small for many
    figure = figure_class(figsize=PNG_SIZE, dpi=100)
    legend = coloring.kind == "categorical" and coloring.name != "none"
    figure.subplots_adjust(left=0.02, right=0.76 if legend else 0.9, bottom=0.02, top=0.92)
    axes = figure.add_subplot()
    figure.suptitle(title, fontsize=20, x=0.02, ha="left")
    colored = f" · coloured by {coloring.name}" if coloring.name != "none" else ""
    axes.set_title(subtitle + colored, fontsize=13, loc="left", color="#555555")
    x, y = coords[:, 0], coords[:, 1]
    if coloring.kind == "numeric":
        values = np.array([np.nan if v is None else v for v in coloring.values])
        missing = np.isnan(values)
        axes.scatter(x[missing], y[missing], s=size, c=MUTED_COLOR, linewidths=0)
        points = axes.scatter(
            x[~missing], y[~missing], s=size, c=values[~missing], cmap="viridis", linewidths=0
        )
        figure.colorbar(points, ax=axes, fraction=0.04, pad=0.01).set_label(
            coloring.name, fontsize=13
        )
    else:
        codes = np.asarray(coloring.codes)
        muted = {MUTED_COLOR, OTHER_COLOR}
        # Grey groups first, underneath; then the others, largest first so small ones show.
        order = sorted(
            range(len(coloring.categories)),
            key=lambda i: (coloring.colors[i] not in muted, -coloring.counts[i]),
        )
        for i in order:
            members = codes == i
            axes.scatter(
                x[members],
                y[members],
                s=size,
                c=coloring.colors[i],
                alpha=MUTED_ALPHA if coloring.colors[i] in muted else POINT_ALPHA,
                linewidths=0,
                label=f"{coloring.categories[i]} ({coloring.counts[i]:,})",
            )
        if legend:
            handles, names = axes.get_legend_handles_labels()
            by_name = dict(zip(names, handles, strict=True))
            ordered = [
                f"{c} ({k:,})" for c, k in zip(coloring.categories, coloring.counts, strict=True)
            ]
            axes.legend(
                [by_name[name] for name in ordered],
                ordered,
                title=coloring.name,
                loc="upper left",
                bbox_to_anchor=(1.01, 1.0),
                frameon=False,
                fontsize=12,
                title_fontsize=13,
                markerscale=max(1.0, 8 / math.sqrt(size)),
            )
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_aspect("equal", adjustable="datalim")
    for spine in axes.spines.values():
        spine.set_color("#dddddd")
    _write_atomically(target, lambda out: figure.savefig(out, format="png", dpi=100))


# ---- HTML ----------------------------------------------------------------------------------

_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def render_html(payload: dict[str, Any], title: str) -> str:
    """The page: the template with the title and the JSON payload filled in, safely.

    The JSON sits in a <script type="application/json"> block; "<", ">" and "&" are written
    as \\u escapes, so no text can close that block. The page's only script is allowed by its
    hash in the Content-Security-Policy, so even injected markup could run no code.
    """
    template = TEMPLATE.read_text(encoding="utf-8")
    script = _SCRIPT.search(template)
    if script is None:  # pragma: no cover - the template ships with the package
        raise RuntimeError(f"{TEMPLATE} has no inline script")
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode("utf-8")).digest())
    data = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        data = data.replace(char, escape)
    data = data.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    values = {
        "TITLE": html.escape(title),
        "DATA": data,
        "SCRIPT_HASH": f"sha256-{digest.decode('ascii')}",
    }
    # One pass: a text that contains a placeholder's name is never substituted again.
    return re.sub(r"__MAP_(TITLE|DATA|SCRIPT_HASH)__", lambda m: values[m.group(1)], template)


# ---- files ---------------------------------------------------------------------------------


def _write_atomically(target: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write next to the target, then rename over it: never a half-written map."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    except OSError as exc:
        raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(handle, "wb") as out:
            write(out)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a map is meant to be shared
        os.replace(temporary, target)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
