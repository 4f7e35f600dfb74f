// The embedstack web page: collections, search, ask (streamed) and upload, against the HTTP API
// in docs/http-api.md. Plain ES module, no build step. Server text is only ever put into the page
// as text (textContent / text nodes), never parsed as HTML.

const KEY_STORE = "embedstack.apiKey";
const COLLECTION_STORE = "embedstack.collection";
const NAME_RE = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$/;
const CITATION_RE = /\[(\d+(?:\s*[,;]\s*\d+)*)\]/g;
const ASK_K = 5;
const ASK_MAX_TOKENS = 256;
const LONG_TEXT = 420; // characters of a hit shown before "Show more"

const $ = (id) => document.getElementById(id);

const state = {
  collection: "",
  info: null,
  likeId: null,
  searchSeq: 0,
  askController: null,
  uploadController: null,
  session: `web-${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`,
  activeCitationButton: null,
};

// ---------------------------------------------------------------------------------------------
// HTTP: the API key, the error envelope, server-sent events over fetch

class ApiError extends Error {
  constructor(status, message, { code = null, type = null, param = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.type = type;
    this.param = param;
  }

  static async from(response) {
    let text = "";
    try {
      text = await response.text();
    } catch {
      // the body could not be read; the status still says what happened
    }
    let error = null;
    try {
      const body = JSON.parse(text);
      error = body && typeof body.error === "object" && body.error ? body.error : null;
      if (!error && body && typeof body.detail === "string") error = { message: body.detail };
    } catch {
      // not JSON: a proxy's page or plain text
    }
    const fallback = text.trim().slice(0, 300) || response.statusText || "request failed";
    return new ApiError(response.status, String(error?.message || fallback), error || {});
  }
}

function storedKey() {
  try {
    return localStorage.getItem(KEY_STORE) || "";
  } catch {
    return "";
  }
}

function storeKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORE, key);
    else localStorage.removeItem(KEY_STORE);
  } catch {
    // storage disabled: the key lasts as long as the page
  }
  memoryKey = key;
}

let memoryKey = "";
const currentKey = () => storedKey() || memoryKey;

/** fetch `path` with the key; 401 asks for a key and retries. Returns JSON, or the Response
 * itself when `raw` (for streams). Errors are thrown as ApiError. */
async function api(path, { method = "GET", json, body, signal, raw = false } = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = { Accept: raw ? "text/event-stream, application/json" : "application/json" };
    const key = currentKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    let payload = body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(json);
    }
    let response;
    try {
      response = await fetch(path, { method, headers, body: payload, signal });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, "The server could not be reached. Is `embedstack serve` running?");
    }
    if (response.status === 401 && attempt < 3) {
      const error = await ApiError.from(response);
      const reason = key ? `The server refused the key: ${error.message}` : "This server needs an API key.";
      if (await promptForKey(reason)) continue;
      throw error;
    }
    if (!response.ok) throw await ApiError.from(response);
    if (raw) return response;
    if (response.status === 204) return null;
    return response.json();
  }
}

/** Server-sent events from a fetch Response: yields {event, data} per event. */
async function* sseEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const parse = (block) => {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    return data.length ? { event, data: data.join("\n") } : null;
  };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      // normalise line ends, keeping a trailing \r until we know whether \n follows
      const held = buffer.endsWith("\r") ? "\r" : "";
      buffer = buffer.slice(0, buffer.length - held.length).replace(/\r\n?/g, "\n");
      const blocks = buffer.split("\n\n");
      buffer = blocks.pop() + held;
      for (const block of blocks) {
        const event = parse(block);
        if (event) yield event;
      }
    }
    const last = parse(buffer.replace(/\r\n?/g, "\n"));
    if (last) yield last;
  } finally {
    reader.releaseLock();
  }
}

function parseData(data) {
  try {
    return JSON.parse(data);
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Errors and the key prompt

function showError(err, context) {
  if (err && err.name === "AbortError") return;
  console.error(context, err);
  const banner = $("error-banner");
  $("error-title").textContent = context ? `${context}:` : "Error:";
  let message = err instanceof Error ? err.message : String(err);
  if (err instanceof ApiError && err.status) {
    const details = [err.status, err.code, err.param && `field “${err.param}”`].filter(Boolean);
    message += ` (${details.join(", ")})`;
  }
  $("error-message").textContent = message;
  banner.hidden = false;
}

function clearError() {
  $("error-banner").hidden = true;
}

let keyPrompt = null;

/** Show the key dialog; resolves true once a key is saved, false when cancelled. */
function promptForKey(reason) {
  if (keyPrompt) return keyPrompt;
  const dialog = $("key-dialog");
  $("key-reason").textContent = reason || "This server needs an API key.";
  $("key-input").value = "";
  $("key-forget").hidden = !currentKey();
  keyPrompt = new Promise((resolve) => {
    const done = (saved) => {
      dialog.removeEventListener("close", onClose);
      keyPrompt = null;
      resolve(saved);
    };
    const onClose = () => {
      const key = $("key-input").value.trim();
      if (dialog.returnValue === "save" && key) {
        storeKey(key);
        updateKeyButton();
        done(true);
      } else {
        done(false);
      }
    };
    dialog.addEventListener("close", onClose);
  });
  dialog.returnValue = "";
  if (!dialog.open) dialog.showModal();
  $("key-input").focus();
  return keyPrompt;
}

function updateKeyButton() {
  $("key-button").textContent = currentKey() ? "API key ✓" : "API key";
}

// ---------------------------------------------------------------------------------------------
// Health, models and collections

async function loadHealth() {
  const health = $("health");
  try {
    const response = await fetch("health");
    const body = await response.json();
    health.textContent = `${body.status === "ok" ? "online" : body.status} · ${body.model}`;
    health.dataset.state = body.status === "ok" ? "ok" : "bad";
  } catch {
    health.textContent = "offline";
    health.dataset.state = "bad";
  }
}

async function loadModels() {
  try {
    const { data } = await api("v1/models");
    const select = $("new-collection-model");
    select.replaceChildren(new Option("server default", ""));
    for (const model of data) {
      const option = document.createElement("option");
      option.value = model.id;
      option.textContent = model.dim ? `${model.id} (${model.dim})` : model.id;
      select.append(option);
    }
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) console.warn("models", err);
  }
}

async function loadCollections(select) {
  const { collections } = await api("collections");
  const picker = $("collection-select");
  picker.replaceChildren();
  const names = collections.map((c) => c.name).sort((a, b) => a.localeCompare(b));
  if (!names.length) {
    const option = new Option("(no collections yet)", "");
    picker.append(option);
    picker.disabled = true;
    $("create-details").open = true;
    setCollection("", null);
    return;
  }
  picker.disabled = false;
  for (const name of names) picker.append(new Option(name, name));
  let wanted = select || state.collection;
  if (!wanted) {
    try {
      wanted = localStorage.getItem(COLLECTION_STORE) || "";
    } catch {
      wanted = "";
    }
  }
  const name = names.includes(wanted) ? wanted : names[0];
  picker.value = name;
  setCollection(name, collections.find((c) => c.name === name) || null);
}

function setCollection(name, info) {
  const changed = name !== state.collection;
  state.collection = name;
  if (name) {
    try {
      localStorage.setItem(COLLECTION_STORE, name);
    } catch {
      // storage disabled
    }
  }
  if (changed) {
    clearResults();
    clearAnswer();
  }
  renderStats(info);
}

async function refreshStats() {
  if (!state.collection) return;
  const info = await api(`collections/${encodeURIComponent(state.collection)}`);
  if (info.name === state.collection || !info.name) renderStats(info);
}

function renderStats(info) {
  state.info = info;
  const set = (id, value) => {
    $(id).textContent = value === undefined || value === null || value === "" ? "–" : value;
  };
  const number = (n) => (typeof n === "number" ? n.toLocaleString("en") : n);
  set("stat-count", info && number(info.count));
  set("stat-files", info && number(info.files));
  const formats = info && info.formats ? Object.entries(info.formats) : [];
  formats.sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const noFormats = info && info.formats ? "none" : "";
  set("stat-formats", formats.map(([format, n]) => `${format} ${number(n)}`).join(" · ") || noFormats);
  set("stat-model", info && info.model);
  set("stat-dim", info && info.dim);
  set("stat-index", info && info.index);
  $("stat-index").title = info && info.store ? `store: ${info.store}` : "";
  const empty = info && info.count === 0;
  $("results-summary").textContent = empty ? "This collection is empty: upload documents to search them." : $("results-summary").textContent;
}

async function createCollection(event) {
  event.preventDefault();
  const input = $("new-collection-name");
  const name = input.value.trim();
  if (!NAME_RE.test(name)) {
    setInvalid(input, true);
    showError(new Error("Use 1–64 letters, digits, _, - or . (not starting with .)."), "Collection name");
    input.focus();
    return;
  }
  setInvalid(input, false);
  const body = { name };
  const model = $("new-collection-model").value;
  if (model) body.model = model;
  const button = $("create-submit");
  button.disabled = true;
  try {
    await api("collections", { method: "POST", json: body });
    clearError();
    input.value = "";
    $("create-details").open = false;
    await loadCollections(name);
  } catch (err) {
    showError(err, "Creating the collection failed");
  } finally {
    button.disabled = false;
  }
}

function requireCollection() {
  if (state.collection) return true;
  showError(new Error("Pick a collection, or create one, first."), "No collection");
  return false;
}

const collectionPath = (suffix) => `collections/${encodeURIComponent(state.collection)}/${suffix}`;

// ---------------------------------------------------------------------------------------------
// Metadata filter: field = value rows, and/or a JSON object

function addFilterRow(field = "", value = "") {
  const row = $("filter-row-template").content.firstElementChild.cloneNode(true);
  row.querySelector(".filter-field").value = field;
  row.querySelector(".filter-value").value = value;
  row.querySelector(".filter-remove").addEventListener("click", () => {
    row.remove();
    validateFilter();
  });
  row.addEventListener("input", () => validateFilter());
  $("filter-rows").append(row);
  return row;
}

/** A row's value: a JSON number, true/false or "quoted string" as such; anything else as text. */
function rowValue(text) {
  const trimmed = text.trim();
  if (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(trimmed) || trimmed === "true" || trimmed === "false" || /^".*"$/.test(trimmed)) {
    try {
      return JSON.parse(trimmed);
    } catch {
      return text;
    }
  }
  return text;
}

/** {ok, filter} where filter is undefined for none; ok false with a message shown otherwise. */
function readFilter() {
  const rows = {};
  let rowCount = 0;
  for (const row of $("filter-rows").querySelectorAll(".filter-row")) {
    const field = row.querySelector(".filter-field").value.trim();
    const value = row.querySelector(".filter-value").value;
    if (!field && !value.trim()) continue;
    if (!field) return { ok: false, message: "A condition has a value but no field." };
    if (Object.hasOwn(rows, field)) return { ok: false, message: `The field “${field}” is used twice; use JSON with $in for several values.` };
    rows[field] = rowValue(value);
    rowCount++;
  }
  const text = $("filter-json").value.trim();
  let fromJson = null;
  if (text) {
    try {
      fromJson = JSON.parse(text);
    } catch (err) {
      return { ok: false, message: `The JSON filter is not valid JSON: ${err.message}` };
    }
    if (!fromJson || typeof fromJson !== "object" || Array.isArray(fromJson)) {
      return { ok: false, message: 'The JSON filter must be an object, e.g. {"file_name": "guide.pdf"}.' };
    }
  }
  if (rowCount && fromJson) return { ok: true, filter: { $and: [rows, fromJson] } };
  if (rowCount) return { ok: true, filter: rows };
  return { ok: true, filter: fromJson || undefined };
}

function validateFilter() {
  const result = readFilter();
  const error = $("filter-error");
  error.textContent = result.ok ? "" : result.message;
  setInvalid($("filter-json"), !result.ok && Boolean($("filter-json").value.trim()));
  return result;
}

// ---------------------------------------------------------------------------------------------
// Search and "more like this"

function clearResults() {
  state.likeId = null;
  state.searchSeq++;
  $("like-banner").hidden = true;
  $("results").replaceChildren();
  $("results-summary").textContent = "";
}

async function runSearch({ like = null, likeText = "" } = {}) {
  if (!requireCollection()) return;
  const filter = validateFilter();
  if (!filter.ok) {
    $("filter-error").scrollIntoView({ block: "nearest" });
    return;
  }
  const query = $("search-query").value.trim();
  const k = Math.min(100, Math.max(1, Number.parseInt($("search-k").value, 10) || 10));
  const body = { k };
  if (filter.filter) body.filter = filter.filter;
  if (like) {
    body.like = like;
  } else {
    if (!query) {
      $("results-summary").textContent = "Type something to search for.";
      $("search-query").focus();
      return;
    }
    body.query = query;
    body.mode = $("search-mode").value;
  }
  state.likeId = like;
  $("like-banner").hidden = !like;
  if (like) $("like-text").textContent = likeText.length > 90 ? `${likeText.slice(0, 89)}…` : likeText;
  const seq = ++state.searchSeq;
  const button = $("search-submit");
  button.disabled = true;
  $("results").setAttribute("aria-busy", "true");
  $("results-summary").textContent = "Searching…";
  try {
    const answer = await api(collectionPath("search"), { method: "POST", json: body });
    if (seq !== state.searchSeq) return;
    clearError();
    renderHits(answer.hits || [], answer.seconds, like ? [] : terms(query));
  } catch (err) {
    if (seq !== state.searchSeq) return;
    $("results-summary").textContent = "";
    showError(err, "Search failed");
  } finally {
    if (seq === state.searchSeq) {
      button.disabled = false;
      $("results").removeAttribute("aria-busy");
    }
  }
}

const STOP_WORDS = new Set(
  ("the and for are but not you all any can had her was one our out has him his how its may new now " +
   "off old see two who did get let put say she too use that this with from they them then than " +
   "what when where which while will would there their these those have been were does into your " +
   "about after also some such only other could should because why").split(" "),
);

function terms(query) {
  const words = query.toLowerCase().match(/[\p{L}\p{N}]{3,}/gu) || [];
  return [...new Set(words.filter((w) => !STOP_WORDS.has(w)))].slice(0, 20);
}

/** Chunk text for reading: lines broken only by the source's wrapping are joined, paragraphs
 * are kept (one line each). */
function flowText(text) {
  return String(text ?? "")
    .replace(/\r\n?/g, "\n")
    .split(/\n[ \t]*\n\s*/)
    .map((paragraph) => paragraph.replace(/[ \t]*\n[ \t]*/g, " ").trim())
    .filter(Boolean)
    .join("\n");
}

/** Text with the query's words wrapped in <mark>, built as nodes (never as HTML). */
function highlighted(text, words) {
  const fragment = document.createDocumentFragment();
  if (!words.length) {
    fragment.append(text);
    return fragment;
  }
  const escaped = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  // a word, or the start of one ("jam" marks "jams"), never the middle of another
  const re = new RegExp(`(?<![\\p{L}\\p{N}])(?:${escaped.join("|")})`, "giu");
  let last = 0;
  for (const match of text.matchAll(re)) {
    if (match.index > last) fragment.append(text.slice(last, match.index));
    const mark = document.createElement("mark");
    mark.textContent = match[0];
    fragment.append(mark);
    last = match.index + match[0].length;
  }
  if (last < text.length) fragment.append(text.slice(last));
  return fragment;
}

/** The chunk's text less its leading title and heading lines, which the hit shows above it. */
function withoutHeadingLines(text, metadata) {
  if (!metadata.heading) return text;
  const labels = new Set(
    [metadata.title, ...String(metadata.heading).split(" > ")].filter(Boolean).map((s) => String(s).trim()),
  );
  const lines = text.split("\n");
  let start = 0;
  while (start < lines.length - 1 && labels.has(lines[start].trim())) start++;
  return lines.slice(start).join("\n");
}

function sourceName(metadata, id) {
  return String(metadata.file_name || metadata.source || id);
}

function setInvalid(input, invalid) {
  if (invalid) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function renderHits(hits, seconds, words) {
  const list = $("results");
  list.replaceChildren();
  const took = typeof seconds === "number" ? ` in ${seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(2)} s`}` : "";
  $("results-summary").textContent = hits.length
    ? `${hits.length} result${hits.length === 1 ? "" : "s"}${took}`
    : `No results${took}. Try another query, mode or filter.`;
  hits.forEach((hit, i) => {
    const metadata = hit.metadata || {};
    const item = el("li", "hit");
    item.dataset.testid = "hit";
    item.dataset.id = hit.id;

    const head = el("div", "hit-head");
    head.append(el("span", "hit-rank", i + 1));
    const source = el("span", "hit-source", sourceName(metadata, hit.id));
    source.dataset.testid = "hit-source";
    if (metadata.source) source.title = String(metadata.source);
    head.append(source);
    if (metadata.page !== undefined && metadata.page !== null) {
      const page = el("span", "hit-page", `p. ${metadata.page}${metadata.page_end && metadata.page_end !== metadata.page ? `–${metadata.page_end}` : ""}`);
      page.dataset.testid = "hit-page";
      head.append(page);
    }
    const score = el("span", "hit-score", typeof hit.score === "number" ? hit.score.toFixed(3) : hit.score);
    score.dataset.testid = "hit-score";
    score.title = "score";
    head.append(score);
    item.append(head);

    if (metadata.heading) {
      const heading = el("div", "hit-heading", metadata.heading);
      heading.dataset.testid = "hit-heading";
      item.append(heading);
    }

    const text = withoutHeadingLines(flowText(hit.text), metadata);
    const body = el("p", "hit-text");
    body.dataset.testid = "hit-text";
    body.append(highlighted(text, words));
    item.append(body);

    const actions = el("div", "hit-actions");
    if (text.length > LONG_TEXT) {
      body.classList.add("clamped");
      const more = el("button", "ghost small", "Show more");
      more.type = "button";
      more.setAttribute("aria-expanded", "false");
      more.addEventListener("click", () => {
        const open = body.classList.toggle("clamped");
        more.textContent = open ? "Show more" : "Show less";
        more.setAttribute("aria-expanded", String(!open));
      });
      actions.append(more);
    }
    const like = el("button", "ghost small", "More like this");
    like.type = "button";
    like.dataset.testid = "more-like-this";
    like.setAttribute("aria-label", `More like result ${i + 1}`);
    like.addEventListener("click", () => {
      runSearch({ like: hit.id, likeText: text });
      $("search-heading").scrollIntoView({ block: "start", behavior: "smooth" });
    });
    actions.append(like);
    item.append(actions);
    list.append(item);
  });
}

// ---------------------------------------------------------------------------------------------
// Ask: the answer streamed in, then citations as buttons

function clearAnswer() {
  if (state.askController) state.askController.abort();
  $("answer-box").hidden = true;
  $("answer").replaceChildren();
  $("answer-note").textContent = "";
  $("answer-sources").replaceChildren();
  $("answer-sources-box").hidden = true;
  hideCitation();
}

async function runAsk(event) {
  event.preventDefault();
  if (!requireCollection()) return;
  const question = $("ask-question").value.trim();
  if (!question) {
    $("ask-question").focus();
    return;
  }
  if (state.askController) state.askController.abort();
  const controller = new AbortController();
  state.askController = controller;
  const answerEl = $("answer");
  const note = $("answer-note");
  $("answer-box").hidden = false;
  answerEl.replaceChildren();
  answerEl.classList.add("streaming");
  answerEl.setAttribute("aria-busy", "true");
  $("answer-sources").replaceChildren();
  $("answer-sources-box").hidden = true;
  hideCitation();
  note.textContent = "Searching the collection and writing an answer…";
  note.dataset.state = "busy";
  $("ask-submit").disabled = true;
  $("ask-stop").hidden = false;
  const body = { question, k: ASK_K, stream: true, max_tokens: ASK_MAX_TOKENS };
  if ($("ask-followup").checked) body.session = state.session;
  let final = null;
  let streamed = "";
  try {
    const response = await api(collectionPath("ask"), { method: "POST", json: body, signal: controller.signal, raw: true });
    clearError();
    const type = response.headers.get("content-type") || "";
    if (!type.includes("text/event-stream")) {
      final = await response.json();
    } else {
      for await (const { event: name, data } of sseEvents(response)) {
        if (name === "token") {
          const piece = parseData(data);
          const text = piece && typeof piece.text === "string" ? piece.text : "";
          if (text) {
            if (!streamed) note.textContent = "Writing…";
            streamed += text;
            answerEl.append(text);
          }
        } else if (name === "answer") {
          final = parseData(data);
        } else if (name === "error") {
          const body = parseData(data) || {};
          const error = body.error || body;
          throw new ApiError(0, String(error.message || data), error);
        }
      }
    }
    if (final) {
      renderAnswer(final);
    } else {
      note.textContent = "The answer stream ended before the answer was complete.";
      note.dataset.state = "bad";
    }
  } catch (err) {
    if (err.name === "AbortError") {
      note.textContent = "Stopped.";
      note.dataset.state = "";
    } else {
      note.textContent = "";
      showError(err, "Asking failed");
    }
  } finally {
    answerEl.classList.remove("streaming");
    answerEl.setAttribute("aria-busy", "false");
    if (state.askController === controller) {
      state.askController = null;
      $("ask-submit").disabled = false;
      $("ask-stop").hidden = true;
    }
  }
}

function renderAnswer(answer) {
  const answerEl = $("answer");
  const note = $("answer-note");
  const byNumber = new Map();
  for (const c of answer.sources || []) byNumber.set(c.number, c);
  for (const c of answer.citations || []) if (!byNumber.has(c.number)) byNumber.set(c.number, c);
  const cited = new Set((answer.citations || []).map((c) => c.number));

  // the text with [n] markers as buttons
  const text = String(answer.text ?? "");
  answerEl.replaceChildren();
  let last = 0;
  for (const match of text.matchAll(CITATION_RE)) {
    const numbers = match[1].split(/\s*[,;]\s*/).map(Number);
    if (!numbers.some((n) => byNumber.has(n))) continue;
    if (match.index > last) answerEl.append(text.slice(last, match.index));
    const group = el("span", "cite-group");
    group.append("[");
    numbers.forEach((n, i) => {
      if (i) group.append(", ");
      const citation = byNumber.get(n);
      if (!citation) {
        group.append(String(n));
        return;
      }
      const button = el("button", "cite", n);
      button.type = "button";
      button.dataset.testid = "citation";
      button.dataset.number = String(n);
      button.setAttribute("aria-label", `Citation ${n}: ${citation.label || citation.source}`);
      button.setAttribute("aria-controls", "citation-popup");
      button.setAttribute("aria-expanded", "false");
      button.addEventListener("click", () => toggleCitation(citation, button));
      group.append(button);
    });
    group.append("]");
    answerEl.append(group);
    last = match.index + match[0].length;
  }
  if (last < text.length) answerEl.append(text.slice(last));

  // every source the answer was written from, as chips
  const sources = (answer.sources && answer.sources.length ? answer.sources : answer.citations) || [];
  const list = $("answer-sources");
  list.replaceChildren();
  for (const source of sources) {
    const item = el("li");
    const chip = el("button", `chip${cited.has(source.number) ? " cited" : ""}`);
    chip.type = "button";
    chip.dataset.testid = "source-chip";
    chip.dataset.number = String(source.number);
    chip.setAttribute("aria-controls", "citation-popup");
    chip.setAttribute("aria-expanded", "false");
    chip.append(el("span", "chip-number", source.number), el("span", "chip-label", source.label || source.source));
    if (cited.has(source.number)) chip.title = "cited in the answer";
    chip.addEventListener("click", () => toggleCitation(source, chip));
    item.append(chip);
    list.append(item);
  }
  $("answer-sources-box").hidden = !sources.length;

  const parts = [];
  if (answer.grounded === false) {
    parts.push("Nothing in this collection looks relevant to the question, so no model was asked.");
  } else if (!cited.size && sources.length) {
    parts.push("The model cited no source by number; these are the passages it was given.");
  }
  if (answer.search_query && answer.search_query !== answer.question) parts.push(`Searched for: “${answer.search_query}”.`);
  const meta = [answer.llm, typeof answer.seconds === "number" ? `${answer.seconds.toFixed(1)} s` : ""].filter(Boolean).join(" · ");
  if (meta) parts.push(meta);
  note.textContent = parts.join(" ");
  note.dataset.state = answer.grounded === false ? "bad" : "";
}

function toggleCitation(citation, button) {
  if (state.activeCitationButton === button && !$("citation-popup").hidden) {
    hideCitation();
    return;
  }
  hideCitation();
  $("citation-title").textContent = `[${citation.number}] ${citation.label || citation.source}`;
  const meta = [];
  if (citation.source) meta.push(shortPath(citation.source));
  if (citation.page !== undefined && citation.page !== null) meta.push(`page ${citation.page}`);
  $("citation-meta").textContent = meta.join(" · ");
  $("citation-meta").title = citation.source || "";
  $("citation-quote").textContent = withoutHeadingLines(flowText(citation.quote), citation);
  const popup = $("citation-popup");
  popup.dataset.number = String(citation.number);
  popup.hidden = false;
  button.setAttribute("aria-expanded", "true");
  button.classList.add("active");
  state.activeCitationButton = button;
  popup.scrollIntoView({ block: "nearest", behavior: "smooth" });
}

function hideCitation() {
  $("citation-popup").hidden = true;
  const button = state.activeCitationButton;
  if (button) {
    button.setAttribute("aria-expanded", "false");
    button.classList.remove("active");
  }
  state.activeCitationButton = null;
}

// ---------------------------------------------------------------------------------------------
// Upload and ingest progress

function showChosenFiles() {
  const files = $("upload-files").files;
  $("upload-chosen").textContent = !files.length
    ? "Choose files or drop them here"
    : files.length === 1
      ? files[0].name
      : `${files.length} files: ${[...files].map((f) => f.name).join(", ")}`;
  $("dropzone").classList.toggle("has-files", files.length > 0);
}

async function runUpload(event) {
  event.preventDefault();
  if (!requireCollection()) return;
  const files = $("upload-files").files;
  if (!files.length) {
    showError(new Error("Choose one or more files to upload."), "Upload");
    return;
  }
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  const chunkTokens = $("upload-chunk-tokens").value.trim();
  const overlap = $("upload-overlap").value.trim();
  if (chunkTokens) form.append("chunk_tokens", chunkTokens);
  if (overlap) form.append("overlap", overlap);
  const collection = state.collection;
  const button = $("upload-submit");
  button.disabled = true;
  $("upload-job").hidden = false;
  $("upload-report").replaceChildren();
  renderJob({ state: "uploading", files_total: files.length, files_done: 0, chunks_done: 0 });
  if (state.uploadController) state.uploadController.abort();
  const controller = new AbortController();
  state.uploadController = controller;
  try {
    const { job } = await api(`collections/${encodeURIComponent(collection)}/files`, { method: "POST", body: form, signal: controller.signal });
    clearError();
    renderJob(job);
    const final = await followJob(job, controller.signal);
    renderJob(final);
    $("upload-files").value = "";
    showChosenFiles();
  } catch (err) {
    if (err.name !== "AbortError") {
      $("upload-state").textContent = "failed";
      $("upload-job").dataset.state = "failed";
      showError(err, "Upload failed");
    }
  } finally {
    button.disabled = false;
    if (state.uploadController === controller) state.uploadController = null;
    if (collection === state.collection) refreshStats().catch((err) => showError(err, "Reading the collection failed"));
  }
}

const finished = (job) => job && (job.state === "done" || job.state === "failed");

/** Follow /jobs/{id}/events to the end; polls /jobs/{id} if the stream stops early. */
async function followJob(job, signal) {
  let latest = job;
  try {
    const response = await api(`jobs/${encodeURIComponent(job.id)}/events`, { raw: true, signal });
    for await (const { event: name, data } of sseEvents(response)) {
      const update = parseData(data);
      if (update && typeof update === "object" && update.id) {
        latest = update;
        renderJob(latest);
      }
      if (name === "done" || name === "failed") break;
    }
  } catch (err) {
    if (err.name === "AbortError") throw err;
    console.warn("job events", err);
  }
  while (!finished(latest) || (latest.state === "done" && !latest.report)) {
    latest = await api(`jobs/${encodeURIComponent(job.id)}`, { signal });
    renderJob(latest);
    if (finished(latest)) break;
    await new Promise((resolve) => setTimeout(resolve, 800));
  }
  return latest;
}

function renderJob(job) {
  const box = $("upload-job");
  const progress = $("upload-progress");
  box.dataset.state = job.state;
  const labels = { uploading: "Uploading…", queued: "Queued…", running: "Ingesting…", done: "Done", failed: "Failed" };
  $("upload-state").textContent = labels[job.state] || job.state;
  const total = Number(job.files_total) || 0;
  const done = Number(job.files_done) || 0;
  const chunks = Number(job.chunks_done) || 0;
  $("upload-counts").textContent = `${done} / ${total} file${total === 1 ? "" : "s"} · ${chunks.toLocaleString("en")} chunk${chunks === 1 ? "" : "s"}`;
  if (job.state === "uploading" || job.state === "queued") {
    progress.removeAttribute("value"); // indeterminate
  } else {
    progress.max = Math.max(total, 1);
    progress.value = job.state === "done" ? Math.max(total, 1) : Math.min(done, total);
  }
  progress.setAttribute("aria-valuetext", `${done} of ${total} files`);
  progress.dataset.done = String(done);
  progress.dataset.total = String(total);
  const report = $("upload-report");
  if (job.state === "failed") {
    report.replaceChildren(el("p", "job-error", job.error || "The ingest failed."));
  } else if (job.state === "done" && job.report) {
    report.replaceChildren(...reportNodes(job.report));
  }
}

function reportNodes(report) {
  const nodes = [];
  const count = (key) => Number(report[key]) || 0;
  const parts = [
    ["added", count("added")], ["updated", count("updated")], ["unchanged", count("unchanged")],
    ["removed", count("removed")], ["failed", count("failed")],
  ].filter(([key, n]) => n || key === "added" || key === "failed");
  const summary = el("p", "report-summary", `${parts.map(([key, n]) => `${n} ${key}`).join(" · ")} — ${count("chunks_added").toLocaleString("en")} chunks added${typeof report.seconds === "number" ? ` in ${report.seconds.toFixed(1)} s` : ""}`);
  summary.dataset.testid = "report-summary";
  nodes.push(summary);
  const failed = (report.files && report.files.failed) || [];
  if (failed.length) {
    const list = el("ul", "report-failed");
    list.dataset.testid = "report-failed";
    for (const problem of failed) {
      const item = el("li");
      item.append(el("strong", "", fileLabel(problem.path)), el("span", "", ` — ${problem.reason}`));
      item.title = String(problem.path);
      list.append(item);
    }
    nodes.push(el("p", "report-failed-title", `Not ingested (${failed.length}):`), list);
  }
  return nodes;
}

/** "/a/b/c/guide.pdf" -> "…/c/guide.pdf": where the file lives, without the whole path. */
function shortPath(path) {
  const parts = String(path ?? "").split(/[\\/]/).filter(Boolean);
  return parts.length > 2 ? `…/${parts.slice(-2).join("/")}` : String(path ?? "");
}

function fileLabel(path) {
  const text = String(path ?? "");
  return text.split(/[\\/]/).pop() || text;
}

// ---------------------------------------------------------------------------------------------
// Wiring

function wire() {
  $("error-close").addEventListener("click", clearError);
  $("key-button").addEventListener("click", async () => {
    if (await promptForKey(currentKey() ? "Change the key this page sends." : "Set the key this page sends.")) {
      boot();
    }
  });
  $("key-cancel").addEventListener("click", () => $("key-dialog").close(""));
  $("key-forget").addEventListener("click", () => {
    storeKey("");
    updateKeyButton();
    $("key-dialog").close("");
  });
  $("key-form").addEventListener("submit", (event) => {
    const key = $("key-input").value.trim();
    // a header can only carry Latin-1: fetch() would refuse anything else
    const problem = !key ? "Type the key first." : /[^\u0020-\u00ff]/.test(key) ? "This key has characters an HTTP header cannot carry." : "";
    if (problem) {
      event.preventDefault();
      $("key-reason").textContent = problem;
      $("key-input").focus();
    }
  });

  $("collection-select").addEventListener("change", async (event) => {
    const name = event.target.value;
    setCollection(name, null);
    try {
      await refreshStats();
      clearError();
    } catch (err) {
      showError(err, "Reading the collection failed");
    }
  });
  $("create-form").addEventListener("submit", createCollection);
  $("new-collection-name").addEventListener("input", (event) => {
    const value = event.target.value.trim();
    setInvalid(event.target, Boolean(value) && !NAME_RE.test(value));
  });

  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch();
  });
  $("filter-add").addEventListener("click", () => addFilterRow().querySelector("input").focus());
  $("filter-json").addEventListener("input", () => validateFilter());
  $("like-clear").addEventListener("click", () => {
    $("like-banner").hidden = true;
    state.likeId = null;
    if ($("search-query").value.trim()) runSearch();
    else clearResults();
  });

  $("ask-form").addEventListener("submit", runAsk);
  $("ask-question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("ask-form").requestSubmit();
    }
  });
  $("ask-stop").addEventListener("click", () => state.askController && state.askController.abort());
  $("citation-close").addEventListener("click", hideCitation);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("citation-popup").hidden) hideCitation();
  });

  $("upload-form").addEventListener("submit", runUpload);
  $("upload-files").addEventListener("change", showChosenFiles);
  const zone = $("dropzone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (event.dataTransfer && event.dataTransfer.files.length) {
      $("upload-files").files = event.dataTransfer.files;
      showChosenFiles();
    }
  });
}

async function boot() {
  updateKeyButton();
  loadHealth();
  try {
    await loadCollections();
    clearError();
  } catch (err) {
    showError(err, "Loading the collections failed");
    return;
  }
  loadModels();
}

wire();
addFilterRow();
boot();
