#!/usr/bin/env node
/*
 * The benchmark's load generator: many Socket.IO clients in one lean process.
 *
 * It speaks raw Engine.IO v4 / Socket.IO v5 text frames over `ws`, without
 * socket.io-client, so one core drives far more round trips than a Python
 * server can answer:
 *
 *   open   GET ws://HOST:PORT/socketio/?EIO=4&transport=websocket -> "0{...}"
 *   join   send "40/pingpong,"                   -> "40/pingpong,{...}"
 *   ping   send '42/pingpong,["ping",{"type":"ping"}]'
 *   pong   '42/pingpong,["pong",{"sound":"pong"}]'
 *   keep-alive: the server's "2" is answered with "3"
 *
 * Usage:
 *   node loadgen.js rtt  URL CLIENTS WARMUP_SECONDS SECONDS
 *   node loadgen.js idle URL CLIENTS
 *
 * It writes JSON lines to stdout. rtt: {"event":"measuring"} when the timed
 * window opens, then {"event":"result", ...} when it closes, with the round
 * trips, latency percentiles and this process's own CPU use in the window.
 * idle: {"event":"ready"} once every client has joined; the clients stay
 * connected until stdin closes.
 */
"use strict";

const WebSocket = require("ws");

const NAMESPACE = "/pingpong";
const JOIN = "40" + NAMESPACE + ",";
const PING = "42" + NAMESPACE + ',["ping",{"type":"ping"}]';
const PONG_PREFIX = "42" + NAMESPACE + ',["pong"';
const CONNECT_CONCURRENCY = 50; // handshakes in flight, below the accept backlog

function report(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

function fail(message) {
  process.stderr.write("loadgen: " + message + "\n");
  process.exit(1);
}

/* A client that joins the namespace, then calls onPong for each pong. */
function openClient(url, onPong) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    let joined = false;
    ws.on("message", (data) => {
      const text = data.toString();
      if (text.startsWith(PONG_PREFIX)) {
        onPong(ws);
      } else if (text === "2") {
        ws.send("3");
      } else if (text[0] === "0") {
        ws.send(JOIN);
      } else if (text.startsWith(JOIN)) {
        joined = true;
        resolve(ws);
      } else if (text.startsWith("44" + NAMESPACE)) {
        reject(new Error("namespace refused: " + text));
      }
    });
    ws.on("error", (error) => (joined ? fail(error.message) : reject(error)));
    ws.on("close", () => {
      if (!joined) reject(new Error("closed before joining " + NAMESPACE));
      else if (!ws.benchClosing) fail("server closed a connection");
    });
  });
}

/* Open `count` clients, at most CONNECT_CONCURRENCY handshakes at a time. */
async function openClients(url, count, onPong) {
  const clients = [];
  let next = 0;
  async function worker() {
    while (next < count) {
      next += 1;
      clients.push(await openClient(url, onPong));
    }
  }
  const workers = [];
  for (let i = 0; i < Math.min(CONNECT_CONCURRENCY, count); i += 1) workers.push(worker());
  await Promise.all(workers);
  return clients;
}

function closeAll(clients) {
  for (const ws of clients) {
    ws.benchClosing = true;
    ws.terminate();
  }
}

function percentile(sorted, fraction) {
  if (sorted.length === 0) return null;
  const index = Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1);
  return sorted[Math.max(0, index)];
}

function cpuSeconds(usage) {
  return (usage.user + usage.system) / 1e6;
}

/* Closed loop: every client sends a ping, waits for the pong, sends the next. */
async function roundTrips(url, count, warmupSeconds, seconds) {
  const sentAt = new Map(); // ws -> hrtime of its ping in flight
  let measuring = false;
  let latencies = [];
  const onPong = (ws) => {
    const now = process.hrtime.bigint();
    if (measuring) latencies.push(Number(now - sentAt.get(ws)) / 1e6);
    sentAt.set(ws, process.hrtime.bigint());
    ws.send(PING);
  };
  const clients = await openClients(url, count, onPong);
  for (const ws of clients) {
    sentAt.set(ws, process.hrtime.bigint());
    ws.send(PING);
  }
  await sleep(warmupSeconds);

  measuring = true;
  report({ event: "measuring" });
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  await sleep(seconds);
  measuring = false;
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = cpuSeconds(process.cpuUsage(cpuStart));

  const done = latencies;
  latencies = [];
  const sorted = Float64Array.from(done).sort();
  report({
    event: "result",
    clients: count,
    seconds: elapsed,
    round_trips: done.length,
    rate: done.length / elapsed,
    p50_ms: percentile(sorted, 0.5),
    p99_ms: percentile(sorted, 0.99),
    cpu_percent: (100 * cpu) / elapsed,
  });
  closeAll(clients);
}

/* Idle clients: join, answer keep-alives, hold until stdin closes. */
async function idle(url, count) {
  const clients = await openClients(url, count, () => {});
  report({ event: "ready", clients: clients.length });
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.on("end", resolve));
  closeAll(clients);
}

function sleep(seconds) {
  return new Promise((resolve) => setTimeout(resolve, seconds * 1000));
}

async function main(argv) {
  const [mode, url, count, warmup, seconds] = argv;
  if (mode === "rtt" && seconds !== undefined) {
    await roundTrips(url, Number(count), Number(warmup), Number(seconds));
  } else if (mode === "idle" && count !== undefined) {
    await idle(url, Number(count));
  } else {
    fail("usage: loadgen.js rtt URL CLIENTS WARMUP SECONDS | idle URL CLIENTS");
  }
  process.exit(0);
}

main(process.argv.slice(2)).catch((error) => fail(error.stack || String(error)));
