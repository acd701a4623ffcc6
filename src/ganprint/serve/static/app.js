// The ganprint page: each chosen or dropped image is sent on its own to POST /v1/attribute and
// gets a card with the verdict in words, the evidence, and what the numbers mean.
"use strict";

const drop = document.getElementById("drop");
const input = document.getElementById("files");
const cards = document.getElementById("cards");
const statusLine = document.getElementById("status");
let pending = 0;

const WORDS = {
  "attributed": ["Made by a registered model", "attributed"],
  "fingerprinted-unknown": ["Fingerprinted, but by no single registered model", "unknown"],
  "not-fingerprinted": ["No fingerprint found", "clean"],
  "not-enough-signal": ["Too little detail to decide", "unknown"],
};

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmt(x, digits) {
  return x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(digits);
}

function sentence(text) {
  const t = (text || "").trim();
  return t ? t[0].toUpperCase() + t.slice(1) + (t.endsWith(".") ? "" : ".") : "";
}

function explain(r) {
  const bits = r.bits.length;
  const chance = r.neg_log10_corrected_p >= 1 ? `about 1 in 10^${Math.floor(r.neg_log10_corrected_p)}` :
    "quite likely";
  if (r.verdict === "attributed") {
    return `${r.matches} of ${bits} decoded bits match the fingerprint issued to ${r.model}. A clean image ` +
      `would match one of the ${r.registry_size} registered fingerprints this well with a chance of ${chance} ` +
      `(-log10 p ${fmt(r.neg_log10_corrected_p, 1)}; higher is stronger evidence).`;
  }
  if (r.verdict === "fingerprinted-unknown") {
    return `The decoder reads a fingerprint with confidence, but no single registered fingerprint explains it. ` +
      sentence(r.reason);
  }
  if (r.verdict === "not-fingerprinted") {
    const near = r.nearest ? `The nearest registered fingerprint (${r.nearest}) matches ${r.matches} of ${bits} bits; ` +
      `chance alone matches about half. ` : "";
    return `${near}Nothing here points to a fingerprinted model (-log10 p ${fmt(r.neg_log10_corrected_p, 1)}; ` +
      `attribution needs strong evidence). ${sentence(r.reason)}`;
  }
  return sentence(r.reason);
}

function showResult(card, r) {
  const [words, css] = WORDS[r.verdict] || [r.verdict.replace(/-/g, " "), "unknown"];
  card.className = `card ${css}`;
  card.dataset.verdict = r.verdict;
  const body = card.querySelector(".body");
  body.querySelector(".verdict").textContent = words;
  const dl = el("dl");
  const rows = [
    ["model", r.model || (r.nearest ? `(nearest: ${r.nearest})` : "–")],
    ["-log10 p", fmt(r.neg_log10_corrected_p, 1)],
    ["bit accuracy", r.bit_accuracy === null ? "–" : `${fmt(100 * r.bit_accuracy, 1)} % (${r.matches}/${r.bits.length} bits)`],
    ["confidence", fmt(r.confidence, 3)],
  ];
  for (const [k, v] of rows) { dl.append(el("dt", {}, k), el("dd", {"data-field": k}, v)); }
  body.append(dl);
  card.append(el("p", {class: "explain"}, explain(r)));
}

function showError(card, message) {
  card.className = "card error";
  card.dataset.verdict = "error";
  card.querySelector(".verdict").textContent = "Could not check this image";
  card.append(el("p", {class: "explain"}, message));
}

async function check(file) {
  const card = el("article", {class: "card", "data-name": file.name, "data-verdict": "pending"});
  const thumb = el("img", {alt: file.name});
  thumb.src = URL.createObjectURL(file);
  thumb.onerror = () => thumb.replaceWith(el("div", {class: "thumb-missing"}, "no preview"));
  const body = el("div", {class: "body"});
  body.append(el("h2", {}, file.name), el("p", {class: "verdict"}, "Checking…"));
  card.append(thumb, body);
  cards.append(card);
  const form = new FormData();
  form.append("images", file, file.name);
  pending += 1;
  updateStatus();
  try {
    const response = await fetch("/v1/attribute", {method: "POST", body: form});
    let payload = null;
    try { payload = await response.json(); } catch (e) { payload = null; }
    if (!response.ok) {
      showError(card, payload && payload.error ? `${payload.error}.` : `The server answered ${response.status}.`);
    } else {
      showResult(card, payload.results[0]);
    }
  } catch (e) {
    showError(card, "The server could not be reached; check the connection and try again.");
  } finally {
    pending -= 1;
    updateStatus();
  }
}

function updateStatus() {
  statusLine.textContent = pending ? `Checking ${pending} image${pending > 1 ? "s" : ""}…` : "";
}

function take(files) { for (const f of files) check(f); }

input.addEventListener("change", () => { take(input.files); input.value = ""; });
for (const name of ["dragenter", "dragover"]) {
  drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
}
for (const name of ["dragleave", "drop"]) {
  drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.remove("over"); });
}
drop.addEventListener("drop", (e) => take(e.dataTransfer.files));
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") input.click(); });

fetch("/v1/models").then((r) => r.json()).then((info) => {
  const mb = info.limits.max_upload_bytes / (1024 * 1024);
  document.getElementById("limits").textContent =
    `Decoder ${info.default}; up to ${mb.toFixed(0)} MB per image; PNG, JPEG, WebP, BMP, GIF or TIFF.`;
}).catch(() => {});
