// The operators' board: every order's updates (group `operators`), a table of recent orders
// updating in place (newest change first) and the count of orders in each status.
//
// Stable hooks for people and tests: #connection[data-state], #order-rows >
// tr[data-order-id][data-status], #counts > [data-count=<status>] dd, #error.

import {
  LABELS,
  OrderBook,
  STATUSES,
  connectFeed,
  fetchRecent,
  fetchStatus,
  showState,
  timeElement,
} from "./feed.js";

/** The board keeps this many orders; older ones drop off the bottom. */
const MAX_ROWS = 200;

const $ = (id) => document.getElementById(id);
const rows = $("order-rows");
const book = new OrderBook();

function cell(...content) {
  const td = document.createElement("td");
  td.append(...content);
  return td;
}

function details(update) {
  if (update.status !== "rejected") {
    return "";
  }
  return (update.reasons ?? [])
    .map((r) => `${String(r?.field ?? "")}: ${String(r?.message ?? "")}`)
    .join("; ");
}

function updateCounts() {
  const counts = Object.fromEntries(STATUSES.map((s) => [s, 0]));
  for (const order of book.orders.values()) {
    counts[order.current.status] += 1;
  }
  for (const status of STATUSES) {
    document.querySelector(`#counts [data-count="${status}"] dd`).textContent = String(counts[status]);
  }
}

function render(order) {
  if (!order) {
    return;
  }
  const current = order.current;
  let row = rows.querySelector(`tr[data-order-id="${CSS.escape(order.orderId)}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.orderId = order.orderId;
  }
  row.dataset.status = current.status;
  const badge = document.createElement("span");
  badge.className = "status";
  badge.dataset.status = current.status;
  badge.textContent = LABELS[current.status];
  const link = document.createElement("a");
  link.href = `tracker?orderId=${encodeURIComponent(order.orderId)}`;
  link.textContent = order.orderId;
  row.replaceChildren(cell(link), cell(badge), cell(timeElement(current.time)), cell(details(current)));
  rows.prepend(row);
  while (rows.rows.length > MAX_ROWS) {
    const last = rows.rows[rows.rows.length - 1];
    book.forget(last.dataset.orderId);
    last.remove();
  }
  $("empty").hidden = rows.rows.length > 0;
  updateCounts();
}

/**
 * On every (re)connection: the recent orders as stored (oldest first, as each row goes on top),
 * then the stored status of any other order the board shows, a few at a time.
 */
async function resync() {
  const recent = await fetchRecent(MAX_ROWS);
  [...recent].reverse().forEach((update) => render(book.apply(update)));
  const listed = new Set(recent.map((update) => update.orderId));
  const ids = [...book.orders.keys()].filter((id) => !listed.has(id));
  for (let i = 0; i < ids.length; i += 6) {
    const statuses = await Promise.all(ids.slice(i, i + 6).map(fetchStatus));
    statuses.forEach((update) => render(book.apply(update)));
  }
}

const errorBox = $("error");
connectFeed({
  query: "board=true",
  onState: (state, error) => {
    showState($("connection"), state);
    if (error) {
      errorBox.hidden = false;
      errorBox.textContent = error.message;
    }
  },
  onUpdate: (update) => render(book.apply(update)),
  resync,
});
