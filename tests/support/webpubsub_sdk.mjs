// The official Web PubSub SDKs for JavaScript against a Web PubSub service, unchanged: the
// server SDK (@azure/web-pubsub 1.2.0) mints client tokens and calls the REST API with its
// own JWTs; the client SDK (@azure/web-pubsub-client 1.1.0, the reliable JSON subprotocol by
// default) connects with those tokens. Each check asserts (node:assert) and prints one line.
//
// Usage: node webpubsub_sdk.mjs "<connection string>"
// Exit code 0 when every check passed; the failing check's message otherwise. Never prints
// the connection string or a token.

import assert from "node:assert/strict";
import { WebPubSubServiceClient, AzureKeyCredential } from "@azure/web-pubsub";
import { WebPubSubClient } from "@azure/web-pubsub-client";
import { eventually } from "./eventually.mjs";

const connectionString = process.argv[2];
if (!connectionString) {
  console.error("usage: node webpubsub_sdk.mjs <connection string>");
  process.exit(2);
}
const hub = "orders";
// The SDK refuses plain http unless told (core-rest-pipeline's allowInsecureConnection), as it
// must be told for Microsoft's emulator too; the local service listens on http://127.0.0.1.
const options = { allowInsecureConnection: true };
const server = new WebPubSubServiceClient(connectionString, hub, options);

// A client with what it received, by kind.
async function connect(options) {
  const { url } = await server.getClientAccessToken(options);
  const client = new WebPubSubClient(url);
  const seen = { server: [], group: [], disconnected: [] };
  client.on("server-message", (e) => seen.server.push(e.message.data));
  client.on("group-message", (e) => seen.group.push(e.message));
  client.on("disconnected", (e) => seen.disconnected.push(e.message));
  await client.start();
  return { client, seen };
}

function ok(check) {
  console.log(JSON.stringify({ ok: check }));
}

const ann = await connect({ userId: "ann", groups: ["order-1"] });
const bob = await connect({
  userId: "bob",
  roles: ["webpubsub.joinLeaveGroup.operators", "webpubsub.sendToGroup.operators"],
});
await bob.client.joinGroup("operators");
ok("tokens from the server SDK connect the client SDK");

// A REST send to a group reaches the client as a group message (as the live feed's pages
// listen for it); to the hub or a user, as a server message.
await server.group("order-1").sendToAll({ orderId: "1", status: "accepted" });
await eventually("ann's group update", () => ann.seen.group.length === 1);
assert.equal(ann.seen.group[0].group, "order-1");
assert.deepEqual(ann.seen.group[0].data, { orderId: "1", status: "accepted" });
await server.sendToAll("to everyone", { contentType: "text/plain" });
await eventually("everyone's text", () => bob.seen.server.includes("to everyone"));
assert.deepEqual(bob.seen.server, ["to everyone"]);
assert.deepEqual(bob.seen.group, [], "bob is not in order-1");
await server.sendToUser("ann", { n: 2 });
await eventually("ann's user message", () => ann.seen.server.length === 2);
assert.deepEqual(ann.seen.server, ["to everyone", { n: 2 }]);
ok("REST sends reach the group, the hub and the user, and nobody else");

const ackOfBob = await bob.client.sendToGroup("operators", { hello: "operators" }, "json");
assert.equal(ackOfBob.isDuplicated, false);
await eventually("bob's echo", () => bob.seen.group.length === 1);
assert.equal(bob.seen.group[0].group, "operators");
assert.equal(bob.seen.group[0].fromUserId, "bob");
assert.deepEqual(bob.seen.group[0].data, { hello: "operators" });
ok("a client with the role sends to its group and gets its echo");

await assert.rejects(ann.client.sendToGroup("operators", "hi", "text"), (e) => {
  assert.equal(e.errorDetail?.name, "Forbidden");
  return true;
});
await assert.rejects(ann.client.joinGroup("operators"), (e) => e.errorDetail?.name === "Forbidden");
ok("a client without the role is refused with Forbidden");

assert.equal(await server.groupExists("order-1"), true);
assert.equal(await server.groupExists("nobody-here"), false);
assert.equal(await server.userExists("ann"), true);
assert.equal(await server.userExists("carol"), false);
const annId = await eventually("ann's connection id", () => ann.client._connectionId);
assert.equal(await server.connectionExists(annId), true);
await server.group("operators").addConnection(annId);
await server.group("operators").sendToAll({ board: true });
await eventually("ann's board update", () => ann.seen.group.some((m) => m.data.board));
await server.group("operators").removeConnection(annId);
ok("existence checks and group membership through the REST API");

const wrong = new WebPubSubServiceClient(
  server.endpoint,
  new AzureKeyCredential("not-the-key-not-the-key-not-the-key-0000"),
  hub,
  options,
);
await assert.rejects(wrong.sendToAll("x"), (e) => e.statusCode === 401);
const { url: badUrl } = await wrong.getClientAccessToken();
const refused = new WebPubSubClient(badUrl, { autoReconnect: false });
await assert.rejects(refused.start());
ok("a wrong key is refused by the REST API and the client endpoint");

const { token } = await server.getClientAccessToken({ userId: "dave", expirationTimeInMinutes: 5 });
const claims = JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());
assert.equal(claims.sub, "dave");
assert.ok(claims.exp - claims.iat <= 5 * 60);
ok("the SDK's token options are honoured");

await server.closeUserConnections("bob");
await eventually("bob's disconnection", () => bob.seen.disconnected.length > 0);
ok("closing a user's connections disconnects them");

ann.client.stop();
bob.client.stop();
process.exit(0);
