// The embedstack web page: collections, search, ask (streamed), upload, and a map, clusters and
// recommendations of a collection, against the HTTP API in docs/http-api.md. Plain ES module, no
// build step. Server text is only ever put into the page as text (textContent / text nodes),
// never parsed as HTML.

const KEY_STORE = "embedstack.apiKey";
const COLLECTION_STORE = "embedstack.collection";
const NAME_RE = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$/;
const CITATION_RE = /\[(\d+(?:\s*[,;]\s*\d+)*)\]/g;
const ASK_K = 5;
const ASK_MAX_TOKENS = 256;
const ASK_MODE_HINTS = {
  auto: "The model answers; each sentence is checked against the sources, which are quoted instead if it is not supported.",
  extractive: "The sources' best sentences, quoted as they are: no model is asked, so nothing is made up.",
  generative: "The model's own answer; sentences the sources do not support are marked, not replaced.",
};
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
  view: "search",
  mapFor: "", // the collection the map shows
  mapSeq: 0,
  mapBusy: false,
  clustersFor: "",
  clustersSeq: 0,
  clustersBusy: false,
  relatedSeq: 0,
  liked: [], // {id, text} examples for recommendations
  disliked: [],
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
    clearMap();
    clearClusters();
  }
  renderStats(info);
  if (info) autoRun();
}

async function refreshStats() {
  if (!state.collection) return;
  const info = await api(`collections/${encodeURIComponent(state.collection)}`);
  if (info.name === state.collection || !info.name) {
    renderStats(info);
    autoRun();
  }
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
  const images = Boolean(info && info.modality === "image");
  $("image-query").hidden = !images;
  if (!images) $("search-image").value = "";
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
  const example = !like && isImageCollection() ? $("search-image").files[0] : null;
  if (example) {
    // An example image is uploaded (the server never reads a path a client names).
    return runRequest(() => {
      const form = new FormData();
      form.append("file", example);
      form.append("k", String(k));
      if (filter.filter) form.append("filter", JSON.stringify(filter.filter));
      return api(collectionPath("search/image"), { method: "POST", body: form });
    }, [], null, "");
  }
  if (like) {
    body.like = like;
  } else {
    if (!query) {
      $("results-summary").textContent = "Type something to search for.";
      $("search-query").focus();
      return;
    }
    body.query = query;
    // Typed words in an image collection search its file names.
    body.mode = isImageCollection() ? "keyword" : $("search-mode").value;
  }
  return runRequest(
    () => api(collectionPath("search"), { method: "POST", json: body }),
    like ? [] : terms(query), like, likeText,
  );
}

function isImageCollection() {
  return Boolean(state.info && state.info.modality === "image");
}

async function runRequest(request, words, like, likeText) {
  state.likeId = like;
  $("like-banner").hidden = !like;
  if (like) $("like-text").textContent = likeText.length > 90 ? `${likeText.slice(0, 89)}…` : likeText;
  const seq = ++state.searchSeq;
  const button = $("search-submit");
  button.disabled = true;
  $("results").setAttribute("aria-busy", "true");
  $("results-summary").textContent = "Searching…";
  try {
    const answer = await request();
    if (seq !== state.searchSeq) return;
    clearError();
    renderHits(answer.hits || [], answer.seconds, words);
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

/** Seconds into a recording as "m:ss", or "h:mm:ss" from an hour on (as the CLI writes it). */
function timecode(seconds) {
  const whole = Math.max(0, Math.floor(seconds));
  const h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
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
    if (typeof metadata.time_start === "number") {
      const time = el("span", "hit-time", `at ${timecode(metadata.time_start)}`);
      time.dataset.testid = "hit-time";
      if (typeof metadata.time_end === "number") time.title = `${timecode(metadata.time_start)}–${timecode(metadata.time_end)}`;
      head.append(time);
    }
    const score = el("span", "hit-score", typeof hit.score === "number" ? hit.score.toFixed(3) : hit.score);
    score.dataset.testid = "hit-score";
    score.title = "score";
    head.append(score);
    item.append(head);

    if (metadata.format === "image" && isImageCollection()) item.append(thumbnail(hit, metadata));

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

/** The stored image, fetched with the API key (an <img src> could not send it). */
function thumbnail(hit, metadata) {
  const image = el("img", "hit-thumb");
  image.dataset.testid = "hit-thumb";
  image.alt = String(metadata.file_name || hit.id);
  if (metadata.width && metadata.height) image.title = `${metadata.width}×${metadata.height}`;
  const path = collectionPath(`thumbnail?id=${encodeURIComponent(hit.id)}&size=160`);
  api(path, { raw: true })
    .then((response) => response.blob())
    .then((blob) => {
      image.src = URL.createObjectURL(blob);
      image.addEventListener("load", () => URL.revokeObjectURL(image.src), { once: true });
    })
    .catch(() => image.classList.add("missing"));
  return image;
}

// ---------------------------------------------------------------------------------------------
// Ask: the answer streamed in, then citations as buttons

function clearAnswer() {
  if (state.askController) state.askController.abort();
  $("answer-box").hidden = true;
  $("answer-note").textContent = "";
  emptyAnswer();
}

/** Empty the answer, its fallback note, evidence and sources. */
function emptyAnswer() {
  $("answer").replaceChildren();
  $("answer").classList.remove("quoted");
  $("answer-fallback").hidden = true;
  $("answer-evidence").replaceChildren();
  $("answer-evidence-box").hidden = true;
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
  const mode = $("ask-mode").value;
  $("answer-box").hidden = false;
  emptyAnswer();
  answerEl.classList.add("streaming");
  answerEl.setAttribute("aria-busy", "true");
  note.textContent = mode === "extractive"
    ? "Searching the collection for the sentences that answer it…"
    : "Searching the collection and writing an answer…";
  note.dataset.state = "busy";
  $("ask-submit").disabled = true;
  $("ask-stop").hidden = false;
  const body = { question, k: ASK_K, stream: true, max_tokens: ASK_MAX_TOKENS, mode };
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
      renderAnswer(final, streamed);
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

/** The final answer, in place of what streamed in (`streamed`: the model's raw text, shown
 * on request when the answer quotes the sources instead). */
function renderAnswer(answer, streamed = "") {
  const answerEl = $("answer");
  const note = $("answer-note");
  const byNumber = new Map();
  for (const c of answer.sources || []) byNumber.set(c.number, c);
  for (const c of answer.citations || []) if (!byNumber.has(c.number)) byNumber.set(c.number, c);
  const cited = new Set((answer.citations || []).map((c) => c.number));
  const quoted = answer.mode === "extractive";
  const sentences = Array.isArray(answer.sentences) ? answer.sentences : [];

  // sentence by sentence as checked against the sources; else the text with its [n] markers
  answerEl.replaceChildren();
  answerEl.classList.toggle("quoted", quoted && sentences.length > 0);
  if (sentences.length) {
    sentences.forEach((sentence, i) => {
      if (i && !quoted) answerEl.append(" "); // quoted sentences are one per line (CSS)
      answerEl.append(sentenceNode(sentence, byNumber, quoted));
    });
  } else {
    answerEl.append(withCitations(String(answer.text ?? ""), byNumber));
  }
  renderFallback(String(answer.fallback || ""), streamed);
  renderEvidence(answer.evidence, byNumber);

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
  const unsupported = sentences.filter((s) => s.supported === false).length;
  if (answer.grounded === false) {
    parts.push("Nothing in this collection looks relevant to the question, so no model was asked.");
  } else if (quoted && !answer.fallback) {
    parts.push("Quoted from the sources; no model was asked.");
  } else if (!cited.size && sources.length && !quoted) {
    parts.push("The model cited no source by number; these are the passages it was given.");
  }
  if (unsupported) {
    parts.push(`${unsupported} sentence${unsupported === 1 ? " is" : "s are"} not supported by the sources (marked).`);
  }
  const dropped = Array.isArray(answer.dropped_citations) ? answer.dropped_citations : [];
  if (dropped.length) parts.push(`Citations the sources do not back were removed: [${dropped.join(", ")}].`);
  if (answer.search_query && answer.search_query !== answer.question) parts.push(`Searched for: “${answer.search_query}”.`);
  const meta = [answer.llm, typeof answer.seconds === "number" ? `${answer.seconds.toFixed(1)} s` : ""].filter(Boolean).join(" · ");
  if (meta) parts.push(meta);
  note.textContent = parts.join(" ");
  note.dataset.state = answer.grounded === false || unsupported ? "bad" : "";
}

/** "[1, 3]", each number a button that shows its source's quote (a number with no known
 * source stays text); null when no number is known. */
function citeGroup(numbers, byNumber, { testid = "citation", kind = "Citation" } = {}) {
  if (!numbers.some((n) => byNumber.has(n))) return null;
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
    button.dataset.testid = testid;
    button.dataset.number = String(n);
    button.setAttribute("aria-label", `${kind} ${n}: ${citation.label || citation.source}`);
    button.setAttribute("aria-controls", "citation-popup");
    button.setAttribute("aria-expanded", "false");
    button.addEventListener("click", () => toggleCitation(citation, button));
    group.append(button);
  });
  group.append("]");
  return group;
}

/** `text` with its [n] markers as citation buttons. */
function withCitations(text, byNumber) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(CITATION_RE)) {
    const group = citeGroup(match[1].split(/\s*[,;]\s*/).map(Number), byNumber);
    if (!group) continue;
    if (match.index > last) fragment.append(text.slice(last, match.index));
    fragment.append(group);
    last = match.index + match[0].length;
  }
  if (last < text.length) fragment.append(text.slice(last));
  return fragment;
}

/** One sentence of the answer: its verified sources as citation buttons before its closing
 * punctuation (where the answer's text has its markers); an unsupported one marked as such,
 * with the reason as its description. */
function sentenceNode(sentence, byNumber, quoted) {
  const supported = sentence.supported !== false;
  const node = el("span", supported ? "sentence" : "sentence unsupported");
  node.dataset.testid = supported ? "supported-sentence" : "unsupported-sentence";
  const text = String(sentence.text ?? "");
  const body = text.replace(/[.!?;:]+$/, "");
  node.append(body);
  const numbers = Array.isArray(sentence.sources) ? sentence.sources.map(Number) : [];
  const group = numbers.length ? citeGroup(numbers, byNumber) : null;
  if (group) node.append(" ", group);
  node.append(text.slice(body.length));
  if (!supported) {
    const reason = `Not supported by the sources: ${sentence.reason || "no source sentence says this"}`;
    node.title = reason;
    node.setAttribute("aria-description", reason);
    node.append(" ", el("span", "badge bad", "unsupported"));
  } else if (!quoted && sentence.quote) {
    const support = typeof sentence.support === "number" ? ` (similarity ${sentence.support.toFixed(2)})` : "";
    node.title = `Supported${support} by: “${sentence.quote}”`;
  }
  return node;
}

/** Why an "auto" answer quotes the sources instead of the model, and what the model wrote. */
function renderFallback(reason, streamed) {
  $("answer-fallback").hidden = !reason;
  if (!reason) return;
  const unsupported = /not supported by the sources:\s*/i.exec(reason);
  $("answer-fallback-title").textContent = unsupported
    ? "The model's answer was not supported by the sources, so here is what they say."
    : "The model gave no usable answer, so here is what the sources say.";
  // the title says what the reason starts with; the rest is the detail
  const detail = unsupported ? reason.slice(unsupported.index + unsupported[0].length) : reason;
  $("answer-fallback-reason").textContent = `Reason: ${detail || reason}`;
  const raw = streamed.trim();
  $("answer-raw").textContent = raw;
  $("answer-raw-details").hidden = !raw;
  $("answer-raw-details").open = false;
}

/** The sources' sentences that best answer the question, each with its [n] and what the
 * question asks for (a number, a date, a name) in <mark>. */
function renderEvidence(evidence, byNumber) {
  const items = Array.isArray(evidence) ? evidence : [];
  const list = $("answer-evidence");
  list.replaceChildren();
  for (const item of items) {
    const row = el("li", "evidence-item");
    row.dataset.testid = "evidence";
    row.dataset.source = String(item.source);
    const group = citeGroup([Number(item.source)], byNumber, { testid: "evidence-source", kind: "Source" });
    if (group) row.append(group, " ");
    const text = el("span", "evidence-text");
    text.append(markedSpans(String(item.text ?? ""), item.highlights));
    row.append(text);
    list.append(row);
  }
  $("answer-evidence-box").hidden = !items.length;
}

/** `text` with the [start, end) `spans` in <mark>; the server counts code points, so the text
 * is cut by code points, not UTF-16 units. Overlapping or out-of-range spans are skipped. */
function markedSpans(text, spans) {
  const chars = Array.from(text);
  const ranges = (Array.isArray(spans) ? spans : [])
    .map((span) => (Array.isArray(span) ? span.map(Number) : []))
    .filter(([start, end]) => Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start < end && end <= chars.length)
    .sort((a, b) => a[0] - b[0]);
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const [start, end] of ranges) {
    if (start < last) continue;
    if (start > last) fragment.append(chars.slice(last, start).join(""));
    fragment.append(el("mark", null, chars.slice(start, end).join("")));
    last = end;
  }
  if (last < chars.length) fragment.append(chars.slice(last).join(""));
  return fragment;
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
    if (collection === state.collection) {
      // the map and the clusters no longer show everything: computed again when next shown
      state.mapFor = "";
      state.clustersFor = "";
      refreshStats().catch((err) => showError(err, "Reading the collection failed"));
    }
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
// Views: "Search & Ask", "Map" and "Clusters" (tabs over the main column)

const PALETTE = [
  "#4b4fd6", "#e8590c", "#2b8a3e", "#d6336c", "#1c7ed6", "#d49b00", "#7048e8", "#0ca678",
  "#a61e4d", "#5c940d", "#1098ad", "#b4540b", "#9c36b5", "#364fc7", "#087f5b", "#8a6d00",
];
const OUTLIER_COLOR = "#9aa0ae";
const RELATED_K = 10;
const clusterColor = (cluster) => (cluster < 0 ? OUTLIER_COLOR : PALETTE[cluster % PALETTE.length]);
const clip = (text, n) => {
  const flat = String(text ?? "").replace(/\s+/g, " ").trim();
  return flat.length > n ? `${flat.slice(0, n - 1)}…` : flat;
};
const took = (seconds) => (typeof seconds === "number" ? (seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(1)} s`) : "");

function readNumber(input, { min, max, integer = true }) {
  const text = input.value.trim();
  if (!text) return { ok: true, value: undefined };
  const value = Number(text);
  const valid = Number.isFinite(value) && value >= min && value <= max && (!integer || Number.isInteger(value));
  setInvalid(input, !valid);
  return valid ? { ok: true, value } : { ok: false, message: `${input.closest("label")?.firstChild?.textContent.trim() || "The value"} must be ${integer ? "a whole number" : "a number"} from ${min} to ${max}.` };
}

function showView(view, { focus = false } = {}) {
  state.view = view;
  for (const tab of document.querySelectorAll(".view-tab")) {
    const selected = tab.dataset.view === view;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    if (selected && focus) tab.focus();
  }
  for (const panel of document.querySelectorAll("[role=tabpanel][data-view]")) panel.hidden = panel.dataset.view !== view;
  if (view === "map") mapView.resize();
  autoRun();
}

/** Opening the map or the clusters for a collection not shown there yet computes them. */
function autoRun() {
  if (!state.collection || !state.info || state.info.name !== state.collection) return;
  if (!state.info.count) {
    if (state.view === "map") setMapEmpty("This collection is empty: upload documents to map them.");
    if (state.view === "clusters") $("clusters-summary").textContent = "This collection is empty: upload documents to cluster them.";
    return;
  }
  if (state.view === "map" && state.mapFor !== state.collection && !state.mapBusy) drawMap();
  if (state.view === "clusters" && state.clustersFor !== state.collection && !state.clustersBusy) findClusters();
}

// ---- the map: a canvas of points, coloured by cluster -----------------------------------------

const mapView = {
  points: [],
  clusters: new Map(), // cluster id -> {cluster, label, size, color}
  byId: new Map(),
  byCluster: new Map(), // cluster id -> point indexes
  sx: new Float32Array(0), // screen (CSS px) positions, from the last draw
  sy: new Float32Array(0),
  fit: null,
  zoom: 1,
  panX: 0,
  panY: 0,
  width: 0,
  height: 0,
  hover: -1,
  selected: -1,
  focusCluster: null,
  marked: new Set(),
  drag: null,
  frame: 0,

  canvas: () => $("map-canvas"),

  set(data) {
    this.points = Array.isArray(data.points) ? data.points : [];
    this.clusters = new Map();
    for (const c of data.clusters || []) {
      this.clusters.set(c.cluster, { ...c, color: clusterColor(c.cluster) });
    }
    this.byId = new Map(this.points.map((p, i) => [p.id, i]));
    this.byCluster = new Map();
    this.points.forEach((p, i) => {
      if (!this.byCluster.has(p.cluster)) this.byCluster.set(p.cluster, []);
      this.byCluster.get(p.cluster).push(i);
      if (!this.clusters.has(p.cluster)) {
        this.clusters.set(p.cluster, { cluster: p.cluster, label: p.cluster < 0 ? "outliers" : `cluster ${p.cluster}`, size: 0, color: clusterColor(p.cluster) });
      }
    });
    this.hover = -1;
    this.selected = -1;
    this.focusCluster = null;
    this.marked = new Set();
    this.resetView(false);
    this.canvas().dataset.points = String(this.points.length);
    this.resize();
  },

  clear() {
    this.set({ points: [], clusters: [] });
  },

  resetView(redraw = true) {
    this.zoom = 1;
    this.panX = 0;
    this.panY = 0;
    $("map-reset").hidden = true;
    if (redraw) this.draw();
  },

  radius() {
    const n = this.points.length;
    const base = n <= 300 ? 5 : n <= 3000 ? 3.5 : 2.2;
    return base * Math.min(2, Math.sqrt(this.zoom));
  },

  resize() {
    const stage = $("map-stage");
    const canvas = this.canvas();
    const width = stage.clientWidth;
    const height = stage.clientHeight;
    if (!width || !height) return; // hidden
    const ratio = window.devicePixelRatio || 1;
    this.width = width;
    this.height = height;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    this.ratio = ratio;
    this.fitData();
    this.draw();
  },

  /** Data coordinates to CSS pixels at zoom 1: the same scale on both axes, centred. */
  fitData() {
    if (!this.points.length) {
      this.fit = null;
      return;
    }
    let minX = Infinity;
    let maxX = -Infinity;
    let minY = Infinity;
    let maxY = -Infinity;
    for (const p of this.points) {
      minX = Math.min(minX, p.x);
      maxX = Math.max(maxX, p.x);
      minY = Math.min(minY, p.y);
      maxY = Math.max(maxY, p.y);
    }
    const pad = 22;
    const spanX = maxX - minX || 1;
    const spanY = maxY - minY || 1;
    const scale = Math.min((this.width - 2 * pad) / spanX, (this.height - 2 * pad) / spanY);
    this.fit = {
      scale,
      offsetX: (this.width - spanX * scale) / 2 - minX * scale,
      offsetY: (this.height + spanY * scale) / 2 + minY * scale, // y grows upwards
    };
  },

  /** Every point's place on the screen under the current zoom and pan. */
  project() {
    const n = this.points.length;
    if (this.sx.length !== n) {
      this.sx = new Float32Array(n);
      this.sy = new Float32Array(n);
    }
    if (!this.fit) return;
    const { scale, offsetX, offsetY } = this.fit;
    const k = this.zoom;
    this.points.forEach((p, i) => {
      this.sx[i] = (p.x * scale + offsetX) * k + this.panX;
      this.sy[i] = (offsetY - p.y * scale) * k + this.panY;
    });
  },

  draw() {
    const canvas = this.canvas();
    const ctx = canvas.getContext("2d");
    if (!ctx || !this.width) return;
    ctx.setTransform(this.ratio, 0, 0, this.ratio, 0, 0);
    ctx.clearRect(0, 0, this.width, this.height);
    this.project();
    if (!this.points.length || !this.fit) return;
    const r = this.radius();
    const styles = getComputedStyle(document.documentElement);
    const ink = styles.getPropertyValue("--text").trim() || "#1c2030";
    const accent = styles.getPropertyValue("--accent").trim() || "#4b4fd6";
    const card = styles.getPropertyValue("--card").trim() || "#ffffff";
    // one path per cluster: 20,000 points draw in a few milliseconds
    for (const [cluster, members] of this.byCluster) {
      const dim = this.focusCluster !== null && cluster !== this.focusCluster;
      ctx.globalAlpha = dim ? 0.12 : 0.85;
      ctx.fillStyle = clusterColor(cluster);
      ctx.beginPath();
      for (const i of members) {
        ctx.moveTo(this.sx[i] + r, this.sy[i]);
        ctx.arc(this.sx[i], this.sy[i], r, 0, Math.PI * 2);
      }
      ctx.fill();
    }
    ctx.globalAlpha = 1;
    const ring = (i, extra, color, width) => {
      ctx.beginPath();
      ctx.arc(this.sx[i], this.sy[i], r + extra, 0, Math.PI * 2);
      ctx.lineWidth = width + 2;
      ctx.strokeStyle = card;
      ctx.stroke();
      ctx.lineWidth = width;
      ctx.strokeStyle = color;
      ctx.stroke();
    };
    for (const i of this.marked) ring(i, 2.5, ink, 1.5);
    if (this.selected >= 0) ring(this.selected, 4.5, accent, 2.5);
    if (this.hover >= 0 && this.hover !== this.selected) ring(this.hover, 2.5, ink, 2);
  },

  redraw() {
    this.project(); // hit tests see the new places at once; the pixels follow next frame
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  },

  /** The point under (x, y) in CSS pixels of the canvas, or -1. */
  pointAt(x, y) {
    const reach = (this.radius() + 4) ** 2;
    let best = -1;
    let bestDistance = reach;
    for (let i = 0; i < this.points.length; i++) {
      if (this.focusCluster !== null && this.points[i].cluster !== this.focusCluster) continue;
      const d = (this.sx[i] - x) ** 2 + (this.sy[i] - y) ** 2;
      if (d <= bestDistance) {
        bestDistance = d;
        best = i;
      }
    }
    return best;
  },

  label(cluster) {
    const found = this.clusters.get(cluster);
    if (cluster < 0) return "outlier";
    return found ? `${cluster}: ${found.label}` : `cluster ${cluster}`;
  },

  showTooltip(i, x, y) {
    const tip = $("map-tooltip");
    if (i < 0) {
      tip.hidden = true;
      return;
    }
    const p = this.points[i];
    const meta = el("span", "tip-meta", [this.label(p.cluster), p.metadata && (p.metadata.file_name || p.metadata.source)].filter(Boolean).join(" · "));
    tip.replaceChildren(clip(p.text, 240), meta);
    tip.style.setProperty("--swatch", clusterColor(p.cluster));
    tip.hidden = false;
    const gap = 14;
    const { offsetWidth: w, offsetHeight: h } = tip;
    const left = x + gap + w > this.width ? Math.max(4, x - gap - w) : x + gap;
    const top = y + gap + h > this.height ? Math.max(4, y - gap - h) : y + gap;
    tip.style.left = `${left}px`;
    tip.style.top = `${top}px`;
  },
};

function setMapEmpty(message) {
  const empty = $("map-empty");
  empty.textContent = message;
  empty.hidden = !message;
}

function clearMap() {
  state.mapSeq++;
  state.mapFor = "";
  state.mapBusy = false;
  mapView.clear();
  $("map-canvas").dataset.state = "empty";
  $("map-canvas").setAttribute("aria-label", "Map of the collection (not drawn yet)");
  $("map-count").textContent = "";
  $("map-count").dataset.state = "";
  $("map-stage").removeAttribute("aria-busy");
  $("map-submit").disabled = false;
  $("map-legend").replaceChildren();
  $("map-tooltip").hidden = true;
  setMapEmpty("Each chunk becomes a point; chunks about the same thing land close together.");
  hideDetail();
  clearRelated();
}

async function drawMap() {
  if (!requireCollection()) return;
  const clusters = readNumber($("map-clusters"), { min: 1, max: 50 });
  const limit = readNumber($("map-limit"), { min: 1, max: 20000 });
  const problem = [clusters, limit].find((r) => !r.ok);
  if (problem) {
    showError(new Error(problem.message), "Map");
    return;
  }
  const body = { method: $("map-method").value };
  if (clusters.value !== undefined) body.n_clusters = clusters.value;
  if (limit.value !== undefined) body.limit = limit.value;
  const collection = state.collection;
  const seq = ++state.mapSeq;
  state.mapBusy = true;
  state.mapFor = collection;
  const count = $("map-count");
  const canvas = $("map-canvas");
  const wanted = Math.min(state.info && state.info.count ? state.info.count : limit.value || 5000, limit.value || 20000);
  count.textContent = `Projecting ${wanted.toLocaleString("en")} chunks with ${$("map-method").selectedOptions[0].textContent}…`;
  count.dataset.state = "busy";
  canvas.dataset.state = "busy";
  $("map-stage").setAttribute("aria-busy", "true");
  $("map-submit").disabled = true;
  try {
    const data = await api(collectionPath("map"), { method: "POST", json: body });
    if (seq !== state.mapSeq) return;
    clearError();
    hideDetail();
    clearRelated();
    mapView.set(data);
    renderLegend();
    const points = mapView.points.length;
    const named = [...mapView.clusters.keys()].filter((c) => c >= 0).length;
    const method = { umap: "UMAP", pca: "PCA", tsne: "t-SNE" }[data.method] || data.method;
    const sample = state.info && state.info.count > points ? ` (a sample of ${state.info.count.toLocaleString("en")})` : "";
    count.textContent = `${points.toLocaleString("en")} points${sample} · ${named} cluster${named === 1 ? "" : "s"} · ${method} · ${took(data.seconds)}`;
    canvas.dataset.state = "drawn";
    canvas.setAttribute("aria-label", `Map of ${points} chunks in ${named} clusters; the Clusters tab lists them as text.`);
    setMapEmpty(points ? "" : "Nothing to draw.");
  } catch (err) {
    if (seq !== state.mapSeq) return;
    state.mapFor = "";
    count.textContent = "";
    canvas.dataset.state = "failed";
    showError(err, "Drawing the map failed");
  } finally {
    if (seq === state.mapSeq) {
      state.mapBusy = false;
      count.dataset.state = "";
      $("map-stage").removeAttribute("aria-busy");
      $("map-submit").disabled = false;
    }
  }
}

function renderLegend() {
  const list = $("map-legend");
  list.replaceChildren();
  const clusters = [...mapView.clusters.values()].sort((a, b) => (a.cluster < 0) - (b.cluster < 0) || a.cluster - b.cluster);
  for (const c of clusters) {
    const item = el("li");
    const button = el("button", "legend-item");
    button.type = "button";
    button.dataset.testid = "legend-item";
    button.dataset.cluster = String(c.cluster);
    button.setAttribute("aria-pressed", "false");
    button.title = "Show only this cluster (click again to show all)";
    const swatch = el("span", "swatch");
    swatch.style.setProperty("--swatch", c.color);
    const size = (mapView.byCluster.get(c.cluster) || []).length;
    button.append(swatch, el("span", "legend-label", c.cluster < 0 ? "outliers" : `${c.cluster}: ${c.label}`), el("span", "legend-size", size));
    button.addEventListener("click", () => {
      mapView.focusCluster = mapView.focusCluster === c.cluster ? null : c.cluster;
      for (const other of list.querySelectorAll(".legend-item")) {
        other.setAttribute("aria-pressed", String(Number(other.dataset.cluster) === mapView.focusCluster));
      }
      mapView.draw();
    });
    item.append(button);
    list.append(item);
  }
}

let detailSeq = 0;

function selectPoint(i) {
  mapView.selected = i;
  mapView.draw();
  if (i < 0) {
    hideDetail();
    return;
  }
  const p = mapView.points[i];
  const metadata = p.metadata || {};
  const detail = $("map-detail");
  detail.hidden = false;
  detail.dataset.id = p.id;
  detail.style.setProperty("--swatch", clusterColor(p.cluster));
  const meta = [mapView.label(p.cluster)];
  if (metadata.file_name || metadata.source) meta.push(sourceName(metadata, p.id));
  if (metadata.page !== undefined && metadata.page !== null) meta.push(`p. ${metadata.page}`);
  if (typeof metadata.time_start === "number") meta.push(`at ${timecode(metadata.time_start)}`);
  $("map-detail-meta").textContent = meta.join(" · ");
  $("map-detail-meta").title = `id: ${p.id}`;
  $("map-detail-text").textContent = flowText(p.text);
  // the point carries the first 300 characters; the record has them all
  const seq = ++detailSeq;
  if (String(p.text).length >= 300) {
    api(collectionPath(`records/${encodeURIComponent(p.id)}`))
      .then((record) => {
        if (seq === detailSeq && record && typeof record.text === "string") $("map-detail-text").textContent = flowText(record.text);
      })
      .catch((err) => console.warn("record", err));
  }
}

function hideDetail() {
  detailSeq++;
  mapView.selected = -1;
  $("map-detail").hidden = true;
}

// ---- similar and recommended chunks, from the selected point ---------------------------------

function clearRelated() {
  state.relatedSeq++;
  state.liked = [];
  state.disliked = [];
  mapView.marked = new Set();
  $("related").hidden = true;
  $("related-list").replaceChildren();
  $("related-summary").textContent = "";
  renderTaste();
}

function pointLabel(id, text) {
  return { id, text: clip(text, 60) };
}

async function findSimilar() {
  const i = mapView.selected;
  if (i < 0) return;
  const p = mapView.points[i];
  state.liked = [];
  state.disliked = [];
  renderTaste();
  await loadRelated("search", { like: p.id, k: RELATED_K }, `Similar to “${clip(p.text, 48)}”`);
}

function addTaste(list, id, text) {
  state.liked = state.liked.filter((x) => x.id !== id);
  state.disliked = state.disliked.filter((x) => x.id !== id);
  (list === "liked" ? state.liked : state.disliked).push(pointLabel(id, text));
  runRecommend();
}

function runRecommend() {
  renderTaste();
  if (!state.liked.length && !state.disliked.length) {
    clearRelated();
    return;
  }
  let strategy = $("rec-strategy").value;
  // average_vector needs something liked; the other two work from dislikes alone
  if (!state.liked.length && strategy === "average_vector") {
    strategy = "best_score";
    $("rec-strategy").value = strategy;
  }
  const body = { positive: state.liked.map((x) => x.id), negative: state.disliked.map((x) => x.id), strategy, k: RELATED_K };
  const parts = [];
  if (state.liked.length) parts.push(`${state.liked.length} liked`);
  if (state.disliked.length) parts.push(`${state.disliked.length} disliked`);
  return loadRelated("recommend", body, `Recommended (${parts.join(", ")})`);
}

function renderTaste() {
  const chips = $("taste-chips");
  chips.replaceChildren();
  const entries = [...state.liked.map((x) => ["liked", x]), ...state.disliked.map((x) => ["disliked", x])];
  for (const [kind, x] of entries) {
    const item = el("li");
    const chip = el("button", `chip ${kind}`);
    chip.type = "button";
    chip.dataset.testid = "taste-chip";
    chip.dataset.kind = kind;
    chip.title = `${kind === "liked" ? "Liked" : "Disliked"}: ${x.text} (click to remove)`;
    chip.setAttribute("aria-label", `Remove ${kind} “${x.text}”`);
    chip.append(el("span", "chip-number", kind === "liked" ? "+" : "−"), el("span", "chip-label", x.text));
    chip.addEventListener("click", () => {
      state.liked = state.liked.filter((y) => y.id !== x.id);
      state.disliked = state.disliked.filter((y) => y.id !== x.id);
      runRecommend();
    });
    item.append(chip);
    chips.append(item);
  }
  $("taste").hidden = !entries.length;
}

async function loadRelated(route, body, heading) {
  const seq = ++state.relatedSeq;
  const box = $("related");
  box.hidden = false;
  $("related-heading").textContent = heading;
  $("related-summary").textContent = route === "search" ? "Searching…" : "Recommending…";
  $("related-summary").dataset.state = "busy";
  $("related-list").setAttribute("aria-busy", "true");
  try {
    const answer = await api(collectionPath(route), { method: "POST", json: body });
    if (seq !== state.relatedSeq) return;
    clearError();
    renderRelated(answer.hits || [], answer.seconds);
  } catch (err) {
    if (seq !== state.relatedSeq) return;
    $("related-summary").textContent = "";
    showError(err, route === "search" ? "Finding similar chunks failed" : "Recommending failed");
  } finally {
    if (seq === state.relatedSeq) {
      $("related-summary").dataset.state = "";
      $("related-list").removeAttribute("aria-busy");
    }
  }
}

function renderRelated(hits, seconds) {
  const list = $("related-list");
  list.replaceChildren();
  mapView.marked = new Set();
  $("related-summary").textContent = hits.length ? `${hits.length} chunk${hits.length === 1 ? "" : "s"} in ${took(seconds)}; ringed on the map` : "Nothing found.";
  hits.forEach((hit, rank) => {
    const index = mapView.byId.has(hit.id) ? mapView.byId.get(hit.id) : -1;
    if (index >= 0) mapView.marked.add(index);
    const item = el("li", `related-item${index >= 0 ? " on-map" : ""}`);
    item.dataset.testid = "related-item";
    item.dataset.id = hit.id;
    if (index >= 0) item.style.setProperty("--swatch", clusterColor(mapView.points[index].cluster));
    const head = el("div", "related-head");
    head.append(el("span", "hit-rank", rank + 1), el("span", "", sourceName(hit.metadata || {}, hit.id)));
    head.append(el("span", "hit-score", typeof hit.score === "number" ? hit.score.toFixed(3) : ""));
    const text = el("button", "related-text", flowText(hit.text));
    text.type = "button";
    text.dataset.testid = "related-text";
    if (index >= 0) {
      text.title = "Show it on the map";
      text.addEventListener("click", () => selectPoint(index));
    } else {
      text.disabled = true;
      text.title = "Not on the map (it was left out of the sample)";
    }
    const actions = el("div", "related-actions");
    const like = el("button", "ghost small", "More like this");
    like.type = "button";
    like.dataset.testid = "related-like";
    like.setAttribute("aria-label", `Recommend more like result ${rank + 1}`);
    like.addEventListener("click", () => addTaste("liked", hit.id, hit.text));
    const dislike = el("button", "ghost small", "Less like this");
    dislike.type = "button";
    dislike.dataset.testid = "related-dislike";
    dislike.setAttribute("aria-label", `Recommend less like result ${rank + 1}`);
    dislike.addEventListener("click", () => addTaste("disliked", hit.id, hit.text));
    actions.append(like, dislike);
    item.append(head, text, actions);
    list.append(item);
  });
  mapView.draw();
}

function wireMap() {
  const canvas = $("map-canvas");
  const local = (event) => {
    const box = canvas.getBoundingClientRect();
    return [event.clientX - box.left, event.clientY - box.top];
  };
  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    const [x, y] = local(event);
    mapView.drag = { x, y, panX: mapView.panX, panY: mapView.panY, moved: false };
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener("pointermove", (event) => {
    const [x, y] = local(event);
    const drag = mapView.drag;
    if (drag) {
      if (!drag.moved && Math.hypot(x - drag.x, y - drag.y) > 4) {
        drag.moved = true;
        canvas.classList.add("grabbing");
        $("map-tooltip").hidden = true;
      }
      if (drag.moved) {
        mapView.panX = drag.panX + x - drag.x;
        mapView.panY = drag.panY + y - drag.y;
        $("map-reset").hidden = false;
        mapView.redraw();
        return;
      }
    }
    const i = mapView.pointAt(x, y);
    if (i !== mapView.hover) {
      mapView.hover = i;
      mapView.redraw();
    }
    canvas.style.cursor = i >= 0 ? "pointer" : "";
    mapView.showTooltip(i, x, y);
  });
  canvas.addEventListener("pointerup", (event) => {
    const drag = mapView.drag;
    mapView.drag = null;
    canvas.classList.remove("grabbing");
    if (!drag || drag.moved) return;
    const [x, y] = local(event);
    const i = mapView.pointAt(x, y);
    if (i >= 0) selectPoint(i);
  });
  canvas.addEventListener("pointercancel", () => {
    mapView.drag = null;
    canvas.classList.remove("grabbing");
  });
  canvas.addEventListener("pointerleave", () => {
    if (mapView.drag) return;
    mapView.hover = -1;
    $("map-tooltip").hidden = true;
    mapView.redraw();
  });
  canvas.addEventListener(
    "wheel",
    (event) => {
      if (!mapView.points.length) return;
      event.preventDefault();
      const [x, y] = local(event);
      const factor = Math.exp(-Math.max(-100, Math.min(100, event.deltaY)) * 0.0025);
      const zoom = Math.min(64, Math.max(1, mapView.zoom * factor));
      const applied = zoom / mapView.zoom;
      mapView.panX = x - (x - mapView.panX) * applied;
      mapView.panY = y - (y - mapView.panY) * applied;
      mapView.zoom = zoom;
      if (zoom === 1) {
        mapView.panX = 0;
        mapView.panY = 0;
      }
      $("map-reset").hidden = zoom === 1;
      $("map-tooltip").hidden = true;
      mapView.redraw();
    },
    { passive: false },
  );
  canvas.addEventListener("keydown", (event) => {
    const n = mapView.points.length;
    if (!n) return;
    if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
      event.preventDefault();
      const step = event.key === "ArrowRight" ? 1 : -1;
      const from = mapView.selected < 0 ? (step > 0 ? -1 : 0) : mapView.selected;
      selectPoint((from + step + n) % n);
      const i = mapView.selected;
      mapView.showTooltip(i, mapView.sx[i], mapView.sy[i]);
    } else if (event.key === "Escape") {
      selectPoint(-1);
      $("map-tooltip").hidden = true;
    }
  });
  canvas.addEventListener("blur", () => {
    if (mapView.hover < 0) $("map-tooltip").hidden = true;
  });
  new ResizeObserver(() => mapView.resize()).observe($("map-stage"));
  $("map-reset").addEventListener("click", () => mapView.resetView());
  $("map-form").addEventListener("submit", (event) => {
    event.preventDefault();
    drawMap();
  });
  $("map-detail-close").addEventListener("click", () => selectPoint(-1));
  $("map-similar").addEventListener("click", findSimilar);
  $("map-recommend").addEventListener("click", () => {
    const i = mapView.selected;
    if (i >= 0) addTaste("liked", mapView.points[i].id, mapView.points[i].text);
  });
  $("rec-strategy").addEventListener("change", runRecommend);
  $("related-clear").addEventListener("click", () => {
    clearRelated();
    mapView.draw();
  });
  // where a point is drawn, in the page's CSS pixels (for tests and tools driving the page)
  window.embedstackMap = {
    position(id) {
      const i = mapView.byId.get(id);
      if (i === undefined) return null;
      const box = canvas.getBoundingClientRect();
      return { x: box.left + mapView.sx[i], y: box.top + mapView.sy[i] };
    },
    ids: () => mapView.points.map((p) => p.id),
  };
}

// ---- clusters and near-duplicates, as text ----------------------------------------------------

function clearClusters() {
  state.clustersSeq++;
  state.clustersFor = "";
  state.clustersBusy = false;
  $("clusters-submit").disabled = false;
  $("clusters-summary").textContent = "";
  $("clusters-summary").dataset.state = "";
  $("cluster-list").replaceChildren();
  $("duplicates-summary").textContent = "";
  $("duplicate-list").replaceChildren();
}

async function findClusters() {
  if (!requireCollection()) return;
  const choice = $("clusters-method").value;
  const method = choice === "kmeans-umap" ? "kmeans" : choice;
  const n = readNumber($("clusters-n"), { min: 1, max: 1000 });
  if (!n.ok) {
    showError(new Error(n.message), "Clusters");
    return;
  }
  const body = { method, n_examples: 3, n_words: 8 };
  if (choice === "kmeans-umap") body.reduce_dims = 5;
  if (n.value !== undefined && method !== "hdbscan") body.n_clusters = n.value;
  const seq = ++state.clustersSeq;
  state.clustersBusy = true;
  state.clustersFor = state.collection;
  const summary = $("clusters-summary");
  summary.textContent = "Clustering…";
  summary.dataset.state = "busy";
  $("cluster-list").setAttribute("aria-busy", "true");
  $("clusters-submit").disabled = true;
  try {
    const report = await api(collectionPath("cluster"), { method: "POST", json: body });
    if (seq !== state.clustersSeq) return;
    clearError();
    renderClusters({ ...report, reduced: choice === "kmeans-umap" });
  } catch (err) {
    if (seq !== state.clustersSeq) return;
    state.clustersFor = "";
    summary.textContent = "";
    showError(err, "Clustering failed");
  } finally {
    if (seq === state.clustersSeq) {
      state.clustersBusy = false;
      summary.dataset.state = "";
      $("cluster-list").removeAttribute("aria-busy");
      $("clusters-submit").disabled = false;
    }
  }
}

function renderClusters(report) {
  const names = { kmeans: report.reduced ? "k-means after UMAP" : "k-means", agglomerative: "agglomerative", hdbscan: "HDBSCAN" };
  const outliers = report.outliers ? ` (${report.outliers.toLocaleString("en")} outliers)` : "";
  $("clusters-summary").textContent = `${report.n_clusters} cluster${report.n_clusters === 1 ? "" : "s"} of ${Number(report.n_items).toLocaleString("en")} chunks${outliers} · ${names[report.method] || report.method} · ${took(report.seconds)}`;
  const list = $("cluster-list");
  list.replaceChildren();
  for (const c of report.clusters || []) {
    const item = el("li", "cluster");
    item.dataset.testid = "cluster";
    item.dataset.cluster = String(c.cluster);
    item.style.setProperty("--swatch", clusterColor(c.cluster));
    const head = el("div", "cluster-head");
    const title = el("h3", "cluster-title", `${c.cluster}: ${c.label}`);
    title.dataset.testid = "cluster-label";
    const size = el("span", "cluster-size", `${Number(c.size).toLocaleString("en")} chunk${c.size === 1 ? "" : "s"}`);
    size.dataset.testid = "cluster-size";
    head.append(title, size);
    const keywords = el("ul", "keywords");
    keywords.dataset.testid = "cluster-keywords";
    keywords.setAttribute("aria-label", "Keywords");
    for (const [word] of c.keywords || []) keywords.append(el("li", "", word));
    const examples = el("ol", "cluster-examples");
    examples.dataset.testid = "cluster-examples";
    examples.setAttribute("aria-label", "Most typical chunks");
    for (const example of c.examples || []) {
      const line = el("li");
      line.dataset.id = example.id;
      const text = flowText(example.text);
      const like = el("button", "ghost small", "More like this");
      like.type = "button";
      like.addEventListener("click", () => {
        showView("search");
        runSearch({ like: example.id, likeText: text });
        $("search-heading").scrollIntoView({ block: "start", behavior: "smooth" });
      });
      line.append(el("span", "example-text", text), " ", like);
      examples.append(line);
    }
    item.append(head, keywords, examples);
    list.append(item);
  }
}

async function findDuplicates() {
  if (!requireCollection()) return;
  const threshold = readNumber($("duplicates-threshold"), { min: 0.5, max: 1, integer: false });
  if (!threshold.ok) {
    showError(new Error(threshold.message), "Near-duplicates");
    return;
  }
  const body = threshold.value === undefined ? {} : { threshold: threshold.value };
  const summary = $("duplicates-summary");
  summary.textContent = "Comparing every chunk with every other…";
  summary.dataset.state = "busy";
  $("duplicates-submit").disabled = true;
  const collection = state.collection;
  try {
    const { groups, seconds } = await api(collectionPath("duplicates"), { method: "POST", json: body });
    if (collection !== state.collection) return;
    clearError();
    const list = $("duplicate-list");
    list.replaceChildren();
    summary.textContent = groups.length
      ? `${groups.length} group${groups.length === 1 ? "" : "s"} of near-duplicates · ${took(seconds)}`
      : `No near-duplicates at this similarity · ${took(seconds)}`;
    for (const group of groups) {
      const item = el("li");
      item.dataset.testid = "duplicate-group";
      item.append(el("strong", "", `${group.length} chunks`));
      const members = el("ul");
      for (const member of group) {
        const line = el("li");
        line.dataset.id = member.id;
        line.append(el("span", "", clip(member.text, 200)), " ", el("span", "duplicate-id", member.id));
        members.append(line);
      }
      item.append(members);
      list.append(item);
    }
  } catch (err) {
    summary.textContent = "";
    showError(err, "Finding near-duplicates failed");
  } finally {
    summary.dataset.state = "";
    $("duplicates-submit").disabled = false;
  }
}

function wireViews() {
  const tabs = [...document.querySelectorAll(".view-tab")];
  for (const tab of tabs) {
    tab.addEventListener("click", () => showView(tab.dataset.view));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      event.preventDefault();
      const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
      showView(next.dataset.view, { focus: true });
    });
  }
  wireMap();
  $("clusters-form").addEventListener("submit", (event) => {
    event.preventDefault();
    findClusters();
  });
  $("clusters-method").addEventListener("change", (event) => {
    $("clusters-n").disabled = event.target.value === "hdbscan";
  });
  $("duplicates-form").addEventListener("submit", (event) => {
    event.preventDefault();
    findDuplicates();
  });
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
  $("search-image").addEventListener("change", () => {
    if ($("search-image").files.length) runSearch();
  });
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
  // the hint follows the mode (also the one a reload restores)
  const showModeHint = () => ($("ask-mode-hint").textContent = ASK_MODE_HINTS[$("ask-mode").value] || "");
  $("ask-mode").addEventListener("change", showModeHint);
  showModeHint();
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
wireViews();
addFilterRow();
boot();
