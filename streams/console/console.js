// trackguard's web console: plain JavaScript, no build step, nothing loaded from elsewhere.
// Every value from the API goes into the page through textContent (el() below), never as HTML.
"use strict";

const state = { token: sessionStorage.getItem("tg.token") || "", who: null, lang: "en",
  words: {}, reasons: {}, usedAfter: null, timers: [], live: { last: null, history: [] } };

// --- words ------------------------------------------------------------------------------------

function pickLanguage() {
  const chosen = localStorage.getItem("tg.lang");
  if (chosen === "zh" || chosen === "en") return chosen;
  return (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
}

function fill(text, values) {
  return text.replace(/\{(\w+)\}/g, (m, k) => (values && k in values ? String(values[k]) : m));
}

function t(key, values) {
  const entry = state.words[key] || state.reasons[key];
  return entry ? fill(entry[state.lang] || entry.en, values) : key;
}

// A reason code's meaning and next step, as streams/i18n explains it: `CODE:detail` by the entry
// `CODE:` (which names the detail), else by `CODE`.
function explain(code) {
  const i = code.indexOf(":");
  const detail = i < 0 ? "" : code.slice(i + 1);
  const entry = (i < 0 ? null : state.reasons[code.slice(0, i + 1)]) || state.reasons[i < 0 ? code : code.slice(0, i)];
  if (!entry) return null;
  return { what: fill(entry[state.lang], { detail }), next: fill(entry["next_" + state.lang], { detail }) };
}

function translatePage() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  if (state.who) showWho();
}

async function setLanguage(lang) {
  state.lang = lang;
  localStorage.setItem("tg.lang", lang);
  translatePage();
  rerender();
}

// --- the page's building blocks ---------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

function table(columns, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", {}, t(c))))),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c))))));
}

function badge(word, kind) { return el("span", { class: `badge ${kind || word}` }, word); }
function verdictBadge(v) { return badge(t("verdict." + v), v); }

function reasonCell(code) {
  const e = explain(code);
  return el("div", {}, el("code", {}, code), e ? el("div", { class: "explain" }, e.what) : null);
}
function nextCell(code) { const e = explain(code); return e ? e.next : ""; }

function show(target, ...nodes) {
  document.getElementById(target).replaceChildren(...nodes.filter((n) => n !== null && n !== undefined));
}

// A time from the API (UTC, RFC 3339) in the reader's own zone and language; the exact value on hover.
function when(iso) {
  if (!iso) return "";
  const shown = new Intl.DateTimeFormat(state.lang === "zh" ? "zh-CN" : "en-GB", {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).format(new Date(iso));
  return el("time", { dateTime: iso, title: iso }, shown);
}
function problem(target, err) { show(target, el("p", { class: "error", role: "alert" }, err.message)); }

// --- the HTTP API -----------------------------------------------------------------------------

class ApiError extends Error {}

async function api(method, path, body, contentType) {
  const headers = { Authorization: "Bearer " + state.token };
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = contentType || "application/json";
    payload = contentType ? body : JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: payload });
  } catch (err) {
    throw new ApiError(t("error.network", { error: err.message }));
  }
  const text = await resp.text();
  let data = text;
  if ((resp.headers.get("Content-Type") || "").startsWith("application/json")) data = JSON.parse(text);
  if (!resp.ok && !(resp.status === 409 && data && data.command)) {
    const error = data && data.error ? data.error : text;
    const err = new ApiError(t("error.http", { status: resp.status, error }));
    err.status = resp.status;
    throw err;
  }
  return { data, resp };
}

function license() {
  if (state.who && !state.who.admin) return state.who.license_id;
  return document.getElementById("acting-license").value.trim();
}

// --- sign in ----------------------------------------------------------------------------------

function showWho() {
  const who = state.who;
  document.getElementById("whoami").textContent = who.admin ? t("who.admin") : t("who.license", { license: who.license_id });
}

async function signIn(token) {
  state.token = token;
  const err = document.getElementById("signin-error");
  err.textContent = "";
  try {
    const { data } = await api("GET", "/whoami");
    state.who = data;
  } catch (e) {
    state.token = "";
    sessionStorage.removeItem("tg.token");
    err.textContent = e.status === 401 ? t("signin.bad") : e.message;
    return;
  }
  sessionStorage.setItem("tg.token", token);
  showWho();
  document.getElementById("signin").hidden = true;
  document.getElementById("app").hidden = false;
  document.getElementById("signout").hidden = false;
  document.getElementById("acting").hidden = !state.who.admin;
  openTab(location.hash.slice(1) || "lookup");
}

function signOut() {
  sessionStorage.removeItem("tg.token");
  location.hash = "";
  location.reload();
}

// --- tabs -------------------------------------------------------------------------------------

let current = "lookup";
let redraw = () => {};  // the open tab's last answer, drawn again after a language switch

function rerender() { redraw(); }

function openTab(name) {
  if (!document.getElementById("tab-" + name)) name = "lookup";
  current = name;
  for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== "tab-" + name;
  for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b.dataset.tab === name);
  if (location.hash.slice(1) !== name) history.replaceState(null, "", "#" + name);
  redraw = () => {};
  liveRunning(name === "live");
}

// --- look up ----------------------------------------------------------------------------------

function countdown(untilMs) {
  const span = el("span", { class: "countdown", "data-until": String(untilMs) });
  tick(span);
  return span;
}

function tick(span) {
  const left = Math.max(0, Number(span.dataset.until) - Date.now());
  const s = Math.floor(left / 1000);
  const days = Math.floor(s / 86400);
  const hms = [Math.floor((s % 86400) / 3600), Math.floor((s % 3600) / 60), s % 60]
    .map((n) => String(n).padStart(2, "0")).join(":");
  span.textContent = t("lookup.left", { time: (days ? t("lookup.days", { n: days }) + " " : "") + hms });
}

setInterval(() => { for (const s of document.querySelectorAll(".countdown")) tick(s); }, 1000);

function drawDiagnosis(d, servedBy) {
  const b = d.binding;
  const binding = b === null ? t("lookup.unbound")
    : b === "other-license" ? t("lookup.other_license")
    : el("span", {}, `${b.license_id} · ${b.store_id} · ${b.order_id} · ${b.carrier_code} · `, when(b.shipped_at),
        el("div", { class: "explain" }, t("col.fingerprint") + " ", el("code", {}, b.fingerprint)));
  const r = d.reservation;
  const reservation = r === null ? t("lookup.none")
    : r === "other-license" ? t("lookup.reserved_other")
    : el("span", {}, `${r.license_id} · ${r.store_id} · ${r.order_id} · ${t("col.expires_at")} `, when(r.expires_at));
  const freezes = d.freezes.length === 0 ? t("lookup.none") : el("div", {}, d.freezes.map((f) =>
    el("div", { class: "freeze" }, `${f.license_id}: `,
      f.active ? [t("lookup.frozen_until") + " ", when(f.frozen_until), countdown(Date.parse(f.frozen_until))]
        : [t("lookup.freeze_over") + " ", when(f.frozen_until)])));
  const blacklist = d.blacklisted_for.length === 0 ? t("lookup.none")
    : d.blacklisted_for.map((l) => t("lookup.blacklisted", { license: l })).join("; ");
  const status = explain("status." + d.status);
  const uses = table(["col.at", "col.license", "col.store", "col.order", "col.verdict", "col.reason", "col.next"],
    d.uses.map((u) => [when(u.at), u.license_id, u.store_id, u.order_id, verdictBadge(u.verdict), reasonCell(u.reason), nextCell(u.reason)]));
  show("lookup-result",
    el("h2", {}, d.tracking_no, " ", el("span", { id: "lookup-status" }, badge(t("state." + d.status), d.status))),
    status ? el("p", { class: "explain" }, status.what, " ", status.next) : null,
    el("dl", {},
      el("dt", {}, t("lookup.binding")), el("dd", { id: "lookup-binding" }, binding),
      el("dt", {}, t("lookup.reservation")), el("dd", { id: "lookup-reservation" }, reservation),
      el("dt", {}, t("lookup.freeze")), el("dd", { id: "lookup-freeze" }, freezes),
      el("dt", {}, t("lookup.blacklist")), el("dd", { id: "lookup-blacklist" }, blacklist)),
    el("h3", {}, t("lookup.uses")), uses,
    d.uses_by_other_licenses ? el("p", { class: "muted" }, t("lookup.others", { n: d.uses_by_other_licenses })) : null,
    servedBy ? el("p", { class: "muted" }, t("lookup.served_by", { worker: servedBy })) : null);
}

async function lookUp(number) {
  show("lookup-result", el("p", { class: "muted" }, t("loading")));
  try {
    const { data, resp } = await api("GET", "/tracking/" + encodeURIComponent(number));
    const servedBy = resp.headers.get("X-Trackguard-Served-By");
    drawDiagnosis(data, servedBy);
    redraw = () => drawDiagnosis(data, servedBy);
  } catch (e) { problem("lookup-result", e); }
}

// --- check before pushing ---------------------------------------------------------------------

function drawCheck(results) {
  const available = results.filter((r) => r.status === "available").length;
  show("check-result",
    el("p", { id: "check-summary" }, t("check.summary", { available, total: results.length })),
    table(["col.number", "col.status", "col.detail"], results.map((r) => {
      const e = explain("status." + r.status);
      return [el("code", {}, r.tracking_no), badge(t("state." + r.status), r.status), e ? `${e.what} ${e.next}` : ""];
    })));
}

async function check(text) {
  // One a line (or comma-separated): a number typed with spaces ("RR 1234 5678 5CN") stays one.
  const numbers = text.split(/[\n\r,;\t]+/).map((s) => s.trim()).filter(Boolean);
  try {
    const body = { tracking_numbers: numbers };
    if (state.who.admin) body.license_id = license();
    const { data } = await api("POST", "/tracking/check", body);
    drawCheck(data.results);
    redraw = () => drawCheck(data.results);
  } catch (e) { problem("check-result", e); }
}

// --- the used list ----------------------------------------------------------------------------

let usedRows = [];
function drawUsed() {
  show("used-result", usedRows.length === 0 ? el("p", { class: "muted" }, t("used.empty")) :
    table(["col.number", "col.carrier", "col.store", "col.order", "col.shipped_at", "col.fingerprint"],
      usedRows.map((r) => [el("code", {}, r.tracking_no), r.carrier_code, r.store_id, r.order_id, when(r.shipped_at), el("code", {}, r.fingerprint)])));
  document.getElementById("used-more").hidden = !state.usedAfter;
}

async function loadUsed(more) {
  if (!more) { usedRows = []; state.usedAfter = null; }
  const q = new URLSearchParams({ limit: "100" });
  if (more && state.usedAfter) q.set("after", state.usedAfter);
  try {
    const { data } = await api("GET", `/licenses/${encodeURIComponent(license())}/used?${q}`);
    usedRows = usedRows.concat(data.items);
    state.usedAfter = data.next_after;
    drawUsed();
    redraw = drawUsed;
  } catch (e) { problem("used-result", e); }
}

async function downloadUsed() {
  // Every page as CSV, joined (the header once): the browser saves one file.
  try {
    let after = "", parts = [];
    for (;;) {
      const q = new URLSearchParams({ limit: "5000", format: "csv" });
      if (after) q.set("after", after);
      const { data, resp } = await api("GET", `/licenses/${encodeURIComponent(license())}/used?${q}`);
      parts.push(parts.length ? data.split("\n").slice(1).join("\n") : data);
      after = resp.headers.get("X-Next-After");
      if (!after) break;
    }
    const link = el("a", { href: URL.createObjectURL(new Blob(["\ufeff" + parts.join("")], { type: "text/csv" })),
      download: `used-${license()}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
  } catch (e) { problem("used-result", e); }
}

// --- store performance ------------------------------------------------------------------------

function drawPerformance(p) {
  if (p.months.length === 0) { show("perf-result", el("p", { class: "muted" }, t("perf.empty"))); return; }
  show("perf-result",
    el("p", { id: "perf-total" }, t("perf.total", { penalty: p.lfr_penalty_total, downgraded: t(p.downgraded ? "yes" : "no") })),
    table(["col.month", "col.failed", "col.penalty", "col.downgrade", "col.by_reason"], p.months.map((m) => [
      m.month, String(m.failed),
      m.lfr_penalty ? el("span", {}, badge(String(m.lfr_penalty), "duplicate"), el("div", { class: "explain" }, explain("LFR_PENALTY").what)) : "0",
      m.service_downgrade ? el("span", {}, badge(t("yes"), "duplicate"), el("div", { class: "explain" }, explain("SERVICE_DOWNGRADE").what)) : t("no"),
      el("div", {}, Object.entries(m.by_reason).map(([r, n]) => el("div", {}, el("code", {}, r), ` × ${n}`))),
    ])));
}

async function performance(store) {
  try {
    const q = state.who.admin ? "?" + new URLSearchParams({ license: license() }) : "";
    const { data } = await api("GET", `/stores/${encodeURIComponent(store)}/performance${q}`);
    drawPerformance(data);
    redraw = () => drawPerformance(data);
  } catch (e) { problem("perf-result", e); }
}

// --- reconciliation ---------------------------------------------------------------------------

function drawReconcile(r) {
  const counts = Object.entries(r.counts).map(([k, n]) => {
    const e = explain(k);
    return [k === "matched" || k === "outside_month" ? t("rec." + k) : el("code", {}, k), String(n), e ? e.what : ""];
  });
  show("rec-result",
    el("h3", {}, t("rec.counts")), table(["col.kind", "col.total", "col.detail"], counts),
    r.findings.length === 0 ? el("p", { class: "ok" }, t("rec.all_matched")) :
      table(["col.kind", "col.line", "col.number", "col.verdict", "col.reason", "col.next"], r.findings.map((f) => [
        el("code", {}, f.kind), String(f.line || ""), el("code", {}, f.tracking_no || ""),
        f.verdict || "", f.reason ? reasonCell(f.reason) : (f.error || ""), nextCell(f.reason || f.kind)])));
}

async function reconcile() {
  const file = document.getElementById("rec-file").files[0];
  if (!file) { problem("rec-result", new Error(t("rec.no_file"))); return; }
  const month = document.getElementById("rec-month").value.trim();
  show("rec-result", el("p", { class: "muted" }, t("loading")));
  try {
    const q = month ? "?" + new URLSearchParams({ month }) : "";
    const body = await file.arrayBuffer();  // bytes as they are: the worker reads UTF-8 or GB18030
    const { data } = await api("POST", `/licenses/${encodeURIComponent(license())}/reconcile${q}`, body, "text/csv");
    drawReconcile(data);
    redraw = () => drawReconcile(data);
  } catch (e) { problem("rec-result", e); }
}

// --- commands ---------------------------------------------------------------------------------

function showCommandFields() {
  const kind = document.getElementById("cmd-kind").value;
  // A licence files an appeal (pending); only the platform (the admin token) decides it.
  for (const node of document.querySelectorAll("#cmd-form label[class]")) {
    node.hidden = !node.classList.contains("for-" + kind) || (node.classList.contains("admin-only") && !state.who.admin);
  }
}

async function hashEvidence() {
  const file = document.getElementById("cmd-evidence").files[0];
  if (!file) return;
  if (!(window.crypto && crypto.subtle)) { problem("cmd-result", new Error(t("cmd.no_hash"))); return; }
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  document.getElementById("cmd-evidence-sha").value = Array.from(new Uint8Array(digest))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  if (!document.getElementById("cmd-evidence-ref").value) document.getElementById("cmd-evidence-ref").value = file.name;
}

const COMMAND_FIELDS = {
  reserve: { store_id: "cmd-store", order_id: "cmd-order", carrier_code: "cmd-carrier", ttl_s: "cmd-ttl" },
  release: { order_id: "cmd-order" },
  appeal: { evidence_sha256: "cmd-evidence-sha", evidence_ref: "cmd-evidence-ref", decided_by: "cmd-decided-by", decision: "cmd-decision" },
};

function drawCommand(out) {
  const word = t("cmd." + out.command);
  show("cmd-result", out.ok
    ? el("div", { id: "cmd-outcome" }, el("p", { class: "ok" }, t("cmd.ok", { command: word, number: out.tracking_no })),
        out.decision === "pending" ? el("p", { class: "explain" }, t("cmd.pending")) : null)
    : el("div", { id: "cmd-outcome" }, el("p", { class: "error" }, t("cmd.refused", { error: out.error })),
        explain(out.error) ? el("p", { class: "explain" }, explain(out.error).what, " ", explain(out.error).next) : null));
}

async function sendCommand() {
  const kind = document.getElementById("cmd-kind").value;
  const body = { tracking_no: document.getElementById("cmd-no").value.trim() };
  if (state.who.admin) body.license_id = license();
  for (const [field, id] of Object.entries(COMMAND_FIELDS[kind])) {
    if (kind === "appeal" && !state.who.admin && (field === "decided_by" || field === "decision")) continue;
    const v = document.getElementById(id).value.trim();
    body[field] = field === "ttl_s" ? Number(v) : v;
  }
  try {
    const { data } = await api("POST", "/commands/" + kind, body);
    drawCommand(data);
    redraw = () => drawCommand(data);
  } catch (e) { problem("cmd-result", e); }
}

// --- live: verdicts a second, from two readings of every worker's counts -------------------------

let liveTimer = null;
function liveRunning(on) {
  if (on && !liveTimer) { pollLive(); liveTimer = setInterval(pollLive, 1000); }
  if (!on && liveTimer) { clearInterval(liveTimer); liveTimer = null; }
}

function sum(o) { return Object.values(o).reduce((a, b) => a + b, 0); }

async function pollLive() {
  let now;
  try { now = (await api("GET", "/live")).data; } catch (e) { problem("live-workers", e); return; }
  const last = state.live.last;
  state.live.last = now;
  const dt = last ? Math.max(0.001, (now.at_ms - last.at_ms) / 1000) : 0;
  const rate = (a, b) => (dt && last ? Math.max(0, (a - (b || 0)) / dt) : 0);
  const verdicts = ["accepted", "duplicate", "frozen", "invalid"].map((v) => [v, now.verdicts[v] || 0, rate(now.verdicts[v] || 0, last && last.verdicts[v])]);
  const total = sum(now.verdicts);
  const perSecond = rate(total, last && sum(last.verdicts));
  state.live.history = state.live.history.concat([perSecond]).slice(-120);
  const reasons = Object.entries(now.reasons).map(([r, n]) => [r, n, rate(n, last && last.reasons[r])])
    .sort((a, b) => b[2] - a[2] || b[1] - a[1]).slice(0, 12);
  const draw = () => {
    document.getElementById("live-rate").textContent = t("live.rate", { rate: perSecond.toFixed(1) });
    document.getElementById("live-total").textContent = t("live.total", { total });
    document.getElementById("live-total").dataset.total = String(total);
    document.getElementById("live-workers").textContent = t("live.workers", { workers: now.workers, asked: now.workers_asked });
    show("live-verdicts", table(["col.verdict", "col.per_s", "col.total"],
      verdicts.map(([v, n, r]) => [verdictBadge(v), r.toFixed(1), String(n)])));
    show("live-reasons", table(["col.reason", "col.per_s", "col.total"],
      reasons.map(([code, n, r]) => [reasonCell(code), r.toFixed(1), String(n)])));
    drawChart(state.live.history);
  };
  draw();
  redraw = draw;
}

function drawChart(points) {
  const canvas = document.getElementById("live-chart");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, top = Math.max(1, ...points);
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#0f766e";
  ctx.lineWidth = 2;
  ctx.beginPath();
  points.forEach((p, i) => {
    const x = w - (points.length - 1 - i) * (w / 119), y = h - 4 - (p / top) * (h - 12);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

// --- start ------------------------------------------------------------------------------------

function on(id, event, handler) {
  document.getElementById(id).addEventListener(event, (e) => { if (event === "submit") e.preventDefault(); handler(e); });
}

async function start() {
  state.lang = pickLanguage();
  const [words, reasons] = await Promise.all(["console", "reasons"].map((n) => fetch(`/console/${n}.json`).then((r) => r.json())));
  state.words = words;
  state.reasons = reasons;
  translatePage();
  on("lang-zh", "click", () => setLanguage("zh"));
  on("lang-en", "click", () => setLanguage("en"));
  on("signin-form", "submit", () => signIn(document.getElementById("token").value.trim()));
  on("signout", "click", signOut);
  for (const b of document.querySelectorAll("nav button")) b.addEventListener("click", () => openTab(b.dataset.tab));
  on("lookup-form", "submit", () => lookUp(document.getElementById("lookup-no").value.trim()));
  on("check-form", "submit", () => check(document.getElementById("check-input").value));
  on("used-btn", "click", () => loadUsed(false));
  on("used-more", "click", () => loadUsed(true));
  on("used-csv", "click", downloadUsed);
  on("perf-form", "submit", () => performance(document.getElementById("perf-store").value.trim()));
  on("rec-form", "submit", reconcile);
  on("cmd-kind", "change", showCommandFields);
  on("cmd-evidence", "change", hashEvidence);
  on("cmd-form", "submit", sendCommand);
  showCommandFields();
  document.body.dataset.ready = "1";  // for the browser tests: words loaded, handlers bound
  if (state.token) await signIn(state.token);
}

start();
