"""write_map: PNG maps read back with Pillow, the HTML map driven in a real browser (Debian's
chromium through Playwright, opened from file://), bad input, and the 20 Newsgroups map that
the README shows (docs/images/map-20newsgroups.png, rendered from real MiniLM embeddings)."""

from __future__ import annotations

import gzip
import json
import random
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embedstack.analysis import write_map
from embedstack.analysis.maps import (
    MUTED_ALPHA,
    MUTED_COLOR,
    PALETTE,
    POINT_ALPHA,
    VIRIDIS,
    nearest_neighbours,
)
from embedstack.errors import InvalidInputError, StorageError
from tests.conftest import SHARED_DATA, needs_shared_data, unit_vectors

PROJECT = Path(__file__).resolve().parents[2]
IMAGES = PROJECT / "docs" / "images"
NEWSGROUPS = SHARED_DATA / "20newsgroups" / "20news-bydate.jsonl.gz"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]

TOPICS = {
    "volcanoes": [
        "Volcanoes form where magma rises through the crust and erupts as lava and ash.",
        "Most active volcanoes sit along the edges of tectonic plates around the Pacific.",
        "Volcanic ash can ground aircraft hundreds of kilometres away from an eruption.",
        "A lava flow from the volcano buried the village road under black basalt.",
        "Geologists measure gas from the crater to predict when the volcano will erupt.",
        "The eruption of Vesuvius buried Pompeii under metres of volcanic ash.",
        "Magma that cools slowly underground forms granite instead of lava rock.",
        "Iceland's volcanoes erupt beneath glaciers, melting the ice into sudden floods.",
    ],
    "bread": [
        "Knead the bread dough for ten minutes until it feels smooth and elastic.",
        "Sourdough bread rises with a starter of wild yeast instead of packet yeast.",
        "Let the dough prove in a warm kitchen until it has doubled in size.",
        "Bake the loaf in a hot oven until the crust is brown and sounds hollow.",
        "Rye flour makes a dense, dark bread with a slightly sour taste.",
        "A baker shapes the dough into baguettes before the final rise.",
        "Brush the rolls with egg before baking to give them a shiny crust.",
        "Too much salt in the dough slows the yeast and the bread rises poorly.",
    ],
    "basketball": [
        "The point guard dribbled past two defenders and scored a layup.",
        "Basketball teams have five players on the court at a time.",
        "She sank a three-pointer from the corner as the buzzer sounded.",
        "The centre grabbed twelve rebounds and blocked four shots in the game.",
        "The coach called a timeout to draw up a play for the final possession.",
        "A slam dunk brought the whole basketball arena to its feet.",
        "Free throws decided the match after both teams missed late shots.",
        "The league's top scorer averaged thirty points a game this season.",
    ],
}
ATTACK = "Security note: </script><img src=x onerror=\"document.title='pwned'\"> stays plain text."


# ---- data ------------------------------------------------------------------------------------


class Sample:
    """25 real sentences (three topics and one with markup), embedded by MiniLM."""

    def __init__(self, model) -> None:
        self.texts = [text for texts in TOPICS.values() for text in texts] + [ATTACK]
        self.topics = [topic for topic, texts in TOPICS.items() for _ in texts] + ["security"]
        self.ids = [f"doc-{i:02d}" for i in range(len(self.texts))]
        self.vectors = model.encode(self.texts, batch_size=32, show_progress_bar=False)
        names = list(TOPICS)
        self.clusters = [names.index(t) if t in names else -1 for t in self.topics]
        self.metadata = [
            {"topic": topic, "length": len(text)}
            for topic, text in zip(self.topics, self.texts, strict=True)
        ]

    def nearest(self, index: int, k: int = 5) -> list[str]:
        """The k most cosine-similar other texts, by brute force."""
        scores = self.vectors @ self.vectors[index]
        scores[index] = -np.inf
        return [self.ids[j] for j in np.argsort(-scores)[:k]]


@pytest.fixture(scope="module")
def sample(model) -> Sample:
    return Sample(model)


def colours_in(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The distinct RGB colours of a PNG and how many pixels have each."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(np.int32)
    packed, counts = np.unique(
        pixels[:, 0] << 16 | pixels[:, 1] << 8 | pixels[:, 2], return_counts=True
    )
    return np.stack([packed >> 16, packed >> 8 & 255, packed & 255], axis=1), counts


def has_colour(
    colours: tuple[np.ndarray, np.ndarray],
    hex_colour: str,
    alpha: float = 1.0,
    tolerance: int = 6,
    pixels: int = 20,
) -> bool:
    """At least `pixels` pixels within `tolerance` of the colour, drawn over white at `alpha`."""
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    target = alpha * rgb + (1 - alpha) * 255
    values, counts = colours
    return int(counts[np.abs(values - target).max(axis=1) <= tolerance].sum()) >= pixels


def page_data(path: Path) -> dict:
    """The JSON block of an HTML map, as the page's script reads it."""
    page = path.read_text(encoding="utf-8")
    block = re.search(r'<script type="application/json" id="map-data">(.*?)</script>', page, re.S)
    assert block is not None
    return json.loads(block.group(1))


# ---- PNG -----------------------------------------------------------------------------------


def test_png_map_is_1600_by_1200_with_a_colour_per_cluster(sample, tmp_path):
    target = write_map(
        tmp_path / "map.png",
        sample.vectors,
        texts=sample.texts,
        labels=sample.clusters,
        method="pca",
        title="Three topics",
    )
    assert target == tmp_path / "map.png"
    with Image.open(target) as image:
        assert image.format == "PNG"
        assert image.size == (1600, 1200)
    colours = colours_in(target)
    for cluster in range(3):
        assert has_colour(colours, PALETTE[cluster], alpha=POINT_ALPHA), PALETTE[cluster]
    assert has_colour(colours, MUTED_COLOR, alpha=MUTED_ALPHA)  # the outlier, in grey
    assert not has_colour(colours, PALETTE[3], alpha=POINT_ALPHA)  # no fourth cluster
    assert [p.name for p in tmp_path.iterdir()] == ["map.png"]  # no temporary file left


def test_png_map_coloured_by_a_numeric_field_has_a_colour_scale(sample, tmp_path):
    target = write_map(
        tmp_path / "length.png",
        sample.vectors,
        texts=sample.texts,
        metadata=sample.metadata,
        color_by="length",
        method="pca",
    )
    colours = colours_in(target)
    assert has_colour(colours, VIRIDIS[0])  # both ends of the colour bar
    assert has_colour(colours, VIRIDIS[-1])
    assert not has_colour(colours, PALETTE[1], alpha=POINT_ALPHA)  # no categorical colours


def test_writing_again_replaces_the_whole_file(sample, tmp_path):
    target = tmp_path / "map.png"
    target.write_bytes(b"an old map that is much longer than nothing" * 10_000)
    write_map(target, sample.vectors, texts=sample.texts, method="pca")
    with Image.open(target) as image:
        image.verify()
    assert [p.name for p in tmp_path.iterdir()] == ["map.png"]


def test_a_failed_write_leaves_no_temporary_file(sample, tmp_path):
    blocked = tmp_path / "map.png"
    blocked.mkdir()  # a folder where the file should go: the final rename fails
    (blocked / "keep.txt").write_text("untouched")
    with pytest.raises(StorageError, match="cannot write") as caught:
        write_map(blocked, sample.vectors, texts=sample.texts, method="pca")
    assert "\n" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.png"]
    assert (blocked / "keep.txt").read_text() == "untouched"


@needs_shared_data
def test_map_of_20_newsgroups_for_the_readme(model):
    """1,000 posts (50 per newsgroup, subject and first 400 characters of the body) embedded by
    MiniLM (int8), UMAP, coloured by newsgroup: the picture in the README."""
    if not NEWSGROUPS.is_file():
        pytest.skip(f"no 20 Newsgroups file at {NEWSGROUPS}")
    with gzip.open(NEWSGROUPS, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    random.Random(0).shuffle(rows)
    taken: Counter = Counter()
    posts = []
    for row in rows:
        if row["split"] == "test" and taken[row["label"]] < 50:
            taken[row["label"]] += 1
            posts.append(row)
    texts = [
        (row["subject"] + ". " + " ".join(row["text"].split("\n\n", 1)[-1].split()))[:400]
        for row in posts
    ]
    vectors = model.encode(texts, batch_size=32, show_progress_bar=False)
    target = write_map(
        IMAGES / "map-20newsgroups.png",
        vectors,
        texts=texts,
        metadata=[{"newsgroup": row["label"]} for row in posts],
        color_by="newsgroup",
        title="20 Newsgroups: 1,000 posts embedded with all-MiniLM-L6-v2",
    )
    with Image.open(target) as image:
        assert image.size == (1600, 1200)
    colours = colours_in(target)
    assert len(taken) == 20
    missing = [c for c in PALETTE if not has_colour(colours, c, alpha=POINT_ALPHA)]
    assert not missing, f"newsgroup colours not drawn: {missing}"


# ---- HTML: the file itself -----------------------------------------------------------------


def test_html_map_is_one_file_with_no_network_and_no_way_out_of_its_json(sample, tmp_path):
    target = write_map(
        tmp_path / "map.html",
        sample.vectors,
        texts=sample.texts,
        ids=sample.ids,
        metadata=sample.metadata,
        labels=sample.clusters,
        method="pca",
        title="<b>Three</b> topics",
    )
    page = target.read_text(encoding="utf-8")
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page)  # nothing fetched
    assert "<b>Three</b>" not in page and "&lt;b&gt;Three&lt;/b&gt; topics" in page
    block = page.split('id="map-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in block and ">" not in block  # a text cannot close the block
    data = page_data(target)
    assert data["texts"] == sample.texts  # and yet every text comes back exactly
    assert data["ids"] == sample.ids
    assert [c["name"] for c in data["colorings"]] == ["none", "cluster", "topic", "length"]
    assert data["colorings"][data["initial"]]["name"] == "cluster"
    assert data["neighbours"][0] == [sample.ids.index(i) for i in sample.nearest(0)]


def test_html_colourings_group_rare_values_and_mark_missing_ones(tmp_path):
    n = 60
    vectors = unit_vectors(n, 16, seed=11)
    metadata = [
        {"author": f"author {i % 30}", "year": 2000 + i % 7, "draft": i % 2 == 0} for i in range(n)
    ]
    metadata[3] = {"author": None}
    target = write_map(
        tmp_path / "map.html",
        vectors,
        texts=[f"text {i}" for i in range(n)],
        metadata=metadata,
        color_by="year",
        method="pca",
    )
    data = page_data(target)
    by_name = {c["name"]: c for c in data["colorings"]}
    assert data["colorings"][data["initial"]]["name"] == "year"
    author = by_name["author"]
    assert len(author["categories"]) == 21  # 19 named, "other" and "(missing)"
    assert author["categories"][-2:] == ["other", "(missing)"]
    assert author["categories"][:4] == ["author 0", "author 1", "author 2", "author 4"]
    assert sum(author["counts"]) == n
    assert author["categories"][author["codes"][3]] == "(missing)"
    year = by_name["year"]
    assert year["kind"] == "numeric" and (year["min"], year["max"]) == (2000, 2006)
    assert year["values"][3] is None
    assert by_name["draft"]["categories"] == ["false", "true", "(missing)"]


def test_nearest_neighbours_are_exact_cosine_and_never_the_point_itself():
    vectors = unit_vectors(300, 32, seed=12) * np.linspace(1, 5, 300, dtype=np.float32)[:, None]
    vectors[7] = vectors[3]  # a duplicate outranks (ties) the point itself
    found, scores = nearest_neighbours(vectors, 4)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    for row in range(300):
        assert row not in found[row]
        np.testing.assert_allclose(scores[row], np.sort(similarity[row])[::-1][:4], atol=1e-5)
    assert found[3][0] == 7 and found[7][0] == 3
    assert nearest_neighbours(vectors[:3], 10)[0].shape == (3, 2)  # at most n - 1


# ---- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("map.svg", {}, "use a .png or .html file name"),
        ("map", {}, "use a .png or .html file name"),
        ("map.png", {"texts": ["only one"]}, "texts has 1 items but vectors has 25 rows"),
        ("map.html", {"ids": ["a", "b"]}, "ids has 2 items but vectors has 25 rows"),
        ("map.html", {"metadata": [{}] * 24}, "metadata has 24 items but vectors has 25 rows"),
        ("map.png", {"metadata": ["x"] * 25}, r"metadata\[0\] is str, not a dict"),
        ("map.png", {"labels": [0] * 26}, "labels has 26 items but vectors has 25 rows"),
        ("map.png", {"color_by": "colour"}, "unknown color_by field 'colour'; metadata fields: "),
        ("map.html", {"neighbours": -1}, "neighbours must be a whole number"),
        ("map.png", {"method": "isomap"}, "unknown projection method 'isomap'"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(sample, tmp_path, name, options, message):
    arguments = {"texts": sample.texts, "metadata": sample.metadata} | options
    with pytest.raises(InvalidInputError, match=message) as caught:
        write_map(tmp_path / name, sample.vectors, **arguments)
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_nan_vectors_are_refused(tmp_path):
    vectors = unit_vectors(10, 8)
    vectors[5, 1] = np.nan
    with pytest.raises(InvalidInputError, match="row 5 contains NaN"):
        write_map(tmp_path / "map.html", vectors, texts=["t"] * 10)


def test_without_matplotlib_a_png_is_refused_at_once_and_html_still_works(
    sample, tmp_path, monkeypatch
):
    for name in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)  # what an uninstalled package looks like
    with pytest.raises(InvalidInputError, match=r"needs matplotlib: pip install"):
        write_map(tmp_path / "map.png", sample.vectors, texts=sample.texts, method="pca")
    assert list(tmp_path.iterdir()) == []
    write_map(tmp_path / "map.html", sample.vectors, texts=sample.texts, method="pca")
    assert page_data(tmp_path / "map.html")["texts"] == sample.texts


def test_maps_module_loads_matplotlib_and_umap_only_when_drawing():
    """They are an optional extra: importing the module must not need them."""
    code = (
        "import sys, embedstack.analysis.maps; "
        "print(sorted(m for m in ('matplotlib', 'umap') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"


# ---- HTML in a real browser ----------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"no browser at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def html_map(sample, tmp_path_factory) -> Path:
    return write_map(
        tmp_path_factory.mktemp("html") / "map.html",
        sample.vectors,
        texts=sample.texts,
        ids=sample.ids,
        metadata=sample.metadata,
        labels=sample.clusters,
        method="pca",
        neighbours=5,
    )


def sync_expect(locator):
    """Playwright's auto-waiting assertions (imported here: the PNG tests run without it)."""
    return pytest.importorskip("playwright.sync_api").expect(locator)


class MapPage:
    """One browser tab on a map; records script errors, dialogs and every request."""

    def __init__(self, browser, path: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1300, "height": 850})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on(
            "dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss())
        )
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("#canvas[data-ready]", state="attached", timeout=30_000)

    def point(self, index: int) -> tuple[float, float]:
        where = self.page.evaluate(f"embedstackMap.screenPoint({index})")
        return where["x"], where["y"]

    def points(self) -> np.ndarray:
        found = self.page.evaluate(
            "Array.from({length: embedstackMap.count}, (_, i) => embedstackMap.screenPoint(i))"
        )
        return np.array([[p["x"], p["y"]] for p in found])

    def pixel(self, index: int) -> list[int]:
        """The canvas pixel under point `index`, as drawn."""
        return self.page.evaluate(
            """(i) => {
                const canvas = document.getElementById("canvas");
                const rect = canvas.getBoundingClientRect();
                const p = embedstackMap.screenPoint(i), r = canvas.width / rect.width;
                const x = Math.round((p.x - rect.left) * r), y = Math.round((p.y - rect.top) * r);
                return Array.from(canvas.getContext("2d").getImageData(x, y, 1, 1).data);
            }""",
            index,
        )

    def next_frame(self) -> None:
        self.page.evaluate(
            "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
        )

    def close(self) -> None:
        self.page.close()


@pytest.fixture
def open_map(browser):
    pages: list[MapPage] = []

    def opener(path: Path) -> MapPage:
        pages.append(MapPage(browser, path))
        return pages[-1]

    yield opener
    for page in pages:
        assert page.errors == [], page.errors
        assert set(page.requests) == {page.page.url}, page.requests  # the file only: no network
        page.close()


def separated(points: np.ndarray, index: int) -> float:
    """Distance in pixels from point `index` to the nearest other point on screen."""
    others = np.delete(points, index, axis=0)
    return float(np.linalg.norm(others - points[index], axis=1).min())


def test_hover_shows_the_text_and_id(sample, html_map, open_map):
    view = open_map(html_map)
    points = view.points()
    index = max(range(len(sample.texts) - 1), key=lambda i: separated(points, i))
    tooltip = view.page.locator("#tooltip")
    assert tooltip.is_hidden()
    view.page.mouse.move(*points[index])
    sync_expect(tooltip).to_be_visible()
    sync_expect(tooltip).to_contain_text(sample.ids[index])
    sync_expect(tooltip).to_contain_text(sample.texts[index][:60])
    sync_expect(tooltip).to_contain_text(f"cluster: {sample.clusters[index]}")
    view.page.mouse.move(2, 2)  # empty corner
    sync_expect(tooltip).to_be_hidden()


def test_click_lists_the_nearest_neighbours_of_the_original_space(sample, html_map, open_map):
    view = open_map(html_map)
    points = view.points()
    index = max(range(len(sample.texts) - 1), key=lambda i: separated(points, i))
    view.page.mouse.click(*points[index])
    entries = view.page.locator("#neighbours li")
    sync_expect(entries).to_have_count(5)
    shown = entries.evaluate_all("items => items.map(item => item.dataset.id)")
    assert shown == sample.nearest(index)
    scores = [float(s) for s in view.page.locator("#neighbours .score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True) and 0 < scores[-1] <= scores[0] < 1
    sync_expect(view.page.locator("#selected")).to_contain_text(sample.texts[index])
    # A neighbour in the list can be followed; Escape clears the selection.
    first = shown[0]
    entries.first.click()
    sync_expect(view.page.locator("#selected")).to_contain_text(first)
    following = entries.evaluate_all("items => items.map(item => item.dataset.id)")
    assert following == sample.nearest(sample.ids.index(first))
    view.page.keyboard.press("Escape")
    sync_expect(view.page.locator("#details")).to_be_hidden()


def test_colour_by_changes_the_colours_and_the_legend(sample, html_map, open_map):
    view = open_map(html_map)
    select = view.page.locator("#color-by")
    options = select.locator("option").all_inner_texts()
    assert options == ["none", "cluster", "topic", "length"]
    sync_expect(select).to_have_value("1")
    legend = view.page.locator("#legend")
    sync_expect(legend).to_contain_text("outlier")
    volcano, bread = 0, 8
    before = [view.pixel(volcano), view.pixel(bread)]
    assert before[0] != before[1]  # two clusters, two colours

    select.select_option(label="topic")
    sync_expect(legend).to_contain_text("security")
    assert legend.locator("li").all_inner_texts()[0].split() == ["basketball", "8"]
    view.next_frame()
    after = [view.pixel(volcano), view.pixel(bread)]
    assert after[0] != before[0]  # volcanoes: cluster 0's colour, then the 4th topic's
    colours = view.page.evaluate("Array.from({length: 25}, (_, i) => embedstackMap.colorOf(i))")
    assert len(set(colours[:8])) == len(set(colours[8:16])) == 1 and colours[0] != colours[8]

    select.select_option(label="length")
    sync_expect(legend.locator(".scale")).to_be_visible()
    view.next_frame()
    assert view.pixel(volcano) != after[0]
    select.select_option(label="none")
    view.next_frame()
    assert view.pixel(volcano)[:3] == view.pixel(bread)[:3]  # one colour for all


def test_text_with_markup_is_shown_as_text(sample, html_map, open_map):
    view = open_map(html_map)
    attack = len(sample.texts) - 1
    view.page.mouse.move(*view.point(attack))
    tooltip = view.page.locator("#tooltip")
    sync_expect(tooltip).to_contain_text(sample.ids[attack])
    assert "</script><img src=x onerror=" in tooltip.inner_text()
    view.page.mouse.click(*view.point(attack))
    sync_expect(view.page.locator("#selected")).to_contain_text("<img src=x onerror=")
    assert view.page.locator("img").count() == 0  # no element was made from the text
    assert view.page.title() == "embedstack map"  # and its handler never ran
    assert view.dialogs == []


def test_pan_and_zoom_move_the_points_and_reset_brings_them_back(sample, html_map, open_map):
    view = open_map(html_map)
    start = view.points()
    spread = np.linalg.norm(start[0] - start[8])
    centre = start.mean(axis=0)
    view.page.mouse.move(*centre)
    view.page.mouse.wheel(0, -600)  # zoom in around the cursor
    view.next_frame()
    zoomed = view.points()
    assert np.linalg.norm(zoomed[0] - zoomed[8]) > 1.5 * spread
    view.page.mouse.move(*centre)
    view.page.mouse.down()
    view.page.mouse.move(centre[0] + 120, centre[1] + 40, steps=5)
    view.page.mouse.up()
    np.testing.assert_allclose(view.points() - zoomed, [[120, 40]] * len(start), atol=1.5)
    assert view.page.locator("#details").is_hidden()  # a drag is not a click
    view.page.locator("#reset").click()
    np.testing.assert_allclose(view.points(), start, atol=0.01)


def test_20000_points_load_fast_and_answer_hover(open_map, tmp_path):
    """The page stays usable at 20,000 points: load, draw and hover are measured."""
    n = 20_000
    rng = np.random.default_rng(13)
    centres = rng.normal(size=(20, 384))
    vectors = centres[rng.integers(0, 20, n)] + rng.normal(scale=0.6, size=(n, 384))
    words = ["embedding", "vector", "map", "cluster", "point", "search", "text", "model"]
    texts = [" ".join(rng.choice(words, 60)) for _ in range(n)]  # ~500 characters each
    started = time.perf_counter()
    target = write_map(
        tmp_path / "big.html",
        vectors.astype(np.float32),
        texts=texts,
        metadata=[{"group": f"g{g}", "score": float(s)} for g, s in rng.integers(0, 50, (n, 2))],
        method="pca",
    )
    written = time.perf_counter() - started
    started = time.perf_counter()
    view = open_map(target)
    loaded = time.perf_counter() - started
    draw_ms = view.page.evaluate("embedstackMap.lastDrawMs")
    view.page.locator("#color-by").select_option(label="group")
    view.next_frame()
    recolour_ms = view.page.evaluate("embedstackMap.lastDrawMs")
    view.page.mouse.move(*view.point(123))
    sync_expect(view.page.locator("#tooltip")).to_be_visible()
    size_mb = target.stat().st_size / 1e6
    print(
        f"\n20,000-point map: written in {written:.1f} s, {size_mb:.1f} MB, loaded in "
        f"{loaded:.2f} s, a frame drawn in {draw_ms:.0f} ms ({recolour_ms:.0f} ms recoloured)"
    )
    assert loaded < 10 and draw_ms < 250 and recolour_ms < 250
    assert size_mb < 20
