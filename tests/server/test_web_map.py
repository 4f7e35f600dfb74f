"""The web page's Map and Clusters views in a real browser (Debian's chromium driven by
Playwright) against a real server on 127.0.0.1 and the real model: the map drawn on a canvas,
hover and click on its points, similar and recommended chunks, the clusters as text."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.analysis.corpus import LABELS, TEXTS
from tests.server import test_web_page as web
from tests.server.test_web_page import IMAGES, expect, open_page

# the browser and a fresh page per test, as the page's other tests have them
browser = web.browser
page = web.page

NAME = "map-topics"
EMPTY = "map-empty"
UNSAFE = "The parser must print <img src=x onerror=alert(1)> as plain text, never as HTML."
DUPLICATE = "The striker scored twice in the second half and won the match."
IDS = [f"{label}-{i % 8}" for i, label in enumerate(LABELS)]
COUNT = len(TEXTS) + 2
FIRST_DRAW = 120_000  # ms: the first UMAP in a process compiles its numba code


@pytest.fixture(scope="module")
def topics(live_server) -> str:
    """Collection "map-topics": 32 sentences in four topics, a near-copy of one and a text
    that looks like HTML; and the empty "map-empty"."""
    records = [
        {"id": id_, "text": text, "metadata": {"topic": label, "file_name": f"{label}.txt"}}
        for id_, text, label in zip(IDS, TEXTS, LABELS, strict=True)
    ]
    records.append({"id": "unsafe", "text": UNSAFE, "metadata": {"topic": "programming"}})
    records.append({"id": "duplicate", "text": DUPLICATE, "metadata": {"topic": "football"}})
    with live_server.client() as http:
        for name in (NAME, EMPTY):
            created = http.post("/collections", json={"name": name})
            assert created.status_code == 201, created.text
        added = http.post(f"/collections/{NAME}/records", json={"records": records})
        assert added.status_code == 200, added.text
    return live_server.url


def topic(id_: str) -> str:
    return {"unsafe": "programming", "duplicate": "football"}.get(id_, id_.rsplit("-", 1)[0])


def open_map(page, url: str) -> None:
    open_page(page, url, NAME)
    page.click("#tab-map")
    expect(page.locator("#map-card")).to_be_visible()
    expect(page.locator("#search-card")).to_be_hidden()
    canvas = page.locator("#map-canvas")
    expect(canvas).to_have_attribute("data-state", "drawn", timeout=FIRST_DRAW)


def point(page, id_: str) -> dict:
    """Where the point of record `id_` is drawn, in the page's pixels (the map in view)."""
    page.locator("#map-stage").scroll_into_view_if_needed()
    found = page.evaluate("id => window.embedstackMap.position(id)", id_)
    assert found, f"{id_} is not on the map"
    return found


def inked_pixels(page) -> int:
    """Pixels of the canvas that something was drawn on."""
    return page.evaluate(
        """() => {
            const canvas = document.getElementById("map-canvas");
            const data = canvas.getContext("2d")
                .getImageData(0, 0, canvas.width, canvas.height).data;
            let inked = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i]) inked++;
            return inked;
        }"""
    )


def related(page) -> list[str]:
    return page.locator("[data-testid=related-item]").evaluate_all(
        "items => items.map(item => item.dataset.id)"
    )


# ---- the tests -------------------------------------------------------------------------------


def test_map_draws_every_point_with_hover_click_similar_and_recommend(page, topics):
    open_map(page, topics)
    canvas = page.locator("#map-canvas")
    assert int(canvas.get_attribute("data-points")) == COUNT
    expect(page.locator("#map-count")).to_contain_text(f"{COUNT} points")
    expect(page.locator("#map-count")).to_contain_text("UMAP")
    expect(page.locator("#map-empty")).to_be_hidden()
    radius = 5  # pixels of one point at this size of collection (CSS px)
    assert inked_pixels(page) >= COUNT * radius * radius, "the points were not drawn"
    assert sorted(page.evaluate("window.embedstackMap.ids()")) == sorted(
        [*IDS, "unsafe", "duplicate"]
    )

    # the legend: a colour and a label per cluster, sizes adding up to every point
    legend = page.locator("[data-testid=legend-item]")
    assert legend.count() >= 2
    sizes = [int(n) for n in page.locator("#map-legend .legend-size").all_text_contents()]
    assert sum(sizes) == COUNT
    assert all(re.match(r"^\d+: \w", label) for label in legend.all_text_contents())

    # hover: the point's text in a tooltip
    tooltip = page.locator("#map-tooltip")
    spot = point(page, "space-3")
    page.mouse.move(spot["x"], spot["y"])
    expect(tooltip).to_be_visible()
    expect(tooltip).to_contain_text("NASA plans to return astronauts to the Moon")
    page.mouse.move(5, 5)
    expect(tooltip).to_be_hidden()

    # click: its details, then similar chunks (ringed on the map, the point itself left out)
    page.mouse.click(spot["x"], spot["y"])
    detail = page.locator("#map-detail")
    expect(detail).to_be_visible()
    expect(detail).to_have_attribute("data-id", "space-3")
    expect(page.locator("#map-detail-text")).to_contain_text("Artemis program")
    expect(page.locator("#map-detail-meta")).to_contain_text("space.txt")
    page.click("#map-similar")
    expect(page.locator("#related-heading")).to_contain_text("Similar to")
    expect(page.locator("#related-summary")).to_contain_text("ringed on the map")
    similar = related(page)
    assert similar and "space-3" not in similar
    assert [topic(id_) for id_ in similar[:2]] == ["space", "space"], similar

    # recommend more like this: the chunk is liked; like or dislike a result to refine
    page.click("#map-recommend")
    expect(page.locator("#related-heading")).to_have_text("Recommended (1 liked)")
    expect(page.locator("[data-testid=taste-chip]")).to_have_count(1)
    recommended = related(page)
    assert recommended and "space-3" not in recommended
    assert topic(recommended[0]) == "space", recommended
    page.locator("[data-testid=related-like]").first.click()
    expect(page.locator("#related-heading")).to_have_text("Recommended (2 liked)")
    expect(page.locator("[data-testid=taste-chip]")).to_have_count(2)
    assert recommended[0] not in related(page)  # a liked example is not recommended
    page.locator("[data-testid=related-dislike]").last.click()
    expect(page.locator("#related-heading")).to_have_text("Recommended (2 liked, 1 disliked)")
    page.select_option("#rec-strategy", "sum_scores")
    expect(page.locator("#related-summary")).to_contain_text("ringed on the map")
    assert related(page)

    # a result's text shows that chunk on the map
    first = page.locator("[data-testid=related-item]").first
    first_id = first.get_attribute("data-id")
    first.locator("[data-testid=related-text]").click()
    expect(detail).to_have_attribute("data-id", first_id)

    # stored text is shown as text, never parsed as HTML
    spot = point(page, "unsafe")
    page.mouse.move(spot["x"], spot["y"])
    expect(tooltip).to_contain_text("<img src=x onerror=alert(1)>")
    page.mouse.click(spot["x"], spot["y"])
    expect(page.locator("#map-detail-text")).to_contain_text("<img src=x onerror=alert(1)>")
    assert page.locator("#map-card img, #map-tooltip img").count() == 0

    # the picture for the docs: a point selected, its recommendations, a tooltip
    spot = point(page, "space-3")
    page.mouse.click(spot["x"], spot["y"])
    page.click("#related-clear")
    page.click("#map-recommend")
    expect(page.locator("#related-summary")).to_contain_text("ringed on the map")
    spot = point(page, "cooking-0")
    page.mouse.move(spot["x"], spot["y"])
    expect(tooltip).to_be_visible()
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.locator("#map-card").screenshot(path=str(IMAGES / "web-map.png"))

    # a legend entry shows its cluster alone; the keyboard steps through the points
    legend.first.click()
    expect(legend.first).to_have_attribute("aria-pressed", "true")
    legend.first.click()
    expect(legend.first).to_have_attribute("aria-pressed", "false")
    canvas.focus()
    page.keyboard.press("Escape")
    expect(detail).to_be_hidden()
    page.keyboard.press("ArrowRight")
    expect(detail).to_be_visible()
    expect(tooltip).to_be_visible()

    # another projection, drawn again on request
    page.select_option("#map-method", "pca")
    page.fill("#map-clusters", "4")
    page.click("#map-submit")
    expect(page.locator("#map-count")).to_contain_text("PCA")
    expect(page.locator("#map-count")).to_contain_text("4 clusters")
    assert int(canvas.get_attribute("data-points")) == COUNT
    expect(legend).to_have_count(4)


def test_zoom_and_pan_keep_hover_on_the_points(page, topics):
    open_map(page, topics)
    box = page.locator("#map-canvas").bounding_box()
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    before = point(page, "cooking-0")
    page.mouse.move(*centre)
    page.mouse.wheel(0, -400)  # zoom in around the centre
    expect(page.locator("#map-reset")).to_be_visible()
    after = point(page, "cooking-0")
    assert abs(after["x"] - centre[0]) > abs(before["x"] - centre[0]) or abs(
        after["y"] - centre[1]
    ) > abs(before["y"] - centre[1])
    page.mouse.move(centre[0], centre[1])
    page.mouse.down()
    page.mouse.move(centre[0] + 60, centre[1] + 40, steps=4)
    page.mouse.up()
    moved = point(page, "cooking-0")
    assert round(moved["x"] - after["x"]) == 60 and round(moved["y"] - after["y"]) == 40
    expect(page.locator("#map-detail")).to_be_hidden()  # a drag is not a click
    for id_ in ("cooking-0", "space-0", "football-0", "programming-0"):
        spot = point(page, id_)
        if 0 < spot["x"] - box["x"] < box["width"] and 0 < spot["y"] - box["y"] < box["height"]:
            page.mouse.move(spot["x"], spot["y"])
            expect(page.locator("#map-tooltip")).to_be_visible()
    page.click("#map-reset")
    expect(page.locator("#map-reset")).to_be_hidden()
    assert point(page, "cooking-0") == before


def test_clusters_view_lists_sizes_keywords_and_examples(page, topics):
    open_page(page, topics, NAME)
    page.click("#tab-clusters")
    expect(page.locator("#clusters-card")).to_be_visible()
    expect(page.locator("#map-card")).to_be_hidden()
    summary = page.locator("#clusters-summary")
    expect(summary).to_contain_text(f"of {COUNT} chunks")
    clusters = page.locator("[data-testid=cluster]")
    assert clusters.count() >= 2

    page.fill("#clusters-n", "4")
    page.click("#clusters-submit")
    expect(summary).to_contain_text(f"4 clusters of {COUNT} chunks · k-means")
    expect(clusters).to_have_count(4)
    sizes = [
        int(text.split()[0])
        for text in page.locator("[data-testid=cluster-size]").all_text_contents()
    ]
    assert sum(sizes) == COUNT and sizes == sorted(sizes, reverse=True)
    for i in range(4):
        cluster = clusters.nth(i)
        expect(cluster.locator("[data-testid=cluster-label]")).to_contain_text(f"{i}: ")
        assert cluster.locator("[data-testid=cluster-keywords] li").count() >= 2
        examples = cluster.locator("[data-testid=cluster-examples] li")
        assert 1 <= examples.count() <= 3
        ids = examples.evaluate_all("items => items.map(item => item.dataset.id)")
        assert len({topic(id_) for id_ in ids}) == 1, ids  # a cluster's examples agree

    # k-means in a 5-D UMAP space; HDBSCAN finds the number itself
    page.select_option("#clusters-method", "kmeans-umap")
    page.click("#clusters-submit")
    expect(summary).to_contain_text(f"4 clusters of {COUNT} chunks · k-means after UMAP")
    expect(clusters).to_have_count(4)
    page.select_option("#clusters-method", "hdbscan")
    expect(page.locator("#clusters-n")).to_be_disabled()
    page.select_option("#clusters-method", "kmeans")

    # near-duplicates
    page.click("#duplicates-details summary")
    page.fill("#duplicates-threshold", "0.9")
    page.click("#duplicates-submit")
    expect(page.locator("#duplicates-summary")).to_contain_text("1 group of near-duplicates")
    group = page.locator("[data-testid=duplicate-group]")
    expect(group).to_have_count(1)
    expect(group).to_contain_text(DUPLICATE)

    # an example's "More like this" searches from it
    example = clusters.first.locator("[data-testid=cluster-examples] li").first
    example_id = example.get_attribute("data-id")
    example.get_by_role("button", name="More like this").click()
    expect(page.locator("#search-card")).to_be_visible()
    expect(page.locator("#like-banner")).to_be_visible()
    expect(page.locator("#results-summary")).to_contain_text(re.compile(r"^\d+ results?"))
    found = page.locator("[data-testid=hit]").evaluate_all("hits => hits.map(h => h.dataset.id)")
    assert found and example_id not in found


def test_empty_collections_and_refused_requests(page, topics):
    open_page(page, topics, EMPTY)
    page.click("#tab-map")
    expect(page.locator("#map-empty")).to_contain_text("This collection is empty")
    page.click("#tab-clusters")
    expect(page.locator("#clusters-summary")).to_contain_text("This collection is empty")

    page.select_option("#collection-select", NAME)
    expect(page.locator("[data-testid=cluster]").first).to_be_visible()
    page.fill("#clusters-n", "40")
    page.click("#clusters-submit")
    banner = page.locator("#error-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Clustering failed")
    expect(banner).to_contain_text(f"cannot make 40 clusters from {COUNT} items")
    expect(banner).to_contain_text("422")
    page.click("#error-close")
    page.fill("#clusters-n", "2.5")
    page.click("#clusters-submit")
    expect(banner).to_contain_text("whole number")
    expect(page.locator("#clusters-n")).to_have_attribute("aria-invalid", "true")

    with httpx.Client(base_url=topics, timeout=60) as http:
        assert http.get(f"/collections/{NAME}").json()["count"] == COUNT  # nothing changed


def test_phone_sized_map(page, topics):
    page.set_viewport_size({"width": 375, "height": 740})
    open_page(page, topics, NAME)
    page.click("#tab-map")
    expect(page.locator("#map-canvas")).to_have_attribute("data-state", "drawn", timeout=FIRST_DRAW)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width}px wide on a 375px screen"
    tabs = page.locator("#view-tabs").bounding_box()
    stage = page.locator("#map-stage").bounding_box()
    assert tabs["y"] < stage["y"] and stage["width"] <= 375
    spot = point(page, "football-0")
    page.mouse.click(spot["x"], spot["y"])
    expect(page.locator("#map-detail")).to_be_visible()
