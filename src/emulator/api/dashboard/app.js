// The local dashboard: plain JavaScript, no framework, no build step, nothing from the internet.
// Everything shown is written with textContent, never parsed as HTML. Updates come by server-sent
// events from /dashboard/api/stream; a change refetches only what it touches (one page of
// events, one order's journey), never whole tables on a timer.
"use strict";

const TOKEN = document.querySelector('meta[name="ordergrid-token"]').content;
const $ = (id) => document.getElementById(id);

/** An element with properties, data attributes and children (strings become text). */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, String(value));
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function clear(node) {
  node.replaceChildren();
  return node;
}

async function getJson(url) {
  const response = await fetch(url, { headers: { accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body?.error?.message ?? `${url} answered ${response.status}`);
  return body;
}

async function act(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", "x-ordergrid-token": TOKEN },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer?.error?.message ?? `${path} answered ${response.status}`);
  return answer;
}

const time = (iso) => (iso ? iso.replace("T", " ").replace("Z", "") : "");

/** Runs `fn` at most once per `ms`, last call wins. */
function debounce(fn, ms) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, ms);
  };
}

// ---- confirm, then act ----

let pending = null;
function confirmThen(text, action) {
  pending = action;
  $("confirm-text").textContent = text;
  $("confirm").hidden = false;
  $("confirm-yes").focus();
}
$("confirm-no").addEventListener("click", () => {
  pending = null;
  $("confirm").hidden = true;
});
$("confirm-yes").addEventListener("click", async () => {
  const action = pending;
  pending = null;
  $("confirm").hidden = true;
  if (!action) return;
  const result = $("action-result");
  result.hidden = false;
  result.dataset.state = "running";
  result.textContent = "working…";
  try {
    const done = await action();
    result.dataset.state = "done";
    result.textContent = `Done: ${done.done}`;
  } catch (e) {
    result.dataset.state = "failed";
    result.textContent = `Failed: ${e.message}`;
  }
});

// ---- events: search and paging ----

const list = { q: "", cursors: [null], page: 0 };

// States that need words; the others read as they are.
const STATE_TEXT = { finishedEarlier: "done before this start (attempts are kept in memory only)" };
const stateText = (state) => STATE_TEXT[state] ?? state;

function statusCell(status) {
  return el("td", { class: `status ${status}`, "data-status": status, text: stateText(status) });
}

async function loadEvents() {
  const cursor = list.cursors[list.page];
  const params = new URLSearchParams({ q: list.q, limit: "50" });
  if (cursor) params.set("before", cursor);
  const page = await getJson(`/dashboard/api/events?${params}`);
  const body = clear($("events").tBodies[0]);
  for (const e of page.events) {
    const order = e.orderId
      ? el("a", { href: `#/order/${encodeURIComponent(e.orderId)}`, text: e.orderId, class: "order-link" })
      : "";
    const row = el(
      "tr",
      { "data-position": e.position, "data-order-id": e.orderId ?? "", "data-event-id": e.id ?? "" },
      el("td", { text: time(e.publishedAt) }),
      el("td", { text: e.eventType ?? "…" }),
      el("td", { text: e.subject ?? "" }),
      el("td", {}, order),
      statusCell(e.status),
      el("td", {}, el("a", { href: `#/event/${e.position}`, text: e.id ?? e.position, class: "event-link" })),
    );
    row.title = e.deliveries.map((d) => `${d.subscription}: ${stateText(d.state)}`).join("\n");
    body.append(row);
  }
  if (page.events.length === 0) body.append(el("tr", {}, el("td", { colSpan: 6, text: "(no events)" })));
  $("events-count").textContent = `${page.total} event(s)${list.q ? ` matching “${list.q}”` : ""}`;
  list.cursors[list.page + 1] = page.next;
  $("older").hidden = !page.next;
  $("newer").hidden = list.page === 0;
}

$("search").addEventListener("submit", (ev) => {
  ev.preventDefault();
  list.q = $("q").value.trim();
  list.cursors = [null];
  list.page = 0;
  if (location.hash !== "#/" && location.hash !== "") location.hash = "#/";
  loadEvents().catch(showError);
});
$("older").addEventListener("click", () => {
  list.page += 1;
  loadEvents().catch(showError);
});
$("newer").addEventListener("click", () => {
  list.page = Math.max(0, list.page - 1);
  loadEvents().catch(showError);
});

function showError(e) {
  const result = $("action-result");
  result.hidden = false;
  result.dataset.state = "failed";
  result.textContent = e.message;
}

// ---- one event ----

function attemptItem(a) {
  const ok = a.status !== null && a.status >= 200 && a.status < 300;
  const item = el(
    "li",
    { class: ok ? "attempt ok" : "attempt failed", "data-failed": ok ? "false" : "true", "data-subscription": a.subscription },
    el("span", { class: "when", text: time(a.at) }),
    ` ${a.subscription} attempt ${a.attempt}: `,
    el("strong", { text: `${a.status ?? "no answer"} ${a.outcome}` }),
    ` in ${a.durationMs} ms → ${a.next}`,
  );
  for (const h of a.handler) {
    const cause = el(
      "div",
      { class: "cause" },
      el("span", { class: "label", text: `${h.function} answered ${h.status ?? "nothing"}${h.code ? ` ${h.code}` : ""}: ` }),
      el("span", { class: "cause-message", text: h.message }),
    );
    if (h.logs.length) cause.append(el("pre", { class: "logs", text: h.logs.join("\n") }));
    item.append(cause);
  }
  return item;
}

async function showEvent(position) {
  const d = await getJson(`/dashboard/api/events/${encodeURIComponent(position)}`);
  const e = d.event;
  $("event-title").textContent = `${e.eventType ?? "event"} ${e.id ?? ""}`;
  const facts = clear($("event-facts"));
  const fact = (term, value) => {
    if (value === null || value === undefined || value === "") return;
    facts.append(el("dt", { text: term }), el("dd", {}, value));
  };
  fact("topic", e.topic);
  fact("subject", e.subject);
  fact("published", time(e.publishedAt));
  fact("order", e.orderId ? el("a", { href: `#/order/${encodeURIComponent(e.orderId)}`, text: e.orderId }) : null);
  fact("redelivered to", e.target);
  fact("status", e.status);
  fact("spool position", e.position);
  $("payload").textContent = d.payload ?? d.payloadNote;
  const attempts = clear($("event-attempts"));
  for (const a of d.attempts) attempts.append(attemptItem(a));
  if (!d.attempts.length) attempts.append(el("li", { text: "(none recorded since the emulator started)" }));
}

// ---- an order's journey ----

let journeyOrder = null;
/** The trace ids of the journey shown, so arriving spans refresh its waterfall. */
let journeyTraces = [];

async function showJourney(orderId) {
  journeyOrder = orderId;
  const j = await getJson(`/dashboard/api/orders/${encodeURIComponent(orderId)}`).catch((e) => ({ error: e }));
  const section = $("journey");
  section.dataset.orderId = orderId;
  $("journey-title").textContent = `Order ${orderId}`;
  if (j.error) {
    $("journey-note").textContent = j.error.message;
    for (const id of ["journey-timeline", "journey-events", "journey-retries", "journey-dead-letters", "journey-email"]) clear($(id));
    $("journey-order").textContent = "";
    return;
  }
  $("journey-note").textContent = j.unavailable ?? "";

  const timeline = clear($("journey-timeline"));
  for (const t of j.timeline) {
    timeline.append(
      el("li", { class: t.failed ? "failed" : "ok", "data-kind": t.kind }, el("span", { class: "when", text: time(t.at) }), ` ${t.text}`),
    );
  }

  const events = clear($("journey-events"));
  for (const d of j.events) {
    const e = d.event;
    const box = el(
      "details",
      { class: "journey-event", "data-event-type": e.eventType ?? "", "data-status": e.status, open: e.status !== "delivered" },
      el(
        "summary",
        {},
        el("strong", { text: e.eventType ?? "event" }),
        ` ${e.id ?? ""} · published ${time(e.publishedAt)} · `,
        el("span", { class: `status ${e.status}`, text: stateText(e.status) }),
        e.target ? ` · redelivered to ${e.target}` : "",
      ),
    );
    const deliveries = el("ul", { class: "deliveries" });
    for (const s of e.deliveries) {
      deliveries.append(el("li", { "data-subscription": s.subscription, "data-state": s.state, text: `${s.subscription}: ${stateText(s.state)}${s.attempts ? ` after ${s.attempts} attempt(s)` : ""}` }));
    }
    box.append(deliveries);
    const attempts = el("ol", { class: "attempts" });
    for (const a of d.attempts) attempts.append(attemptItem(a));
    box.append(attempts);
    box.append(el("a", { href: `#/event/${e.position}`, text: "payload" }));
    events.append(box);
  }
  if (!j.events.length) events.append(el("p", { text: "(no event in the index names this order)" }));

  const retries = clear($("journey-retries"));
  for (const r of j.retries) {
    const what = r.action.kind === "deadLetter" ? `dead-letter write (${r.action.reason})` : "retry";
    retries.append(el("li", { text: `${r.subscription}: ${what} due ${time(r.due)} after ${r.attempts} attempt(s), last ${r.lastStatus ?? ""} ${r.lastOutcome ?? ""}` }));
  }
  if (!j.retries.length) retries.append(el("li", { text: "(none)" }));

  const dead = clear($("journey-dead-letters"));
  for (const d of j.deadLetters) {
    const button = el("button", { type: "button", class: "redeliver", text: "Redeliver" });
    button.addEventListener("click", () =>
      confirmThen(`Publish event ${d.eventId} of ${d.container}/${d.name} again to ${d.subscription}, and delete the blob?`, () =>
        act("/dashboard/api/actions/redeliver", { container: d.container, name: d.name }),
      ),
    );
    dead.append(
      el(
        "li",
        { "data-blob": `${d.container}/${d.name}`, "data-reason": d.reason ?? "" },
        el("strong", { text: d.reason ?? "dead-lettered" }),
        ` ${d.subscription} · ${d.deliveryAttempts ?? "?"} attempt(s), last ${d.lastHttpStatusCode ?? ""} ${d.lastDeliveryOutcome ?? ""} at ${time(d.lastDeliveryAttemptTime)} · `,
        el("code", { text: `${d.container}/${d.name}` }),
        " ",
        button,
      ),
    );
  }
  if (!j.deadLetters.length) dead.append(el("li", { text: "(none)" }));

  const order = { record: j.record, emailLedger: j.emailLedger, rejections: j.rejections };
  $("journey-order").textContent = j.record || j.rejections.length ? JSON.stringify(order, null, 2) : "(no record)";

  const email = clear($("journey-email"));
  if (j.email) {
    email.dataset.state = "sent";
    email.append(
      el("p", {}, el("strong", { class: "email-subject", text: j.email.subject ?? "(no subject)" })),
      el("p", { text: `to ${j.email.to ?? "?"} from ${j.email.from ?? "?"} · ${j.email.date ?? ""}` }),
      el("a", { href: j.email.url, target: "_blank", rel: "noopener", text: `open ${j.email.file}` }),
    );
  } else {
    email.dataset.state = "none";
    email.append(el("p", { text: "(no email in the outbox for this order)" }));
  }
  journeyTraces = j.trace.traceIds;
  renderTrace(j.trace);
}

/** Spans in tree order (each followed by its children, by start time), with their depth. */
function spanTree(spans) {
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map();
  for (const s of spans) {
    const parent = s.parentSpanId && ids.has(s.parentSpanId) ? s.parentSpanId : "";
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(s);
  }
  const out = [];
  const walk = (parent, depth) => {
    for (const s of (children.get(parent) ?? []).sort((a, b) => a.startUnixNano - b.startUnixNano)) {
      out.push({ span: s, depth });
      walk(s.spanId, depth + 1);
    }
  };
  walk("", 0);
  return out;
}

/** The order's trace as a waterfall: a row per span, a bar where it lies in the trace's time. */
function renderTrace(trace) {
  const box = clear($("trace"));
  box.dataset.state = trace.spans.length ? "spans" : "empty";
  box.append(el("p", { class: "muted" }, trace.traceIds.length ? `trace ${trace.traceIds.join(", ")}` : "", trace.note ? ` ${trace.note}` : ""));
  if (!trace.spans.length) return;
  const start = Math.min(...trace.spans.map((s) => s.startUnixNano));
  const end = Math.max(...trace.spans.map((s) => s.endUnixNano));
  const total = Math.max(1, end - start);
  const rows = el("ol", { class: "waterfall" });
  for (const { span, depth } of spanTree(trace.spans)) {
    const ms = (span.endUnixNano - span.startUnixNano) / 1e6;
    const bar = el("span", { class: `bar ${span.error ? "failed" : "ok"}`, title: span.error ?? "" });
    bar.style.left = `${((span.startUnixNano - start) / total) * 100}%`;
    bar.style.width = `${Math.max(0.3, ((span.endUnixNano - span.startUnixNano) / total) * 100)}%`;
    const name = el("span", { class: "span-name" }, el("strong", { text: span.name }), ` ${span.service}`);
    name.style.paddingLeft = `${depth}rem`;
    const facts = span.attributes.filter(([k]) => k === "order.id" || k === "http.response.status_code" || k === "event.type").map(([k, v]) => `${k}=${v}`);
    rows.append(
      el(
        "li",
        { "data-span": span.name, "data-service": span.service, "data-state": span.error ? "failed" : "ok" },
        name,
        el("span", { class: "track" }, bar),
        el("span", { class: "span-time", text: `${ms.toFixed(1)} ms${span.error ? ` · ${span.error}` : ""}${facts.length ? ` · ${facts.join(" ")}` : ""}` }),
      ),
    );
  }
  box.append(rows);
}

// ---- counters and charts ----

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

/** Bars of `series` (arrays of numbers, stacked), `title` for people. */
function bars(series, classes, title) {
  const w = 180, h = 36, n = series[0].length;
  const max = Math.max(1, ...series[0].map((_, i) => series.reduce((s, values) => s + values[i], 0)));
  const chart = svg("svg", { viewBox: `0 0 ${w} ${h}`, width: w, height: h, class: "chart", role: "img" });
  chart.append(Object.assign(svg("title"), { textContent: title }));
  const bw = w / n;
  for (let i = 0; i < n; i++) {
    let y = h;
    series.forEach((values, s) => {
      const bh = (values[i] / max) * (h - 2);
      if (bh <= 0) return;
      y -= bh;
      chart.append(svg("rect", { x: (i * bw).toFixed(1), y: y.toFixed(1), width: Math.max(1, bw - 1).toFixed(1), height: bh.toFixed(1), class: classes[s] }));
    });
  }
  return chart;
}

/** p50 and p99 lines (log scale), gaps where there were no attempts. */
function latency(points) {
  const w = 180, h = 36, n = points.length;
  const values = points.flatMap((p) => [p.p50Ms, p.p99Ms]).filter((v) => v !== null);
  const chart = svg("svg", { viewBox: `0 0 ${w} ${h}`, width: w, height: h, class: "chart", role: "img" });
  const last = [...points].reverse().find((p) => p.p50Ms !== null);
  const label = last ? `latest p50 ${last.p50Ms} ms, p99 ${last.p99Ms} ms` : "no attempts in this window";
  chart.append(Object.assign(svg("title"), { textContent: label }));
  if (values.length) {
    const lo = Math.log10(Math.max(0.1, Math.min(...values))), hi = Math.log10(Math.max(...values)) + 0.01;
    const y = (v) => h - 2 - ((Math.log10(Math.max(0.1, v)) - lo) / Math.max(0.01, hi - lo)) * (h - 4);
    for (const [key, cls] of [["p99Ms", "p99"], ["p50Ms", "p50"]]) {
      let d = "";
      points.forEach((p, i) => {
        if (p[key] === null) return;
        d += `${d && points[i - 1]?.[key] !== null ? "L" : "M"}${((i + 0.5) * (w / n)).toFixed(1)},${y(p[key]).toFixed(1)}`;
      });
      if (d) chart.append(svg("path", { d, class: `line ${cls}` }));
    }
  }
  return el("span", { class: "latency" }, chart, el("span", { class: "muted", text: ` ${label}` }));
}

function renderMetrics(m) {
  $("bucket").textContent = `${m.bucketMs / 1000} s`;
  $("window").textContent = `${Math.round((m.bucketMs * (m.topics[0]?.series.length ?? 60)) / 60000)} minutes`;
  const topics = clear($("topics").tBodies[0]);
  for (const t of m.topics) {
    const f = t.publishFailed;
    topics.append(
      el(
        "tr",
        { "data-topic": t.name },
        el("td", { text: t.name }),
        el("td", { class: "n", text: t.published }),
        el("td", { class: "n", text: `${f.auth + f.schema + f.size + f.other} (${f.auth} / ${f.schema} / ${f.size} / ${f.other})` }),
        el("td", { class: "n", text: t.unmatched }),
        el("td", {}, bars([t.series.map((p) => p.published), t.series.map((p) => p.publishFailed)], ["ok", "failed"], "published and refused")),
      ),
    );
  }
  const subscriptions = clear($("subscriptions").tBodies[0]);
  const select = $("action-subscription");
  const chosen = select.value;
  clear(select);
  for (const s of m.subscriptions) {
    const c = s.counters;
    const validation = s.validation.state + (s.validation.reason ? `: ${s.validation.reason}` : "");
    subscriptions.append(
      el(
        "tr",
        { "data-subscription": s.key },
        el("td", { text: s.key }),
        el("td", { text: validation }),
        el("td", { class: "n", text: c.matched }),
        el("td", { class: "n", text: c.delivered }),
        el("td", { class: "n", text: s.deliveryFailed }),
        el("td", { class: "n", text: c.deadLettered }),
        el("td", { class: "n", text: c.dropped }),
        el("td", {}, bars([s.series.map((p) => p.delivered), s.series.map((p) => p.failed)], ["ok", "failed"], "delivered and failed attempts")),
        el("td", {}, latency(s.series)),
      ),
    );
    select.append(el("option", { value: s.name, text: s.key, selected: s.name === chosen }));
  }
  const failures = clear($("publish-failures"));
  for (const f of m.publishFailures) failures.append(el("li", { text: `${time(f.at)} ${f.topic}: ${f.reason} (${f.status}) ${f.message}` }));
  if (!m.publishFailures.length) failures.append(el("li", { text: "(none)" }));
}

// ---- actions ----

$("redeliver-all").addEventListener("click", () => {
  const subscription = $("action-subscription").value;
  confirmThen(`Publish every dead letter of ${subscription} again (to ${subscription} only), and delete the blobs?`, () =>
    act("/dashboard/api/actions/redeliver", { subscription }),
  );
});
$("revalidate").addEventListener("click", () => {
  const subscription = $("action-subscription").value;
  confirmThen(`Run the validation handshake of ${subscription} again? Deliveries pause until it passes.`, () =>
    act("/dashboard/api/actions/validate", { subscription }),
  );
});
$("test-order").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const body = {};
  if ($("test-order-id").value.trim()) body.orderId = $("test-order-id").value.trim();
  if ($("test-order-email").value.trim()) body.customerEmail = $("test-order-email").value.trim();
  if ($("test-order-value").value.trim()) body.orderValue = $("test-order-value").value.trim();
  confirmThen(`Publish a NewOrder${body.orderId ? ` for order ${body.orderId}` : ""} to the orders topic?`, () =>
    act("/dashboard/api/actions/test-order", body),
  );
});

// ---- views and live updates ----

function route() {
  const hash = decodeURIComponent(location.hash.slice(1) || "/");
  const [, view, arg] = hash.split("/");
  $("events-view").hidden = !(view === "" || view === undefined);
  $("event-view").hidden = view !== "event";
  $("journey").hidden = view !== "order";
  $("metrics-view").hidden = view !== "metrics";
  $("actions-view").hidden = view !== "actions";
  journeyOrder = null;
  if (view === "event") showEvent(arg).catch(showError);
  else if (view === "order") showJourney(arg).catch(showError);
  else if (view === "metrics" || view === "actions") getJson("/dashboard/api/metrics").then(renderMetrics).catch(showError);
  else loadEvents().catch(showError);
}
window.addEventListener("hashchange", route);

const refreshEvents = debounce(() => {
  if (!$("events-view").hidden) loadEvents().catch(showError);
}, 300);
const refreshJourney = debounce(() => {
  if (journeyOrder) showJourney(journeyOrder).catch(showError);
}, 300);

function connect() {
  const source = new EventSource("/dashboard/api/stream");
  const state = (s) => {
    $("connection").dataset.state = s;
    $("connection").textContent = s === "connected" ? "live" : s;
  };
  source.addEventListener("hello", () => state("connected"));
  source.addEventListener("error", () => state("reconnecting"));
  source.addEventListener("metrics", (m) => renderMetrics(JSON.parse(m.data)));
  source.addEventListener("resync", () => {
    refreshEvents();
    refreshJourney();
  });
  source.addEventListener("change", (m) => {
    const change = JSON.parse(m.data);
    // Only the first page of events shows new ones; any visible row may change status.
    const visible = (p) => document.querySelector(`#events tr[data-position="${CSS.escape(p)}"]`);
    if ((change.kind === "event" && list.page === 0) || (change.positions ?? []).some(visible)) refreshEvents();
    const orders = change.orderIds ?? (change.orderId ? [change.orderId] : []);
    const traced = (change.traceIds ?? []).some((id) => journeyTraces.includes(id));
    if (journeyOrder && (orders.includes(journeyOrder) || change.kind === "deadLettered" || traced)) refreshJourney();
  });
}

route();
connect();
