// Comparison peer: the same broadcaster in Node.js with the `ws` package.
//
// Speaks enough of tickcast's PROTOCOL.md for the load generator: `welcome`
// on connect, `subscribed` + one `snapshot` per covered symbol with a value
// on `subscribe` (the group `*` covers every symbol; named symbols only
// themselves), `pong` for the `ping` op, ticks with the same JSON as
// tickcast, and close 4001 "slow consumer" when a client's `bufferedAmount`
// passes --max-buffered bytes.
//
// Routing: one Set of sockets for `*` and one per symbol for the clients
// that named it; a tick goes to the `*` set and its symbol's set, so the
// work is one send per delivery whatever the universe.
//
// Invariants: Node is single-threaded, so a snapshot sent on `subscribe` and
// the next broadcast can never interleave: ticks after it continue its seq.
// A socket is in a symbol's set only while it does not hold `*`, so no tick
// is delivered twice.
//
// Usage: node server.js --listen 127.0.0.1:9102 --symbols 100 --rate 2000
//        [--max-buffered 4194304]
'use strict';
const { WebSocketServer } = require('ws');

function parseArgs(argv) {
  const a = { listen: '127.0.0.1:9102', symbols: 100, rate: 2000, maxBuffered: 4 << 20 };
  for (let i = 0; i < argv.length; i += 2) {
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${argv[i]} needs a value`);
    switch (argv[i]) {
      case '--listen': a.listen = v; break;
      case '--symbols': a.symbols = parseInt(v, 10); break;
      case '--rate': a.rate = parseInt(v, 10); break;
      case '--max-buffered': a.maxBuffered = parseInt(v, 10); break;
      default: throw new Error(`unknown flag ${argv[i]}`);
    }
  }
  if (!(a.symbols > 0) || !(a.rate >= 0)) throw new Error('--symbols must be > 0, --rate >= 0');
  return a;
}

const args = parseArgs(process.argv.slice(2));
const colon = args.listen.lastIndexOf(':');
const host = args.listen.slice(0, colon);
const port = parseInt(args.listen.slice(colon + 1), 10);

// ns since the UNIX epoch, from a monotonic clock anchored once to the wall clock.
const base = BigInt(Date.now()) * 1000000n - process.hrtime.bigint();
const nowNs = () => (base + process.hrtime.bigint()).toString();

const names = Array.from({ length: args.symbols }, (_, i) => 'S' + String(i).padStart(3, '0'));
const index = new Map(names.map((n, i) => [n, i]));
const last = new Array(args.symbols).fill(null);
// Sockets subscribed to `*`, and per symbol those that named it.
const star = new Set();
const routes = Array.from({ length: args.symbols }, () => new Set());

function json(kind, i, q) {
  return `{"type":"${kind}","symbol":"${names[i]}","seq":${q.seq},"ts":${q.ts},"bid":${q.bid.toFixed(2)},` +
    `"ask":${q.ask.toFixed(2)},"bid_size":${q.bidSize},"ask_size":${q.askSize},"last":${q.last.toFixed(2)},"volume":${q.volume}}`;
}

let connId = 0;

// Drops every route of a socket (it took `*`, was evicted, or is gone).
function unroute(ws) {
  for (const i of ws.symbols) routes[i].delete(ws);
  ws.symbols.clear();
}

function forget(ws) {
  star.delete(ws);
  unroute(ws);
}

function subscribe(ws, msg, rid) {
  const groups = Array.isArray(msg.groups) ? msg.groups : [];
  const symbols = Array.isArray(msg.symbols) ? msg.symbols : [];
  if (groups.some((g) => g !== '*')) {
    ws.send(JSON.stringify({ type: 'error', id: rid, code: 'unknown_group', message: 'only the group * is defined' }));
    return;
  }
  ws.send(JSON.stringify({ type: 'subscribed', id: rid, symbols, groups }));
  if (groups.length > 0) {
    for (let i = 0; i < names.length; i++) if (last[i]) ws.send(json('snapshot', i, last[i]));
    unroute(ws);
    star.add(ws);
    return;
  }
  const seen = new Set();
  for (const s of symbols) {
    // A symbol this peer does not publish never ticks: nothing to route.
    const i = index.get(s);
    if (i === undefined || seen.has(i)) continue;
    seen.add(i);
    if (last[i]) ws.send(json('snapshot', i, last[i]));
    if (!star.has(ws)) {
      ws.symbols.add(i);
      routes[i].add(ws);
    }
  }
}

function send(ws, text) {
  if (ws.bufferedAmount > args.maxBuffered) {
    forget(ws);
    ws.close(4001, 'slow consumer');
    setTimeout(() => ws.terminate(), 1000).unref();
    return;
  }
  ws.send(text);
}

const wss = new WebSocketServer({ host, port, path: '/ws', perMessageDeflate: false });
wss.on('connection', (ws, req) => {
  req.socket.setNoDelay(true);
  const id = `c-${++connId}`;
  ws.symbols = new Set();
  ws.send(JSON.stringify({ type: 'welcome', conn_id: id, server: 'peer-node-ws/0.1.0', protocol: 1, heartbeat_ms: 5000, max_queue: 4096 }));
  ws.on('message', (data, isBinary) => {
    let msg;
    try { msg = JSON.parse(isBinary ? '' : data.toString()); } catch (e) { msg = null; }
    if (!msg || typeof msg !== 'object') {
      ws.send(JSON.stringify({ type: 'error', code: 'bad_request', message: 'not JSON' }));
      return;
    }
    const rid = msg.id === undefined ? null : msg.id;
    switch (msg.op) {
      case 'subscribe':
        subscribe(ws, msg, rid);
        break;
      case 'ping':
        ws.send(JSON.stringify({ type: 'pong', id: rid, ts: Number(nowNs()) }));
        break;
      case 'list_groups':
        ws.send(JSON.stringify({ type: 'groups', id: rid, groups: [{ name: '*', symbols: names.length }] }));
        break;
      default:
        ws.send(JSON.stringify({ type: 'error', id: rid, code: 'bad_request', message: 'unknown op' }));
    }
  });
  ws.on('close', () => forget(ws));
  ws.on('error', () => forget(ws));
});

// Generator: `rate` ticks/s round-robin over the symbols, caught up every 1 ms.
const start = process.hrtime.bigint();
let sent = 0;
let nextSymbol = 0;
setInterval(() => {
  const due = Math.floor(Number(process.hrtime.bigint() - start) / 1e9 * args.rate);
  while (sent < due) {
    const i = nextSymbol;
    nextSymbol = (nextSymbol + 1) % names.length;
    const prev = last[i];
    const mid = 100 + i + ((sent % 200) - 100) / 100;
    const q = {
      seq: prev ? prev.seq + 1 : 1, ts: nowNs(), bid: mid - 0.01, ask: mid + 0.01,
      bidSize: 100 + (sent % 500), askSize: 100 + ((sent * 7) % 500), last: mid,
      volume: (prev ? prev.volume : 0) + 100,
    };
    last[i] = q;
    const text = json('tick', i, q);
    // Deleting the current element of a Set while iterating it is safe.
    for (const ws of star) send(ws, text);
    for (const ws of routes[i]) send(ws, text);
    sent++;
  }
}, 1);

wss.on('listening', () => console.error(`peer-node-ws listening on ws://${args.listen}/ws (${args.symbols} symbols, ${args.rate} ticks/s)`));
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
