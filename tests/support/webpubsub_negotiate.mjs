// The official @azure/web-pubsub-client (1.1.0, reliable JSON subprotocol) against a running
// `ordergrid dev`, with the client URLs its negotiate function hands out: a customer's token
// receives its order's updates and nothing else, may not join another group nor send; the
// operators' token (ORDERGRID_OPERATORS=* in the local stack) receives every order's.
//
// Usage: node webpubsub_negotiate.mjs '<config JSON>'  (config: {host, topicEndpoint, binary,
// stackDir}, as browser_feed.mjs reads it). Each check asserts and prints one {"ok": …} line; exit
// code 0 when all passed. Never prints a token.

import assert from "node:assert/strict";
import { WebPubSubClient } from "@azure/web-pubsub-client";
import { eventually } from "./eventually.mjs";
import { ordergrid } from "./ordergrid.mjs";

const config = JSON.parse(process.argv[2] ?? "null");
if (!config) {
  console.error("usage: node webpubsub_negotiate.mjs '<config JSON>'");
  process.exit(2);
}

function ok(check) {
  console.log(JSON.stringify({ ok: check }));
}

function publish(orderId) {
  const args = ["publish", "--endpoint", config.topicEndpoint, "--order-id", orderId, "--customer-id", "c-1"];
  args.push("--value", "10.00", "--email", "buyer@example.com");
  return ordergrid(config, args);
}

/** negotiate's answer for `query`, insisting on 200 and a URL with a token. */
async function negotiate(query) {
  const response = await fetch(`${config.host}/api/negotiate?${query}`);
  const text = await response.text();
  assert.equal(response.status, 200, `negotiate?${query}: ${response.status} ${text}`);
  assert.equal(response.headers.get("cache-control"), "no-store");
  const { url } = JSON.parse(text);
  const token = new URL(url).searchParams.get("access_token");
  assert.ok(token, "the URL carries an access token");
  const claims = JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());
  return { url, claims };
}

/**
 * A client connected with negotiate's URL (asked again on every reconnect, as the pages do). It
 * retries a refused request 3 times as by default, 10 ms apart instead of 1 s, to keep the test short.
 */
async function connect(query) {
  const client = new WebPubSubClient(
    { getClientAccessUrl: async () => (await negotiate(query)).url },
    { messageRetryOptions: { retryDelayInMs: 10 } },
  );
  const got = [];
  client.on("group-message", (e) => got.push({ group: e.message.group, fromUserId: e.message.fromUserId, ...e.message.data }));
  await client.start();
  return { client, got };
}

const statuses = (got, orderId) => got.filter((u) => u.orderId === orderId).map((u) => u.status);
const settled = (got, orderId) => ["received", "accepted", "confirmationSent"].every((s) => statuses(got, orderId).includes(s));

const one = await negotiate("orderId=N-1");
assert.deepEqual(one.claims["webpubsub.group"], ["order-N-1"], JSON.stringify(one.claims));
assert.equal(one.claims.role, undefined, `no roles: ${JSON.stringify(one.claims)}`);
assert.ok(one.claims.exp > one.claims.iat, JSON.stringify(one.claims));
const board = await negotiate("board=true");
assert.deepEqual(board.claims["webpubsub.group"], ["operators"], JSON.stringify(board.claims));
assert.equal(board.claims.role, undefined, `no roles: ${JSON.stringify(board.claims)}`);
for (const bad of ["orderId=no%20spaces", "orderId=N-1&board=true", "board=yes", ""]) {
  const response = await fetch(`${config.host}/api/negotiate?${bad}`);
  assert.equal(response.status, 400, `negotiate?${bad}`);
}
ok("negotiate scopes a customer's token to its order's group and the board's to operators, no roles");

const customer = await connect("orderId=N-1");
const other = await connect("orderId=N-2");
const operator = await connect("board=true");
await publish("N-1");
await eventually("N-1's updates to its customer and the board", () => settled(customer.got, "N-1") && settled(operator.got, "N-1"));
// N-2 after N-1: once N-2's client has its own updates, anything of N-1's would have come first.
await publish("N-2");
await eventually("N-2's updates", () => settled(other.got, "N-2") && settled(operator.got, "N-2"));
assert.deepEqual(customer.got.filter((u) => u.orderId !== "N-1" || u.group !== "order-N-1"), [], JSON.stringify(customer.got));
assert.deepEqual(other.got.filter((u) => u.orderId !== "N-2" || u.group !== "order-N-2"), [], JSON.stringify(other.got));
assert.deepEqual(operator.got.filter((u) => u.group !== "operators"), [], JSON.stringify(operator.got));
for (const update of [...customer.got, ...operator.got]) {
  assert.equal(update.fromUserId, null, "sent by the server (the output binding), not by a user");
  assert.equal(typeof update.eventId, "string");
  assert.equal(typeof update.time, "string");
}
ok("each customer's client receives its own order's updates only; the board's receives both");

const forbidden = (e) => {
  assert.equal(e.errorDetail?.name, "Forbidden", `${e.message} ${JSON.stringify(e.errorDetail)}`);
  return true;
};
await assert.rejects(customer.client.joinGroup("order-N-2"), forbidden);
await assert.rejects(customer.client.joinGroup("operators"), forbidden);
await assert.rejects(customer.client.sendToGroup("order-N-1", { orderId: "N-1", status: "confirmationSent" }, "json"), forbidden);
await assert.rejects(customer.client.sendToGroup("order-N-2", "hello", "text"), forbidden);
await assert.rejects(operator.client.sendToGroup("operators", { orderId: "N-9", status: "accepted" }, "json"), forbidden);
await assert.rejects(customer.client.leaveGroup("order-N-1"), forbidden);
ok("the tokens may not join another group, leave theirs or send: Forbidden");

// Still connected after the refusals, still receiving (and nothing forged reached anybody).
await publish("N-3");
await eventually("N-3 on the board", () => settled(operator.got, "N-3"));
assert.deepEqual(statuses(customer.got, "N-1").sort(), ["accepted", "confirmationSent", "received"]);
assert.ok(!operator.got.some((u) => u.orderId === "N-9"), "the operator's send reached nobody");
ok("refused requests leave the connections up and nothing forged is delivered");

for (const { client } of [customer, other, operator]) {
  client.stop();
}
process.exit(0);
