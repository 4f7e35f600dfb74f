"""The web page of `embedstack serve` in a real browser (Debian's chromium driven by Playwright),
against a real server on 127.0.0.1: the real model, real files and the local LLM."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from embedstack.server.config import ServerConfig
from tests.http_helpers import send_chat_completion
from tests.ingest.makers import HTML_PAGE, write_docx, write_pdf
from tests.server.conftest import API_KEY, LiveServer, running

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PROJECT = Path(__file__).resolve().parents[2]
IMAGES = PROJECT / "docs" / "images"

pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no browser at {CHROMIUM}")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect

PRINTER = """# Office printer guide

## Paper jams

The office printer jams when paper is loaded crooked in the tray. Fan the stack, square its
edges and push the guides against it before closing the tray.

## Toner

Replace the toner cartridge when the status light blinks orange. Shake the new cartridge
gently from side to side before you slide it in.

## Network printing

Add the printer by its address 10.0.0.42 and choose the PostScript driver.
"""
GARDEN = """# Garden notes

## Tomatoes

Water tomatoes deeply twice a week rather than a little every day, so the roots grow down.
Pinch out the side shoots that grow between the stem and the leaves.

## Compost

Turn the compost heap every month and keep it as damp as a wrung-out sponge.
"""
NOTES = "Security note: the string <img src=x onerror=alert(1)> must show up as plain text.\n"
GEOLOGY = [
    ["Volcanoes form where magma rises through the crust and erupts as lava and ash.",
     "Most active volcanoes sit along the edges of tectonic plates around the Pacific.",
     "Volcanic ash can ground aircraft hundreds of kilometres away from the eruption."],
    ["Coral reefs grow in warm shallow seas and shelter a quarter of all marine species.",
     "Reefs are built over centuries by tiny animals that secrete limestone skeletons.",
     "Warmer water bleaches corals, which expel the algae that feed them."],
    ["Glaciers carve valleys as they slide downhill under their own enormous weight.",
     "A glacier leaves moraines of rock and gravel where its ice finally melts.",
     "Many alpine glaciers have shrunk by half since the year 1900."],
]  # fmt: skip


# ---- the served collection and the browser ---------------------------------------------------


@dataclass
class Handbook:
    url: str
    name: str
    count: int


def upload(http: httpx.Client, name: str, paths: list[Path], **form) -> dict:
    """Upload files through the API and wait for the ingest job's report."""
    files = [("files", (path.name, path.read_bytes())) for path in paths]
    answer = http.post(f"/collections/{name}/files", files=files, data=form)
    assert answer.status_code == 202, answer.text
    job = answer.json()["job"]
    deadline = time.monotonic() + 120
    while job["state"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.1)
        job = http.get(f"/jobs/{job['id']}").json()
    assert job["state"] == "done" and not job["report"]["failed"], job
    return job["report"]


@pytest.fixture(scope="module")
def handbook(live_server, tmp_path_factory) -> Handbook:
    """Collection "handbook" on the shared server: two Markdown files, a text file and a PDF
    (a chunk per page), uploaded through the API."""
    folder = tmp_path_factory.mktemp("documents")
    (folder / "printer.md").write_text(PRINTER, encoding="utf-8")
    (folder / "garden.md").write_text(GARDEN, encoding="utf-8")
    (folder / "notes.txt").write_text(NOTES, encoding="utf-8")
    write_pdf(folder / "geology.pdf", GEOLOGY, header="Field Guide to the Earth")
    with live_server.client() as http:
        created = http.post("/collections", json={"name": "handbook"})
        assert created.status_code == 201, created.text
        upload(http, "handbook", [folder / n for n in ("printer.md", "garden.md", "notes.txt")])
        upload(http, "handbook", [folder / "geology.pdf"], chunk_tokens="48")
        count = http.get("/collections/handbook").json()["count"]
    return Handbook(live_server.url, "handbook", count)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh browser profile per test; a JavaScript exception on the page fails the test."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def open_page(page, url: str, collection: str = "handbook") -> None:
    """Open the page and pick `collection` (the shared server may hold others)."""
    page.goto(url)
    picker = page.locator("#collection-select")
    expect(picker.locator(f'option[value="{collection}"]')).to_have_count(1)
    if picker.input_value() != collection:
        picker.select_option(collection)
    expect(page.locator("#stat-model")).not_to_have_text("–")


def search(page, query: str, mode: str = "hybrid") -> None:
    """Search and wait for this search's results (the old ones are cleared first)."""
    page.fill("#search-query", query)
    page.select_option("#search-mode", mode)
    page.evaluate("document.getElementById('results-summary').textContent = ''")
    page.click("#search-submit")
    expect(page.locator("#results-summary")).to_have_text(re.compile(r"^(\d+ results?|No results)"))
    expect(page.locator("#results")).not_to_have_attribute("aria-busy", "true")


def hits(page) -> list[dict]:
    """What each result shows: id, text, source, page, heading."""
    return page.locator("[data-testid=hit]").evaluate_all(
        """items => items.map(item => {
            const text = (testid) => {
                const node = item.querySelector(`[data-testid=${testid}]`);
                return node ? node.textContent : null;
            };
            return {id: item.dataset.id, text: text("hit-text"), source: text("hit-source"),
                    page: text("hit-page"), heading: text("hit-heading")};
        })"""
    )


def squash(text: str) -> str:
    return " ".join(text.split())


# ---- the tests -------------------------------------------------------------------------------


def test_stats_and_search_show_text_source_page_and_heading(page, handbook):
    open_page(page, handbook.url)
    expect(page.locator("#stat-count")).to_have_text(str(handbook.count))
    expect(page.locator("#stat-files")).to_have_text("4")
    expect(page.locator("#stat-formats")).to_contain_text("pdf 1")
    expect(page.locator("#stat-model")).to_have_text("all-MiniLM-L6-v2")
    expect(page.locator("#stat-dim")).to_have_text("384")

    search(page, "paper loaded crooked in the tray")
    first = hits(page)[0]
    assert "loaded crooked in the tray" in first["text"]
    assert first["source"] == "printer.md"
    assert first["heading"] == "Office printer guide > Paper jams"

    search(page, "coral reefs in warm shallow seas", mode="dense")
    first = hits(page)[0]
    assert first["source"] == "geology.pdf" and first["page"] == "p. 2"
    assert "Coral reefs grow in warm shallow seas" in first["text"]

    search(page, "PostScript", mode="keyword")
    assert [h["source"] for h in hits(page)] == ["printer.md"]
    assert "PostScript driver" in hits(page)[0]["text"]

    # server text is shown as text, never parsed as HTML
    search(page, "security note plain text", mode="keyword")
    assert "<img src=x onerror=alert(1)>" in hits(page)[0]["text"]
    assert page.locator("#results img").count() == 0


def test_filter_keeps_only_the_chosen_file(page, handbook):
    open_page(page, handbook.url)
    search(page, "water the paper")
    assert {"printer.md", "garden.md"} <= {h["source"] for h in hits(page)}

    page.locator("[data-testid=filter-field]").first.fill("file_name")
    page.locator("[data-testid=filter-value]").first.fill("garden.md")
    search(page, "water the paper")
    found = hits(page)
    assert found and {h["source"] for h in found} == {"garden.md"}
    assert "Water tomatoes deeply" in found[0]["text"]

    # a JSON filter: validated in the page before anything is sent
    page.locator(".filter-remove").first.click()
    page.click("#filter-json-details summary")
    page.fill("#filter-json", '{"page": 3')
    expect(page.locator("#filter-error")).to_contain_text("not valid JSON")
    expect(page.locator("#filter-json")).to_have_attribute("aria-invalid", "true")
    page.click("#search-submit")
    assert {h["source"] for h in hits(page)} == {"garden.md"}  # nothing was searched
    page.fill("#filter-json", '{"page": 3}')
    expect(page.locator("#filter-error")).to_have_text("")
    search(page, "rock and ice")
    found = hits(page)
    assert found and {(h["source"], h["page"]) for h in found} == {("geology.pdf", "p. 3")}

    # a filter the server refuses: its error message is shown
    page.fill("#filter-json", '{"page": {"$near": 3}}')
    page.click("#search-submit")
    banner = page.locator("#error-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("$near")
    expect(banner).to_contain_text(re.compile(r"\(4\d\d, "))  # the status


def test_more_like_this_finds_similar_chunks_without_the_chunk_itself(page, handbook):
    open_page(page, handbook.url)
    search(page, "replace the toner cartridge")
    toner = hits(page)[0]
    assert toner["heading"] == "Office printer guide > Toner"
    page.locator("[data-testid=more-like-this]").first.click()
    expect(page.locator("#like-banner")).to_be_visible()
    expect(page.locator("#like-banner")).to_contain_text("Replace the toner cartridge")
    expect(page.locator(f'[data-testid=hit][data-id="{toner["id"]}"]')).to_have_count(0)
    found = hits(page)
    assert found and toner["id"] not in {h["id"] for h in found}
    assert found[0]["source"] == "printer.md"  # the printer's other sections are nearest
    page.click("#like-clear")
    expect(page.locator("#like-banner")).to_be_hidden()
    expect(page.locator(f'[data-testid=hit][data-id="{toner["id"]}"]')).to_have_count(1)


def test_ask_streams_the_answer_with_clickable_citations(page, handbook):
    open_page(page, handbook.url)
    page.fill("#search-k", "4")
    search(page, "paper jams in the printer tray")
    page.fill("#ask-question", "Why does the office printer jam?")
    # record the answer's length each time it changes while it is being streamed
    page.evaluate(
        """() => {
            window.answerLengths = [];
            const answer = document.getElementById("answer");
            new MutationObserver(() => {
                if (answer.getAttribute("aria-busy") === "true") {
                    window.answerLengths.push(answer.textContent.length);
                }
            }).observe(answer, {childList: true, characterData: true, subtree: true});
        }"""
    )
    page.click("#ask-submit")
    expect(page.locator("#answer")).to_have_attribute("aria-busy", "true")
    expect(page.locator("#ask-stop")).to_be_visible()
    expect(page.locator("#answer")).to_have_attribute("aria-busy", "false", timeout=90_000)
    lengths = page.evaluate("window.answerLengths")
    answer = page.locator("#answer").text_content()
    assert answer.strip(), "the answer is empty"
    assert len({n for n in lengths if n}) >= 2, f"the answer did not stream in: {lengths}"
    expect(page.locator("#ask-submit")).to_be_enabled()
    expect(page.locator("#answer-note")).to_contain_text("smollm2")

    # every passage the answer was written from is a chip; the best one is the paper-jam section
    chips = page.locator("[data-testid=source-chip]")
    assert chips.count() >= 1
    expect(chips.first).to_contain_text("printer.md")
    markers = page.locator("[data-testid=citation]")
    popup = page.locator("#citation-popup")
    if markers.count():  # the model wrote [n] markers: each shows its source's quote
        marker = markers.first
        marker.click()
        expect(popup).to_be_visible()
        expect(marker).to_have_attribute("aria-expanded", "true")
        number = marker.get_attribute("data-number")
        expect(page.locator("#citation-title")).to_contain_text(f"[{number}]")
        assert squash(page.locator("#citation-quote").text_content())
        page.click("#citation-close")
        expect(popup).to_be_hidden()
    chips.first.click()
    expect(popup).to_be_visible()
    expect(chips.first).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#citation-title")).to_contain_text("[1] printer.md")
    expect(page.locator("#citation-meta")).to_contain_text("printer.md")
    quote = squash(page.locator("#citation-quote").text_content())
    assert "The office printer jams when paper is loaded crooked in the tray" in quote
    if chips.count() > 1:  # another source shows its own quote
        chips.last.click()
        expect(chips.first).to_have_attribute("aria-expanded", "false")
        assert squash(page.locator("#citation-quote").text_content()) != quote

    chips.first.click()
    page.evaluate("window.scrollTo(0, 0)")
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / "web-page.png"), full_page=True)

    # a phone-sized screen: one column, nothing wider than the screen
    page.set_viewport_size({"width": 375, "height": 740})
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width}px wide on a 375px screen"
    cards = [page.locator(f".{card}").bounding_box() for card in ("search-card", "ask-card")]
    assert cards[0]["x"] == cards[1]["x"] and cards[0]["y"] < cards[1]["y"]  # stacked
    page.evaluate("document.getElementById('ask-heading').scrollIntoView({block: 'start'})")
    page.screenshot(path=str(IMAGES / "web-page-phone.png"))


def test_upload_follows_the_ingest_to_its_report(page, handbook, tmp_path):
    open_page(page, handbook.url)
    page.click("#create-details summary")
    page.fill("#new-collection-name", "inbox")
    page.click("#create-submit")
    expect(page.locator("#collection-select")).to_have_value("inbox")
    expect(page.locator("#stat-count")).to_have_text("0")

    files = [write_docx(tmp_path / "kitchen.docx"), tmp_path / "bikes.html", tmp_path / "scan.pdf"]
    files[1].write_text(HTML_PAGE, encoding="utf-8")
    files[2].write_bytes(b"%PDF-1.4\nthis is not really a PDF\n")
    page.set_input_files("#upload-files", [str(path) for path in files])
    expect(page.locator("#upload-chosen")).to_have_text(
        "3 files: kitchen.docx, bikes.html, scan.pdf"
    )
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.click("#upload-submit")
    expect(page.locator("#upload-state")).to_have_text("Done", timeout=60_000)
    # the progress came from the job's event stream, not from polling /jobs/{id}
    jobs = [url.split("/jobs/", 1)[1] for url in requests if "/jobs/" in url]
    assert len(jobs) == 1 and jobs[0].endswith("/events"), requests
    progress = page.locator("#upload-progress")
    assert progress.evaluate("bar => [bar.value, bar.max]") == [3, 3]
    expect(page.locator("#upload-counts")).to_contain_text("3 / 3 files")
    report = page.locator("#upload-report")
    expect(report).to_contain_text("2 added")
    expect(report).to_contain_text("1 failed")
    failed = page.locator("[data-testid=report-failed] li")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("scan.pdf — ")
    assert len(failed.text_content().split(" — ", 1)[1].strip()) > 3  # a reason is given

    # the stats were read again and the new chunks are searchable
    expect(page.locator("#stat-files")).to_have_text("2")
    assert int(page.locator("#stat-count").text_content()) >= 2
    search(page, "keep knife blades sharp")
    first = hits(page)[0]
    assert first["source"] == "kitchen.docx" and "cut away from your body" in first["text"]


def test_server_errors_are_shown_in_a_banner(page, handbook):
    open_page(page, handbook.url)
    page.click("#create-details summary")
    page.fill("#new-collection-name", "handbook")
    page.click("#create-submit")
    banner = page.locator("#error-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Creating the collection failed")
    expect(banner).to_contain_text("409")
    expect(page.locator("#error-message")).to_contain_text("handbook")
    page.click("#error-close")
    expect(banner).to_be_hidden()


def test_api_key_prompt_and_stored_key(page, keyed_server):
    # the key is not ASCII: a browser sends it as Latin-1 bytes, so that is what is sent here
    latin1 = {"Authorization": f"Bearer {API_KEY}".encode("latin-1")}
    with httpx.Client(base_url=keyed_server.url, headers=latin1, timeout=60) as http:
        created = http.post("/collections", json={"name": "private"})
        assert created.status_code == 201, created.text
    page.goto(keyed_server.url)
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#key-reason")).to_contain_text("needs an API key")
    page.fill("#key-input", "wrong-key")
    page.click("#key-save")
    expect(dialog).to_be_visible()
    expect(page.locator("#key-reason")).to_contain_text("refused")
    page.fill("#key-input", API_KEY)
    page.press("#key-input", "Enter")
    expect(dialog).to_be_hidden()
    expect(page.locator("#collection-select")).to_have_value("private")
    expect(page.locator("#stat-count")).to_have_text("0")
    assert page.evaluate("localStorage.getItem('embedstack.apiKey')") == API_KEY

    page.reload()  # the stored key is sent: no prompt
    expect(page.locator("#collection-select")).to_have_value("private")
    expect(page.locator("#stat-model")).to_have_text("all-MiniLM-L6-v2")
    expect(dialog).to_be_hidden()


# ---- answers checked against the sources, from an LLM endpoint that invents ----------------

OFFICE = {
    "installed": "The IT team installed the new printer on March 3, 2021, next to the kitchen.",
    "jams": "The printer on floor two jams when paper is loaded crooked.",
    "colour": "A colour printer was installed upstairs on June 9, 2022 for the <b>design</b> team.",
    "toner": "Replace the toner cartridge when the status light blinks orange.",
    "coffee": "The coffee machine in the kitchen needs descaling every month.",
    "lunch": "Lunch is served in the canteen between noon and two o'clock.",
}
QUESTION = "When was the printer installed?"
# The first sentence is what "installed" says; the second is invented (a maker and a year no
# source names) and cites a source that does not say it.
REPLY = "The printer was installed on March 3, 2021 [1]. It was made by Acme in 1987 [2]."
SUPPORTED = "The printer was installed on March 3, 2021"
INVENTED = "It was made by Acme in 1987."


@dataclass
class Endpoint:
    url: str
    requests: list[dict]


@pytest.fixture(scope="module")
def llm_endpoint():
    """An OpenAI-compatible chat endpoint on 127.0.0.1 that always answers REPLY (streamed in
    pieces when asked to), and records every request."""
    requests: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append(body)
            # slow enough for the page to show the text streaming in
            send_chat_completion(self, REPLY, bool(body.get("stream")), piece=6, pause=0.02)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield Endpoint(f"http://127.0.0.1:{httpd.server_port}/v1", requests)
    httpd.shutdown()


@pytest.fixture(scope="module")
def office(tmp_path_factory, llm_endpoint) -> LiveServer:
    """A server whose LLM is `llm_endpoint`, with collection "office" (OFFICE's records)."""
    root = tmp_path_factory.mktemp("office-collections")
    config = ServerConfig(collections=root, llm="openai:invents", llm_base_url=llm_endpoint.url)
    with running(config) as live:
        with live.client() as http:
            assert http.post("/collections", json={"name": "office"}).status_code == 201
            records = [{"id": key, "text": text} for key, text in OFFICE.items()]
            added = http.post("/collections/office/records", json={"records": records})
            assert added.status_code == 200, added.text
        yield live


def ask(page, question: str, mode: str) -> None:
    """Ask in `mode` and wait for the whole answer."""
    page.select_option("#ask-mode", mode)
    page.fill("#ask-question", question)
    page.click("#ask-submit")  # the note is "busy" from the click until the answer is shown
    expect(page.locator("#answer-note")).not_to_have_attribute("data-state", "busy")
    expect(page.locator("#answer")).to_have_attribute("aria-busy", "false")


def test_generative_answer_marks_the_sentence_no_source_supports(page, office):
    open_page(page, office.url, "office")
    expect(page.locator("#ask-mode")).to_have_value("auto")
    ask(page, QUESTION, "generative")

    supported = page.locator("#answer [data-testid=supported-sentence]")
    unsupported = page.locator("#answer [data-testid=unsupported-sentence]")
    expect(supported).to_have_count(1)
    expect(unsupported).to_have_count(1)
    assert squash(supported.text_content()) == f"{SUPPORTED} [1]."
    # the verified citation is a button showing the source that says it
    supported.locator("[data-testid=citation]").click()
    expect(page.locator("#citation-popup")).to_be_visible()
    expect(page.locator("#citation-quote")).to_have_text(OFFICE["installed"])

    # the invented sentence: no citation (its [2] did not check), marked, and says why
    expect(unsupported).to_contain_text(INVENTED)
    expect(unsupported.locator(".badge")).to_have_text("unsupported")
    expect(unsupported.locator("[data-testid=citation]")).to_have_count(0)
    reason = unsupported.get_attribute("title")
    assert reason.startswith("Not supported by the sources: no source sentence says this"), reason
    assert unsupported.get_attribute("aria-description") == reason
    style = unsupported.evaluate("node => getComputedStyle(node).textDecorationStyle")
    assert style == "wavy"
    expect(page.locator("#answer-fallback")).to_be_hidden()
    expect(page.locator("#answer-note")).to_contain_text("1 sentence is not supported")
    expect(page.locator("#answer-note")).to_contain_text("[2]")  # the citation removed
    expect(page.locator("#answer-note")).to_contain_text("invents")  # the LLM's name


def test_auto_answer_quotes_the_sources_when_the_model_is_not_supported(page, office):
    open_page(page, office.url, "office")
    page.evaluate(
        """() => {
            window.streamed = "";
            const answer = document.getElementById("answer");
            new MutationObserver(() => {
                const busy = answer.getAttribute("aria-busy") === "true";
                if (busy) window.streamed = answer.textContent;
            }).observe(answer, {childList: true, characterData: true, subtree: true});
        }"""
    )
    ask(page, QUESTION, "auto")
    assert "Acme" in page.evaluate("window.streamed")  # the model's text streamed in…

    answer = page.locator("#answer")
    expect(answer).not_to_contain_text("Acme")  # …and was replaced by the sources' words
    fallback = page.locator("#answer-fallback")
    expect(fallback).to_be_visible()
    expect(fallback).to_contain_text(
        "The model's answer was not supported by the sources, so here is what they say"
    )
    expect(page.locator("#answer-fallback-reason")).to_contain_text("no source sentence says this")
    page.click("#answer-raw-details summary")
    expect(page.locator("#answer-raw")).to_have_text(REPLY)

    # one quoted sentence per line, each with its source's citation
    quoted = answer.locator("[data-testid=supported-sentence]")
    expect(quoted).to_have_count(2)
    expect(answer.locator("[data-testid=unsupported-sentence]")).to_have_count(0)
    expect(quoted.nth(0)).to_contain_text(OFFICE["installed"].rstrip("."))
    expect(quoted.nth(1)).to_contain_text("installed upstairs on June 9, 2022")
    first, second = (quoted.nth(i).bounding_box() for i in range(2))
    assert second["y"] >= first["y"] + first["height"] - 1  # the second is below the first
    for i in range(2):
        expect(quoted.nth(i).locator("[data-testid=citation]")).to_have_count(1)


def test_extractive_answer_quotes_with_citations_and_marked_evidence(page, office, llm_endpoint):
    open_page(page, office.url, "office")
    page.select_option("#ask-mode", "extractive")
    expect(page.locator("#ask-mode-hint")).to_contain_text("no model is asked")
    calls = len(llm_endpoint.requests)
    ask(page, QUESTION, "extractive")
    assert len(llm_endpoint.requests) == calls  # no LLM was called

    answer = page.locator("#answer")
    quoted = answer.locator("[data-testid=supported-sentence]")
    expect(quoted).to_have_count(2)
    expect(page.locator("#answer-fallback")).to_be_hidden()
    expect(page.locator("#answer-note")).to_contain_text("no model was asked")
    buttons = answer.locator("[data-testid=citation]")
    expect(buttons).to_have_count(2)
    buttons.nth(1).click()
    expect(page.locator("#citation-quote")).to_have_text(OFFICE["colour"])
    # the document's markup is text, never HTML
    expect(quoted.nth(1)).to_contain_text("for the <b>design</b> team")

    # the evidence: each sentence with its source's [n], the dates asked for marked
    evidence = page.locator("[data-testid=evidence]")
    assert evidence.count() >= 3
    expect(evidence.first).to_contain_text(OFFICE["installed"])
    marks = page.locator("#answer-evidence mark").all_text_contents()
    assert marks[:2] == ["March 3, 2021", "June 9, 2022"], marks
    source = evidence.first.locator("[data-testid=evidence-source]")
    expect(source).to_have_text("1")
    source.click()
    expect(page.locator("#citation-title")).to_contain_text("[1]")
    expect(page.locator("#citation-quote")).to_have_text(OFFICE["installed"])
    assert page.locator("#answer-box b").count() == 0


# ---- an image collection: search by an example image, thumbnails -----------------------------


def test_image_collection_searches_by_example_and_shows_thumbnails(page, live_server, tmp_path):
    from tests.ingest.photos import query_photo, write_photo_folder

    written = write_photo_folder(tmp_path / "album")
    with live_server.client() as http:
        created = http.post("/collections", json={"name": "album", "model": "efficientnet-lite0"})
        assert created.status_code == 201, created.text
        upload(http, "album", [path for files in written.values() for path in files])
    open_page(page, live_server.url, "album")
    expect(page.locator("#stat-model")).to_have_text("efficientnet-lite0")
    expect(page.locator("#image-query")).to_be_visible()

    page.set_input_files("#search-image", str(query_photo(tmp_path, "flower")))
    expect(page.locator("#results-summary")).to_have_text(re.compile(r"^\d+ results?"))
    sources = [hit["source"] for hit in hits(page)[:3]]
    assert sorted(sources) == ["flower-crop.webp", "flower-mirrored.png", "flower.jpg"]
    thumbnail = page.locator("[data-testid=hit-thumb]").first
    expect(thumbnail).to_have_attribute("src", re.compile(r"^blob:"))
    page.wait_for_function("document.querySelector('[data-testid=hit-thumb]').naturalWidth > 0")
    assert thumbnail.evaluate("img => Math.max(img.naturalWidth, img.naturalHeight)") == 160

    page.set_input_files("#search-image", [])  # typed words search the file names
    search(page, "china")
    assert {hit["source"] for hit in hits(page)} == {
        "china.jpg",
        "china-mirrored.png",
        "china-crop.webp",
    }
