#!/usr/bin/env node
/*
 * The benchmark's load generator: many Socket.IO clients in one lean process.
 *
 * It speaks raw Engine.IO v4 / Socket.IO v5 text frames, framed by hand on
 * bare TCP sockets (no socket.io-client, no WebSocket library), so it needs a
 * small part of a core for what a Python server answers with a whole one:
 *
 *   open   GET ws://HOST:PORT/socketio/?EIO=4&transport=websocket -> "0{...}"
 *   join   send "40/pingpong,"                   -> "40/pingpong,{...}"
 *   ping   send '42/pingpong,["ping",{"type":"ping"}]'
 *   pong   '42/pingpong,["pong",{"sound":"pong"}]'
 *   keep-alive: the server's "2" is answered with "3"
 *
 * Usage:
 *   node loadgen.js rtt  URL CLIENTS WARMUP_SECONDS SECONDS
 *   node loadgen.js poll URL CLIENTS WARMUP_SECONDS SECONDS
 *   node loadgen.js connect URL CLIENTS
 *   node loadgen.js upgrade URL CLIENTS
 *   node loadgen.js idle URL CLIENTS
 *
 * poll is rtt over HTTP long-polling (URL is still the ws:// one): each
 * client POSTs its ping, then GETs until the pong comes, on keep-alive
 * connections of its own. connect times opening and joining CLIENTS
 * WebSocket clients, 50 handshakes in flight, and reports clients per second;
 * upgrade does the same for clients that open and join over long-polling,
 * then upgrade to WebSocket, as socket.io-client does by default.
 *
 * It writes JSON lines to stdout. rtt: {"event":"measuring"} when the timed
 * window opens, then {"event":"result", ...} when it closes, with the round
 * trips, latency percentiles and this process's own CPU use in the window.
 * idle: {"event":"ready"} once every client has joined; the clients stay
 * connected until stdin closes.
 */
"use strict";

const http = require("http");
const net = require("net");

const NAMESPACE = "/pingpong";
const JOIN = "40" + NAMESPACE + ",";
const PING = "42" + NAMESPACE + ',["ping",{"type":"ping"}]';
const PONG_TEXT = "42" + NAMESPACE + ',["pong"';
const PONG_PREFIX = Buffer.from(PONG_TEXT);
const CONNECT_CONCURRENCY = 50; // handshakes in flight, below the accept backlog

function report(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

function fail(message) {
  process.stderr.write("loadgen: " + message + "\n");
  process.exit(1);
}

/*
 * WebSocket framing, client side, for short text messages only: what a
 * Socket.IO client sends here is always under 126 bytes. The mask key is
 * zero, which leaves the payload as it is (RFC 6455 wants it unpredictable,
 * against proxies that cache; no proxy is in the way here, and the server
 * unmasks whatever the key). Every frame is built once, at start-up, so a
 * round trip costs the load generator one write and one read.
 */
function textFrame(text) {
  const payload = Buffer.from(text);
  if (payload.length > 125) throw new Error("frame too long for loadgen: " + text);
  const frame = Buffer.alloc(6 + payload.length); // FIN+text, MASK+length, 4 zero key bytes
  frame[0] = 0x81;
  frame[1] = 0x80 | payload.length;
  payload.copy(frame, 6);
  return frame;
}

const PING_FRAME = textFrame(PING);
const JOIN_FRAME = textFrame(JOIN);
const KEEPALIVE_FRAME = textFrame("3");
const PROBE_FRAME = textFrame("2probe");
const UPGRADE_FRAME = textFrame("5");
const CLOSE_FRAME = Buffer.from([0x88, 0x80, 0, 0, 0, 0]);

function upgradeRequest(url) {
  const { host, pathname, search } = new URL(url.replace(/^ws/, "http"));
  return (
    `GET ${pathname}${search} HTTP/1.1\r\nHost: ${host}\r\n` +
    "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Key: bG9hZGdlbiBjbGllbnQgMQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
  );
}

/*
 * Parse the server frames in `data` (unmasked), calling onText(payload) for
 * each text frame and onClose() for a close frame; returns the bytes of an
 * incomplete last frame, to be prepended to the next read, or null.
 */
function readFrames(data, onText, onClose) {
  let offset = 0;
  while (data.length - offset >= 2) {
    const opcode = data[offset] & 0x0f;
    let length = data[offset + 1] & 0x7f;
    let header = 2;
    if (length === 126) {
      if (data.length - offset < 4) break;
      length = data.readUInt16BE(offset + 2);
      header = 4;
    } else if (length === 127) {
      if (data.length - offset < 10) break;
      length = Number(data.readBigUInt64BE(offset + 2));
      header = 10;
    }
    if (data.length - offset < header + length) break;
    const payload = data.subarray(offset + header, offset + header + length);
    offset += header + length;
    if (opcode === 0x1) onText(payload);
    else if (opcode === 0x8) onClose();
  }
  return offset < data.length ? Buffer.from(data.subarray(offset)) : null;
}

/*
 * One Socket.IO client on a bare TCP socket: it upgrades, joins the
 * namespace, then calls onPong(client) for each pong. Server frames are
 * unmasked; each is parsed from what arrived, a frame split across reads
 * waits for its rest.
 *
 * With `sid`, the WebSocket upgrades that session, joined over long-polling
 * already, as socket.io-client does: "2probe", "3probe", "5"; the client is
 * ready once a ping sent over it is answered.
 */
function openClient(url, onPong, sid) {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url.replace(/^ws/, "http"));
    const socket = net.connect({ host: hostname, port: Number(port), noDelay: true });
    const client = { socket, closing: false, send: (frame) => socket.write(frame) };
    let joined = false;
    let upgraded = false;
    let pending = null; // bytes of an incomplete frame (or handshake)

    function onText(payload) {
      if (payload.length >= PONG_PREFIX.length && payload.compare(PONG_PREFIX, 0, PONG_PREFIX.length, 0, PONG_PREFIX.length) === 0) {
        if (joined) onPong(client);
        else {
          joined = true; // the upgrade's ping was answered
          resolve(client);
        }
        return;
      }
      const text = payload.toString();
      if (text === "3probe") {
        socket.write(UPGRADE_FRAME);
        socket.write(PING_FRAME);
      } else if (text === "2") {
        socket.write(KEEPALIVE_FRAME);
      } else if (text[0] === "0") {
        socket.write(JOIN_FRAME);
      } else if (text.startsWith(JOIN)) {
        joined = true;
        resolve(client);
      } else if (text.startsWith("44" + NAMESPACE)) {
        reject(new Error("namespace refused: " + text));
      }
    }

    function onFrames(data) {
      pending = readFrames(data, onText, () => socket.end());
    }

    socket.on("connect", () =>
      socket.write(upgradeRequest(sid === undefined ? url : url + "&sid=" + sid)));
    socket.on("data", (chunk) => {
      const data = pending ? Buffer.concat([pending, chunk]) : chunk;
      pending = null;
      if (upgraded) {
        onFrames(data);
        return;
      }
      const end = data.indexOf("\r\n\r\n");
      if (end < 0) {
        pending = data;
        return;
      }
      const status = data.subarray(0, data.indexOf("\r\n")).toString();
      if (!/^HTTP\/1\.1 101 /.test(status)) {
        reject(new Error("upgrade refused: " + status));
        socket.destroy();
        return;
      }
      upgraded = true;
      if (sid !== undefined) socket.write(PROBE_FRAME);
      if (end + 4 < data.length) onFrames(data.subarray(end + 4));
    });
    socket.on("error", (error) => (joined ? fail(error.message) : reject(error)));
    socket.on("close", () => {
      if (!joined) reject(new Error("closed before joining " + NAMESPACE));
      else if (!client.closing) fail("server closed a connection");
    });
  });
}

/*
 * Open `count` clients, at most CONNECT_CONCURRENCY handshakes at a time;
 * `open` is openClient or upgradedClient.
 */
async function openClients(url, count, onPong, open = openClient) {
  const clients = [];
  let next = 0;
  async function worker() {
    while (next < count) {
      next += 1;
      clients.push(await open(url, onPong));
    }
  }
  const workers = [];
  for (let i = 0; i < Math.min(CONNECT_CONCURRENCY, count); i += 1) workers.push(worker());
  await Promise.all(workers);
  return clients;
}

function closeAll(clients) {
  for (const client of clients) {
    client.closing = true;
    client.socket.end(CLOSE_FRAME);
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

/*
 * The timed window: round trips are timed while state.measuring, then
 * reported as one result with this process's CPU use meanwhile.
 */
async function timedWindow(count, seconds, state) {
  state.measuring = true;
  report({ event: "measuring" });
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  await sleep(seconds);
  state.measuring = false;
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = cpuSeconds(process.cpuUsage(cpuStart));
  const done = state.latencies.splice(0);
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
}

/* Closed loop: every client sends a ping, waits for the pong, sends the next. */
async function roundTrips(url, count, warmupSeconds, seconds) {
  const state = { measuring: false, latencies: [] };
  const onPong = (client) => {
    const now = process.hrtime.bigint();
    if (state.measuring) state.latencies.push(Number(now - client.sentAt) / 1e6);
    client.sentAt = now;
    client.send(PING_FRAME);
  };
  const clients = await openClients(url, count, onPong);
  for (const client of clients) {
    client.sentAt = process.hrtime.bigint();
    client.send(PING_FRAME);
  }
  await sleep(warmupSeconds);
  await timedWindow(count, seconds, state);
  closeAll(clients);
}

/* One long-polling client: open, join, then ping/pong through POST and GET. */
async function openPollingClient(url) {
  const { hostname, port, pathname } = new URL(url.replace(/^ws/, "http"));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  const base = `${pathname}?EIO=4&transport=polling`;
  function request(method, path, body) {
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: hostname, port: Number(port), method, path, agent,
          headers: body === undefined ? {} : { "Content-Type": "text/plain;charset=UTF-8" } },
        (res) => {
          const chunks = [];
          res.on("data", (chunk) => chunks.push(chunk));
          res.on("end", () =>
            res.statusCode === 200
              ? resolve(Buffer.concat(chunks).toString())
              : reject(new Error(`${method} ${res.statusCode}`)));
        });
      req.on("error", reject);
      req.end(body);
    });
  }
  const opened = await request("GET", base);
  if (opened[0] !== "0") throw new Error("no open packet: " + opened);
  const sid = JSON.parse(opened.slice(1)).sid;
  const path = base + "&sid=" + sid;
  const client = {
    sid,
    agent,
    closing: false,
    post: (body) => request("POST", path, body),
    // the packets of the next GET, answering the server's pings on the way
    async receive() {
      const packets = (await request("GET", path)).split("\x1e");
      for (const packet of packets) if (packet === "2") await client.post("3");
      return packets;
    },
    close() {
      client.closing = true;
      return client.post("1").catch(() => {}).finally(() => agent.destroy());
    },
  };
  await client.post(JOIN);
  while (!(await client.receive()).some((packet) => packet.startsWith(JOIN))) {}
  return client;
}

/* Closed loop over long-polling: POST a ping, GET until its pong, again. */
async function pollingRoundTrips(url, count, warmupSeconds, seconds) {
  const clients = [];
  for (let i = 0; i < count; i += 1) clients.push(await openPollingClient(url));
  const state = { measuring: false, latencies: [] };
  let running = true;
  async function loop(client) {
    while (running) {
      const sentAt = process.hrtime.bigint();
      await client.post(PING);
      let answered = false;
      while (!answered) {
        const packets = await client.receive();
        answered = packets.some((packet) => packet.startsWith(PONG_TEXT));
      }
      if (state.measuring) state.latencies.push(Number(process.hrtime.bigint() - sentAt) / 1e6);
    }
  }
  const loops = clients.map((client) => loop(client).catch((error) => {
    if (running) fail(error.message);
  }));
  await sleep(warmupSeconds);
  await timedWindow(count, seconds, state);
  running = false;
  await Promise.race([Promise.all(loops), sleep(2)]);
  await Promise.all(clients.map((client) => client.close()));
}

/* Connect rate: open and join `count` clients (50 handshakes in flight), timed. */
async function connectRate(url, count, open = openClient) {
  const start = process.hrtime.bigint();
  const clients = await openClients(url, count, () => {}, open);
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  report({ event: "result", clients: count, seconds: elapsed, rate: count / elapsed });
  closeAll(clients);
}

/*
 * A client the way socket.io-client connects by default: opened and joined
 * over long-polling, then upgraded to WebSocket.
 */
async function upgradedClient(url, onPong) {
  const polling = await openPollingClient(url);
  const client = await openClient(url, onPong, polling.sid);
  polling.agent.destroy();
  return client;
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
  } else if (mode === "poll" && seconds !== undefined) {
    await pollingRoundTrips(url, Number(count), Number(warmup), Number(seconds));
  } else if (mode === "connect" && count !== undefined) {
    await connectRate(url, Number(count));
  } else if (mode === "upgrade" && count !== undefined) {
    await connectRate(url, Number(count), upgradedClient);
  } else if (mode === "idle" && count !== undefined) {
    await idle(url, Number(count));
  } else {
    fail("usage: loadgen.js rtt|poll URL CLIENTS WARMUP SECONDS | connect|upgrade|idle URL CLIENTS");
  }
  process.exit(0);
}

main(process.argv.slice(2)).catch((error) => fail(error.stack || String(error)));
