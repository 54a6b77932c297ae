// Publish events with the official JavaScript SDK (@azure/eventgrid, pinned in package.json).
//
// The JavaScript twin of eg_publish.py, with the same command line and output contract, so
// ordergrid's tests can check the Event Grid emulator against both real clients.
//
// Usage:
//   node eg_publish.mjs --endpoint URL --auth key|sas --key KEY --events FILE
//                       --schema eventgrid|cloudevents [--sas-expiry-seconds N] [--max-retries N]
//
// --events is a JSON array. For --schema eventgrid each element is an Event Grid schema event
// (id, subject, eventType, eventTime, data, dataVersion, optional topic), sent with
// inputSchema "EventGrid"; for --schema cloudevents each element is a CloudEvents 1.0 JSON
// object (data or data_base64; any non-standard attribute becomes an extension attribute), sent
// with inputSchema "CloudEvent". All events go out in ONE send(), i.e. one HTTP request.
//
// --auth key uses AzureKeyCredential(KEY). --auth sas mints a token with
// generateSharedAccessSignature(endpoint, AzureKeyCredential(KEY), now + N s) (N =
// --sas-expiry-seconds, default 3600, may be negative: write --sas-expiry-seconds=-60, as
// node:util parseArgs reads a separate "-60" as an option) and uses AzureSASCredential.
//
// Output: exactly one JSON line on stdout, {"ok": true} or
// {"ok": false, "status": <int>, "error": "<message>"}; status is 0 when no HTTP response was
// received. Exit code 0 either way; 2 on usage errors or a bad --events file. Neither the key
// nor the token is ever printed.
//
// --max-retries defaults to 0 (retryOptions.maxRetries; the SDK default is 3 with exponential
// backoff on 408/429/5xx and network errors): a test wants exactly one request per run.
//
// What the SDK (@azure/eventgrid 5.12.0, @azure/core-rest-pipeline) puts on the wire
// ---------------------------------------------------------------------------------
// Read from dist/esm/eventGridClient.js, generated/generatedClient.js,
// generated/models/parameters.js, eventGridAuthenticationPolicy.js and
// generateSharedAccessSignature.js, and confirmed by capturing requests with a local server:
//
// * URL: the endpoint EXACTLY as given (the generated operation's path is "" and the endpoint
//   is a skipEncoding URL parameter) plus ?api-version=2018-01-01. Nothing is appended: pass
//   http://host:port/api/events to hit /api/events.
// * Method POST, HTTP/1.1, body a JSON ARRAY in both schemas, Content-Length set.
// * Content-Type: "application/json" (NO charset, unlike Python) for "EventGrid";
//   "application/cloudevents-batch+json; charset=utf-8" for "CloudEvent".
// * Auth header: "aeg-sas-key: <key>" or "aeg-sas-token: <token>" (bare token).
// * Other headers: Accept-Encoding: gzip,deflate, User-Agent: azsdk-js-eventgrid/5.12.0
//   core-rest-pipeline/1.24.0 Node/20.20.2 (...), x-ms-client-request-id: <uuid4>,
//   Connection: keep-alive. No Accept header.
// * The SDK rewrites events: eventTime/time go out as ISO strings with milliseconds; a
//   missing id becomes a random UUID and a missing time/eventTime becomes "now";
//   CloudEvents without datacontenttype get "application/json"; binary data goes out as
//   "data_base64" (datacontenttype then required); extension attributes are appended after the
//   standard ones; "data": null in an Event Grid event is refused client-side ("events.data
//   cannot be null or undefined."); metadataVersion is dropped.
// * Plain http:// is REFUSED by default, whatever the credential: @typespec/ts-http-runtime's
//   Node HTTP client (under core-rest-pipeline 1.24) throws "Cannot connect to http://...
//   while allowInsecureConnection is false." before sending anything. With the client option
//   allowInsecureConnection: true (set below) key and SAS work over http; bearer tokens are
//   still refused on non-https URLs (bearerTokenAuthenticationPolicy).
// * SAS token format (generateSharedAccessSignature): r=encodeURIComponent(endpoint +
//   "?apiVersion=2018-01-01") (camelCase apiVersion), e=encodeURIComponent("M/d/yyyy h:mm:ss
//   AM|PM") in UTC with no offset and no fractional seconds, e.g. 6/5/2020 12:09:03 PM,
//   s=encodeURIComponent(base64(HMAC-SHA256(base64decode(key), "r=..&e=.."))): uppercase hex,
//   space as %20.
//
// Captured requests (endpoint http://127.0.0.1:PORT/api/events; key and signature redacted;
// headers in wire order, names as sent):
//
// Event Grid schema, --auth key:
//   POST /api/events?api-version=2018-01-01 HTTP/1.1
//   Content-Type: application/json
//   Accept-Encoding: gzip,deflate
//   User-Agent: azsdk-js-eventgrid/5.12.0 core-rest-pipeline/1.24.0 Node/20.20.2 (Linux ...; x64)
//   x-ms-client-request-id: 490c27b3-2888-49b1-86dd-887403eb615c
//   aeg-sas-key: <key>
//   Content-Length: 144
//   Host: 127.0.0.1:PORT
//   Connection: keep-alive
//
//   [{"id":"e-1","subject":"orders/1","data":{"orderId":"1"},"eventType":"Order.Placed",
//   "eventTime":"2024-05-01T12:00:00.000Z","dataVersion":"1.0"}]
//
// Event Grid schema, --auth sas: identical except the auth header:
//   aeg-sas-token: r=http%3A%2F%2F127.0.0.1%3APORT%2Fapi%2Fevents%3FapiVersion%3D2018-01-01&e=11%2F22%2F2026%207%3A32%3A45%20PM&s=<sig, %2F %2B %3D encoded>
//
// CloudEvents, --auth key / sas: as above with
// Content-Type: application/cloudevents-batch+json; charset=utf-8, Content-Length: 190 and
//   [{"id":"c-1","source":"/orders","data":{"orderId":"1"},"type":"Order.Placed",
//   "time":"2024-05-01T12:00:00.000Z","specversion":"1.0","datacontenttype":"application/json",
//   "subject":"orders/1"}]

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import {
  AzureKeyCredential,
  AzureSASCredential,
  EventGridPublisherClient,
  generateSharedAccessSignature,
} from "@azure/eventgrid";

const USAGE =
  "usage: node eg_publish.mjs --endpoint URL --auth key|sas --key KEY --events FILE " +
  "--schema eventgrid|cloudevents [--sas-expiry-seconds N] [--max-retries N]";

function usage(message) {
  process.stderr.write(`eg_publish.mjs: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function parseCli(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        endpoint: { type: "string" },
        auth: { type: "string" },
        key: { type: "string" },
        events: { type: "string" },
        schema: { type: "string" },
        "sas-expiry-seconds": { type: "string", default: "3600" },
        "max-retries": { type: "string", default: "0" },
      },
      strict: true,
    }));
  } catch (e) {
    usage(e.message);
  }
  for (const name of ["endpoint", "auth", "key", "events", "schema"]) {
    if (values[name] === undefined) usage(`missing --${name}`);
  }
  if (!["key", "sas"].includes(values.auth)) usage(`--auth must be key or sas, got '${values.auth}'`);
  if (!["eventgrid", "cloudevents"].includes(values.schema)) {
    usage(`--schema must be eventgrid or cloudevents, got '${values.schema}'`);
  }
  const integer = (name) => {
    const n = Number(values[name]);
    if (!Number.isInteger(n)) usage(`--${name} must be an integer, got '${values[name]}'`);
    return n;
  };
  return { ...values, sasExpirySeconds: integer("sas-expiry-seconds"), maxRetries: integer("max-retries") };
}

const CLOUD_EVENT_ATTRIBUTES = new Set([
  "specversion", "id", "source", "type", "time", "subject", "dataschema", "datacontenttype",
  "data", "data_base64",
]);

function toCloudEvent(e) {
  const extensionAttributes = {};
  for (const [k, v] of Object.entries(e)) {
    if (!CLOUD_EVENT_ATTRIBUTES.has(k)) extensionAttributes[k] = v;
  }
  const event = {
    type: e.type,
    source: e.source,
    id: e.id,
    time: e.time === undefined ? undefined : new Date(e.time),
    subject: e.subject,
    dataschema: e.dataschema,
    datacontenttype: e.datacontenttype,
    data: e.data_base64 === undefined ? e.data : Buffer.from(e.data_base64, "base64"),
  };
  if (Object.keys(extensionAttributes).length > 0) event.extensionAttributes = extensionAttributes;
  return event;
}

function toEventGridEvent(e) {
  return {
    id: e.id,
    subject: e.subject,
    eventType: e.eventType,
    eventTime: e.eventTime === undefined ? undefined : new Date(e.eventTime),
    data: e.data,
    dataVersion: e.dataVersion,
    topic: e.topic,
  };
}

function readEvents(path, schema) {
  let raw;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    usage(`bad --events file '${path}': ${e.message}`);
  }
  if (!Array.isArray(raw)) usage(`bad --events file '${path}': not a JSON array`);
  return raw.map(schema === "cloudevents" ? toCloudEvent : toEventGridEvent);
}

async function main() {
  const args = parseCli(process.argv.slice(2));
  const events = readEvents(args.events, args.schema);

  let credential;
  if (args.auth === "key") {
    credential = new AzureKeyCredential(args.key);
  } else {
    const expiresOn = new Date(Date.now() + args.sasExpirySeconds * 1000);
    const token = await generateSharedAccessSignature(
      args.endpoint,
      new AzureKeyCredential(args.key),
      expiresOn,
    );
    credential = new AzureSASCredential(token);
  }

  const inputSchema = args.schema === "cloudevents" ? "CloudEvent" : "EventGrid";
  const client = new EventGridPublisherClient(args.endpoint, inputSchema, credential, {
    retryOptions: { maxRetries: args.maxRetries },
    // Without this the Node HTTP client refuses any http:// URL before sending a byte
    // ("Cannot connect to http://... while allowInsecureConnection is false."); a user who
    // points the SDK at a plain-HTTP emulator has to set it too. No effect on https.
    allowInsecureConnection: true,
  });
  let result;
  try {
    await client.send(events);
    result = { ok: true };
  } catch (e) {
    const status = Number.isInteger(e?.statusCode) ? e.statusCode : 0;
    result = { ok: false, status, error: String(e?.message ?? e) };
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
