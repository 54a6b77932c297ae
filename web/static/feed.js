// The live feed both pages share: negotiating a client URL, the Web PubSub connection (the
// official client, reliable JSON subprotocol, reconnecting by itself), and the orders as the page
// knows them, with every update applied once.
//
// An update is what OrderStatusFeed sends and orderStatus answers (src/functions/feed.rs):
//   {"orderId", "status", "reasons" (rejected only), "time", "eventId"}
// It is only ever shown with textContent: nothing it carries is parsed as HTML.

import { WebPubSubClient } from "./web-pubsub-client.js";

export const LABELS = Object.freeze({
  received: "Received",
  accepted: "Accepted",
  rejected: "Rejected",
  confirmationSent: "Confirmation sent",
  confirmationFailed: "Confirmation failed",
});

export const STATUSES = Object.freeze(Object.keys(LABELS));

// How far along an order is. Accepted outranks rejected: a rejected reuse of an accepted order's
// id does not undo the order (its timeline still shows the rejection and why).
const RANK = Object.freeze({
  received: 0,
  rejected: 1,
  accepted: 2,
  confirmationFailed: 3,
  confirmationSent: 3,
});

// The same rule as the handler's OrderId: 1-128 of [A-Za-z0-9._:-], starting with a letter or digit.
export const ORDER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** Whether `value` is an update as OrderStatusFeed sends it; anything else is ignored. */
export function isUpdate(value) {
  return (
    value !== null &&
    typeof value === "object" &&
    typeof value.orderId === "string" &&
    typeof value.eventId === "string" &&
    typeof value.time === "string" &&
    Object.hasOwn(RANK, value.status) &&
    (value.reasons === undefined || Array.isArray(value.reasons))
  );
}

function timeOf(update) {
  const t = Date.parse(update.time);
  return Number.isNaN(t) ? 0 : t;
}

function byProgress(a, b) {
  return RANK[a.status] - RANK[b.status] || timeOf(a) - timeOf(b);
}

/** The orders a page knows: each update once (by eventId), each order's timeline and status. */
export class OrderBook {
  constructor() {
    this.seen = new Set();
    this.orders = new Map();
  }

  /** Applies `update`; returns its order if that changed, null for a duplicate or a non-update. */
  apply(update) {
    if (!isUpdate(update) || this.seen.has(update.eventId)) {
      return null;
    }
    this.seen.add(update.eventId);
    let order = this.orders.get(update.orderId);
    if (!order) {
      order = { orderId: update.orderId, updates: [], current: null };
      this.orders.set(update.orderId, order);
    }
    order.updates.push(update);
    order.updates.sort(byProgress);
    order.current = order.updates[order.updates.length - 1];
    return order;
  }

  forget(orderId) {
    const order = this.orders.get(orderId);
    if (order) {
      order.updates.forEach((u) => this.seen.delete(u.eventId));
      this.orders.delete(orderId);
    }
  }
}

/** An error a page shows as it is: the handler's message for a 4xx. */
export class FeedError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function readError(response, what) {
  const body = await response.json().catch(() => null);
  const message = body?.error?.message ?? `${what} answered ${response.status}`;
  return new FeedError(message, response.status);
}

/** The order's current status from orderStatus; null while none is stored (404). */
export async function fetchStatus(orderId) {
  const response = await fetch(`../orders/${encodeURIComponent(orderId)}/status`, {
    cache: "no-store",
  });
  if (response.status === 404) {
    return null;
  }
  if (!response.ok) {
    throw await readError(response, "the status");
  }
  return response.json();
}

/** The board's recent orders (recentOrders, operators only), newest first. */
export async function fetchRecent(limit) {
  const response = await fetch(`../orders/recent?limit=${limit}`, { cache: "no-store" });
  if (!response.ok) {
    throw await readError(response, "the recent orders");
  }
  return (await response.json()).orders;
}

/**
 * Connects to the feed for `query` (`orderId=…` or `board=true`).
 * - onState(state, error?): "connecting", "connected", "reconnecting", "stopped";
 * - resync(): called on every (re)connection, before live updates are trusted to be complete;
 * - onUpdate(update): every update received from the groups the token joined.
 * Returns the client; call stop() on it to leave.
 */
export function connectFeed({ query, onState, onUpdate, resync }) {
  let stopping = false;
  const client = new WebPubSubClient({
    // Called on every fresh connection, so a reconnect after the token expired renegotiates.
    getClientAccessUrl: async () => {
      const response = await fetch(`../negotiate?${query}`, { cache: "no-store" });
      if (!response.ok) {
        const error = await readError(response, "negotiate");
        if (response.status >= 400 && response.status < 500) {
          // Asking again cannot help (not an operator, a bad order id): stop, and say why.
          stopping = true;
          queueMicrotask(() => client.stop());
          onState("stopped", error);
        }
        throw error;
      }
      return (await response.json()).url;
    },
  });
  client.on("connected", () => {
    onState("connected");
    Promise.resolve()
      .then(resync)
      .catch((error) => onState("connected", error));
  });
  client.on("disconnected", () => {
    if (!stopping) {
      onState("reconnecting");
    }
  });
  client.on("stopped", () => {
    if (!stopping) {
      onState("stopped");
    }
  });
  client.on("group-message", (event) => {
    if (event.message.dataType === "json") {
      onUpdate(event.message.data);
    }
  });
  onState("connecting");
  client.start().catch((error) => {
    if (!stopping) {
      onState("stopped", error);
    }
  });
  return {
    stop() {
      stopping = true;
      client.stop();
    },
  };
}

const STATE_TEXT = Object.freeze({
  connecting: "Connecting…",
  connected: "Live",
  reconnecting: "Connection lost, reconnecting…",
  stopped: "Not connected",
});

/** Shows the connection state in `element` (its data-state is for people's CSS and for tests). */
export function showState(element, state) {
  element.dataset.state = state;
  element.textContent = STATE_TEXT[state] ?? state;
}

/** A <time> element for an update's time, in the reader's locale. */
export function timeElement(text) {
  const element = document.createElement("time");
  element.dateTime = text;
  const t = Date.parse(text);
  element.textContent = Number.isNaN(t) ? text : new Date(t).toLocaleString();
  return element;
}

/** A list of rejection reasons: "field: message" each. */
export function reasonsList(reasons) {
  const list = document.createElement("ul");
  list.className = "reasons";
  for (const reason of reasons ?? []) {
    const item = document.createElement("li");
    const field = document.createElement("code");
    field.textContent = String(reason?.field ?? "");
    item.append(field, `: ${String(reason?.message ?? "")}`);
    list.append(item);
  }
  return list;
}
