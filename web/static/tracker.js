// The order tracker: follow one order (typed in, or ?orderId= from a link) and show its status
// as it changes: received → accepted or rejected (with the reasons) → confirmation sent/failed.
//
// Stable hooks for people and tests: #connection[data-state], #order[data-order-id],
// #status[data-status], #timeline > li[data-status][data-event-id], #reasons li, #error.

import {
  LABELS,
  ORDER_ID_PATTERN,
  OrderBook,
  connectFeed,
  fetchStatus,
  reasonsList,
  showState,
  timeElement,
} from "./feed.js";

const $ = (id) => document.getElementById(id);
const connection = $("connection");
const errorBox = $("error");
let feed = null;

function showError(error) {
  errorBox.hidden = !error;
  errorBox.textContent = error ? error.message : "";
}

function render(order) {
  if (!order) {
    return;
  }
  const current = order.current;
  const status = $("status");
  status.dataset.status = current.status;
  status.textContent = LABELS[current.status];
  $("status-time").replaceChildren(timeElement(current.time));
  const rejected = current.status === "rejected";
  $("reasons-box").hidden = !rejected;
  $("reasons").replaceChildren(rejected ? reasonsList(current.reasons) : "");
  $("timeline").replaceChildren(
    ...order.updates.map((update) => {
      const item = document.createElement("li");
      item.dataset.status = update.status;
      item.dataset.eventId = update.eventId;
      const label = document.createElement("span");
      label.className = "status";
      label.dataset.status = update.status;
      label.textContent = LABELS[update.status];
      item.append(timeElement(update.time), " ", label);
      if (update.status === "rejected") {
        item.append(reasonsList(update.reasons));
      }
      return item;
    }),
  );
}

function follow(orderId) {
  feed?.stop();
  showError(null);
  const book = new OrderBook();
  const section = $("order");
  section.hidden = false;
  section.dataset.orderId = orderId;
  $("order-name").textContent = orderId;
  const status = $("status");
  status.dataset.status = "unknown";
  status.textContent = "Waiting for the order…";
  $("status-time").replaceChildren();
  $("reasons-box").hidden = true;
  $("timeline").replaceChildren();
  const apply = (update) => {
    if (update?.orderId === orderId) {
      render(book.apply(update));
    }
  };
  feed = connectFeed({
    query: `orderId=${encodeURIComponent(orderId)}`,
    onState: (state, error) => {
      showState(connection, state);
      if (error) {
        showError(error);
      }
    },
    onUpdate: apply,
    // What happened while the page was away: the stored status, then live updates on top.
    resync: async () => apply(await fetchStatus(orderId)),
  });
}

function start() {
  const input = $("order-id");
  $("order-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const orderId = input.value.trim();
    if (!ORDER_ID_PATTERN.test(orderId)) {
      showError(new Error("An order id is 1 to 128 letters, digits and . _ : - (starting with a letter or digit)."));
      return;
    }
    const url = new URL(location.href);
    url.searchParams.set("orderId", orderId);
    history.pushState(null, "", url);
    follow(orderId);
  });
  window.addEventListener("popstate", () => {
    const orderId = new URLSearchParams(location.search).get("orderId");
    if (orderId !== null && ORDER_ID_PATTERN.test(orderId)) {
      input.value = orderId;
      follow(orderId);
    }
  });
  const fromLink = new URLSearchParams(location.search).get("orderId");
  if (fromLink !== null) {
    input.value = fromLink;
    if (ORDER_ID_PATTERN.test(fromLink)) {
      follow(fromLink);
    } else {
      showError(new Error("The link's order id is not a valid order id."));
    }
  }
}

start();
