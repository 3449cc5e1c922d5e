"""Cluster operations (tgext.socketio.fetch_clients, disconnect_clients,
emit_with_acks) against real servers and clients: in one process, across
two servers sharing a Redis, from a guarded controller action, from a
handler and from code outside any server."""
import base64

import gevent
import pytest
import redis
import requests
import socketio

from tgext.socketio import disconnect_clients, emit_with_acks, fetch_clients
from tgext.socketio._engine.runtime import runtime_of

from .apps import ops_app
from .apps.ops_app import build_ops_app, login
from .test_server_runner import gearbox  # noqa: F401 (a fixture)


@pytest.fixture(autouse=True)
def forget_left():
    ops_app.LEFT.clear()


def connect(client_factory, server, cookie=None, transports=("websocket",),
            namespaces=("/chat",), questions=None, answer_after=0):
    """A python-socketio client of ``server`` (logged in with ``cookie``);
    ``questions`` collects the "question" events it answers (after
    ``answer_after`` seconds)."""
    client = client_factory(socketio.Client(reconnection=False))
    if questions is not None:
        def on_question(text):
            questions.append(text)
            gevent.sleep(answer_after)
            return "yes", client.get_sid("/chat")

        client.on("question", on_question, namespace="/chat")
    client.connect(server.url, namespaces=list(namespaces), socketio_path="socketio",
                   transports=list(transports), wait_timeout=10,
                   headers={"Cookie": cookie} if cookie else {})
    return client


def get(server, path, cookie=None, **params):
    return requests.get(server.url + path, params=params, timeout=15,
                        headers={"Cookie": cookie} if cookie else {},
                        allow_redirects=False)


# -- one process, no message queue ----------------------------------------------


def test_an_operator_lists_and_kicks_a_user_from_a_guarded_action(
    live_server, client_factory, wait_for
):
    server = live_server(build_ops_app())
    alice, bob, carol = (login(server.url, name) for name in ("alice", "bob", "carol"))
    alices = [connect(client_factory, server, alice, transports=transports)
              for transports in (("websocket",), ("polling",))]
    bob_client = connect(client_factory, server, bob, namespaces=("/chat", "/lobby"))
    bob_client.call("join", "room-1", namespace="/chat", timeout=5)
    alices[0].call("join", "room-1", namespace="/chat", timeout=5)
    gone = []
    bob_client.on("disconnect", lambda *reason: gone.append("/chat"), namespace="/chat")

    # TG's own guard: anonymous users are sent to log in, others refused
    anonymous = get(server, "/ops/clients")
    assert anonymous.status_code == 302
    assert "/login" in anonymous.headers["Location"]
    assert get(server, "/ops/clients", alice).status_code == 403
    assert get(server, "/ops/kick", alice, user="bob").status_code == 403

    listed = get(server, "/ops/clients", carol).json()["clients"]
    assert sorted((client["user"], client["namespace"]) for client in listed) == [
        ("alice", "/chat"), ("alice", "/chat"), ("bob", "/chat"), ("bob", "/lobby")]
    by_sid = {client["sid"]: client for client in listed}
    assert by_sid[alices[0].get_sid("/chat")]["transport"] == "websocket"
    assert by_sid[alices[0].get_sid("/chat")]["rooms"] == ["room-1"]
    assert by_sid[alices[1].get_sid("/chat")]["transport"] == "polling"
    assert by_sid[alices[1].get_sid("/chat")]["rooms"] == []
    assert by_sid[bob_client.get_sid("/chat")]["address"] == "127.0.0.1"
    assert all(client["connected_at"] > 0 and client["server"] for client in listed)
    room = get(server, "/ops/clients", carol, namespace="/chat", room="room-1").json()
    assert sorted(client["user"] for client in room["clients"]) == ["alice", "bob"]

    # bob, everywhere: both namespaces, recv_disconnect ran for each
    assert get(server, "/ops/kick", carol, user="bob").json() == {"disconnected": 2}
    wait_for(lambda: gone == ["/chat"] and not bob_client.connected)
    assert sorted(ops_app.LEFT) == [("bob", "/chat"), ("bob", "/lobby")]
    for client in alices:
        assert client.call("whoami", namespace="/chat", timeout=5)[0] == "alice"
    listed = get(server, "/ops/clients", carol).json()["clients"]
    assert sorted(client["user"] for client in listed) == ["alice", "alice"]


def test_disconnect_by_sid_and_by_room(live_server, client_factory, wait_for):
    server = live_server(build_ops_app())
    carol = login(server.url, "carol")
    clients = [connect(client_factory, server) for _ in range(3)]
    for client in clients[:2]:
        client.call("join", "leaving", namespace="/chat", timeout=5)
    kicked = get(server, "/ops/kick", carol, namespace="/chat",
                 room=clients[2].get_sid("/chat")).json()
    assert kicked == {"disconnected": 1}
    wait_for(lambda: not clients[2].connected)
    assert all(client.connected for client in clients[:2])
    kicked = get(server, "/ops/kick", carol, namespace="/chat", room="leaving").json()
    assert kicked == {"disconnected": 2}
    wait_for(lambda: not any(client.connected for client in clients))
    assert get(server, "/ops/clients", carol).json() == {"clients": []}
    # no message queue: this process is the whole cluster, nothing listens
    assert runtime_of(server.app_config).cluster is None
    with pytest.raises(ValueError, match="to= .* or user="):
        disconnect_clients("/chat")


def test_acks_with_a_timeout_and_a_client_that_does_not_answer(
    live_server, client_factory
):
    server = live_server(build_ops_app())
    asked = {name: [] for name in ("fast", "slow", "elsewhere")}
    fast = connect(client_factory, server, questions=asked["fast"])
    slow = connect(client_factory, server, questions=asked["slow"], answer_after=3)
    connect(client_factory, server, questions=asked["elsewhere"])
    for client in (fast, slow):
        client.call("join", "poll", namespace="/chat", timeout=5)
    acks = get(server, "/ops/ask", login(server.url, "carol"), room="poll",
               timeout="2").json()
    assert acks == {"answers": {fast.get_sid("/chat"): ["yes", fast.get_sid("/chat")]},
                    "missing": [slow.get_sid("/chat")], "silent_servers": 0}
    assert asked == {"fast": ["ready?"], "slow": ["ready?"], "elsewhere": []}


# -- two servers sharing a Redis -----------------------------------------------------


def two_servers(live_server, own_redis, **extra):
    config = {"socketio.message_queue": own_redis.url, "socketio.channel": "ops"}
    config.update(extra)
    return [live_server(build_ops_app(config)) for _ in range(2)]


def test_operations_reach_the_clients_of_both_servers(
    own_redis, live_server, client_factory, wait_for
):
    servers = two_servers(live_server, own_redis)
    carol = login(servers[0].url, "carol")
    cookies = {name: login(servers[0].url, name) for name in ("alice", "bob")}
    questions = []
    clients = {
        (name, index): connect(client_factory, server, cookies[name],
                               questions=questions)
        for index, server in enumerate(servers)
        for name in ("alice", "bob")
    }
    for client in clients.values():
        client.call("join", "everyone", namespace="/chat", timeout=5)
    for server in servers:
        assert runtime_of(server.app_config).cluster is not None

    # listed from either server: the four clients
    for server in servers:
        listed = get(server, "/ops/clients", carol).json()["clients"]
        assert sorted(client["sid"] for client in listed) == sorted(
            client.get_sid("/chat") for client in clients.values())

    # acks from a handler on server 0, answered on both servers
    poll = clients["alice", 0].call("poll_room", ("everyone", 2), namespace="/chat",
                                    timeout=10)
    assert poll["missing"] == []
    assert sorted(poll["answers"]) == sorted(
        client.get_sid("/chat") for client in clients.values())
    assert all(answer == ["yes", sid] for sid, answer in poll["answers"].items())

    # bob kicked from server 1's controller: gone from both servers
    assert get(servers[1], "/ops/kick", carol, user="bob").json() == {"disconnected": 2}
    wait_for(lambda: not clients["bob", 0].connected and not clients["bob", 1].connected)
    assert clients["alice", 1].call("whoami", namespace="/chat", timeout=5)[0] == "alice"
    listed = get(servers[0], "/ops/clients", carol).json()["clients"]
    assert sorted(client["user"] for client in listed) == ["alice", "alice"]


def test_code_outside_the_servers_acts_through_the_message_queue(
    own_redis, live_server, client_factory, wait_for
):
    servers = two_servers(live_server, own_redis)
    clients = [connect(client_factory, server, login(server.url, "bob"))
               for server in servers]
    # as a cron job would: no app, only the queue's URL
    where = dict(message_queue=own_redis.url, channel="ops")
    listed = fetch_clients("/chat", user="bob", **where)
    assert sorted(client.sid for client in listed) == sorted(
        client.get_sid("/chat") for client in clients)
    assert {client.rooms for client in listed} == {()}
    # (python-socketio's client acknowledges an event it has no handler for)
    acks = emit_with_acks("question", "anyone?", namespace="/chat", timeout=2, **where)
    assert acks.answers == {client.get_sid("/chat"): [] for client in clients}
    assert acks.missing == () and acks.silent_servers == 0
    assert disconnect_clients(user="bob", **where) == 2
    wait_for(lambda: not any(client.connected for client in clients))
    assert fetch_clients(**where) == []


def test_a_kicked_user_cannot_recover_a_dropped_session(
    own_redis, live_server, client_factory, wait_for
):
    servers = two_servers(
        live_server, own_redis,
        **{"socketio.connection_state_recovery": "30",
           "socketio.ping_interval": "1", "socketio.ping_timeout": "3"})
    client = connect(client_factory, servers[0], login(servers[0].url, "bob"))
    assert client.call("whoami", namespace="/chat", timeout=5)[0] == "bob"
    engine = runtime_of(servers[0].app_config).engines[0]
    # the transport lost, as the server finds out about a lost network
    engine.drop_connection(
        engine.manager.eio_sid_from_sid(client.get_sid("/chat"), "/chat"))
    wait_for(lambda: len(engine.recovery.dropped) == 1)
    keys = redis.Redis.from_url(own_redis.url)
    assert len(keys.keys("ops:recovery:session:*")) == 1
    assert disconnect_clients(user="bob", message_queue=own_redis.url,
                              channel="ops") == 0
    assert engine.recovery.dropped == {}
    assert keys.keys("ops:recovery:session:*") == []
    keys.connection_pool.disconnect()
    client.disconnect()


def test_listeners_come_back_with_redis(own_redis, live_server, client_factory, wait_for):
    servers = two_servers(live_server, own_redis)
    clients = [connect(client_factory, server) for server in servers]
    where = dict(message_queue=own_redis.url, channel="ops")
    own_redis.stop()
    with pytest.raises(redis.ConnectionError):
        fetch_clients(**where)
    own_redis.start()

    def both_listed():
        try:
            return len(fetch_clients("/chat", timeout=1, **where)) == 2
        except redis.ConnectionError:
            return False

    wait_for(both_listed, timeout=15, interval=0.2)
    assert all(client.connected for client in clients)


def test_the_official_client_answers_and_is_disconnected(
    own_redis, live_server, wait_for
):
    """socket.io-client 4.x (node) on two servers: one answers the question,
    one does not (missing); a client disconnected by sid sees "io server
    disconnect" (it does not reconnect by itself)."""
    from .jsclient import JsClient

    servers = two_servers(live_server, own_redis)
    clients = [JsClient(server.url + "/chat", ["websocket"], "/socketio")
               for server in servers * 2]
    try:
        sids = [client.wait_for_type("connect", timeout=10)["id"] for client in clients]
        for client in clients[:3]:
            assert client.call("join", "poll", timeout=10)
        clients[0].send("answer", event="question", args=["yes", {"from": "node"}])
        clients[1].send("answer", event="question",
                        args=[{"$binary": base64.b64encode(b"bytes too").decode()}])
        for client in clients[:2]:
            client.transport()  # a round trip: node has taken its answer
        where = dict(message_queue=own_redis.url, channel="ops")
        acks = emit_with_acks("question", "ready?", namespace="/chat", to="poll",
                              timeout=3, **where)
        assert acks.answers == {sids[0]: ["yes", {"from": "node"}],
                                sids[1]: [b"bytes too"]}
        assert acks.missing == (sids[2],)  # it got the question, never answered
        asked = clients[2].wait(
            lambda message: message.get("event") == "question", 5, seen=True)
        assert asked["args"][0] == "ready?" and asked["ack"] is True
        assert clients[3].events("question") == []  # not in the room
        assert disconnect_clients("/chat", to=sids[3], **where) == 1
        gone = clients[3].wait_for_type("disconnect", timeout=10)
        assert gone["reason"] == "io server disconnect"
    finally:
        for client in clients:
            client.close()


# -- workers = 2 under gearbox serve: two real processes ------------------------------


def test_workers_answer_operations_from_a_controller_action(
    gearbox, redis_server, client_factory, wait_for  # noqa: F811
):
    server = gearbox(
        app="tests.apps.ops_app:make_app",
        server_extra="workers = 2",
        extra="socketio.message_queue = %s\nsocketio.channel = ops-workers"
        % redis_server,
    )
    server.wait_for_log("with 2 worker processes")
    carol = login(server.url, "carol")
    cookies = {name: login(server.url, name) for name in ("alice", "bob")}
    questions = []
    clients, pids = {}, {}
    # the router hands each new connection to the next process: connect
    # until each user has a client on each of the two
    for attempt in range(12):
        name = ("alice", "bob", "bob", "alice")[attempt % 4]
        client = connect(client_factory, server, cookies[name], questions=questions,
                         answer_after=6 if attempt == 0 else 0)
        user, pid = client.call("whoami", namespace="/chat", timeout=10)
        assert user == name
        clients[client.get_sid("/chat")] = (name, pid, client)
        pids.setdefault(name, set()).add(pid)
        if all(len(pids.get(who, ())) == 2 for who in ("alice", "bob")):
            break
    assert pids["alice"] == pids["bob"] and len(pids["alice"]) == 2
    for _name, _pid, client in clients.values():
        client.call("join", "hall", namespace="/chat", timeout=10)

    # listed from whichever process serves the request: all of them, both pids
    listed = get(server, "/ops/clients", carol, namespace="/chat").json()["clients"]
    assert sorted(client["sid"] for client in listed) == sorted(clients)
    assert {client["server"].rsplit(":", 1)[1] for client in listed} == {
        str(pid) for pid in pids["alice"]}
    assert all(client["rooms"] == ["hall"] for client in listed)

    # acknowledgements from both processes; the first client answers too late
    slow = next(iter(clients))
    acks = get(server, "/ops/ask", carol, room="hall", timeout="3").json()
    assert acks["missing"] == [slow]
    assert sorted(acks["answers"]) == sorted(sid for sid in clients if sid != slow)
    assert acks["silent_servers"] == 0

    # bob, from a controller action of one process: gone from both
    bobs = [client for name, _pid, client in clients.values() if name == "bob"]
    kicked = get(server, "/ops/kick", carol, user="bob").json()
    assert kicked == {"disconnected": len(bobs)}
    wait_for(lambda: not any(client.connected for client in bobs), timeout=10)
    alices = [client for name, _pid, client in clients.values() if name == "alice"]
    for client in alices:
        assert client.call("whoami", namespace="/chat", timeout=10)[0] == "alice"
    listed = get(server, "/ops/clients", carol).json()["clients"]
    assert sorted(client["user"] for client in listed) == ["alice"] * len(alices)
