/**
 * The admin page: one self-contained HTML document (vanilla JS, an inline SVG chart, no front-end
 * build), served at `/`. It reads the bearer token from `?access_token=` once, keeps it in
 * sessionStorage, removes it from the address bar, and sends it as `Authorization: Bearer` to the
 * JSON API. (Kept free of backticks so it can live in this template literal.)
 */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tlsrpt admin</title>
<style>
  [hidden] { display: none !important; }
  :root { --ok: #2e7d32; --fail: #c62828; --muted: #666; --line: #ddd; font-family: system-ui, sans-serif; }
  body { margin: 0 auto; max-width: 1100px; padding: 1rem 1.5rem 3rem; color: #222; }
  h1 { font-size: 1.4rem; margin: .5rem 0 1rem; }
  h2 { font-size: 1.1rem; margin: 2rem 0 .5rem; border-bottom: 1px solid var(--line); padding-bottom: .25rem; }
  table { border-collapse: collapse; width: 100%; font-size: .85rem; }
  th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
  th { background: #f6f6f6; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .ok { color: var(--ok); } .fail { color: var(--fail); } .muted { color: var(--muted); }
  .status { padding: .5rem .75rem; border-radius: 4px; background: #f3f6fb; }
  .status.blocked { background: #fff4e5; }
  form { display: flex; gap: .5rem; flex-wrap: wrap; align-items: end; margin: .5rem 0; }
  label { display: flex; flex-direction: column; font-size: .8rem; color: var(--muted); }
  input { font: inherit; padding: .25rem .4rem; }
  button { font: inherit; padding: .25rem .75rem; cursor: pointer; }
  #error { color: var(--fail); min-height: 1.2rem; }
  svg text { font-size: 11px; fill: #444; }
  .legend span { display: inline-block; width: .8rem; height: .8rem; margin: 0 .3rem 0 1rem; vertical-align: middle; }
</style>
</head>
<body>
<h1>tlsrpt admin</h1>
<div id="status" class="status">loading…</div>
<div id="error" role="alert"></div>

<form id="token-form" hidden>
  <label>Admin token <input id="token-input" type="password" autocomplete="off" required></label>
  <button type="submit">Use token</button>
</form>

<section id="cluster" hidden>
<h2>Cluster</h2>
<p id="cluster-summary"></p>
<table id="cluster-runners">
  <thead><tr><th>Runner</th><th>State</th><th>Last heartbeat</th><th>Shards</th><th>Shard ids</th></tr></thead>
  <tbody></tbody>
</table>
<table id="cluster-rounds">
  <thead><tr><th>Day</th><th>Round</th><th>State</th><th>Reports</th><th>Messages</th><th>Keys</th><th>Kept</th><th>Error</th></tr></thead>
  <tbody></tbody>
</table>
</section>

<h2>Successes and failures per day</h2>
<div class="legend"><span style="background: var(--ok)"></span>successful sessions<span style="background: var(--fail)"></span>failed sessions</div>
<div id="chart" data-days="0"></div>

<h2>Results</h2>
<form id="filter-form">
  <label>Day <input id="filter-day" placeholder="YYYY-MM-DD" size="11"></label>
  <label>Domain <input id="filter-domain" placeholder="example.com"></label>
  <button type="submit">Filter</button>
</form>
<table id="results">
  <thead><tr><th>Day</th><th>Policy domain</th><th>Recipient domain</th><th>Host</th><th>Policy types</th>
  <th>Success</th><th>Failure</th><th>Details</th><th>Send report</th><th>Sent</th></tr></thead>
  <tbody></tbody>
</table>

<h2>Outbox</h2>
<table id="outbox">
  <thead><tr><th>Id</th><th>Status</th><th>Kind</th><th>Destination</th><th>Report-ID</th><th>Attempts</th>
  <th>Next attempt</th><th>Last error</th></tr></thead>
  <tbody></tbody>
</table>

<h2>Suppression list</h2>
<form id="suppress-form">
  <label>Address <input id="suppress-address" type="email" required placeholder="tlsrpt@example.com"></label>
  <label>Until <input id="suppress-until" type="datetime-local" required></label>
  <label>Comment <input id="suppress-comment"></label>
  <button type="submit" id="suppress-add">Add</button>
</form>
<table id="suppressions">
  <thead><tr><th>Address</th><th>Until</th><th>Comment</th><th>Added</th><th></th></tr></thead>
  <tbody></tbody>
</table>

<script>
"use strict";
(function () {
  var KEY = "tlsrpt-admin-token";
  var params = new URLSearchParams(location.search);
  if (params.has("access_token")) {
    sessionStorage.setItem(KEY, params.get("access_token"));
    params.delete("access_token");
    var rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : ""));
  }
  var $ = function (id) { return document.getElementById(id); };
  var errorBox = $("error");

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k]; else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { e.appendChild(c); });
    return e;
  }
  function td(text, cls) { return el("td", cls ? { text: String(text), class: cls } : { text: String(text) }); }

  function api(path, options) {
    var token = sessionStorage.getItem(KEY);
    if (!token) { $("token-form").hidden = false; return Promise.reject(new Error("an admin token is needed")); }
    var opts = options || {};
    var headers = Object.assign({ Authorization: "Bearer " + token }, opts.headers || {});
    return fetch(path, Object.assign({}, opts, { headers: headers })).then(function (r) {
      if (r.status === 401) { sessionStorage.removeItem(KEY); $("token-form").hidden = false; throw new Error("the token was refused"); }
      if (r.status === 204) return null;
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(body && body.error ? body.error : "HTTP " + r.status);
        return body;
      });
    });
  }
  function showError(e) { errorBox.textContent = e && e.message ? e.message : String(e); }
  function clearError() { errorBox.textContent = ""; }

  function filterQuery() {
    var q = new URLSearchParams();
    var day = $("filter-day").value.trim(), domain = $("filter-domain").value.trim();
    if (day) q.set("day", day);
    if (domain) q.set("domain", domain);
    var s = q.toString();
    return s ? "?" + s : "";
  }

  function loadStatus() {
    return api("/api/status").then(function (s) {
      var box = $("status");
      box.className = "status" + (s.sending ? "" : " blocked");
      box.textContent = (s.sending ? "Sending reports as " + s.submitter : "Not sending reports: " + s.reason) +
        " · transport: " + s.transport;
    });
  }

  // In fleet mode: what "tlsrpt cluster status" shows (runners, shard ownership, the last rounds).
  function loadCluster() {
    return api("/api/cluster").then(function (c) {
      var box = $("cluster");
      box.hidden = !c.enabled;
      if (!c.enabled) return;
      var s = c.status;
      $("cluster-summary").textContent = s.shards + " shards, " + s.runners.length + " runner(s)" +
        (s.unowned > 0 ? ", " + s.unowned + " shards without a runner" : "");
      var runners = $("cluster-runners").tBodies[0];
      runners.textContent = "";
      s.runners.forEach(function (r) {
        var state = !r.healthy ? "unhealthy" : r.alive ? "up" : "stale";
        runners.appendChild(el("tr", { "data-address": r.address, "data-state": state }, [
          td(r.address), td(state, state === "up" ? "ok" : "fail"), td(r.lastHeartbeat), td(r.shardCount, "num"), td(r.shards || "–")
        ]));
      });
      var rounds = $("cluster-rounds").tBodies[0];
      rounds.textContent = "";
      if (s.rounds.length === 0) rounds.appendChild(el("tr", {}, [el("td", { colspan: "8", class: "muted", text: "No round yet." })]));
      s.rounds.forEach(function (r) {
        var n = function (v) { return v === undefined ? "–" : v; };
        rounds.appendChild(el("tr", { "data-round": r.id, "data-state": r.state }, [
          td(r.day), td(r.id), td(r.state, r.state === "failed" ? "fail" : r.state === "done" ? "ok" : ""),
          td(n(r.reports), "num"), td(n(r.queued), "num"), td(n(r.keys), "num"), td(n(r.kept), "num"), td(r.error || "")
        ]));
      });
    });
  }

  var SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }
  function drawChart(days) {
    var box = $("chart");
    box.textContent = "";
    box.setAttribute("data-days", String(days.length));
    if (days.length === 0) { box.appendChild(el("p", { class: "muted", text: "No results yet." })); return; }
    var W = 1000, H = 260, left = 50, bottom = 40, top = 10;
    var max = Math.max.apply(null, days.map(function (d) { return d.success + d.failure; }).concat([1]));
    var chart = svg("svg", { viewBox: "0 0 " + W + " " + H, width: "100%", role: "img", "aria-label": "successes and failures per day" });
    var plotH = H - bottom - top, step = (W - left - 10) / days.length, bar = Math.max(2, Math.min(40, step * 0.7));
    [0, 0.5, 1].forEach(function (f) {
      var y = top + plotH * (1 - f);
      chart.appendChild(svg("line", { x1: left, x2: W - 10, y1: y, y2: y, stroke: "#ddd" }));
      var t = svg("text", { x: left - 6, y: y + 4, "text-anchor": "end" }); t.textContent = String(Math.round(max * f)); chart.appendChild(t);
    });
    days.forEach(function (d, i) {
      var x = left + i * step + (step - bar) / 2;
      var hs = plotH * d.success / max, hf = plotH * d.failure / max;
      var s = svg("rect", { x: x, y: top + plotH - hs, width: bar, height: hs, fill: "#2e7d32", class: "bar-success", "data-day": d.day, "data-value": d.success });
      var f = svg("rect", { x: x, y: top + plotH - hs - hf, width: bar, height: hf, fill: "#c62828", class: "bar-failure", "data-day": d.day, "data-value": d.failure });
      var title = d.day + ": " + d.success + " successful, " + d.failure + " failed";
      [s, f].forEach(function (r) { var t = svg("title", {}); t.textContent = title; r.appendChild(t); chart.appendChild(r); });
      if (days.length <= 31 || i % Math.ceil(days.length / 31) === 0) {
        var label = svg("text", { x: x + bar / 2, y: H - bottom + 14, "text-anchor": "middle" });
        label.textContent = d.day.slice(5);
        chart.appendChild(label);
      }
    });
    box.appendChild(chart);
  }

  function loadResults() {
    var q = filterQuery();
    return Promise.all([api("/api/results" + q), api("/api/summary" + q)]).then(function (res) {
      var rows = res[0], days = res[1];
      drawChart(days);
      var body = $("results").tBodies[0];
      body.textContent = "";
      if (rows.length === 0) body.appendChild(el("tr", {}, [el("td", { colspan: "10", class: "muted", text: "No results." })]));
      rows.forEach(function (r) {
        var sent = [r.sentToRecipientDomain ? "recipient domain" : "", r.sentToPolicyDomain ? "policy domain" : ""].filter(Boolean).join(", ");
        body.appendChild(el("tr", { "data-id": String(r.id) }, [
          td(r.day), td(r.policyDomain), td(r.recipientDomain), td(r.isHost ? "yes" : "no"), td(r.policyTypes.join(", ")),
          td(r.success, "num ok"), td(r.failure, r.failure > 0 ? "num fail" : "num"), td(r.failureDetails, "num"),
          td(r.sendReport ? "yes" : "no"), td(sent || "–")
        ]));
      });
    });
  }

  function loadOutbox() {
    return api("/api/outbox").then(function (messages) {
      var body = $("outbox").tBodies[0];
      body.textContent = "";
      if (messages.length === 0) body.appendChild(el("tr", {}, [el("td", { colspan: "8", class: "muted", text: "The outbox is empty." })]));
      messages.forEach(function (m) {
        body.appendChild(el("tr", { "data-status": m.status }, [
          td(m.id, "num"), td(m.status, m.status === "failed" ? "fail" : m.status === "delivered" ? "ok" : ""), td(m.kind),
          td(m.destination), td(m.reportId), td(m.attempts, "num"),
          td(m.status === "queued" ? m.nextAttemptAt : "–"), td(m.lastError || "")
        ]));
      });
    });
  }

  function loadSuppressions() {
    return api("/api/suppressions").then(function (list) {
      var body = $("suppressions").tBodies[0];
      body.textContent = "";
      if (list.length === 0) body.appendChild(el("tr", {}, [el("td", { colspan: "5", class: "muted", text: "Nobody is suppressed." })]));
      list.forEach(function (s) {
        var remove = el("button", { type: "button", class: "remove", "data-address": s.address, text: "Remove" });
        remove.addEventListener("click", function () {
          clearError();
          api("/api/suppressions/" + encodeURIComponent(s.address), { method: "DELETE" }).then(loadSuppressions).catch(showError);
        });
        body.appendChild(el("tr", { "data-address": s.address }, [
          td(s.address), td(s.until), td(s.comment), td(s.inserted), el("td", {}, [remove])
        ]));
      });
    });
  }

  function loadAll() {
    clearError();
    return Promise.all([loadStatus(), loadCluster(), loadResults(), loadOutbox(), loadSuppressions()])
      .then(function () { document.body.setAttribute("data-loaded", "true"); })
      .catch(showError);
  }

  $("filter-form").addEventListener("submit", function (e) { e.preventDefault(); clearError(); loadResults().catch(showError); });
  $("suppress-form").addEventListener("submit", function (e) {
    e.preventDefault();
    clearError();
    var until = new Date($("suppress-until").value);
    if (isNaN(until.getTime())) { showError(new Error("until: not a date")); return; }
    api("/api/suppressions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ address: $("suppress-address").value.trim(), until: until.toISOString(), comment: $("suppress-comment").value })
    }).then(function () { $("suppress-form").reset(); return loadSuppressions(); }).catch(showError);
  });
  $("token-form").addEventListener("submit", function (e) {
    e.preventDefault();
    sessionStorage.setItem(KEY, $("token-input").value);
    $("token-form").hidden = true;
    loadAll();
  });
  loadAll();
})();
</script>
</body>
</html>
`
