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
    $("preview").replaceChildren(el("img", {alt: "your image", src: info.preview}),
      el("div", {class: "hint", text: `${info.width} × ${info.height} pixels`}));
    $("results").replaceChildren(el("div", {class: "empty"}, "Press ", el("b", {text: "Run"}), "."));
    setBusy(false, "");
  } catch (e) { setBusy(false); showError(e.message); }
}
function upload(input, what) {
  const file = input.files[0]; if (!file) return Promise.reject(new Error("no file chosen"));
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
(async function init() {
  try {
    const c = await call("/api/config");
    const d = c.defaults;
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
