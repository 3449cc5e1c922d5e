"""The Socket.IO admin view (tgext.socketio.SocketIOAdminController) against
real servers and clients: TG's guard on the app's cookie login, the state of
two servers sharing a Redis, disconnecting across both, what is refused
(read-only, GET, another site), the recent events kept only where an admin
is mounted, and the page itself in headless Chromium."""
import json

import pytest
import requests
import socketio

from tgext.socketio import SocketIOAdminController
from tgext.socketio._cluster import events
from tgext.socketio._engine.runtime import runtime_of
from tgext.socketio.exceptions import ConfigurationError

from .apps.admin_app import build_admin_app, login
from .apps.ops_app import build_ops_app
from .test_example_page import browser  # noqa: F401 (a fixture)
from .test_server_runner import gearbox  # noqa: F401 (a fixture)

ADMIN = "/socketio_admin"
WATCH = "/socketio_watch"


def connect(client_factory, server, cookie=None, transports=("websocket",)):
    client = client_factory(socketio.Client(reconnection=False))
    client.connect(server.url, namespaces=["/chat"], socketio_path="socketio",
                   transports=list(transports), wait_timeout=10,
                   headers={"Cookie": cookie} if cookie else {})
    return client


def get(server, path, cookie=None):
    return requests.get(server.url + path, timeout=15, allow_redirects=False,
                        headers={"Cookie": cookie} if cookie else {})


def post(server, path, cookie=None, origin="own", **data):
    headers = {"Cookie": cookie} if cookie else {}
    if origin == "own":
        headers["Origin"] = server.url
    elif origin is not None:
        headers["Origin"] = origin
    return requests.post(server.url + path, data=data, headers=headers, timeout=15,
                         allow_redirects=False)


def two_servers(live_server, own_redis):
    config = {"socketio.message_queue": own_redis.url, "socketio.channel": "admin"}
    return [live_server(build_admin_app(config)) for _ in range(2)]


# -- the guard --------------------------------------------------------------------


@pytest.mark.parametrize("arguments", [(), (None,), ("manage",)],
                         ids=["nothing", "none", "not-a-predicate"])
def test_an_admin_without_a_predicate_is_refused(arguments):
    with pytest.raises(ConfigurationError, match="TG predicate"):
        SocketIOAdminController(*arguments)


def test_anonymous_users_are_sent_to_log_in_others_refused(live_server):
    server = live_server(build_admin_app())
    for path in (ADMIN + "/", ADMIN + "/state"):
        anonymous = get(server, path)
        assert anonymous.status_code == 302, path
        assert "/login" in anonymous.headers["Location"]
    anonymous = post(server, ADMIN + "/disconnect", user="bob")
    assert anonymous.status_code == 302
    alice = login(server.url, "alice")
    for path in (ADMIN + "/", ADMIN + "/state", WATCH + "/state"):
        assert get(server, path, alice).status_code == 403, path
    assert post(server, ADMIN + "/disconnect", alice, user="bob").status_code == 403
    # the read-only view's permission opens nothing else
    dave = login(server.url, "dave")
    assert get(server, ADMIN + "/state", dave).status_code == 403
    assert get(server, WATCH + "/state", dave).status_code == 200


# -- two servers sharing a Redis ------------------------------------------------


def test_state_lists_the_clients_of_both_servers(
    own_redis, live_server, client_factory, wait_for
):
    servers = two_servers(live_server, own_redis)
    carol = login(servers[0].url, "carol")
    cookies = {name: login(servers[0].url, name) for name in ("alice", "bob")}
    alice = connect(client_factory, servers[0], cookies["alice"])
    bob = connect(client_factory, servers[1], cookies["bob"], transports=("polling",))
    anonymous = connect(client_factory, servers[1])
    assert alice.call("join", "room-1", namespace="/chat", timeout=5) is True
    assert bob.call("join", "room-1", namespace="/chat", timeout=5) is True
    assert bob.call("subscribe", "news", namespace="/chat", timeout=5) == "news"
    assert anonymous.call("say", "hi", namespace="/chat", timeout=5) == "hi"
    # what a client names its events is shown, bounded, never run
    alice.emit("<img src=x onerror=alert(1)>" + "x" * 200, namespace="/chat")

    def state():
        response = get(servers[1], ADMIN + "/state", carol)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("application/json")
        return response.json()

    wait_for(lambda: any(event["event"].startswith("<img")
                         for event in state()["events"]), timeout=10)
    overview = state()
    assert overview["asked"] == 2 and overview["read_only"] is False
    # (both servers are in this process: one host:pid, two answers)
    assert len(overview["servers"]) == 2
    assert sorted(server["clients"] for server in overview["servers"]) == [1, 2]
    assert all(server["uptime"] > 0 for server in overview["servers"])
    sids = {client.get_sid("/chat"): name for client, name in
            ((alice, "alice"), (bob, "bob"), (anonymous, None))}
    by_sid = {client["sid"]: client for client in overview["clients"]}
    assert {sid: client["user"] for sid, client in by_sid.items()} == sids
    alice_sid, bob_sid = alice.get_sid("/chat"), bob.get_sid("/chat")
    assert by_sid[alice_sid]["transport"] == "websocket"
    assert by_sid[bob_sid]["transport"] == "polling"
    assert by_sid[alice_sid]["rooms"] == by_sid[bob_sid]["rooms"] == ["room-1"]
    assert by_sid[bob_sid]["channels"] == ["news"]
    assert by_sid[alice_sid]["address"] == "127.0.0.1"
    assert overview["clients_total"] == 3
    assert overview["namespaces"] == [{"namespace": "/chat", "clients": 3}]
    # a room of the cluster: its members on both servers
    assert [(room["room"], room["size"], sorted(map(tuple, room["members"])))
            for room in overview["rooms"]] == [
        ("room-1", 2, sorted([(alice_sid, "alice"), (bob_sid, "bob")]))]
    assert [(channel["channel"], channel["members"])
            for channel in overview["channels"]] == [
        ("news", [[bob_sid, "/chat", "bob"]])]
    received = {(event["sid"], event["event"]) for event in overview["events"]}
    assert {(alice_sid, "join"), (bob_sid, "join"), (bob_sid, "subscribe"),
            (anonymous.get_sid("/chat"), "say")} <= received
    long_names = [event["event"] for event in overview["events"]
                  if event["event"].startswith("<img")]
    assert long_names == [("<img src=x onerror=alert(1)>" + "x" * 200)[:100]]
    assert all(event["direction"] == "in" for event in overview["events"])


def test_the_page_is_self_contained_and_guarded_by_its_policy(live_server):
    server = live_server(build_admin_app())
    carol = login(server.url, "carol")
    for path in (ADMIN, ADMIN + "/", ADMIN + "/index"):
        page = get(server, path, carol)
        assert page.status_code == 200, path
        assert page.headers["Content-Type"].startswith("text/html")
        assert '"base": "/socketio_admin"' in page.text
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    nonce = policy.split("'nonce-")[1].split("'")[0]
    assert page.text.count('nonce="%s"' % nonce) == 2  # the style and the script
    # nothing from elsewhere: no URL of another host, no file to load
    assert "http://" not in page.text and "https://" not in page.text
    assert " src=" not in page.text and "<link" not in page.text
    assert nonce not in get(server, ADMIN + "/", carol).text  # one per response


def test_disconnecting_a_user_reaches_both_servers(
    own_redis, live_server, client_factory, wait_for
):
    servers = two_servers(live_server, own_redis)
    carol = login(servers[0].url, "carol")
    cookies = {name: login(servers[0].url, name) for name in ("alice", "bob")}
    clients = {(name, index): connect(client_factory, server, cookies[name])
               for index, server in enumerate(servers) for name in ("alice", "bob")}

    # refused: GET, another site, no origin at all, an incomplete request
    kick = ADMIN + "/disconnect"
    assert get(servers[0], kick + "?user=bob", carol).status_code == 405
    refused = post(servers[0], kick, carol, origin="http://evil.example", user="bob")
    assert refused.status_code == 403
    assert refused.json() == {"error": "cross-site request refused"}
    assert post(servers[0], kick, carol, origin=None, user="bob").status_code == 403
    assert post(servers[0], kick, carol, origin="null", user="bob").status_code == 403
    assert post(servers[0], kick, carol, sid="abc").status_code == 400
    assert post(servers[0], kick, carol).status_code == 400
    # a Referer of this site will do where no Origin is sent
    referer_only = requests.post(
        servers[0].url + kick, data={"user": "nobody"}, timeout=15,
        headers={"Cookie": carol, "Referer": servers[0].url + ADMIN + "/"})
    assert referer_only.json() == {"disconnected": 0}
    # read-only: the page shows, the action is refused
    dave = login(servers[0].url, "dave")
    assert get(servers[0], WATCH + "/state", dave).json()["read_only"] is True
    assert post(servers[0], WATCH + "/disconnect", dave, user="bob").status_code == 403
    assert all(client.connected for client in clients.values())

    # one client, by its sid
    one = clients["alice", 1]
    kicked = post(servers[0], kick, carol, sid=one.get_sid("/chat"), namespace="/chat")
    assert kicked.json() == {"disconnected": 1}
    wait_for(lambda: not one.connected)

    # bob, everywhere
    assert post(servers[0], kick, carol, user="bob").json() == {"disconnected": 2}
    wait_for(lambda: not clients["bob", 0].connected
             and not clients["bob", 1].connected)
    assert clients["alice", 0].connected
    listed = get(servers[1], ADMIN + "/state", carol).json()["clients"]
    assert [client["user"] for client in listed] == ["alice"]


def test_workers_each_answer_for_their_own_clients(
    gearbox, redis_server, client_factory, wait_for  # noqa: F811
):
    server = gearbox(
        app="tests.apps.admin_app:make_app",
        server_extra="workers = 2",
        extra="socketio.message_queue = %s\nsocketio.channel = admin-workers\n"
        "anypubsub.backend = redis\nanypubsub.host = %s" % (redis_server, redis_server),
    )
    server.wait_for_log("with 2 worker processes")
    carol = login(server.url, "carol")
    alice = login(server.url, "alice")
    # a worker hears the cluster operations from when it is ready, before
    # any request built its engines
    assert get(server, ADMIN + "/state", carol).json()["asked"] == 2
    # the router hands each new connection to the next process: connect
    # until each process holds a client
    sids_by_pid = {}
    for _attempt in range(8):
        client = connect(client_factory, server, alice)
        pid = client.call("pid", namespace="/chat", timeout=10)
        sids_by_pid.setdefault(pid, []).append(client.get_sid("/chat"))
        if len(sids_by_pid) == 2:
            break
    assert len(sids_by_pid) == 2

    overview = get(server, ADMIN + "/state", carol).json()
    assert overview["asked"] == 2
    assert {int(s["name"].rsplit(":", 1)[1]) for s in overview["servers"]} == set(
        sids_by_pid)
    for client in overview["clients"]:
        pid = int(client["server"].rsplit(":", 1)[1])
        assert client["sid"] in sids_by_pid[pid] and client["user"] == "alice"
    # each worker kept the events its own clients sent (forked with the log)
    pids_of_events = {int(event["server"].rsplit(":", 1)[1])
                      for event in overview["events"] if event["event"] == "pid"}
    assert pids_of_events == set(sids_by_pid)


# -- the recent events ------------------------------------------------------------


def test_events_are_kept_only_where_an_admin_is_mounted(
    live_server, client_factory, wait_for
):
    plain = live_server(build_ops_app())
    client = connect(client_factory, plain)
    client.call("join", "room", namespace="/chat", timeout=5)
    plain_runtime = runtime_of(plain.app_config)
    assert plain_runtime.event_log is None
    assert all(engine.event_log is None for engine in plain_runtime.engines)

    admin = live_server(build_admin_app())
    runtime = runtime_of(admin.app_config)
    # kept from the start, before anyone opened the page
    assert runtime.event_log is not None
    client = connect(client_factory, admin)
    for number in range(events.SIZE + 20):
        client.emit("say", number, namespace="/chat")
    # handled in order: when its answer comes, every event before it was seen
    assert client.call("say", "last", namespace="/chat", timeout=5) == "last"
    kept = runtime.event_log.recent()
    assert len(kept) == events.SIZE
    assert set(kept[0]) == {"time", "namespace", "event", "sid", "direction"}
    assert all("last" not in json.dumps(entry) for entry in kept)  # no arguments


# -- the page in a browser ------------------------------------------------------------


def open_logged_in(browser, server, cookie, path):  # noqa: F811
    page = browser(server.url + "/")
    for pair in cookie.split("; "):
        name, value = pair.split("=", 1)
        page.send("Network.setCookie", name=name, value=value, url=server.url)
    page.devtools.events.clear()
    page.send("Page.navigate", url=server.url + path)
    page.wait_for_event("Page.loadEventFired")
    return page


CELLS = "Array.from(document.querySelectorAll('#%s td.%s'), cell => cell.textContent)"


def test_the_page_shows_clients_and_disconnects_in_chromium(
    own_redis, live_server, client_factory, wait_for, browser  # noqa: F811
):
    servers = two_servers(live_server, own_redis)
    cookies = {name: login(servers[0].url, name) for name in ("alice", "bob", "carol")}
    alice = connect(client_factory, servers[0], cookies["alice"])
    bob = connect(client_factory, servers[1], cookies["bob"])
    hostile = "<b id=injected>bold</b>"
    alice.emit(hostile, namespace="/chat")

    page = open_logged_in(browser, servers[0], cookies["carol"], ADMIN + "/")
    page.wait_until("%s.includes('bob')" % (CELLS % ("clients", "user")), timeout=10)
    assert sorted(page.evaluate(CELLS % ("clients", "user"))) == ["alice", "bob"]
    page.wait_until("%s.length > 0" % (CELLS % ("events", "event")), timeout=10)
    # shown as text, never as markup
    assert page.evaluate(CELLS % ("events", "event")) == [hostile]
    assert page.evaluate("document.getElementById('injected')") is None
    assert page.evaluate("document.getElementById('status').textContent") == "live"

    # bob's "disconnect user", clicked twice (the first click only arms it)
    button = "button[data-action=user][data-key='{\"user\":\"bob\"}']"
    page.wait_until("document.querySelector(%s)" % json.dumps(button))
    page.evaluate("document.querySelector(%s).scrollIntoView()" % json.dumps(button))
    page.click(button)
    page.wait_until("document.querySelector(%s).textContent === 'confirm?'"
                    % json.dumps(button))
    page.click(button)
    wait_for(lambda: not bob.connected, timeout=10)
    page.wait_until("document.getElementById('message').textContent"
                    " === 'disconnected 1 client(s)'")
    page.wait_until("!%s.includes('bob')" % (CELLS % ("clients", "user")), timeout=10)
    assert alice.connected


def test_the_read_only_page_has_no_buttons_in_chromium(
    live_server, client_factory, browser  # noqa: F811
):
    server = live_server(build_admin_app())
    cookies = {name: login(server.url, name) for name in ("alice", "dave")}
    connect(client_factory, server, cookies["alice"])
    page = open_logged_in(browser, server, cookies["dave"], WATCH + "/")
    page.wait_until("%s.includes('alice')" % (CELLS % ("clients", "user")), timeout=10)
    assert page.evaluate("document.querySelectorAll('button').length") == 0
    assert page.evaluate("document.getElementById('mode').hidden") is False
