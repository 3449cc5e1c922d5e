"""The admin view's HTML page: one document, its CSS and JavaScript inline.

It is a Python string rather than a template file so that it ships with the
package without package-data rules and renders without a template engine
(TG apps use Kajiki, Jinja2, Mako or none). Nothing is loaded from
elsewhere: the page works offline. It polls ``<base>/state`` every two
seconds and builds every cell with ``textContent`` (event names, rooms and
user names come from clients, so nothing they send is ever parsed as HTML);
its Content-Security-Policy runs only the script carrying the response's
nonce.
"""

import json
import secrets

#: how often the page asks for the state, in milliseconds
POLL_INTERVAL_MS = 2000

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Socket.IO admin</title>
<style nonce="{{nonce}}">
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .3em; }
h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .2em .6em .2em 0; vertical-align: top;
         border-bottom: 1px solid #e4e4e4; }
th { font-weight: 600; border-bottom: 2px solid #ccc; }
td.sid, td.mono { font-family: ui-monospace, monospace; font-size: .92em; }
td.empty { color: #888; font-style: italic; }
#summary { color: #555; }
#status.error { color: #b00; font-weight: 600; }
.badge { background: #eee; border-radius: 3px; padding: 0 .4em; margin-left: .5em; }
button { font: inherit; font-size: .9em; margin-right: .3em; cursor: pointer; }
button.armed { background: #b00; color: #fff; }
#filter { margin-bottom: .5em; width: 20em; }
#message { margin-left: 1em; }
</style>
</head>
<body>
<h1>Socket.IO admin<span id="mode" class="badge" hidden>read-only</span></h1>
<div><span id="status">loading...</span> <span id="summary"></span>
<span id="message"></span></div>
<h2>Servers</h2><div id="servers"></div>
<h2>Namespaces</h2><div id="namespaces"></div>
<h2>Rooms</h2><div id="rooms"></div>
<h2>PubSub channels</h2><div id="channels"></div>
<h2>Clients</h2>
<input id="filter" type="search" placeholder="filter: user, sid, room, address">
<div id="clients"></div>
<h2>Recent events</h2><div id="events"></div>
<script type="application/json" id="config">{{config}}</script>
<script nonce="{{nonce}}">
"use strict";
const config = JSON.parse(document.getElementById("config").textContent);
const armed = new Map();  // action key -> when the first click expires
let state = null;

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : String(child ?? ""));
  }
  return node;
}

function table(headers, rows, emptyText) {
  if (!rows.length) {
    return el("table", {}, el("tr", {}, el("td", {class: "empty"}, emptyText)));
  }
  const head = el("tr", {}, ...headers.map((header) => el("th", {}, header)));
  const body = rows.map((cells) => el("tr", {}, ...cells.map((cell) =>
    cell instanceof Node && cell.nodeName === "TD" ? cell : el("td", {}, cell))));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor(s % 3600 / 60) + "m";
  return Math.floor(s / 86400) + "d " + Math.floor(s % 86400 / 3600) + "h";
}

function who(user, sid) {
  if (user !== null && user !== undefined) return String(user);
  return sid ? "(anonymous) " + sid : "(anonymous)";
}

function members(list, size) {
  const names = list.map((member) => who(member[member.length - 1], member[0]));
  return names.join(", ") + (size > list.length ? " (+" + (size - list.length)
    + " more)" : "");
}

function actionButton(label, action, key) {
  const live = (armed.get(key) || 0) > Date.now();
  return el("button", {"data-action": action, "data-key": key,
                       class: live ? "armed" : ""}, live ? "confirm?" : label);
}

function clientRow(client) {
  const actions = el("td", {});
  if (!state.read_only) {
    actions.append(actionButton("disconnect", "sid",
      JSON.stringify({sid: client.sid, namespace: client.namespace})));
    if (client.user !== null && client.user !== undefined) {
      actions.append(actionButton("disconnect user", "user",
        JSON.stringify({user: String(client.user)})));
    }
  }
  return [el("td", {class: "user"}, who(client.user, "")),
          client.namespace, el("td", {class: "sid"}, client.sid),
          client.transport, client.address || "", duration(client.age),
          client.rooms.join(", "), (client.channels || []).join(", "),
          el("td", {class: "mono"}, client.server), actions];
}

function matches(client, text) {
  if (!text) return true;
  const fields = [client.user, client.sid, client.namespace, client.address,
                  client.server, ...client.rooms, ...(client.channels || [])];
  return fields.some((field) => String(field ?? "").toLowerCase().includes(text));
}

function render() {
  if (!state) return;
  document.getElementById("mode").hidden = !state.read_only;
  const users = new Map(state.clients.map((client) => [client.sid, client.user]));
  const missing = state.asked - state.servers.length;
  document.getElementById("summary").textContent =
    state.servers.length + " process(es)"
    + (missing > 0 ? " (" + missing + " did not answer)" : "") + ", "
    + state.clients_total + " client(s), updated "
    + new Date(state.generated_at * 1000).toLocaleTimeString();
  const put = (id, node) => document.getElementById(id).replaceChildren(node);
  put("servers", table(["Process", "Uptime", "Clients", "Connections"],
    state.servers.map((server) => [el("td", {class: "mono"}, server.name),
      duration(server.uptime), server.clients, server.connections]),
    "no process answered"));
  put("namespaces", table(["Namespace", "Clients"],
    state.namespaces.map((ns) => [ns.namespace, ns.clients]), "no namespace"));
  put("rooms", table(["Namespace", "Room", "Size", "Members"],
    state.rooms.map((room) => [room.namespace, room.room, room.size,
      members(room.members, room.size)]), "no room"));
  put("channels", table(["Channel", "Size", "Members"],
    state.channels.map((channel) => [channel.channel, channel.size,
      members(channel.members, channel.size)]), "no channel"));
  const text = document.getElementById("filter").value.trim().toLowerCase();
  const listed = state.clients.filter((client) => matches(client, text));
  put("clients", table(["User", "Namespace", "SID", "Transport", "Address", "Age",
                        "Rooms", "Channels", "Process", ""],
    listed.map(clientRow), "no client"));
  put("events", table(["Time", "Namespace", "Event", "SID", "User", "Process",
                       "Direction"],
    state.events.map((event) => [new Date(event.time * 1000).toLocaleTimeString(),
      event.namespace, el("td", {class: "event"}, event.event),
      el("td", {class: "sid"}, event.sid), who(users.get(event.sid), ""),
      el("td", {class: "mono"}, event.server), event.direction]),
    "no event yet"));
}

function setStatus(text, isError) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = isError ? "error" : "";
}

async function refresh() {
  try {
    const response = await fetch(config.base + "/state", {
      credentials: "same-origin", headers: {Accept: "application/json"}});
    const type = response.headers.get("Content-Type") || "";
    if (!response.ok || !type.startsWith("application/json")) {
      setStatus(response.ok || response.status === 401
        ? "not logged in (any more): reload the page"
        : "state unavailable: HTTP " + response.status, true);
      return;
    }
    state = await response.json();
    setStatus("live", false);
    render();
  } catch (error) {
    setStatus("state unavailable: " + error, true);
  }
}

async function act(action, key) {
  if ((armed.get(key) || 0) <= Date.now()) {
    armed.set(key, Date.now() + 3000);  // a second click within 3 s acts
    render();
    setTimeout(render, 3100);
    return;
  }
  armed.delete(key);
  const response = await fetch(config.base + "/disconnect", {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/x-www-form-urlencoded"},
    body: new URLSearchParams(JSON.parse(key))});
  let answer = {};
  try { answer = await response.json(); } catch (error) { answer = {}; }
  document.getElementById("message").textContent = response.ok
    ? "disconnected " + answer.disconnected + " client(s)"
    : "refused: " + (answer.error || "HTTP " + response.status);
  await refresh();
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (button) act(button.dataset.action, button.dataset.key);
});
document.getElementById("filter").addEventListener("input", render);

(async function poll() {
  if (!document.hidden) await refresh();
  setTimeout(poll, config.interval);
})();
</script>
</body>
</html>
"""


def render(base, read_only):
    """The page and the nonce its Content-Security-Policy must name.

    :param base: the URL path of the admin controller (no trailing ``/``).
    :param read_only: whether the page offers no action.
    :returns: ``(html, nonce)``.
    """
    nonce = secrets.token_urlsafe(16)
    config = json.dumps(
        {"base": base, "read_only": read_only, "interval": POLL_INTERVAL_MS}
    )
    # "<" escaped: nothing in the data can close the <script> element
    config = config.replace("<", "\\u003c").replace(">", "\\u003e")
    html = _PAGE.replace("{{nonce}}", nonce).replace("{{config}}", config)
    return html, nonce
