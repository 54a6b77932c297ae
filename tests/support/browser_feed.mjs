// The live order feed in a real browser: Debian's Chromium, driven by playwright-core, opens the
// order tracker and the operators' board served by a running `ordergrid dev` and watches them
// while this script publishes orders through the whole stack (Event Grid emulator → Functions
// host stand-in → handler → local Web PubSub service → the page's @azure/web-pubsub-client).
//
// Usage: node browser_feed.mjs <scenario> '<config JSON>'
//   scenario: tracker | board | duplicate | brief-cut | long-cut
//   config:   {host, topicEndpoint, binary, stackDir, chromium, artifacts, webpubsub}
//             (host: the Functions host's base URL; binary: ordergrid, run in stackDir to publish;
//             artifacts: where screenshots go; webpubsub: the service's connection string)
// Each check asserts (node:assert) and prints one {"ok": …} line; exit code 0 when all passed.
// Waits are polls with deadlines (Playwright's waitForSelector/waitForFunction, `eventually`),
// never sleeps. Chromium runs headless; Playwright starts it without its sandbox by default
// (chromiumSandbox: false), which is what lets it run as root here: nothing is added for that.

import assert from "node:assert/strict";
import net from "node:net";
import path from "node:path";
import { chromium } from "playwright-core";
import { WebPubSubServiceClient } from "@azure/web-pubsub";
import { eventually } from "./eventually.mjs";
import { ordergrid as runOrdergrid } from "./ordergrid.mjs";

const [scenario, configText] = process.argv.slice(2);
if (!scenario || !configText) {
  console.error("usage: node browser_feed.mjs <scenario> '<config JSON>'");
  process.exit(2);
}
const config = JSON.parse(configText);
/** How long any one wait may take before the check fails. */
const PATIENCE = 20_000;

function ok(check) {
  console.log(JSON.stringify({ ok: check }));
}

const ordergrid = (args, stdin) => runOrdergrid(config, args, stdin);

/** `ordergrid publish` of one order, as the README publishes them. */
function publish(orderId, { value = "10.00", email = "buyer@example.com" } = {}) {
  return ordergrid([
    "publish",
    "--endpoint",
    config.topicEndpoint,
    "--order-id",
    orderId,
    "--customer-id",
    "c-1",
    "--value",
    value,
    "--email",
    email,
  ]);
}

/** Publishes `events` as they are (ids included): what Event Grid redelivering looks like. */
function publishEvents(events) {
  return ordergrid(["publish", "--endpoint", config.topicEndpoint, "--file", "-"], JSON.stringify(events));
}

// Runs in every page before its scripts: records each change of the stable hooks' data-state and
// data-status (with the value before it, so nothing a fast page changes twice in one task is lost)
// and every table row added, numbered by node, so a test can tell a row updated in place from a
// row replaced.
const RECORDER = () => {
  const changes = [];
  const rowNodes = [];
  const numbers = new WeakMap();
  let next = 0;
  const number = (node) => numbers.get(node) ?? (numbers.set(node, ++next), next);
  window.__feedTest = { changes, rowNodes };
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === "attributes") {
        const t = r.target;
        const key = t.id ? `#${t.id}` : t.tagName === "TR" ? `tr:${t.dataset.orderId}` : null;
        if (key) changes.push({ key, old: r.oldValue, node: number(t) });
      } else {
        for (const added of r.addedNodes) {
          if (added.tagName === "TR" && added.dataset.orderId) {
            rowNodes.push({ orderId: added.dataset.orderId, node: number(added) });
          }
        }
      }
    }
  }).observe(document, {
    subtree: true,
    childList: true,
    attributes: true,
    attributeFilter: ["data-state", "data-status"],
    attributeOldValue: true,
  });
};

/** The values `selector`'s `attribute` has taken, in order, repeats collapsed. */
async function historyOf(page, key, selector, attribute) {
  const olds = await page.evaluate(
    (k) => window.__feedTest.changes.filter((c) => c.key === k).map((c) => c.old),
    key,
  );
  const now = await page.getAttribute(selector, attribute);
  return [...olds, now].filter((v, i, all) => i === 0 || v !== all[i - 1]);
}

/**
 * A page with what it received over its WebSockets (`frames`: parsed JSON), the URLs it
 * requested (`requests`) and console errors (`errors`, reported when a check fails).
 */
async function openPage(context, pathAndQuery) {
  const page = await context.newPage();
  const seen = { frames: [], sent: [], requests: [], errors: [], sockets: 0 };
  page.on("websocket", (ws) => {
    seen.sockets += 1;
    ws.on("framereceived", (f) => {
      try {
        seen.frames.push({ at: Date.now(), socket: seen.sockets, ...JSON.parse(String(f.payload)) });
      } catch {
        seen.frames.push({ at: Date.now(), socket: seen.sockets, unparsed: String(f.payload) });
      }
    });
    ws.on("framesent", (f) => {
      try {
        seen.sent.push(JSON.parse(String(f.payload)));
      } catch {
        seen.sent.push({ unparsed: String(f.payload) });
      }
    });
  });
  page.on("request", (r) => seen.requests.push({ at: Date.now(), url: r.url() }));
  page.on("pageerror", (e) => seen.errors.push(String(e)));
  page.on("console", (m) => {
    // The tracker asks for the status of an order that does not exist yet: a 404 it expects.
    if (m.type() === "error" && !m.text().includes("404")) seen.errors.push(m.text());
  });
  await page.goto(`${config.host}/api/web/${pathAndQuery}`);
  await page.waitForSelector('#connection[data-state="connected"]', { timeout: PATIENCE }).catch(async (e) => {
    const shown = await page.textContent("body").catch(() => "?");
    throw new Error(`${pathAndQuery} did not connect: ${e.message}\npage: ${shown}\n${JSON.stringify(seen)}`);
  });
  return { page, seen };
}

/** The updates (`data` of group messages) a page's sockets received. */
function updates(seen) {
  return seen.frames.filter((f) => f.type === "message" && f.from === "group").map((f) => ({ ...f.data, group: f.group }));
}

async function timeline(page) {
  return page.$$eval("#timeline > li", (items) =>
    items.map((li) => ({ status: li.dataset.status, eventId: li.dataset.eventId })),
  );
}

/** Waits until the tracker shows `status` with a timeline of exactly `statuses`. */
async function trackerShows(page, status, statuses) {
  await page.waitForSelector(`#status[data-status="${status}"]`, { timeout: PATIENCE });
  await page.waitForFunction(
    (n) => document.querySelectorAll("#timeline > li").length >= n,
    statuses.length,
    { timeout: PATIENCE },
  );
}

async function screenshot(page, name) {
  const file = path.join(config.artifacts, name);
  await page.screenshot({ path: file, fullPage: true });
  console.log(JSON.stringify({ screenshot: file }));
}

const FULL = ["received", "accepted", "confirmationSent"];

// 1. The tracker, opened before its order exists, follows it live; a page for another order sees
// none of it (its socket receives nothing of the other order, not only shows nothing).
async function trackerScenario(browser) {
  const context = await browser.newContext();
  const one = await openPage(context, "tracker?orderId=T-1");
  const two = await openPage(context, "tracker?orderId=T-2");
  assert.equal(await one.page.getAttribute("#status", "data-status"), "unknown");
  ok("both trackers are live before their orders exist");

  await publish("T-1");
  await trackerShows(one.page, "confirmationSent", FULL);
  const shown = await historyOf(one.page, "#status", "#status", "data-status");
  assert.equal(shown[0], "unknown", `status history ${shown}`);
  assert.equal(shown.at(-1), "confirmationSent", `status history ${shown}`);
  // Event Grid does not order deliveries: the accepted update may arrive after the confirmation
  // (both follow OrderAccepted). The page never goes back, and its timeline (checked next) puts
  // accepted before confirmation sent whichever arrived first.
  const rank = { unknown: -1, received: 0, accepted: 1, confirmationSent: 2 };
  assert.ok(
    shown.every((s, i) => i === 0 || rank[s] > rank[shown[i - 1]]),
    `the status only moved forward: ${shown}`,
  );
  const lineOne = await timeline(one.page);
  assert.deepEqual(lineOne.map((e) => e.status), FULL, JSON.stringify(lineOne));
  assert.equal(new Set(lineOne.map((e) => e.eventId)).size, 3, JSON.stringify(lineOne));
  assert.equal(await one.page.textContent("#status"), "Confirmation sent");
  ok(`the tracker showed ${shown.join(" → ")}, each status once in its timeline`);

  // T-2's own order goes after T-1's: the service sends to a connection in order, so once T-2's
  // page shows its own confirmation, anything of T-1's would have reached it before.
  assert.equal(await two.page.getAttribute("#status", "data-status"), "unknown");
  await publish("T-2");
  await trackerShows(two.page, "confirmationSent", FULL);
  const lineTwo = await timeline(two.page);
  assert.deepEqual(lineTwo.map((e) => e.status), FULL, JSON.stringify(lineTwo));
  for (const [page, orderId] of [
    [one, "T-1"],
    [two, "T-2"],
  ]) {
    const got = updates(page.seen);
    assert.ok(got.length >= 3, JSON.stringify(got));
    assert.deepEqual(
      got.filter((u) => u.orderId !== orderId || u.group !== `order-${orderId}`),
      [],
      `the page for ${orderId} received only its own order's updates`,
    );
  }
  assert.deepEqual((await timeline(one.page)).map((e) => e.status), FULL);
  ok("the page for another order received none of it, and each page only its own");

  await screenshot(one.page, "tracker.png");
  await context.close();
  return [one, two];
}

// 3. The board: several orders, one of them rejected with its reasons, each updated in place in
// one row, counted per status.
async function boardScenario(browser) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const board = await openPage(context, "board");
  const valid = ["B-1", "B-2", "B-3"];
  await Promise.all([
    ...valid.map((id) => publish(id)),
    publish("B-4", { value: "-5", email: "not-an-email" }),
  ]);
  const counts = async () =>
    board.page.$$eval("#counts [data-count]", (items) =>
      Object.fromEntries(items.map((i) => [i.dataset.count, Number(i.querySelector("dd").textContent)])),
    );
  const expected = { received: 0, accepted: 0, rejected: 1, confirmationSent: 3, confirmationFailed: 0 };
  await eventually(`counts ${JSON.stringify(expected)}`, async () => {
    return JSON.stringify(await counts()) === JSON.stringify(expected);
  }).catch(async (e) => {
    throw new Error(`${e.message}; the board counts ${JSON.stringify(await counts())}`);
  });
  const rows = await board.page.$$eval("#order-rows > tr", (trs) =>
    trs.map((tr) => ({
      orderId: tr.dataset.orderId,
      status: tr.dataset.status,
      details: tr.cells[3].textContent,
      label: tr.cells[1].textContent,
    })),
  );
  assert.equal(rows.length, 4, JSON.stringify(rows));
  assert.deepEqual(rows.map((r) => r.orderId).sort(), [...valid, "B-4"], JSON.stringify(rows));
  for (const row of rows.filter((r) => r.orderId !== "B-4")) {
    assert.equal(row.status, "confirmationSent", JSON.stringify(row));
    assert.equal(row.label, "Confirmation sent");
    assert.equal(row.details, "");
  }
  const rejected = rows.find((r) => r.orderId === "B-4");
  assert.equal(rejected.status, "rejected");
  assert.match(rejected.details, /orderValue: /, rejected.details);
  assert.match(rejected.details, /customerEmail: /, rejected.details);
  assert.equal(await board.page.isHidden("#empty"), true);
  ok(`the board counts ${JSON.stringify(expected)} and shows why B-4 was rejected: ${rejected.details}`);

  // In place: each order had one row node all along, and that node's status changed.
  const recorded = await board.page.evaluate(() => window.__feedTest);
  for (const orderId of valid) {
    const nodes = new Set(recorded.rowNodes.filter((r) => r.orderId === orderId).map((r) => r.node));
    assert.equal(nodes.size, 1, `${orderId} had one row: ${JSON.stringify(recorded.rowNodes)}`);
    const history = await historyOf(board.page, `tr:${orderId}`, `tr[data-order-id="${orderId}"]`, "data-status");
    assert.ok(history.length >= 2, `${orderId}'s row changed in place: ${history}`);
    assert.equal(history.at(-1), "confirmationSent");
  }
  ok("each order's row was updated in place (one row node per order, its status changed)");

  // A board opened afterwards shows the same orders at once, from the stored statuses
  // (recentOrders), not only what changes after it opened.
  const late = await openPage(context, "board");
  const lateRows = async () =>
    Object.fromEntries(
      (await late.page.$$eval("#order-rows > tr", (trs) => trs.map((tr) => [tr.dataset.orderId, tr.dataset.status]))).sort(),
    );
  const stored = { "B-1": "confirmationSent", "B-2": "confirmationSent", "B-3": "confirmationSent", "B-4": "rejected" };
  await eventually("the late board's rows", async () => JSON.stringify(await lateRows()) === JSON.stringify(stored)).catch(
    async (e) => {
      throw new Error(`${e.message}; it shows ${JSON.stringify(await lateRows())}`);
    },
  );
  ok("a board opened after the orders shows them at once with their stored statuses");

  await screenshot(board.page, "board.png");
  await context.close();
  return [board, late];
}

// 4. The same status events delivered twice show once: the NewOrder event is published again with
// its id, so OrderProcessor re-emits the same OrderAccepted and EmailNotifier the same
// OrderConfirmationSent (README), and the page's socket receives every update twice.
async function duplicateScenario(browser) {
  const context = await browser.newContext();
  const tracker = await openPage(context, "tracker?orderId=D-1");
  const event = {
    id: "new-order-D-1",
    eventType: "NewOrder",
    subject: "orders/D-1",
    eventTime: new Date().toISOString(),
    dataVersion: "1.0",
    data: { orderId: "D-1", customerId: "c-1", orderValue: "12.50", customerEmail: "buyer@example.com" },
  };
  await publishEvents([event]);
  await trackerShows(tracker.page, "confirmationSent", FULL);
  const first = await timeline(tracker.page);
  assert.deepEqual(first.map((e) => e.status), FULL, JSON.stringify(first));

  await publishEvents([event]);
  const twice = await eventually("every update received twice", () => {
    const got = updates(tracker.seen);
    const byId = new Map();
    got.forEach((u) => byId.set(u.eventId, (byId.get(u.eventId) ?? 0) + 1));
    return first.every((e) => byId.get(e.eventId) === 2) && byId;
  }).catch((e) => {
    throw new Error(`${e.message}: ${JSON.stringify(updates(tracker.seen))}`);
  });
  assert.equal(twice.size, 3, JSON.stringify([...twice]));
  // The frames were seen on the wire; the client acknowledges a sequence id (every second) only
  // after its handlers, the page's among them, have run for it.
  const last = Math.max(...tracker.seen.frames.filter((f) => f.type === "message").map((f) => f.sequenceId));
  await eventually(`the page to acknowledge sequence id ${last}`, () =>
    tracker.seen.sent.some((f) => f.type === "sequenceAck" && f.sequenceId >= last),
  );
  const after = await timeline(tracker.page);
  assert.deepEqual(after, first, "the timeline is unchanged by the duplicates");
  assert.equal(await tracker.page.getAttribute("#status", "data-status"), "confirmationSent");
  ok("every update arrived twice and the timeline shows each once");
  await context.close();
  return [tracker];
}

/**
 * A TCP proxy in front of the Web PubSub service that can cut the network: `cut()` drops every
 * connection through it and holds new ones (as a partitioned network does: no answer), `restore()`
 * lets the held ones and any new ones through. The handshake's Host header is the service's, as
 * it would be without the proxy: the service checks a token's audience against it.
 */
async function networkProxy(upstreamPort) {
  let ownPort;
  const live = new Set();
  const held = [];
  let isCut = false;
  const through = (client) => {
    const upstream = net.connect(upstreamPort, "127.0.0.1");
    const pair = { client, upstream };
    live.add(pair);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      live.delete(pair);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.once("data", (head) => {
      const text = head.toString("latin1");
      const fixed = text.replace(/^(host:\s*127\.0\.0\.1:)(\d+)\r$/im, (line, prefix, port) =>
        Number(port) === ownPort ? `${prefix}${upstreamPort}\r` : line,
      );
      upstream.write(Buffer.from(fixed, "latin1"));
      client.pipe(upstream);
    });
    upstream.pipe(client);
  };
  const server = net.createServer((client) => {
    if (isCut) {
      client.on("error", () => client.destroy());
      held.push(client);
    } else {
      through(client);
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  ownPort = server.address().port;
  return {
    port: server.address().port,
    cut() {
      isCut = true;
      for (const { client, upstream } of [...live]) {
        client.resetAndDestroy();
        upstream.destroy();
      }
    },
    restore() {
      isCut = false;
      held.splice(0).filter((c) => !c.destroyed).forEach(through);
    },
    close() {
      [...live].forEach(({ client, upstream }) => (client.destroy(), upstream.destroy()));
      held.forEach((c) => c.destroy());
      server.close();
    },
  };
}

/**
 * A browser context whose pages reach Web PubSub through the proxy: negotiate's URL is rewritten
 * to the proxy's origin. The pages' Content-Security-Policy allows only the service's WebSocket
 * origin, so this context bypasses it (rewriting the page's header instead would mean fulfilling
 * the document from Playwright, which Chromium then treats as a public page that may not reach
 * 127.0.0.1: ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS). The other scenarios keep the policy.
 */
async function proxiedContext(browser, serviceOrigin, proxyOrigin) {
  const context = await browser.newContext({ bypassCSP: true });
  await context.route(/\/api\/negotiate\?/, async (route) => {
    const response = await route.fetch();
    const body = await response.json();
    assert.ok(body.url.startsWith(serviceOrigin), body.url);
    await route.fulfill({ response, json: { ...body, url: proxyOrigin + body.url.slice(serviceOrigin.length) } });
  });
  return context;
}

// 2. A tracker whose network is cut while its order goes through, then restored, ends up showing
// what it missed. `brief`: back within the service's recovery window, so the reliable subprotocol
// recovers the same connection and the service replays what it missed (no new negotiate, no
// refetch). Otherwise the service has dropped the session meanwhile: the client is refused the
// recovery (1008), the page shows it lost the connection, reconnects with a new token and
// refetches the order's status.
async function cutScenario(browser, brief) {
  const service = new WebPubSubServiceClient(config.webpubsub, "orders", { allowInsecureConnection: true });
  const servicePort = Number(/Port=(\d+)/.exec(config.webpubsub)[1]);
  const serviceOrigin = `ws://127.0.0.1:${servicePort}`;
  const proxy = await networkProxy(servicePort);
  const proxyOrigin = `ws://127.0.0.1:${proxy.port}`;
  const orderId = brief ? "C-1" : "C-2";
  try {
    const context = await proxiedContext(browser, serviceOrigin, proxyOrigin);
    const tracker = await openPage(context, `tracker?orderId=${orderId}`);
    // The board, not behind the proxy, witnesses when the service has sent the order's updates.
    const boardContext = await browser.newContext();
    const board = await openPage(boardContext, "board");
    const connected = tracker.seen.frames.find((f) => f.event === "connected");
    assert.ok(connected?.connectionId, JSON.stringify(tracker.seen.frames));
    assert.equal(await service.connectionExists(connected.connectionId), true);
    ok("the tracker is live through the cuttable network");

    proxy.cut();
    const cutAt = Date.now();
    await publish(orderId);
    await board.page.waitForSelector(`tr[data-order-id="${orderId}"][data-status="confirmationSent"]`, {
      timeout: PATIENCE,
    });
    assert.equal(await tracker.page.getAttribute("#status", "data-status"), "unknown", "the cut page saw nothing");
    assert.equal(updates(tracker.seen).length, 0);
    if (brief) {
      assert.equal(
        await service.connectionExists(connected.connectionId),
        true,
        "the service keeps the dropped connection for its recovery window",
      );
    } else {
      await eventually("the service to drop the connection after its recovery window", () =>
        service.connectionExists(connected.connectionId).then((exists) => !exists),
      );
    }
    ok(`while cut off the page missed ${orderId}'s updates, which the board got`);

    proxy.restore();
    await trackerShows(tracker.page, "confirmationSent", brief ? FULL : ["confirmationSent"]);
    const line = await timeline(tracker.page);
    const states = await historyOf(tracker.page, "#connection", "#connection", "data-state");
    const since = (pattern) => tracker.seen.requests.filter((r) => r.at >= cutAt && pattern.test(r.url));
    if (brief) {
      assert.deepEqual(line.map((e) => e.status), FULL, JSON.stringify(line));
      assert.deepEqual(since(/\/api\/negotiate\?/), [], "recovered without negotiating again");
      assert.deepEqual(since(/\/api\/orders\//), [], "recovered without refetching");
      const replayed = updates(tracker.seen).map((u) => u.status);
      assert.deepEqual([...replayed].sort(), [...FULL].sort(), `replayed ${replayed}`);
      assert.equal(tracker.seen.sockets >= 2, true, "a new socket carried the replay");
      assert.deepEqual(
        tracker.seen.frames.filter((f) => f.event === "connected").map((f) => f.connectionId),
        [connected.connectionId, connected.connectionId],
        "the same connection was recovered",
      );
      ok(`back within the recovery window: the service replayed ${replayed.join(", ")}; states ${states.join(" → ")}`);
    } else {
      assert.deepEqual(line.map((e) => e.status), ["confirmationSent"], JSON.stringify(line));
      const i = states.indexOf("connected");
      assert.ok(
        i >= 0 && states.indexOf("reconnecting", i) > i && states.at(-1) === "connected",
        `the page went connected → reconnecting → connected: ${states.join(" → ")}`,
      );
      assert.equal(since(/\/api\/negotiate\?/).length, 1, "a new token for the new connection");
      assert.ok(since(/\/api\/orders\/C-2\/status/).length >= 1, "the page refetched the order's status");
      const ids = tracker.seen.frames.filter((f) => f.event === "connected").map((f) => f.connectionId);
      assert.equal(ids.length, 2, JSON.stringify(ids));
      assert.notEqual(ids[1], ids[0], "a new connection");
      ok(`after the recovery window: ${states.join(" → ")}, refetched and showing confirmationSent`);
    }
    await context.close();
    await boardContext.close();
    return [tracker, board];
  } finally {
    proxy.close();
  }
}

const scenarios = {
  tracker: trackerScenario,
  board: boardScenario,
  duplicate: duplicateScenario,
  "brief-cut": (browser) => cutScenario(browser, true),
  "long-cut": (browser) => cutScenario(browser, false),
};
const run = scenarios[scenario];
if (!run) {
  console.error(`unknown scenario ${scenario}: one of ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}

const started = Date.now();
const browser = await chromium.launch({ executablePath: config.chromium, headless: true });
const contextOf = browser.newContext.bind(browser);
// Every page of every context gets the recorder first.
browser.newContext = async (options) => {
  const context = await contextOf(options);
  await context.addInitScript(RECORDER);
  return context;
};
try {
  const pages = await run(browser);
  const errors = pages.flatMap((p) => p.seen.errors);
  assert.deepEqual(errors, [], "the pages logged no errors");
  console.log(JSON.stringify({ scenario, ms: Date.now() - started }));
} finally {
  await browser.close();
}
