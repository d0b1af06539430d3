// unigate dashboard: reads the admin JSON endpoints and draws the page. No framework, no build
// step, nothing fetched from elsewhere. Every string from the API reaches the page through
// textContent or setAttribute, never as markup (model names and error messages are user input).
"use strict";
(function () {
  const COOKIE = "unigate_admin";
  const REFRESH_MS = 10000;
  const RANGES = {
    "1h": { hours: 1, bucket: 1, label: "last hour" },
    "24h": { hours: 24, bucket: 15, label: "last 24 hours" },
    "7d": { hours: 168, bucket: 120, label: "last 7 days" },
  };
  // Okabe–Ito colours (distinguishable with the common colour-vision deficiencies), then more.
  const PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#7a5195", "#8c6d31"];
  const NONE_COLOR = "#8b95a1";
  const NO_CHANNEL = "(no channel)";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const MAX_BUCKETS = 2000;
  const CHART_HEIGHT = 210;
  const INTERVALS = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080].map((m) => m * 60000);

  const state = { range: "1h", timer: null, seq: 0, loads: 0, last: null };

  // ---- small helpers ------------------------------------------------------------------------

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const name in attrs || {}) node.setAttribute(name, attrs[name]);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const name in attrs || {}) node.setAttribute(name, String(attrs[name]));
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function readKey() {
    for (const part of document.cookie.split(";")) {
      const c = part.trim();
      if (c.indexOf(COOKIE + "=") === 0) {
        try {
          return decodeURIComponent(c.slice(COOKIE.length + 1));
        } catch (e) {
          return c.slice(COOKIE.length + 1);
        }
      }
    }
    return "";
  }

  function signOut() {
    const secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = COOKIE + "=; Path=/; SameSite=Strict; Max-Age=0" + secure;
    location.reload();
  }

  const fmt = {
    int: (v) => Math.round(v).toLocaleString(),
    compact: (v) =>
      v >= 1e6 ? (v / 1e6).toFixed(v >= 1e7 ? 0 : 1) + "M" : v >= 1e4 ? (v / 1e3).toFixed(v >= 1e5 ? 0 : 1) + "k" : fmt.int(v),
    pct: (v) => (v === 0 || v >= 10 ? v.toFixed(0) : v.toFixed(1)) + "%",
    ratio: (ok, total) => (total > 0 ? fmt.pct((100 * ok) / total) : "–"),
    ms: (v) => (v < 1000 ? Math.round(v) + " ms" : (v / 1000).toFixed(v < 10000 ? 2 : 1) + " s"),
    usd: (v) => "$" + (v === 0 ? "0" : v < 0.01 ? v.toFixed(5) : v < 1 ? v.toFixed(4) : v.toFixed(2)),
    usdAxis: (v) => "$" + (v === 0 ? "0" : v < 0.01 ? v.toPrecision(2) : v < 1 ? v.toFixed(3) : v.toFixed(2)),
    seconds: (v) => (v < 120 ? Math.ceil(v) + " s" : v < 7200 ? Math.ceil(v / 60) + " min" : (v / 3600).toFixed(1) + " h"),
    time: (ms, withDay) =>
      new Date(ms).toLocaleString(undefined, withDay
        ? { weekday: "short", hour: "2-digit", minute: "2-digit" }
        : { hour: "2-digit", minute: "2-digit" }),
    day: (ms) => new Date(ms).toLocaleDateString(undefined, { weekday: "short", day: "numeric" }),
    stamp: (iso) => {
      const t = Date.parse(iso);
      return Number.isNaN(t) ? String(iso) : new Date(t).toLocaleString();
    },
  };

  // ---- API ----------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, key) {
    const resp = await fetch(path, {
      headers: { authorization: "Bearer " + key, accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    });
    let body = null;
    try {
      body = await resp.json();
    } catch (e) {
      body = null;
    }
    if (!resp.ok) {
      const error = body && body.error ? body.error : {};
      throw new ApiError(error.message || "HTTP " + resp.status, resp.status, error.code || null);
    }
    return body;
  }

  // ---- data shaping -------------------------------------------------------------------------

  function channelKey(name) {
    return name === null || name === undefined ? "" : String(name);
  }

  function channelLabel(key) {
    return key === "" ? NO_CHANNEL : key;
  }

  function colours(keys) {
    const named = keys.filter((k) => k !== "").sort();
    const map = new Map();
    named.forEach((k, i) => map.set(k, PALETTE[i % PALETTE.length]));
    map.set("", NONE_COLOR);
    return map;
  }

  // Timeseries rows → a full grid of buckets (empty buckets are absent from the API) per channel.
  function grid(rows, range, now) {
    const width = range.bucket * 60000;
    let start = Math.floor((now - range.hours * 3600000) / width) * width;
    let end = Math.floor(now / width) * width;
    const parsed = [];
    for (const row of rows) {
      const t = Date.parse(row.bucket);
      if (Number.isNaN(t)) continue;
      parsed.push([t, row]);
      start = Math.min(start, t); // a browser clock behind the server's must not hide data
      end = Math.max(end, t);
    }
    start = Math.max(start, end - (MAX_BUCKETS - 1) * width);
    const times = [];
    for (let t = start; t <= end; t += width) times.push(t);
    const n = times.length;
    const channels = new Map();
    const zero = () => new Array(n).fill(0);
    for (const [t, row] of parsed) {
      const i = Math.round((t - start) / width);
      if (i < 0 || i >= n) continue;
      const key = channelKey(row.channel);
      if (!channels.has(key)) {
        channels.set(key, {
          requests: zero(), errors: zero(), latencySum: zero(), cost: zero(),
          attempts: zero(), attemptErrors: zero(), tokens: zero(),
        });
      }
      const c = channels.get(key);
      c.requests[i] += row.requests || 0;
      c.errors[i] += row.errors || 0;
      c.latencySum[i] += (row.avg_latency_ms || 0) * (row.requests || 0);
      c.cost[i] += row.cost || 0;
      c.attempts[i] += row.attempts || 0;
      c.attemptErrors[i] += row.attempt_errors || 0;
      c.tokens[i] += (row.prompt_tokens || 0) + (row.completion_tokens || 0);
    }
    return { times, width, channels };
  }

  const sum = (values) => values.reduce((a, b) => a + b, 0);

  // ---- charts -------------------------------------------------------------------------------

  function niceScale(max, integer) {
    if (!(max > 0)) return { top: integer ? 4 : 1, step: integer ? 1 : 0.25 };
    const raw = max / 4;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    let step = power;
    for (const m of [1, 2, 2.5, 5, 10]) {
      step = m * power;
      if (step >= raw) break;
    }
    if (integer) step = Math.max(1, Math.ceil(step));
    return { top: Math.ceil(max / step - 1e-9) * step, step };
  }

  function round(v) {
    return Math.round(v * 100) / 100;
  }

  // opts: {times, width, series: [{key, label, color, values (number|null)[]}], kind: "stack" | "line",
  //        format, integer, cap (highest value drawn), emptyTop (scale when all are 0), title, summarize}
  function drawChart(figure, opts) {
    const svg = figure.querySelector("svg");
    const legend = figure.querySelector(".legend");
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    while (legend.firstChild) legend.removeChild(legend.firstChild);

    const W = Math.max(300, Math.round(svg.getBoundingClientRect().width) || 600);
    const H = CHART_HEIGHT;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("height", String(H));
    const m = { l: 58, r: 12, t: 12, b: 26 };
    const pw = W - m.l - m.r;
    const ph = H - m.t - m.b;
    const n = opts.times.length;
    const step = pw / Math.max(1, n);

    let max = 0;
    let hasData = false;
    for (let i = 0; i < n; i++) {
      let stacked = 0;
      for (const s of opts.series) {
        const v = s.values[i];
        if (v === null || v === undefined) continue;
        hasData = hasData || v > 0 || opts.kind === "line";
        if (opts.kind === "stack") stacked += v;
        else max = Math.max(max, v);
      }
      max = Math.max(max, stacked);
    }
    if (opts.cap !== undefined) max = Math.min(max, opts.cap);
    const scale = niceScale(max > 0 ? max : opts.emptyTop || 0, opts.integer);
    const y = (v) => m.t + ph - (Math.min(v, scale.top) / scale.top) * ph;

    const axes = svgEl("g", { class: "axes", "aria-hidden": "true" });
    for (let t = 0; t <= scale.top + scale.step / 2; t += scale.step) {
      const yy = round(y(t));
      axes.appendChild(svgEl("line", { class: t === 0 ? "base" : "grid", x1: m.l, x2: W - m.r, y1: yy, y2: yy }));
      axes.appendChild(svgEl("text", { class: "tick", x: m.l - 6, y: yy + 4, "text-anchor": "end" }, opts.format(t)));
    }
    // Time labels on round local times (every 10 min, 3 h, a day, …), at least ~80 px apart.
    const withDay = n > 0 && opts.times[n - 1] - opts.times[0] > 86400000;
    const tz = new Date().getTimezoneOffset() * 60000;
    const interval = INTERVALS.find((iv) => iv >= opts.width && (iv / opts.width) * step >= 80) || INTERVALS[INTERVALS.length - 1];
    for (let i = 0; i < n; i++) {
      const local = opts.times[i] - tz;
      const boundary = Math.ceil(local / interval) * interval;
      if (boundary >= local + opts.width) continue;
      const x = round(m.l + (i + (boundary - local) / opts.width) * step);
      if (x < m.l + 20 || x > W - m.r - 20) continue;
      axes.appendChild(svgEl("line", { class: "tickmark", x1: x, x2: x, y1: m.t + ph, y2: m.t + ph + 4 }));
      const label = interval >= 86400000 ? fmt.day(boundary + tz) : fmt.time(boundary + tz, withDay);
      axes.appendChild(svgEl("text", { class: "tick", x: x, y: H - 8, "text-anchor": "middle" }, label));
    }
    svg.appendChild(axes);

    const plot = svgEl("g", { class: "plot" });
    if (opts.kind === "stack") {
      const base = new Array(n).fill(0);
      const bw = Math.max(1, step * 0.78);
      const gap = (step - bw) / 2;
      for (const s of opts.series) {
        let d = "";
        for (let i = 0; i < n; i++) {
          const v = s.values[i];
          if (!(v > 0)) continue;
          const top = y(base[i] + v);
          let h = y(base[i]) - top;
          if (h < 1.5) h = 1.5; // a tiny value stays visible
          d += "M" + round(m.l + i * step + gap) + " " + round(y(base[i]) - h) + "h" + round(bw) + "v" + round(h) + "h" + round(-bw) + "Z";
          base[i] += v;
        }
        plot.appendChild(svgEl("path", { class: "series bar", "data-series": s.label, fill: s.color, d: d }));
      }
    } else {
      for (const s of opts.series) {
        let d = "";
        let dots = "";
        const r = 3;
        for (let i = 0; i < n; i++) {
          const v = s.values[i];
          if (v === null || v === undefined) continue;
          const x = round(m.l + (i + 0.5) * step);
          const yy = round(y(v));
          const prev = i > 0 && s.values[i - 1] !== null && s.values[i - 1] !== undefined;
          const next = i < n - 1 && s.values[i + 1] !== null && s.values[i + 1] !== undefined;
          d += (prev ? "L" : "M") + x + " " + yy;
          if (step >= 6 || (!prev && !next)) {
            dots += "M" + (x - r) + " " + yy + "a" + r + " " + r + " 0 1 0 " + 2 * r + " 0a" + r + " " + r + " 0 1 0 " + -2 * r + " 0Z";
          }
        }
        plot.appendChild(svgEl("path", { class: "series line", "data-series": s.label, stroke: s.color, fill: "none", d: d }));
        if (dots) plot.appendChild(svgEl("path", { class: "dots", fill: s.color, d: dots }));
      }
    }
    svg.appendChild(plot);

    // Hover targets: one column per bucket with data, its values in a native tooltip.
    const hits = svgEl("g", { class: "hits" });
    for (let i = 0; i < n; i++) {
      const lines = [];
      for (const s of opts.series) {
        const v = s.values[i];
        if (v === null || v === undefined || (opts.kind === "stack" && !(v > 0))) continue;
        lines.push(s.label + ": " + opts.format(v));
      }
      if (!lines.length) continue;
      const rect = svgEl("rect", { x: round(m.l + i * step), y: m.t, width: round(Math.max(step, 1)), height: ph });
      rect.appendChild(svgEl("title", {}, fmt.time(opts.times[i], withDay) + "\n" + lines.join("\n")));
      hits.appendChild(rect);
    }
    svg.appendChild(hits);

    if (!hasData) {
      svg.appendChild(svgEl("text", { class: "empty", x: m.l + pw / 2, y: m.t + ph / 2, "text-anchor": "middle" }, "No requests in this range"));
    }

    const summary = [];
    for (const s of opts.series) {
      const li = el("li");
      const swatch = el("span", { class: "swatch" });
      swatch.style.background = s.color; // CSSOM, allowed by the CSP (unlike a style attribute)
      li.appendChild(swatch);
      li.appendChild(document.createTextNode(s.label));
      legend.appendChild(li);
      summary.push(s.label + " " + opts.summarize(s.values));
    }
    svg.setAttribute("aria-label", opts.title + ", " + state.rangeLabel + ": " + (summary.length ? summary.join("; ") : "no data"));
  }

  function drawCharts(data) {
    const g = data.grid;
    const keys = Array.from(g.channels.keys()).sort((a, b) => (a === "" ? 1 : b === "" ? -1 : a < b ? -1 : a > b ? 1 : 0));
    const shown = keys.filter((k) => sum(g.channels.get(k).requests) > 0);
    const series = (pick) =>
      shown.map((k) => ({ key: k, label: channelLabel(k), color: data.colours.get(k), values: pick(g.channels.get(k)) }));
    const perBucket = (c, f) => c.requests.map((r, i) => (r > 0 ? f(c, i) : null));
    const avgOf = (values) => {
      const got = values.filter((v) => v !== null);
      return got.length ? got.reduce((a, b) => a + b, 0) / got.length : null;
    };
    const common = { times: g.times, width: g.width };
    drawChart($("chart-requests"), Object.assign({}, common, {
      title: "Requests per channel", kind: "stack", integer: true, format: fmt.int,
      series: series((c) => c.requests), summarize: (v) => fmt.int(sum(v)) + " requests",
    }));
    drawChart($("chart-errors"), Object.assign({}, common, {
      title: "Error rate per channel", kind: "line", cap: 100, emptyTop: 100, format: fmt.pct,
      series: series((c) => perBucket(c, (c, i) => (100 * c.errors[i]) / c.requests[i])),
      summarize: (v) => { const a = avgOf(v); return a === null ? "no data" : "average " + fmt.pct(a); },
    }));
    drawChart($("chart-latency"), Object.assign({}, common, {
      title: "Average latency per channel", kind: "line", format: fmt.ms,
      series: series((c) => perBucket(c, (c, i) => c.latencySum[i] / c.requests[i])),
      summarize: (v) => { const a = avgOf(v); return a === null ? "no data" : "around " + fmt.ms(a); },
    }));
    drawChart($("chart-cost"), Object.assign({}, common, {
      title: "Cost per channel", kind: "stack", format: fmt.usdAxis,
      series: series((c) => c.cost), summarize: (v) => fmt.usd(sum(v)),
    }));
  }

  // The SQLite writer process (GET /v1/stats/health → stats_writer_process; null for PostgreSQL
  // or statistics written in process): its pid, and how often it had to be replaced.
  function writerProcess(p) {
    if (!p) return "";
    const state = p.pid === null ? "no writer process running (one starts at the next write)" : "writer process " + p.pid;
    const restarts = p.started > 1 ? " (replaced " + fmt.int(p.started - 1) + "×)" : "";
    return " · " + state + restarts;
  }

  // ---- tables -------------------------------------------------------------------------------

  // A cell is a string/number, or {text, num, cls, title, swatch}.
  function fillTable(id, rows, emptyText) {
    const table = $(id);
    const tbody = table.tBodies[0];
    const width = table.tHead.rows[0].cells.length;
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    if (!rows.length) {
      const tr = el("tr", { class: "empty" });
      tr.appendChild(el("td", { colspan: String(width) }, emptyText));
      tbody.appendChild(tr);
      return;
    }
    for (const row of rows) {
      const tr = el("tr");
      row.forEach((cell, i) => {
        const spec = cell !== null && typeof cell === "object" ? cell : { text: cell };
        const td = el(i === 0 ? "th" : "td", i === 0 ? { scope: "row" } : {});
        if (spec.num) td.classList.add("num");
        if (spec.cls) td.classList.add(spec.cls);
        if (spec.title) td.setAttribute("title", spec.title);
        if (spec.swatch) {
          const sw = el("span", { class: "swatch", "aria-hidden": "true" });
          sw.style.background = spec.swatch;
          td.appendChild(sw);
        }
        td.appendChild(document.createTextNode(spec.text === null || spec.text === undefined ? "—" : String(spec.text)));
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    }
  }

  function num(v, format) {
    return { text: format(v), num: true };
  }

  function renderSummary(summary, health) {
    const u = summary && summary.usage;
    $("total-requests").textContent = u ? fmt.int(u.requests) : "–";
    $("total-success").textContent = u ? fmt.ratio(u.successful_requests, u.requests) : "–";
    $("total-failed").textContent = u ? fmt.int(u.failed_requests) : "–";
    $("total-tokens").textContent = u ? fmt.compact(u.prompt_tokens) + " / " + fmt.compact(u.completion_tokens) : "–";
    $("total-cost").textContent = u ? fmt.usd(u.cost) : "–";
    $("total-cooling").textContent = health ? fmt.int((health.channels || []).length) : "–";
  }

  function renderTables(data) {
    const { summary, health, failures, colours } = data;
    const g = data.grid;

    // Channel health: every channel seen in the window or cooling now.
    const cooling = new Map();
    for (const c of (health && health.channels) || []) {
      const key = channelKey(c.channel);
      if (!cooling.has(key)) cooling.set(key, []);
      cooling.get(key).push(c);
    }
    const healthRows = [];
    for (const key of data.channelKeys) {
      if (key === "") continue;
      const swatch = colours.get(key);
      const entries = cooling.get(key);
      if (!entries) {
        healthRows.push([{ text: key, swatch, cls: "nowrap" }, { text: "● OK", cls: "ok" }, "—", { text: "—", num: true }, { text: "—", num: true }]);
        continue;
      }
      for (const e of entries) {
        healthRows.push([
          { text: key, swatch, cls: "nowrap" }, { text: "● Cooling down", cls: "bad" }, { text: e.model, cls: "name" },
          num(Math.max(0, e.seconds_left), fmt.seconds), num(e.failures, fmt.int),
        ]);
      }
    }
    fillTable("table-health", healthRows, health ? "No channel has been used in this range." : "Health is unavailable.");
    const q = health && health.stats_queue;
    $("stats-queue").textContent = q
      ? "Statistics writer: " + fmt.int(q.queued) + " of " + fmt.int(q.max_queue) + " queued · " + fmt.int(q.written) +
        " written · " + fmt.int(q.dropped) + " dropped · " + (q.healthy ? "healthy" : "unhealthy") +
        (q.last_error ? " · last error: " + q.last_error : "") + writerProcess(health.stats_writer_process)
      : "";

    // Channels: client requests by the channel that answered last, attempts by the channel tried.
    const channelRows = [];
    for (const [key, c] of g.channels) {
      const requests = sum(c.requests);
      const errors = sum(c.errors);
      const attempts = sum(c.attempts);
      channelRows.push([requests, [
        { text: channelLabel(key), swatch: colours.get(key), cls: "nowrap" },
        num(requests, fmt.int), num(errors, fmt.int), { text: fmt.ratio(errors, requests), num: true },
        num(attempts, fmt.int), num(sum(c.attemptErrors), fmt.int),
        { text: requests > 0 ? fmt.ms(sum(c.latencySum) / requests) : "—", num: true },
        num(sum(c.tokens), fmt.compact), num(sum(c.cost), fmt.usd),
      ]]);
    }
    channelRows.sort((a, b) => b[0] - a[0]);
    fillTable("table-channels", channelRows.map((r) => r[1]), "No requests in this range.");

    const s = summary || {};
    fillTable("table-models", (s.model_request_counts || []).map((r) => [{ text: r.model, cls: "name" }, num(r.count, fmt.int)]),
      "No requests in this range.");
    fillTable("table-keys", (s.key_request_counts || []).map((r) => [
      { text: r.client_key, cls: "name" }, num(r.count, fmt.int), num(r.total_tokens, fmt.compact), num(r.cost, fmt.usd),
    ]), "No requests in this range.");
    fillTable("table-routes", (s.channel_model_success_rates || []).map((r) => [
      { text: r.provider, swatch: colours.get(channelKey(r.provider)), cls: "nowrap" }, { text: r.model, cls: "name" },
      num(r.total_requests, fmt.int), { text: fmt.pct(100 * r.success_rate), num: true },
    ]), "No attempts in this range.");

    fillTable("table-failures", (failures || []).map((r) => {
      const message = r.error_message || "";
      const attempts = (r.attempts || []).map((a) => a.channel + " " + a.status + " " + a.outcome).join(" → ");
      return [
        { text: fmt.stamp(r.timestamp), cls: "nowrap" }, { text: r.client_key, cls: "nowrap" },
        { text: r.model, cls: "wrap" }, { text: r.channel, cls: "nowrap" },
        num(r.status, String), { text: r.error_class, cls: "error-class" },
        { text: message.length > 240 ? message.slice(0, 240) + "…" : message, title: message, cls: "reason" },
        { text: attempts || "—", cls: "attempts" },
      ];
    }), "No failures.");
  }

  // ---- loading ------------------------------------------------------------------------------

  function showProblem(text, withSignIn) {
    const p = $("problem");
    while (p.firstChild) p.removeChild(p.firstChild);
    if (!text) {
      p.hidden = true;
      return;
    }
    p.appendChild(document.createTextNode(text + " "));
    if (withSignIn) {
      const b = el("button", { type: "button" }, "Sign in again");
      b.addEventListener("click", signOut);
      p.appendChild(b);
    }
    p.hidden = false;
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = null;
    if ($("autorefresh").checked && !document.hidden) state.timer = setTimeout(load, REFRESH_MS);
  }

  async function load() {
    clearTimeout(state.timer);
    const seq = ++state.seq;
    const range = RANGES[state.range];
    state.rangeLabel = range.label;
    const key = readKey();
    if (!key) {
      showProblem("This page has no key to read the statistics with (no unigate_admin cookie).", true);
      return;
    }
    document.body.dataset.state = "loading";
    const now = Date.now();
    const results = await Promise.allSettled([
      api("/v1/stats?hours=" + range.hours, key),
      api("/v1/stats/timeseries?hours=" + range.hours + "&bucket_minutes=" + range.bucket, key),
      api("/v1/stats/health", key),
      api("/v1/stats/requests?success=false&limit=20", key),
    ]);
    if (seq !== state.seq) return; // a newer load started (range changed)
    const [summary, series, health, failures] = results.map((r) => (r.status === "fulfilled" ? r.value : null));
    const errors = results.filter((r) => r.status === "rejected").map((r) => r.reason);
    const denied = errors.find((e) => e instanceof ApiError && (e.status === 401 || e.status === 403));
    const disabled = errors.find((e) => e instanceof ApiError && e.code === "stats_disabled");
    if (denied) {
      showProblem("The gateway no longer accepts this key as an admin key.", true);
    } else if (disabled) {
      showProblem("Statistics are disabled on this gateway (DISABLE_DATABASE=true): only channel health is shown.", false);
    } else if (errors.length) {
      showProblem("Some statistics could not be loaded: " + errors.map((e) => e.message).join("; "), false);
    } else {
      showProblem("", false);
    }

    const g = grid((series && series.data) || [], range, now);
    const keySet = new Set(g.channels.keys());
    for (const r of (summary && summary.channel_success_rates) || []) keySet.add(channelKey(r.provider));
    for (const c of (health && health.channels) || []) keySet.add(channelKey(c.channel));
    const channelKeys = Array.from(keySet).sort();
    state.last = {
      grid: g, summary, health, failures: failures && failures.data, colours: colours(channelKeys), channelKeys,
    };
    render();
    state.loads += 1;
    document.body.dataset.loads = String(state.loads);
    document.body.dataset.state = errors.length ? "error" : "ready";
    $("updated").textContent = (errors.length ? "Partly updated " : "Updated ") + new Date(now).toLocaleTimeString() + " · " + range.label;
    schedule();
  }

  function render() {
    const data = state.last;
    if (!data) return;
    renderSummary(data.summary, data.health);
    drawCharts(data);
    renderTables(data);
  }

  function setRange(name) {
    if (!RANGES[name]) return;
    state.range = name;
    for (const b of document.querySelectorAll("[data-range]")) {
      b.setAttribute("aria-pressed", b.dataset.range === name ? "true" : "false");
    }
    if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
  }

  document.addEventListener("DOMContentLoaded", () => {
    setRange(location.hash.slice(1) in RANGES ? location.hash.slice(1) : "1h");
    for (const b of document.querySelectorAll("[data-range]")) {
      b.addEventListener("click", () => {
        setRange(b.dataset.range);
        load();
      });
    }
    $("refresh").addEventListener("click", load);
    $("signout").addEventListener("click", signOut);
    $("autorefresh").addEventListener("change", schedule);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) load();
      else clearTimeout(state.timer);
    });
    let pending = false;
    window.addEventListener("resize", () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        if (state.last) drawCharts(state.last);
      });
    });
    load();
  });
})();
