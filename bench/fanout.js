#!/usr/bin/env node
/*
 * The fan-out benchmarks' load generator (fanout.py, scale.py): CLIENTS
 * subscribers per deployment, spread over the deployment's URLs, and one
 * fan-out at a time, timed from the trigger to the last of its clients.
 *
 * A deployment is one server (one URL), or servers sharing one Redis: two
 * gearbox servers on two ports (two URLs: the clients are split between
 * them), or one server with workers = 2 (one URL: its router hands the
 * connections to the workers in turn). Raw Engine.IO v4 / Socket.IO v5 text
 * frames over `ws`, as in loadgen.js:
 *
 *   open       GET ws://HOST:PORT/socketio/?EIO=4&transport=websocket -> "0{"sid":...}"
 *   join       send "40/fanout,"                       -> "40/fanout,{...}"
 *   subscribe  send '42/fanout,0["subscribe","news"]'  -> '43/fanout,0["news"]'
 *   trigger    send '42/fanout,N["broadcast",MSG]' (or "publish")  -> '43/fanout,N[]'
 *   fan-out    '42/fanout,["news",MSG]' (broadcast) or
 *              '42/fanout,["pubblication",MSG]' (publish) to every client
 *   keep-alive: the server's "2" is answered with "3"
 *
 * Each client knows where it landed: "s<i>" for the deployment's i-th URL,
 * followed by "/w<k>" when the Engine.IO session id starts with the worker
 * tag "w<k>." (workers = N).
 *
 * Usage:
 *   node fanout.js CLIENTS URL[,URL...] [URL[,URL...]...]
 *
 * It writes JSON lines to stdout: {"event":"ready","deployments":[{"clients",
 * "where": {where: count}, "trigger": where}]} once every client has joined
 * and subscribed; then, for each command read from stdin,
 * {"deployment": I, "mode": "broadcast"|"publish", "seq": S}, it fires that
 * fan-out from the first client of deployment I and answers {"event":
 * "fanout", "seq", "first_ms", "last_ms", "ack_ms", "last_ms_by_where"}:
 * milliseconds from sending the trigger until the first and the last client
 * received MSG (overall and per place), and until the trigger's ack. It
 * exits once stdin closes and the last command has been answered.
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

let current = null; // the fan-out in flight
const waiting = [];

function onFanoutMessage(ws, text) {
  const trial = current;
  if (trial === null || ws.benchDeployment !== trial.deployment) {
    fail("message outside a fan-out of its deployment: " + text.slice(0, 120));
  }
  if (!text.startsWith(trial.expected)) fail("unexpected message: " + text.slice(0, 120));
  const seq = Number(/"seq":(\d+)/.exec(text)[1]);
  if (seq !== trial.seq) fail("got seq " + seq + " during the fan-out of " + trial.seq);
  if (ws.benchLastSeq === seq) fail("a client got seq " + seq + " twice");
  ws.benchLastSeq = seq;
  const ms = elapsedMs(trial.start);
  if (trial.received === 0) trial.firstMs = ms;
  trial.lastByWhere[ws.benchWhere] = ms;
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
    last_ms_by_where: trial.lastByWhere,
  });
  if (waiting.length) waiting.shift()();
}

/* A client of deployment `deployment` that joins /fanout and subscribes. */
function openClient(url, deployment, urlIndex) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.benchDeployment = deployment;
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
        const sid = JSON.parse(text.slice(1)).sid;
        const dot = sid.indexOf(".");
        ws.benchWhere = "s" + urlIndex + (dot > 0 ? "/" + sid.slice(0, dot) : "");
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

/* `count` clients of one deployment, dealt over its URLs in turn. */
async function openDeployment(urls, count, deployment) {
  const clients = new Array(count);
  let next = 0;
  async function worker() {
    while (next < count) {
      const index = next;
      next += 1;
      const urlIndex = index % urls.length;
      clients[index] = await openClient(urls[urlIndex], deployment, urlIndex);
    }
  }
  const workers = [];
  for (let i = 0; i < Math.min(CONNECT_CONCURRENCY, count); i += 1) workers.push(worker());
  await Promise.all(workers);
  return clients;
}

function fire(deployments, command) {
  if (current !== null) {
    waiting.push(() => fire(deployments, command));
    return;
  }
  const { deployment, mode, seq } = command;
  const expected = RECEIVED[mode];
  const clients = deployments[deployment];
  if (expected === undefined || clients === undefined) {
    fail("bad command: " + JSON.stringify(command));
  }
  const ackId = seq + 1; // 0 was the subscribe's
  const trigger =
    PREFIX + ackId + JSON.stringify([mode, { seq: seq, headline: HEADLINE }]);
  const trial = {
    deployment,
    seq,
    ackId,
    expected,
    clients: clients.length,
    received: 0,
    firstMs: null,
    lastMs: null,
    ackMs: null,
    lastByWhere: {},
    start: null,
  };
  trial.timer = setTimeout(
    () =>
      fail(
        "fan-out " + seq + " (" + mode + ") reached " + trial.received + " of " +
          trial.clients + " clients in " + FANOUT_TIMEOUT_MS / 1000 + "s",
      ),
    FANOUT_TIMEOUT_MS,
  );
  current = trial;
  trial.start = process.hrtime.bigint();
  clients[0].send(trigger);
}

async function main(argv) {
  const [count, ...groups] = argv;
  if (!(Number(count) > 0) || groups.length === 0) {
    fail("usage: fanout.js CLIENTS URL[,URL...] [URL[,URL...]...]");
  }
  const deployments = [];
  for (const group of groups) {
    deployments.push(await openDeployment(group.split(","), Number(count), deployments.length));
  }
  report({
    event: "ready",
    deployments: deployments.map((clients) => {
      const where = {};
      for (const ws of clients) where[ws.benchWhere] = (where[ws.benchWhere] || 0) + 1;
      return { clients: clients.length, where, trigger: clients[0].benchWhere };
    }),
  });

  const lines = readline.createInterface({ input: process.stdin });
  lines.on("line", (line) => line.trim() && fire(deployments, JSON.parse(line)));
  await new Promise((resolve) => lines.on("close", resolve));
  while (current !== null) await new Promise((resolve) => setTimeout(resolve, 10));
  for (const clients of deployments) {
    for (const ws of clients) {
      ws.benchClosing = true;
      ws.terminate();
    }
  }
  process.exit(0);
}

main(process.argv.slice(2)).catch((error) => fail(error.stack || String(error)));
