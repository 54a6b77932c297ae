// The peer of bench/webpubsub.sh: the seed document's backend broadcasting to its WebSocket
// clients, written the way that backend would be (../shared/seeds/000_efee673b43210302.txt,
// "Broadcast Updates to WebSocket Clients"): one Node.js process, an HTTP server that receives
// each update as a POST (as the backend's Event Grid webhook receives events), and a `ws`
// WebSocketServer on the same port that keeps its clients and sends every update to each of
// them with `client.send(...)`.
//
//   node bench/fanout_peer.mjs [port]     (0 or nothing: the kernel picks one)
//
// Prints `{"port":P}` on stdout once it listens (the JSON line the load generator reads).
// WebSocket clients connect to ws://127.0.0.1:P/ ; updates go to POST /broadcast with a JSON
// body, answered 200 once every open client's send was queued. ws 8.23.0 comes from
// tests/support (package.json pins it); per-message deflate is off, ws's server default.

import { createServer } from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../tests/support/package.json', import.meta.url));
const { WebSocketServer, WebSocket } = require('ws');

const server = createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/broadcast') {
    res.writeHead(404).end();
    return;
  }
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    let update;
    try {
      update = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (e) {
      res.writeHead(400).end(String(e));
      return;
    }
    broadcast(update);
    res.writeHead(200).end();
  });
});

const wss = new WebSocketServer({ server });

// The seed's `broadcastToClients`: the update serialised once, then sent to every client.
function broadcast(update) {
  const text = JSON.stringify(update);
  for (const client of wss.clients) {
    if (client.readyState === WebSocket.OPEN) {
      client.send(text);
    }
  }
}

server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', 4096, () => {
  console.log(JSON.stringify({ port: server.address().port }));
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}
