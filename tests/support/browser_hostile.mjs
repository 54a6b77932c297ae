// Hostile web pages against a running `ordergrid dev` (issue 14), in Debian's Chromium driven by
// playwright-core: what any page a developer opens could try against 127.0.0.1.
//
// Usage: node browser_hostile.mjs '<config JSON>'
//   config: {emulator, host, chromium}
// 1. A page of another origin (this script serves it on a port of its own) sends what a browser
//    lets any page send without asking: a form post and `fetch(…, {mode: "no-cors"})` with
//    text/plain bodies, to the key-less publish endpoint, dead-letter redelivery, a handshake
//    re-run and the host stand-in's Event Grid webhook. Nothing may come of it: no event is
//    published (checked through the emulator's API afterwards).
// 2. DNS rebinding: Chromium resolves `rebind.test` to 127.0.0.1 (`--host-resolver-rules`), so a
//    page at `http://rebind.test:<port>/` is the emulator's own origin and could read its
//    answers; the emulator refuses every request naming that host.
// Each check asserts and prints one {"ok": …} line; exit code 0 when all passed. Waits are polls
// with deadlines, never sleeps.

import assert from "node:assert/strict";
import http from "node:http";
import { chromium } from "playwright-core";

const [configText] = process.argv.slice(2);
if (!configText) {
  console.error("usage: node browser_hostile.mjs '<config JSON>'");
  process.exit(2);
}
const config = JSON.parse(configText);
const PATIENCE = 30_000;
const ok = (check) => console.log(JSON.stringify({ ok: check }));

const order = (id) =>
  JSON.stringify({ eventType: "NewOrder", data: { orderId: id, customerId: "c", orderValue: "1.00", customerEmail: "a@b.example" } });

// The attacker's page: every request it makes is one a browser sends without a CORS preflight.
const page = `<!doctype html><meta charset="utf-8"><title>not a shop</title>
<iframe name="sink" style="display:none"></iframe>
<form id="form" method="post" enctype="text/plain" target="sink" action="${config.emulator}/publish">
  <input name='{"eventType":"NewOrder","pad":"' value='","data":{"orderId":"EVIL-FORM"}}'>
</form>
<script>
  const blind = (url, body) => fetch(url, { method: "POST", mode: "no-cors", headers: { "content-type": "text/plain" }, body })
    .then(() => "sent", (e) => "failed: " + e);
  window.results = Promise.all([
    blind(${JSON.stringify(config.emulator + "/publish")}, ${JSON.stringify(order("EVIL-FETCH"))}),
    blind(${JSON.stringify(config.emulator + "/publish?topic=orders")}, ${JSON.stringify(order("EVIL-TOPIC"))}),
    blind(${JSON.stringify(config.emulator + "/emulator/dead-letters/redeliver")}, '{"subscription":"email-notifier"}'),
    blind(${JSON.stringify(config.emulator + "/emulator/subscriptions/order-processor/validate")}, ""),
    blind(${JSON.stringify(config.host + "/runtime/webhooks/eventgrid?functionName=OrderProcessor")},
      JSON.stringify([{ id: "evil-1", eventType: "NewOrder", subject: "x", eventTime: "2026-01-01T00:00:00Z", dataVersion: "1.0", data: { orderId: "EVIL-HOOK" } }])),
  ]);
  document.getElementById("form").submit();
</script>`;

const server = http.createServer((_, res) => {
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  res.end(page);
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const attacker = `http://localhost:${server.address().port}/`;

const emulatorPort = new URL(config.emulator).port;
const browser = await chromium.launch({
  executablePath: config.chromium,
  headless: true,
  args: ["--host-resolver-rules=MAP rebind.test 127.0.0.1"],
});
try {
  const tab = await browser.newPage();
  tab.setDefaultTimeout(PATIENCE);
  await tab.goto(attacker);
  const results = await tab.evaluate(() => window.results);
  assert.deepEqual(results, ["sent", "sent", "sent", "sent", "sent"], "the browser sent every request");
  ok(`a page of another origin sent its blind requests: ${results.join(", ")}`);

  // The form's post lands in the hidden frame; wait for it to load (the emulator's answer).
  await tab.waitForFunction(() => {
    try {
      return frames[0].location.href !== "about:blank";
    } catch {
      return true; // cross-origin: it navigated
    }
  });
  // Whatever the emulator did with them is in its index by now or never: the publishes are
  // answered before the page sees "sent". Nothing named EVIL- was published.
  const search = await fetch(`${config.emulator}/dashboard/api/events?q=EVIL`).then((r) => r.json());
  assert.equal(search.total, 0, JSON.stringify(search));
  ok("nothing the page sent was published");

  // DNS rebinding: the emulator's own port under a name the attacker controls.
  const rebound = await tab.goto(`http://rebind.test:${emulatorPort}/emulator/subscriptions`);
  assert.equal(rebound.status(), 403);
  const body = await rebound.json();
  assert.equal(body.error.code, "HostNotAllowed", JSON.stringify(body));
  ok(`a rebound name reads nothing: ${rebound.status()} ${body.error.code}`);
} finally {
  await browser.close();
  server.close();
}
