// Print a SAS token minted by the official JavaScript SDK (@azure/eventgrid's
// generateSharedAccessSignature), the twin of eg_sas.py.
//
// ordergrid's tests (tests/sas_sdk_tokens.rs) verify these tokens with
// ordergrid::eventgrid::sas::verify.
//
// Usage:
//   node eg_sas.mjs --resource URL --key KEY --expiry-seconds N
//
// The token is generateSharedAccessSignature(URL, AzureKeyCredential(KEY), now + N s), printed
// alone on one line (N may be negative for an already-expired token; write a negative N as
// --expiry-seconds=-60, since node:util parseArgs reads a separate "-60" as an option). The SDK appends
// ?apiVersion=2018-01-01 to URL, encodes with encodeURIComponent (uppercase hex, space as %20)
// and writes the expiry in UTC as "M/d/yyyy h:mm:ss AM|PM" with no offset and whole seconds.

import { parseArgs } from "node:util";
import { AzureKeyCredential, generateSharedAccessSignature } from "@azure/eventgrid";

const USAGE = "usage: node eg_sas.mjs --resource URL --key KEY --expiry-seconds N";

function usage(message) {
  process.stderr.write(`eg_sas.mjs: ${message}\n${USAGE}\n`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      resource: { type: "string" },
      key: { type: "string" },
      "expiry-seconds": { type: "string" },
    },
    strict: true,
  }));
} catch (e) {
  usage(e.message);
}
for (const name of ["resource", "key", "expiry-seconds"]) {
  if (values[name] === undefined) usage(`missing --${name}`);
}
const seconds = Number(values["expiry-seconds"]);
if (!Number.isInteger(seconds)) usage(`--expiry-seconds must be an integer, got '${values["expiry-seconds"]}'`);

const token = await generateSharedAccessSignature(
  values.resource,
  new AzureKeyCredential(values.key),
  new Date(Date.now() + seconds * 1000),
);
process.stdout.write(`${token}\n`);
