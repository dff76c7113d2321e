// The search page: plain JavaScript over the /v1 API, no framework, no external
// resources. State lives in the URL hash (#q=…&mode=…), so a search is a link.
"use strict";

const $ = (id) => document.getElementById(id);
const fields = ["q", "mode", "kb", "type", "tag"];

function headers() {
  const t = localStorage.getItem("kb-token");
  return t ? { Authorization: "Bearer " + t } : {};
}

async function api(path) {
  const r = await fetch(path, { headers: headers() });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    const e = body.error || {};
    throw new Error(r.status === 401
      ? "this server needs an access token: enter one under Filters"
      : (e.message || r.statusText));
  }
  return body;
}

function el(tag, attrs, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") n.className = v; else n.setAttribute(k, v);
  }
  for (const c of children) n.append(c);
  return n;
}

// Highlights are byte ranges into the UTF-8 snippet; slice the bytes, not the string.
function highlighted(text, ranges) {
  const bytes = new TextEncoder().encode(text || "");
  const dec = new TextDecoder();
  const out = el("p", { class: "snippet" });
  let at = 0;
  for (const [s, e] of ranges || []) {
    out.append(dec.decode(bytes.slice(at, s)), el("mark", {}, dec.decode(bytes.slice(s, e))));
    at = e;
  }
  out.append(dec.decode(bytes.slice(at)));
  return out;
}

function entryPath(kb, id) {
  return "/v1/kbs/" + encodeURIComponent(kb) + "/entries/" + encodeURIComponent(id);
}

function entryLink(kb, id, text) {
  const a = el("a", { class: "title", href: "#kb-entry=" + encodeURIComponent(kb) + "/" + encodeURIComponent(id) }, text || id);
  return a;
}

function tags(list) {
  const s = el("span", {});
  for (const t of list || []) s.append(el("span", { class: "tag" }, t));
  return s;
}

async function search(params) {
  const q = params.get("q") || "";
  $("entry").hidden = true;
  $("results").hidden = false;
  $("results").replaceChildren();
  if (!q.trim()) { $("status").textContent = ""; return; }
  const url = new URLSearchParams({ q, mode: params.get("mode") || "hybrid", limit: "20" });
  for (const f of ["type", "tag"]) if (params.get(f)) url.set(f, params.get(f));
  if ($("explain").checked) url.set("explain", "true");
  const kb = params.get("kb");
  const path = kb ? "/v1/kbs/" + encodeURIComponent(kb) + "/search?" : "/v1/search?";
  $("status").textContent = "Searching…";
  $("status").className = "";
  const t0 = performance.now();
  try {
    const res = await api(path + url);
    const ms = Math.round(performance.now() - t0);
    let status = res.hits.length + (res.hits.length === 1 ? " result" : " results") + " · " + res.mode + " · " + ms + " ms";
    if (res.degraded) status += " · degraded: " + res.degraded;
    $("status").textContent = status;
    for (const h of res.hits) {
      const li = el("li", { class: "hit" },
        entryLink(h.kb, h.id, h.title || h.id),
        el("div", { class: "meta" }, h.kb + " · " + h.type + " · score " + Number(h.score).toFixed(3) + " ", tags(h.tags)),
        highlighted(h.snippet, h.highlights));
      if (h.explanation) li.append(el("div", { class: "explain" }, JSON.stringify(h.explanation, null, 1)));
      $("results").append(li);
    }
  } catch (e) {
    $("status").textContent = e.message;
    $("status").className = "error";
  }
}

async function showEntry(kb, id) {
  $("results").hidden = true;
  const box = $("entry");
  box.hidden = false;
  box.replaceChildren(el("p", { class: "meta" }, "Loading…"));
  try {
    const [e, back, out] = await Promise.all([
      api(entryPath(kb, id) + "?render=html"),
      api(entryPath(kb, id) + "/backlinks").then((r) => r.backlinks).catch(() => []),
      api(entryPath(kb, id) + "/outlinks").then((r) => r.outlinks).catch(() => []),
    ]);
    const body = el("div", { class: "body" });
    // Rendered by the server from markdown with raw HTML escaped and unsafe links
    // dropped (kb_server::page::render_markdown), so it is safe to insert.
    body.innerHTML = e.body_html || "";
    const links = (title, list, pick) => {
      const ul = el("ul", {});
      for (const l of list) {
        const [k, i, rel] = pick(l);
        ul.append(el("li", {}, entryLink(k, i), el("span", { class: "meta" }, " " + rel)));
      }
      return list.length ? [el("h3", {}, title), ul] : [];
    };
    box.replaceChildren(
      el("h2", {}, e.title || e.id),
      el("div", { class: "meta" }, e.kb + " · " + e.entry_type + (e.status ? " · status " + e.status : "") + (e.assignee ? " · claimed by " + e.assignee : "") + " ", tags(e.tags)),
      body,
      ...links("Backlinks", back, (l) => [l.source.kb, l.source.id, l.relation]),
      ...links("Outlinks", out, (l) => [l.target_kb || e.kb, l.target, l.relation]));
  } catch (err) {
    box.replaceChildren(el("p", { class: "error" }, err.message));
  }
}

function route() {
  const params = new URLSearchParams(location.hash.slice(1));
  const entry = params.get("kb-entry");
  for (const f of fields) if (params.has(f)) $(f).value = params.get(f);
  if (entry) {
    const cut = entry.indexOf("/");
    showEntry(decodeURIComponent(entry.slice(0, cut)), decodeURIComponent(entry.slice(cut + 1)));
  } else {
    search(params);
  }
}

async function loadKbs() {
  try {
    const kbs = await api("/v1/kbs");
    for (const k of kbs.kbs) $("kb").append(el("option", { value: k.name }, k.name));
    const params = new URLSearchParams(location.hash.slice(1));
    if (params.get("kb")) $("kb").value = params.get("kb");
  } catch (_) { /* the search reports access problems */ }
}

$("search").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const p = new URLSearchParams();
  for (const f of fields) if ($(f).value) p.set(f, $(f).value);
  location.hash = p.toString();
});
$("token").value = localStorage.getItem("kb-token") || "";
$("token").addEventListener("change", () => {
  if ($("token").value) localStorage.setItem("kb-token", $("token").value);
  else localStorage.removeItem("kb-token");
  loadKbs();
});
window.addEventListener("hashchange", route);
loadKbs();
route();
