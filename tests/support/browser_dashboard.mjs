// The local dashboard in a real browser (issue 13): Debian's Chromium, driven by playwright-core,
// opens the dashboard a running `ordergrid dev` serves while this script publishes orders.
//
// Usage: node browser_dashboard.mjs <phase> '<config JSON>'
//   phase:  failing   (the stack runs with SMTP down: find the failing order by its id, see the
//                      handler's real error and the failed sends in its trace, watch its email's
//                      event dead-lettered, see the charts)
//           redeliver (the stack runs again with the outbox: redeliver that dead letter from the
//                      journey, confirming first, and see the email and its span in the trace)
//   config: {emulator, topicEndpoint, binary, stackDir, chromium, artifacts, orderId}
// Each check asserts and prints one {"ok": …} line (and {"screenshot": path} per screenshot); exit
// code 0 when all passed. Waits are Playwright's polls with deadlines, never sleeps.

import assert from "node:assert/strict";
import path from "node:path";
import { chromium } from "playwright-core";
import { ordergrid as runOrdergrid } from "./ordergrid.mjs";

const [phase, configText] = process.argv.slice(2);
if (!phase || !configText) {
  console.error("usage: node browser_dashboard.mjs <phase> '<config JSON>'");
  process.exit(2);
}
const config = JSON.parse(configText);
const PATIENCE = 45_000;
const orderId = config.orderId;

const ok = (check) => console.log(JSON.stringify({ ok: check }));

const ordergrid = (args, stdin) => runOrdergrid(config, args, stdin);

// No --endpoint: publish finds the stack through its record, as the README's does, and so sends
// its span to the stack's dashboard and the order's trace context with the order.
function publish(id, value) {
  return ordergrid([
    "publish", "--order-id", id, "--customer-id", "c-1", "--value", value, "--email", "buyer@example.com",
  ]);
}

/** The whole page, or the element `selector` names. */
async function screenshot(page, name, selector) {
  const file = path.join(config.artifacts, name);
  if (selector) await (await page.$(selector)).screenshot({ path: file });
  else await page.screenshot({ path: file, fullPage: true });
  console.log(JSON.stringify({ screenshot: file }));
}

const browser = await chromium.launch({ executablePath: config.chromium, headless: true });
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(PATIENCE);
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  await page.goto(`${config.emulator}/`);
  await page.waitForSelector('#connection[data-state="connected"]');

  const findOrder = async () => {
    await page.fill("#q", orderId);
    await page.click('#search button[type="submit"]');
    await page.waitForSelector(`#events tr[data-order-id="${orderId}"]`);
    await page.click(`#events tr[data-order-id="${orderId}"] a.order-link`);
    await page.waitForSelector(`#journey[data-order-id="${orderId}"]:not([hidden])`);
  };

  /** The waterfall has a row for `name` of `service` in `state` (ok or failed). */
  const span = (name, state, service) =>
    page.waitForSelector(`#trace li[data-span="${name}"][data-service="${service}"][data-state="${state}"]`);

  if (phase === "failing") {
    await publish(orderId, "150.00");
    await publish("40002", "-5");
    // The search finds the order by its id: the NewOrder and, pushed live, the OrderAccepted.
    await page.fill("#q", orderId);
    await page.click('#search button[type="submit"]');
    await page.waitForFunction(
      (id) => {
        const rows = [...document.querySelectorAll(`#events tr[data-order-id="${id}"]`)];
        const types = rows.map((r) => r.children[1].textContent);
        return types.includes("NewOrder") && types.includes("OrderAccepted");
      },
      orderId,
    );
    const others = await page.$$eval("#events tbody tr[data-order-id]", (rows) => rows.map((r) => r.dataset.orderId));
    assert.ok(others.every((o) => o === orderId), `only the order searched for: ${others}`);
    ok("the search by order id finds the NewOrder and the OrderAccepted it led to");

    await page.click(`#events tr[data-order-id="${orderId}"] a.order-link`);
    await page.waitForSelector(`#journey[data-order-id="${orderId}"]:not([hidden])`);
    const cause = await page.waitForSelector('#journey .attempt[data-failed="true"] .cause-message');
    const text = await cause.textContent();
    assert.match(text, /smtp/i, `the handler's own error, not GenericError alone: ${text}`);
    ok(`the failed delivery shows the handler's cause: ${text}`);
    await screenshot(page, "journey-failing.png");

    // One trace: the publish, the OrderProcessor in the host and the handler, and the email's
    // failed sends, pushed to the open page as the spans arrive.
    await span("publish NewOrder", "ok", "ordergrid-cli");
    await span("OrderProcessor", "ok", "ordergrid-handler");
    await span("send email", "failed", "ordergrid-handler");
    await span("EmailNotifier", "failed", "ordergrid-functions-host");
    await span("deliver to orders/email-notifier", "failed", "ordergrid-emulator");
    const ids = await page.textContent("#trace p");
    ok(`the journey's waterfall draws the order's trace, the failed sends marked: ${ids}`);
    await screenshot(page, "trace-failing.png", "#trace");

    await page.waitForSelector('#journey-dead-letters li[data-reason="TimeToLiveExceeded"]');
    const record = await page.textContent("#journey-order");
    assert.ok(record.includes(`"${orderId}"`), record);
    const timeline = await page.$$eval("#journey-timeline li", (items) => items.map((i) => i.dataset.kind));
    assert.ok(timeline.includes("published") && timeline.includes("attempt") && timeline.includes("deadLettered"), `${timeline}`);
    ok("the journey shows the order record and, pushed live, the dead letter with its reason on the timeline");
    await screenshot(page, "journey-dead-lettered.png");

    await page.goto(`${config.emulator}/#/metrics`);
    // Attached, not visible: a latency line that stayed level has no height, which Playwright
    // counts as hidden.
    await page.waitForSelector('#subscriptions tr[data-subscription="orders/email-notifier"] svg.chart path.line.p50', {
      state: "attached",
    });
    const failed = await page.textContent('#subscriptions tr[data-subscription="orders/email-notifier"] td:nth-child(5)');
    assert.ok(Number(failed) > 0, `delivery failed count: ${failed}`);
    ok("the counters show the failed deliveries and the latency chart");
    await screenshot(page, "counters.png");
  } else if (phase === "redeliver") {
    await findOrder();
    // Delivered before this start: not pending (attempts are kept in memory only).
    const processed = await page.waitForSelector(
      '.journey-event[data-event-type="NewOrder"] li[data-subscription="orders/order-processor"]',
    );
    assert.equal(await processed.getAttribute("data-state"), "finishedEarlier", await processed.textContent());
    ok("the NewOrder delivered before the restart reads done, not pending");
    const button = await page.waitForSelector('#journey-dead-letters li[data-reason="TimeToLiveExceeded"] button.redeliver');
    await button.click();
    await page.waitForSelector("#confirm:not([hidden])");
    assert.equal(await page.$('#action-result[data-state="done"]'), null, "nothing is done before confirming");
    await page.click("#confirm-yes");
    const result = await page.waitForSelector('#action-result[data-state="done"]');
    const said = await result.textContent();
    assert.match(said, /published 1 event/, said);
    ok(`the redelivery asks first, then says what it did: ${said}`);
    const subject = await page.waitForSelector('#journey-email[data-state="sent"] .email-subject');
    const line = await subject.textContent();
    assert.ok(line.includes(orderId), line);
    const href = await page.getAttribute("#journey-email a", "href");
    const eml = await page.evaluate(async (url) => (await fetch(url)).text(), href);
    assert.match(eml, new RegExp(`Subject: .*${orderId}`));
    ok(`the email appears, pushed live: ${line}`);
    await span("send email", "ok", "ordergrid-handler");
    ok("the trace gains the email's successful send, in the same trace as before the restart");
    await screenshot(page, "journey-redelivered.png");
  } else {
    throw new Error(`no phase ${phase}`);
  }
  assert.deepEqual(errors, [], "no script errors and no CSP violations");
} finally {
  await browser.close();
}
