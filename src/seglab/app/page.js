"use strict";
const $ = (id) => document.getElementById(id);
let session = null;  // made by the server (POST /api/session), never by the page
let busy = false, again = null, hasImage = false;

const STATUS_WORDS = {413: "the upload is larger than the server accepts", 421: "the server does not answer to this address",
  404: "not found", 410: "this page's session has ended; reload the page", 500: "the server failed"};
async function call(url, options = {}) {
  if (session === null && url !== "/api/session") session = (await call("/api/session", {method: "POST"})).session;
  options.headers = Object.assign({"X-Seglab-Session": session || ""}, options.headers || {});
  let response;
  try { response = await fetch(url, options); }
  catch (e) { throw new Error("the server cannot be reached: is `seglab app` still running?"); }
  let body = {};
  try { body = await response.json(); }
  catch (e) { body = {error: STATUS_WORDS[response.status] || `the server answered ${response.status}`}; }
  if (!response.ok || body.error) throw new Error(body.error || STATUS_WORDS[response.status] || `error ${response.status}`);
  return body;
}
function el(tag, attrs = {}, ...children) {  // elements built from data: no server text is parsed as HTML
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}
function showError(message) { const e = $("error"); e.textContent = message || ""; e.classList.toggle("shown", !!message); }
function setBusy(on, text) {
  busy = on;
  $("run").querySelector("button").disabled = on;
  $("status").replaceChildren(...(on ? [el("span", {class: "spinner"}), text || "running…"] : [text || ""]));
}
function params(method) {
  if (method === "kmeans") {
    const p = {n_clusters: $("km-k").value, features: $("km-features").value};
    const w = $("km-weight").value.trim(); if (w) p.spatial_weight = w;
    return p;
  }
  return {spatial_bandwidth: $("ms-hs").value, range_bandwidth: $("ms-hr").value,
          kernel: $("ms-kernel").value, min_region_size: $("ms-min").value};
}
function chosen(only) {
  const methods = [];
  for (const m of ["kmeans", "meanshift"]) if ((!only || only === m) && $("use-" + m).checked) methods.push({method: m, params: params(m)});
  if (!only) for (const box of document.querySelectorAll("#checkpoints input:checked")) methods.push({method: "checkpoint", name: box.value});
  return methods;
}
function card(r) {
  const metrics = Object.entries(r.metrics || {}).filter(([k]) => ["adjusted_rand_index", "boundary_f1", "mean_iou", "pixel_accuracy"].includes(k))
    .map(([k, v]) => `${k.replaceAll("_", " ")} ${v === null ? "– (no truth pixels)" : Number(v).toFixed(3)}`).join(" · ");
  const nums = el("div", {class: "nums", text: `${Number(r.seconds).toFixed(2)} s · ${r.n_segments} segments`});
  if (metrics) nums.append(el("br"), metrics);
  const div = el("div", {class: "card"},
    el("a", {href: r.overlay, target: "_blank"}, el("img", {alt: r.title, src: r.overlay})),
    el("div", {class: "meta"}, el("div", {class: "name", text: r.title}), nums,
      el("a", {href: r.labels, download: "", text: "labels"}), el("a", {href: r.overlay, download: "", text: "overlay.png"})));
  div.dataset.method = r.method === "checkpoint" ? r.title : r.method;
  return div;
}
async function run(only) {
  if (!hasImage) { showError("Upload an image (or pick a sample) first."); return; }
  if (busy) { again = only; return; }
  const methods = chosen(only);
  if (!methods.length) { showError("Choose at least one method."); return; }
  showError(""); setBusy(true, only ? "re-running k-means…" : `running ${methods.length} method(s)…`);
  try {
    const body = await call("/api/run", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({methods})});
    const box = $("results");
    if (!only) box.replaceChildren();
    for (const r of body.results) {
      const key = r.method === "checkpoint" ? r.title : r.method;
      const old = Array.from(box.children).find((c) => c.dataset && c.dataset.method === key);
      if (old) old.replaceWith(card(r)); else box.appendChild(card(r));
    }
    setBusy(false, `done: ${body.results.map((r) => `${r.title} ${r.seconds.toFixed(2)} s`).join(", ")}`);
  } catch (e) { setBusy(false); showError(e.message); }
  if (again !== null) { const next = again; again = null; run(next || undefined); }
}
async function useImage(promise) {
  showError(""); setBusy(true, "reading the image…");
  try {
    const info = await promise;
    hasImage = true;
    startLabelling(info);
    $("preview").replaceChildren(el("img", {alt: "your image", src: info.preview}),
      el("div", {class: "hint", text: `${info.width} × ${info.height} pixels`}));
    $("results").replaceChildren(el("div", {class: "empty"}, "Press ", el("b", {text: "Run"}), "."));
    setBusy(false, "");
  } catch (e) { setBusy(false); showError(e.message); }
}
let limits = {bytes: Infinity};
function upload(input, what) {
  const file = input.files[0]; if (!file) return Promise.reject(new Error("no file chosen"));
  if (file.size > limits.bytes)  // said here: a browser may not show the server's early refusal
    return Promise.reject(new Error(`${file.name} is ${(file.size / 1e6).toFixed(1)} MB; the limit is ${+(limits.bytes / 1e6).toFixed(1)} MB`));
  const form = new FormData(); form.append("file", file);
  return call(`/api/upload?what=${what}`, {method: "POST", body: form});
}
$("file").addEventListener("change", () => useImage(upload($("file"), "image")));
$("truth").addEventListener("change", async () => {
  try { const t = await upload($("truth"), "truth"); showError(""); $("status").textContent = `truth loaded (${t.classes} values): metrics appear with the next run`; }
  catch (e) { showError(e.message); }
});
$("run").querySelector("button").addEventListener("click", () => run());
let timer = null;
$("km-k").addEventListener("input", () => {
  $("km-k-value").textContent = $("km-k").value;
  clearTimeout(timer);
  if (hasImage && $("use-kmeans").checked && $("results").querySelector(".card")) timer = setTimeout(() => run("kmeans"), 250);
});

// ---- labelling: strokes per class on a canvas over the image, trained on the server ----------
const PALETTE = ["#3cb44b", "#e6194b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4", "#469990"];
const L = {w: 0, h: 0, labels: null, pixels: null, ctx: null, undo: [], redo: [], zoom: 1, tx: 0, ty: 0,
           classes: [], current: 1, segments: {}, drawing: false, last: null, panning: null, space: false};
function hexRgb(h) { return [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)); }
function renderClasses() {
  $("classes").replaceChildren(...L.classes.map((c, i) => {
    const id = i + 1;
    const pick = el("button", {type: "button", id: `class-${id}`, title: `paint ${c.name} (key ${id % 10})`});
    pick.style.background = c.color;
    pick.classList.toggle("chosen", id === L.current);
    pick.addEventListener("click", () => { L.current = id; renderClasses(); setTool("brush"); });
    const name = el("input", {type: "text", value: c.name, "aria-label": `name of class ${id}`});
    name.addEventListener("input", () => { c.name = name.value; });
    const colour = el("input", {type: "color", value: c.color, "aria-label": `colour of class ${id}`});
    colour.addEventListener("input", () => { c.color = colour.value; pick.style.background = c.color; redraw(); });
    return el("div", {class: "class"}, pick, name, colour);
  }));
}
function addClass(name) {
  if (L.classes.length >= 10) { showError("At most 10 classes."); return; }
  const n = L.classes.length;
  L.classes.push({name: name || `class ${n + 1}`, color: PALETTE[n % PALETTE.length]});
  renderClasses();
}
function setTool(value) { for (const r of document.querySelectorAll("input[name=tool]")) r.checked = r.value === value; }
function tool() { return document.querySelector("input[name=tool]:checked").value; }
function startLabelling(info) {
  L.w = info.width; L.h = info.height;
  L.labels = new Uint8Array(L.w * L.h); L.undo = []; L.redo = []; L.segments = {};
  const canvas = $("canvas");
  canvas.width = L.w; canvas.height = L.h;
  L.ctx = canvas.getContext("2d");
  L.pixels = L.ctx.createImageData(L.w, L.h);
  $("label-image").src = info.preview;
  $("stage").style.width = `${L.w}px`; $("stage").style.height = `${L.h}px`;
  $("label-panel").hidden = false;
  fit(); redraw(); status();
}
function paintRect(x0, y0, x1, y1) {  // the label colours of a rectangle into the canvas
  x0 = Math.max(0, x0); y0 = Math.max(0, y0); x1 = Math.min(L.w, x1); y1 = Math.min(L.h, y1);
  if (x1 <= x0 || y1 <= y0) return;
  const rgb = L.classes.map((c) => hexRgb(c.color)), d = L.pixels.data;
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) {
    const i = y * L.w + x, c = L.labels[i], o = 4 * i;
    if (c && rgb[c - 1]) { d[o] = rgb[c - 1][0]; d[o + 1] = rgb[c - 1][1]; d[o + 2] = rgb[c - 1][2]; d[o + 3] = 150; }
    else d[o + 3] = 0;
  }
  L.ctx.putImageData(L.pixels, 0, 0, x0, y0, x1 - x0, y1 - y0);
}
function redraw() { if (L.labels) paintRect(0, 0, L.w, L.h); }
function status() {
  if (!L.labels) return;
  const counts = new Array(L.classes.length + 1).fill(0);
  for (const v of L.labels) counts[v] = (counts[v] || 0) + 1;
  const painted = L.labels.length - counts[0];
  $("label-status").textContent = `${painted} pixels labelled (${(100 * painted / L.labels.length).toFixed(2)} %): ` +
    L.classes.map((c, i) => `${c.name} ${counts[i + 1] || 0}`).join(", ") + ` · zoom ${L.zoom.toFixed(2)}×`;
}
function remember() { L.undo.push(L.labels.slice()); if (L.undo.length > 40) L.undo.shift(); L.redo = []; }
function undo() { if (!L.undo.length) return; L.redo.push(L.labels); L.labels = L.undo.pop(); redraw(); status(); }
function redo() { if (!L.redo.length) return; L.undo.push(L.labels); L.labels = L.redo.pop(); redraw(); status(); }
function toImage(e) {
  const r = $("canvas").getBoundingClientRect();
  return [(e.clientX - r.left) * L.w / r.width, (e.clientY - r.top) * L.h / r.height];
}
function dab(x, y, value) {
  const r = +$("brush").value / 2, x0 = Math.floor(x - r), y0 = Math.floor(y - r), x1 = Math.ceil(x + r), y1 = Math.ceil(y + r);
  for (let yy = Math.max(0, y0); yy < Math.min(L.h, y1 + 1); yy++)
    for (let xx = Math.max(0, x0); xx < Math.min(L.w, x1 + 1); xx++)
      if ((xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2 <= Math.max(r * r, 0.5)) L.labels[yy * L.w + xx] = value;
  paintRect(x0, y0, x1 + 1, y1 + 1);
}
function line(a, b, value) {  // dabs along a mouse move, so fast strokes have no gaps
  const steps = Math.max(1, Math.ceil(Math.hypot(b[0] - a[0], b[1] - a[1]) / Math.max(1, +$("brush").value / 4)));
  for (let s = 1; s <= steps; s++) dab(a[0] + (b[0] - a[0]) * s / steps, a[1] + (b[1] - a[1]) * s / steps, value);
}
async function fill(x, y, method) {
  showError("");
  try {
    if (!L.segments[method]) {
      setBusy(true, `computing ${method === "kmeans" ? "k-means" : "mean-shift"} segments…`);
      const response = await fetch(`/api/strokes/segments?method=${method}`, {method: "POST", headers: {"X-Seglab-Session": session}});
      if (!response.ok) { const b = await response.json().catch(() => ({})); throw new Error(b.error || `error ${response.status}`); }
      L.segments[method] = new Int32Array(await response.arrayBuffer());
      setBusy(false, "");
    }
    const ids = L.segments[method], target = ids[Math.floor(y) * L.w + Math.floor(x)];
    remember();
    for (let i = 0; i < ids.length; i++) if (ids[i] === target) L.labels[i] = L.current;
    redraw(); status();
  } catch (e) { setBusy(false); showError(e.message); }
}
function applyView() { $("stage").style.transform = `translate(${L.tx}px, ${L.ty}px) scale(${L.zoom})`; status(); }
function fit() {
  const v = $("viewport");
  L.zoom = Math.min(v.clientWidth / L.w, v.clientHeight / L.h, 8);
  L.tx = (v.clientWidth - L.w * L.zoom) / 2; L.ty = (v.clientHeight - L.h * L.zoom) / 2;
  applyView();
}
function zoomAt(factor, cx, cy) {
  const z = Math.min(32, Math.max(0.05, L.zoom * factor));
  L.tx = cx - (cx - L.tx) * z / L.zoom; L.ty = cy - (cy - L.ty) * z / L.zoom; L.zoom = z; applyView();
}
const viewport = $("viewport");
viewport.addEventListener("contextmenu", (e) => e.preventDefault());
viewport.addEventListener("wheel", (e) => {
  e.preventDefault();
  const r = viewport.getBoundingClientRect();
  zoomAt(e.deltaY < 0 ? 1.2 : 1 / 1.2, e.clientX - r.left, e.clientY - r.top);
}, {passive: false});
viewport.addEventListener("pointerdown", (e) => {
  if (!L.labels) return;
  viewport.setPointerCapture(e.pointerId);
  if (e.button === 2 || e.button === 1 || L.space) { L.panning = [e.clientX - L.tx, e.clientY - L.ty]; viewport.classList.add("panning"); return; }
  if (e.button !== 0) return;
  const p = toImage(e), t = tool();
  if (t.startsWith("fill-")) { fill(p[0], p[1], t.slice(5)); return; }
  remember(); L.drawing = true; L.last = p;
  dab(p[0], p[1], t === "eraser" ? 0 : L.current);
});
viewport.addEventListener("pointermove", (e) => {
  if (L.panning) { L.tx = e.clientX - L.panning[0]; L.ty = e.clientY - L.panning[1]; applyView(); return; }
  if (!L.drawing) return;
  const p = toImage(e);
  line(L.last, p, tool() === "eraser" ? 0 : L.current); L.last = p;
});
function endStroke() { if (L.drawing) status(); L.drawing = false; L.panning = null; viewport.classList.remove("panning"); }
viewport.addEventListener("pointerup", endStroke);
viewport.addEventListener("pointercancel", endStroke);
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT" && e.target.type === "text") return;
  if ((e.ctrlKey || e.metaKey) && e.key === "z") { e.preventDefault(); undo(); }
  else if ((e.ctrlKey || e.metaKey) && e.key === "y") { e.preventDefault(); redo(); }
  else if (e.key === " ") { L.space = true; viewport.classList.add("panning"); e.preventDefault(); }
  else if (/^[0-9]$/.test(e.key) && !e.ctrlKey) { const id = +e.key || 10; if (id <= L.classes.length) { L.current = id; renderClasses(); } }
});
document.addEventListener("keyup", (e) => { if (e.key === " ") { L.space = false; viewport.classList.remove("panning"); } });
$("brush").addEventListener("input", () => { $("brush-value").textContent = $("brush").value; });
$("undo").addEventListener("click", undo);
$("redo").addEventListener("click", redo);
$("clear").addEventListener("click", () => { if (L.labels) { remember(); L.labels.fill(0); redraw(); status(); } });
$("zoom-in").addEventListener("click", () => zoomAt(1.25, viewport.clientWidth / 2, viewport.clientHeight / 2));
$("zoom-out").addEventListener("click", () => zoomAt(0.8, viewport.clientWidth / 2, viewport.clientHeight / 2));
$("zoom-fit").addEventListener("click", fit);
$("add-class").addEventListener("click", () => addClass());
$("remove-class").addEventListener("click", () => {
  if (L.classes.length <= 2) { showError("At least two classes."); return; }
  const gone = L.classes.length;
  if (L.labels) { remember(); for (let i = 0; i < L.labels.length; i++) if (L.labels[i] === gone) L.labels[i] = 0; }
  L.classes.pop(); L.current = Math.min(L.current, L.classes.length); renderClasses(); redraw(); status();
});
$("mask").addEventListener("change", async () => {
  if (!hasImage) { showError("Upload an image (or pick a sample) first."); return; }
  try {
    const m = await upload($("mask"), "mask");
    const bytes = Uint8Array.from(atob(m.data), (c) => c.charCodeAt(0));
    while (L.classes.length < Math.max(2, m.classes)) addClass();
    remember(); L.labels = bytes; redraw(); status(); showError("");
  } catch (e) { showError(e.message); }
});
function resultCard(key, title, src, links, text) {
  const div = el("div", {class: "card"},
    el("a", {href: src, target: "_blank"}, el("img", {alt: title, src})),
    el("div", {class: "meta"}, el("div", {class: "name", text: title}), el("div", {class: "nums", text}),
      ...links.map(([label, href, name]) => el("a", {href, download: name, text: label}))));
  div.dataset.method = key;
  return div;
}
$("train").addEventListener("click", async () => {
  if (!hasImage || !L.labels) { showError("Upload an image (or pick a sample) first."); return; }
  const present = new Set(L.labels); present.delete(0);
  if (present.size < 2) { showError("Paint strokes of at least two classes, then train."); return; }
  showError(""); $("train").disabled = true; setBusy(true, "training on the strokes…");
  try {
    const form = new FormData();
    form.append("labels", new Blob([L.labels], {type: "application/octet-stream"}), "strokes.bin");
    form.append("meta", JSON.stringify({names: L.classes.map((c) => c.name), colors: L.classes.map((c) => c.color)}));
    const r = await call("/api/strokes/train", {method: "POST", body: form});
    const box = $("results");
    for (const old of box.querySelectorAll("[data-method^=strokes-], .empty")) old.remove();
    const text = `${r.labelled_pixels} labelled pixels · trained in ${r.train_seconds.toFixed(1)} s · predicted in ${r.predict_seconds.toFixed(1)} s`;
    box.prepend(
      resultCard("strokes-prediction", "prediction from the strokes", r.prediction,
        [["labels.png", r.labels, "labels.png"], ["mask as COCO JSON", r.coco, "coco.json"], ["segmenter", r.segmenter, "segmenter.npz"], ["strokes.png", r.strokes, "strokes.png"]], text),
      resultCard("strokes-uncertainty", "uncertainty (yellow: the forest hesitates)", r.uncertainty, [["uncertainty.png", r.uncertainty, "uncertainty.png"]],
        `mean uncertainty ${r.mean_uncertainty.toFixed(3)}: paint where it is yellow and wrong`));
    setBusy(false, `trained: ${text}`);
  } catch (e) { setBusy(false); showError(e.message); }
  $("train").disabled = false;
});
addClass("background"); addClass("object"); L.current = 2; renderClasses();
(async function init() {
  try {
    const c = await call("/api/config");
    const d = c.defaults;
    limits = c.limits;
    $("km-k").value = d.kmeans.n_clusters; $("km-k-value").textContent = d.kmeans.n_clusters;
    $("km-features").value = d.kmeans.features; $("km-weight").placeholder = d.kmeans.spatial_weight;
    $("ms-hs").value = d.meanshift.spatial_bandwidth; $("ms-hr").value = d.meanshift.range_bandwidth;
    $("ms-kernel").value = d.meanshift.kernel; $("ms-min").value = d.meanshift.min_region_size;
    $("limits").textContent = `Uploads up to ${+(c.limits.bytes / 1e6).toFixed(1)} MB and ${(c.limits.pixels / 1e6).toFixed(0)} megapixels.`;
    for (const name of c.samples) {
      const b = document.createElement("button"); b.type = "button"; b.textContent = name;
      b.addEventListener("click", () => useImage(call(`/api/sample/${name}`, {method: "POST"})));
      $("samples").appendChild(b);
    }
    const names = Object.keys(c.checkpoints);
    if (names.length) {
      $("checkpoints").replaceChildren(...names.map((n) =>
        el("label", {class: "row"}, el("input", {type: "checkbox", value: n}), " ", el("span", {text: `${n} (${c.checkpoints[n]})`}))));
    }
  } catch (e) { showError(e.message); }
})();
