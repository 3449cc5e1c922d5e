#!/usr/bin/env node
/*
 * The fan-out benchmark's load generator: CLIENTS subscribers on each server,
 * and one fan-out at a time, timed from the trigger to the last receiver.
 *
 * Raw Engine.IO v4 / Socket.IO v5 text frames over `ws`, as in loadgen.js:
 *
 *   open       GET ws://HOST:PORT/socketio/?EIO=4&transport=websocket -> "0{...}"
 *   join       send "40/fanout,"                       -> "40/fanout,{...}"
 *   subscribe  send '42/fanout,0["subscribe","news"]'  -> '43/fanout,0["news"]'
 *   trigger    send '42/fanout,N["broadcast",MSG]' (or "publish")  -> '43/fanout,N[]'
 *   fan-out    '42/fanout,["news",MSG]' (broadcast) or
 *              '42/fanout,["pubblication",MSG]' (publish) to every client
 *   keep-alive: the server's "2" is answered with "3"
 *
 * MSG is {"seq": S, "headline": "..."}; S tells one fan-out from another.
 *
 * Usage:
 *   node fanout.js CLIENTS URL [URL...]
 *
 * It writes JSON lines to stdout: {"event":"ready"} once every client of every
 * server has joined and subscribed; then, for each command read from stdin,
 * {"server": I, "mode": "broadcast"|"publish", "seq": S} (one JSON line),
 * fires that fan-out from the first client of server I and answers
 * {"event":"fanout", "seq": S, "first_ms", "last_ms", "ack_ms"}: the
 * milliseconds from sending the trigger until the first and the last of the
 * CLIENTS clients received MSG, and until the trigger's ack came back.
 * Commands read during a fan-out wait for it to end. It exits once stdin
 * closes and the last command has been answered.
 */
"use strict";

const readline = require("readline");
const WebSocket = require("ws");

const NAMESPACE = "/fanout";
const CHANNEL = "news";
const PREFIX = "42" + NAMESPACE + ",";
const JOIN = "40" + NAMESPACE + ",";
const ACK_PREFIX = "43" + NAMESPACE + ",";
const SUBSCRIBE = PREFIX + '0["subscribe","' + CHANNEL + '"]';
const SUBSCRIBED = ACK_PREFIX + '0["' + CHANNEL + '"]';
// what each mode's clients receive, spelled as the server sends it
const RECEIVED = {
  broadcast: PREFIX + '["news",',
  publish: PREFIX + '["pubblication",',
};
const HEADLINE = "Fan-out benchmark: one message to every subscriber, timed to the last one";
const CONNECT_CONCURRENCY = 50; // handshakes in flight, below the accept backlog
const FANOUT_TIMEOUT_MS = 20000;

function report(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

function fail(message) {
  process.stderr.write("fanout.js: " + message + "\n");
  process.exit(1);
}

function elapsedMs(since) {
  return Number(process.hrtime.bigint() - since) / 1e6;
}

/* The fan-out in flight, or null; commands read meanwhile wait their turn. */
let current = null;
const waiting = [];

function onFanoutMessage(ws, text) {
  const trial = current;
  if (trial === null || !text.startsWith(trial.expected)) {
    fail("unexpected message: " + text.slice(0, 120));
  }
  const seq = Number(/"seq":(\d+)/.exec(text)[1]);
  if (seq !== trial.seq) fail("got seq " + seq + " during the fan-out of " + trial.seq);
  if (ws.benchLastSeq === seq) fail("a client got seq " + seq + " twice");
  ws.benchLastSeq = seq;
  const ms = elapsedMs(trial.start);
  if (trial.received === 0) trial.firstMs = ms;
  trial.received += 1;
  if (trial.received === trial.clients) trial.lastMs = ms;
  finishIfDone(trial);
}

function onAck(text) {
  const trial = current;
  if (trial === null || !text.startsWith(ACK_PREFIX + trial.ackId + "[")) {
    fail("unexpected ack: " + text.slice(0, 120));
  }
  trial.ackMs = elapsedMs(trial.start);
  finishIfDone(trial);
}

function finishIfDone(trial) {
  if (trial.lastMs === null || trial.ackMs === null) return;
  clearTimeout(trial.timer);
  current = null;
  report({
    event: "fanout",
    seq: trial.seq,
    first_ms: trial.firstMs,
    last_ms: trial.lastMs,
    ack_ms: trial.ackMs,
  });
  if (waiting.length) waiting.shift()();
}

/* A client that joins /fanout and subscribes to the channel. */
function openClient(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    let subscribed = false;
    ws.on("message", (data) => {
      const text = data.toString();
      if (text.startsWith(PREFIX)) {
        onFanoutMessage(ws, text);
      } else if (text.startsWith(ACK_PREFIX) && subscribed) {
        onAck(text);
      } else if (text === "2") {
        ws.send("3");
      } else if (text[0] === "0") {
        ws.send(JOIN);
      } else if (text.startsWith(JOIN)) {
        ws.send(SUBSCRIBE);
      } else if (text === SUBSCRIBED) {
        subscribed = true;
        resolve(ws);
      } else {
        reject(new Error("unexpected answer while subscribing: " + text));
      }
    });
    ws.on("error", (error) => (subscribed ? fail(error.message) : reject(error)));
    ws.on("close", () => {
      if (!subscribed) reject(new Error("closed before subscribing"));
      else if (!ws.benchClosing) fail("server closed a connection");
    });
  });
}

/* Open `count` clients, at most CONNECT_CONCURRENCY handshakes at a time. */
async function openClients(url, count) {
  const clients = [];
  let next = 0;
  async function worker() {
    while (next < count) {
      next += 1;
      clients.push(await openClient(url));
    }
  }
  const workers = [];
  for (let i = 0; i < Math.min(CONNECT_CONCURRENCY, count); i += 1) workers.push(worker());
  await Promise.all(workers);
  return clients;
}

function fire(servers, clients, command) {
  if (current !== null) {
    waiting.push(() => fire(servers, clients, command));
    return;
  }
  const { server, mode, seq } = command;
  const expected = RECEIVED[mode];
  if (expected === undefined || servers[server] === undefined) {
    fail("bad command: " + JSON.stringify(command));
  }
  const ackId = seq + 1; // 0 was the subscribe's
  const trigger =
    PREFIX + ackId + JSON.stringify([mode, { seq: seq, headline: HEADLINE }]);
  const trial = {
    seq,
    ackId,
    expected,
    clients,
    received: 0,
    firstMs: null,
    lastMs: null,
    ackMs: null,
    start: null,
  };
  trial.timer = setTimeout(
    () =>
      fail(
        "fan-out " + seq + " (" + mode + ") reached " + trial.received + " of " +
          clients + " clients in " + FANOUT_TIMEOUT_MS / 1000 + "s",
      ),
    FANOUT_TIMEOUT_MS,
  );
  current = trial;
  trial.start = process.hrtime.bigint();
  servers[server][0].send(trigger);
}

async function main(argv) {
  const [count, ...urls] = argv;
  if (!(Number(count) > 0) || urls.length === 0) {
    fail("usage: fanout.js CLIENTS URL [URL...]");
  }
  const clients = Number(count);
  const servers = [];
  for (const url of urls) servers.push(await openClients(url, clients));
  report({ event: "ready", clients, servers: servers.length });

  const lines = readline.createInterface({ input: process.stdin });
  lines.on("line", (line) => line.trim() && fire(servers, clients, JSON.parse(line)));
  await new Promise((resolve) => lines.on("close", resolve));
  while (current !== null) await new Promise((resolve) => setTimeout(resolve, 10));
  for (const sockets of servers) {
    for (const ws of sockets) {
      ws.benchClosing = true;
      ws.terminate();
    }
  }
  process.exit(0);
}

main(process.argv.slice(2)).catch((error) => fail(error.stack || String(error)));
