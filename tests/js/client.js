// A socket.io-client 4.x client driven by a test through JSON lines.
//
//   node tests/js/client.js '{"url": "http://127.0.0.1:8080/pingpong",
//                             "path": "/socketio", "transports": ["polling"]}'
//
// "transports" may be left out for the client's default (polling, then the
// upgrade to WebSocket). The script connects at once, then reads commands on
// stdin, one JSON object per line:
//
//   {"op": "emit", "event": "ping", "args": [...]}         emit, no ack asked
//   {"op": "emit", "event": "add", "args": [...], "id": 7}  emit with an ack callback
//   {"op": "batch", "commands": [<emit>, ...]}              emits in one tick
//   {"op": "answer", "event": "question", "args": [...]}    ack the server's
//                                                           "question" with args
//   {"op": "status"}                                        report the transport
//   {"op": "drop"}                                          close the transport, as a
//                                                           network drop (with
//                                                           "reconnection": true in
//                                                           the options, it comes back)
//   {"op": "drop", "away": 1500}                            ... and come back in 1.5 s
//   {"op": "close"}                                         disconnect and exit
//
// and writes what happens on stdout, one JSON object per line:
//
//   {"type": "open", "transport": "polling"}          Engine.IO connection open
//   {"type": "connect", "transport": "polling",       namespace joined
//    "id": "...", "recovered": false}
//   {"type": "upgrade", "transport": "websocket"}
//   {"type": "event", "event": "pong", "args": [...], "ack": false}
//   {"type": "ack", "id": 7, "args": [...]}
//   {"type": "status", "connected": true, "transport": "websocket"}
//   {"type": "connect_error", "message": "..."} / {"type": "disconnect", "reason": "..."}
//   {"type": "bad_command", "message": "..."}
//
// Binary data travels in JSON as {"$binary": "<base64>", "type": "Buffer"}
// ("ArrayBuffer" to send an ArrayBuffer); received binary is reported the same
// way with the JavaScript type it arrived as. Closing stdin closes the client.
"use strict";

const readline = require("readline");
const { io } = require("socket.io-client");

const options = JSON.parse(process.argv[2]);
const answers = {};

function output(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

function typeOf(value) {
  if (Buffer.isBuffer(value)) return "Buffer";
  if (value instanceof ArrayBuffer) return "ArrayBuffer";
  if (ArrayBuffer.isView(value)) return value.constructor.name;
  return null;
}

// JSON from the test -> values to emit (binary markers become binary).
function decode(value) {
  if (Array.isArray(value)) return value.map(decode);
  if (value !== null && typeof value === "object") {
    if (typeof value.$binary === "string") {
      const buffer = Buffer.from(value.$binary, "base64");
      if (value.type === "ArrayBuffer") {
        return buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.length);
      }
      return buffer;
    }
    const result = {};
    for (const key of Object.keys(value)) result[key] = decode(value[key]);
    return result;
  }
  return value;
}

// Received values -> JSON for the test (binary becomes a marker).
function encode(value) {
  const binaryType = typeOf(value);
  if (binaryType !== null) {
    const bytes = binaryType === "ArrayBuffer"
      ? Buffer.from(value)
      : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    return { $binary: bytes.toString("base64"), type: binaryType };
  }
  if (typeof value === "function") return { $function: true };
  if (Array.isArray(value)) return value.map(encode);
  if (value !== null && typeof value === "object") {
    const result = {};
    for (const key of Object.keys(value)) result[key] = encode(value[key]);
    return result;
  }
  return value === undefined ? null : value;
}

const socketOptions = { path: options.path, reconnection: false };
if (options.reconnection) {
  // back at once after a drop (connection state recovery tests)
  Object.assign(socketOptions, {
    reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 100,
    randomizationFactor: 0,
  });
}
if (options.transports) socketOptions.transports = options.transports;
const socket = io(options.url, socketOptions);

function transportName() {
  const engine = socket.io.engine;
  return engine && engine.transport ? engine.transport.name : null;
}

socket.io.on("open", () => {
  // The Engine.IO connection is open; an upgrade, if any, starts right after.
  output({ type: "open", transport: transportName() });
  socket.io.engine.on("upgrade", (transport) => {
    output({ type: "upgrade", transport: transport.name });
  });
});
socket.on("connect", () => {
  output({
    type: "connect", transport: transportName(), id: socket.id,
    recovered: Boolean(socket.recovered),
  });
});
socket.on("connect_error", (error) => {
  output({ type: "connect_error", message: String(error && error.message) });
});
socket.on("disconnect", (reason) => {
  output({ type: "disconnect", reason: reason });
});
socket.onAny((event, ...args) => {
  const ack = args.length > 0 && typeof args[args.length - 1] === "function"
    ? args.pop()
    : null;
  output({ type: "event", event: event, args: encode(args), ack: ack !== null });
  if (ack !== null && Object.prototype.hasOwnProperty.call(answers, event)) {
    ack(...decode(answers[event]));
  }
});

function emit(command) {
  const args = decode(command.args || []);
  if (command.id === undefined || command.id === null) {
    socket.emit(command.event, ...args);
    return;
  }
  socket.emit(command.event, ...args, (...ackArgs) => {
    output({ type: "ack", id: command.id, args: encode(ackArgs) });
  });
}

// Close the Engine.IO transport without a goodbye, as a lost network does:
// socket.io-client reconnects by itself (or after "away" ms).
function drop(command) {
  if (command.away) {
    socket.io.reconnection(false);
    setTimeout(() => {
      socket.io.reconnection(true);
      socket.connect();
    }, command.away);
  }
  socket.io.engine.close();
}

function run(command) {
  switch (command.op) {
    case "emit":
      return emit(command);
    case "batch":
      return command.commands.forEach(emit);
    case "answer":
      answers[command.event] = command.args || [];
      return undefined;
    case "drop":
      return drop(command);
    case "status":
      return output({ type: "status", connected: socket.connected, transport: transportName() });
    case "close":
      return lines.close();
    default:
      return output({ type: "bad_command", message: "unknown op " + JSON.stringify(command.op) });
  }
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  try {
    run(JSON.parse(line));
  } catch (error) {
    output({ type: "bad_command", message: String(error && error.stack) });
  }
});
lines.on("close", () => {
  socket.disconnect();
  // Node exits by itself once the goodbye has been sent; never hang a test.
  setTimeout(() => process.exit(0), 3000).unref();
});
