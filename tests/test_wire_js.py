"""The official JavaScript client, socket.io-client 4.x under node, against a
real server, over long-polling, WebSocket, and polling upgraded to WebSocket.

Each client is ``tests/js/client.js`` in a node process: the test writes JSON
commands to its stdin and reads what the client saw, one JSON line each, from
its stdout (see the script's header for the protocol).
"""
import base64
import importlib.util
import os

import pytest

from tgext.socketio import BaseNamespace
from tgext.socketio.pubsub import PubSubTGNamespace

from .conftest import build_app, controller_for
from .jsclient import JsClient

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
EXAMPLE_APP = os.path.join(TOP, "examples", "pingpong", "app.py")

#: test id -> the client's ``transports`` option (None: its default, polling
#: then the upgrade to WebSocket)
TRANSPORTS = {"polling": ["polling"], "websocket": ["websocket"], "upgrade": None}
#: test id -> the transport the client opens with, then the one it ends on
FIRST_TRANSPORT = {"polling": "polling", "websocket": "websocket", "upgrade": "polling"}
LAST_TRANSPORT = {"polling": "polling", "websocket": "websocket", "upgrade": "websocket"}

all_transports = pytest.mark.parametrize("transport", list(TRANSPORTS))


class PingPong(BaseNamespace):
    def on_ping(self, attack):
        if attack["type"] == "fireball":
            for _ in range(10):
                self.emit("pong", {"sound": "bang!"})
        else:
            self.emit("pong", {"sound": "pong"})

    def on_add(self, a, b):
        return a + b

    def on_pair(self):
        return "one", 2

    def on_nothing(self):
        return None

    def on_echo(self, value):
        return value

    def on_reverse_bytes(self, blob):
        self.emit("bytes back", {"nested": [blob]}, blob[::-1])
        return type(blob).__name__, blob[::-1]

    def on_ask_client(self, question):
        answer = self.call("question", question, timeout=5)
        return "client said", answer

    def on_ask_with_callback(self, question):
        self.emit("question", question, callback=self._got_answer)

    def _got_answer(self, *args):
        self.emit("answer received", *args)

    def on_secret(self):
        return "the secret"


class Guarded(PingPong):
    def get_initial_acl(self):
        # as in gevent-socketio, the ACL covers the recv_* hooks too
        return {"recv_connect", "recv_disconnect", "on_ping"}


def js_bytes(data, type="Buffer"):
    """How client.js writes (and reads) binary data in its JSON lines."""
    return {"$binary": base64.b64encode(data).decode("ascii"), "type": type}


@pytest.fixture
def js_client(live_server):
    """Factory: ``js_client(server, "/pingpong", "polling")`` -> a connected JsClient.

    Depends on ``live_server`` so that clients close before servers stop.
    """
    clients = []

    def connect(server, namespace="/pingpong", transport="websocket"):
        client = JsClient(server.url + namespace, TRANSPORTS[transport], server.resource)
        clients.append(client)
        opened = client.wait(lambda m: m["type"] in ("open", "connect_error"))
        assert opened == {"type": "open", "transport": FIRST_TRANSPORT[transport]}
        connected = client.wait(lambda m: m["type"] in ("connect", "connect_error", "disconnect"))
        assert connected["type"] == "connect", connected
        return client

    yield connect
    for client in clients:
        client.close()


@pytest.fixture
def pingpong(serve, js_client):
    """Factory: ``pingpong(transport)`` -> a client of PingPong on /pingpong."""

    def connect(transport):
        return js_client(serve({"pingpong": PingPong}), "/pingpong", transport)

    return connect


# -- transports ---------------------------------------------------------------


@all_transports
def test_client_ends_on_the_transport_of_its_mode(pingpong, transport):
    client = pingpong(transport)
    if transport == "upgrade":
        upgrade = client.wait_for_type("upgrade", seen=True)  # may come before "connect"
        assert upgrade == {"type": "upgrade", "transport": "websocket"}
    assert client.transport() == LAST_TRANSPORT[transport]
    assert client.call("add", 2, 3) == [5]


# -- events -------------------------------------------------------------------


@all_transports
def test_ping_gets_one_pong(pingpong, transport):
    client = pingpong(transport)
    client.emit("ping", {"type": "ping"})
    pong = client.wait(lambda message: message["type"] == "event")
    assert pong == {"type": "event", "event": "pong", "args": [{"sound": "pong"}], "ack": False}


@all_transports
def test_fireball_gets_exactly_ten_pongs(pingpong, transport):
    client = pingpong(transport)
    client.emit("ping", {"type": "fireball"})
    # Events of one namespace are handled in order: once the next event is
    # acknowledged, every pong of the fireball has been sent before it.
    assert client.call("nothing") == []
    assert client.events("pong") == [[{"sound": "bang!"}]] * 10
    # no eleventh (an upgrade may be told meanwhile)
    assert [line for line in client.pending_lines() if line["type"] == "event"] == []


# -- acknowledgements ---------------------------------------------------------


@all_transports
def test_return_value_is_the_clients_ack_callback_arguments(pingpong, transport):
    client = pingpong(transport)
    assert client.call("add", 2, 3) == [5]
    assert client.call("pair") == ["one", 2]
    assert client.call("nothing") == []
    assert client.call("echo", {"a": [1, None, "é"]}) == [{"a": [1, None, "é"]}]


@all_transports
def test_call_returns_the_clients_ack_arguments(pingpong, transport):
    client = pingpong(transport)
    client.send("answer", event="question", args=["yes", 2])
    assert client.call("ask_client", "life?") == ["client said", ["yes", 2]]
    questions = [m for m in client.messages if m.get("event") == "question"]
    assert questions == [{"type": "event", "event": "question", "args": ["life?"], "ack": True}]


@all_transports
def test_emit_callback_gets_the_clients_ack_arguments(pingpong, transport):
    client = pingpong(transport)
    client.send("answer", event="question", args=["yes", 2])
    client.emit("ask_with_callback", "callback?")
    received = client.wait(lambda m: m["type"] == "event" and m["event"] == "answer received")
    assert received["args"] == ["yes", 2]
    assert client.events("question") == [["callback?"]]


# -- errors -------------------------------------------------------------------


@all_transports
@pytest.mark.parametrize("event, error", [
    ("nope", ["no_such_method", 'The method "on_nope" was not found']),
    ("bad-name!", ["unallowed_event_name", "name must only contains alpha numerical characters"]),
], ids=["no_such_method", "unallowed_event_name"])
def test_refused_event_sends_error_event_with_name_and_message(pingpong, transport, event, error):
    client = pingpong(transport)
    client.emit(event, "x")
    assert client.call("nothing") == []  # handled in order: the error came first
    assert client.events("error") == [error]


@all_transports
def test_acl_denied_event_sends_method_access_denied(serve, js_client, transport):
    client = js_client(serve({"guarded": Guarded}), "/guarded", transport)
    client.emit("secret")
    assert client.call("ping", {"type": "ping"}) == []
    assert client.events("error") == [
        ["method_access_denied", 'You do not have access to method "on_secret"']
    ]
    assert client.events("pong") == [[{"sound": "pong"}]]


class MembersOnly(BaseNamespace):
    def get_initial_acl(self):
        return {"on_ping"}  # recv_connect is not allowed: every client is refused


@all_transports
def test_refused_namespace_gets_error_then_a_clean_disconnect(serve, js_client, transport):
    # A DISCONNECT carrying a reason would be a parse error for socket.io-client
    # 4.x, closing the whole connection: the refusal must end only the namespace.
    client = js_client(serve({"members": MembersOnly}), "/members", transport)
    disconnect = client.wait_for_type("disconnect", seen=True)
    assert disconnect == {"type": "disconnect", "reason": "io server disconnect"}
    assert client.events("error") == [
        ["method_access_denied", 'You do not have access to method "recv_connect"']
    ]


@all_transports
def test_unknown_namespace_gives_connect_error_with_a_message(serve, live_server, transport):
    # Socket.IO v5's CONNECT_ERROR carries {"message": ...}: a bare string
    # (python-socketio's own answer) reaches socket.io-client as an empty
    # err.message.
    server = serve({"pingpong": PingPong})
    client = JsClient(server.url + "/nope", TRANSPORTS[transport], server.resource)
    try:
        refused = client.wait(lambda m: m["type"] in ("connect", "connect_error"))
        assert refused == {"type": "connect_error", "message": "Invalid namespace"}
    finally:
        client.close()


# -- batching and binary ------------------------------------------------------


def test_burst_of_50_emits_over_polling_is_batched_and_all_acked(
    live_server, js_client, monkeypatch
):
    from tgext.socketio._serving.engineio_session import GuardedSocket

    app = build_app(controller_for({"pingpong": PingPong}))
    posts = []
    handle_post_request = GuardedSocket.handle_post_request

    def count_posts(session, environ):
        posts.append(environ["PATH_INFO"])
        return handle_post_request(session, environ)

    # counted by the session: the polls of a session skip the WSGI app
    monkeypatch.setattr(GuardedSocket, "handle_post_request", count_posts)
    client = js_client(live_server(app), "/pingpong", "polling")
    posts.clear()
    client.send("batch", commands=[
        {"op": "emit", "event": "echo", "args": [index], "id": index} for index in range(50)
    ])
    client.wait_for_ack(49)
    acks = [message for message in client.messages if message["type"] == "ack"]
    assert acks == [{"type": "ack", "id": index, "args": [index]} for index in range(50)]
    # socket.io-client sends the first emit, then the 49 queued meanwhile in
    # one POST: more than python-engineio's default of 16 packets per POST.
    assert 1 <= len(posts) <= 2, posts


@all_transports
@pytest.mark.parametrize("js_type", ["Buffer", "ArrayBuffer"])
def test_binary_arrives_as_bytes_and_bytes_arrive_as_binary(pingpong, transport, js_type):
    client = pingpong(transport)
    blob = bytes(range(256))
    # node's socket.io-client hands received binary over as a Buffer (a
    # browser's, as an ArrayBuffer); a base64 text would arrive as a string.
    assert client.call("reverse_bytes", js_bytes(blob, js_type)) == [
        "bytes", js_bytes(blob[::-1], "Buffer")
    ]
    assert client.events("bytes back") == [
        [{"nested": [js_bytes(blob, "Buffer")]}, js_bytes(blob[::-1], "Buffer")]
    ]


# -- the ping-pong example ----------------------------------------------------


@pytest.fixture(scope="module")
def example_module():
    """``examples/pingpong/app.py``, imported from its file as ``app``."""
    spec = importlib.util.spec_from_file_location("app", EXAMPLE_APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def example(example_module, live_server, js_client):
    """Factory: ``example(transport)`` -> a client of the example's /pingpong."""

    def connect(transport):
        server = live_server(example_module.make_app({}), resource="socketio")
        return js_client(server, "/pingpong", transport)

    return connect


@all_transports
def test_example_fireball_gets_ten_bangs(example, transport):
    client = example(transport)
    client.emit("ping", {"type": "fireball"})
    assert client.call("ping", {"type": "ping"}) == []
    assert client.events("pong") == [[{"sound": "bang!"}]] * 10 + [[{"sound": "pong"}]]
    assert client.events("error") == []


@all_transports
def test_example_ping_gets_one_pong(example, transport):
    client = example(transport)
    assert client.call("ping", {"type": "ping"}) == []
    assert client.events("pong") == [[{"sound": "pong"}]]


@all_transports
def test_example_error_attack_sends_invalid_method_args(example, transport):
    client = example(transport)
    client.emit("ping", {"type": "error"})
    assert client.call("ping", {"type": "ping"}) == []
    assert client.events("error") == [["invalid_method_args", {"attack": "Got an error!"}]]
    assert client.events("pong") == [[{"sound": "pong"}]]


@all_transports
def test_example_auto_attack_is_a_ping_or_a_fireball_chosen_by_the_server(example, transport):
    client = example(transport)
    outcomes = set()
    for _ in range(40):  # both outcomes show up unless a coin lands 40 times alike
        before = len(client.events("pong"))
        assert client.call("ping", {"type": "auto"}) == []
        pongs = client.events("pong")[before:]
        assert pongs in ([[{"sound": "pong"}]], [[{"sound": "bang!"}]] * 10)
        outcomes.add(len(pongs))
        if outcomes == {1, 10}:
            break
    assert outcomes == {1, 10}
    assert client.events("error") == []


class Channels(PubSubTGNamespace):
    def subscribe_room(self, roomid):
        return "room-%s" % roomid

    def on_publish(self, channel, message):
        return self.publish(channel, message)


@all_transports
def test_publications_name_their_channel_and_subscriptions_are_bounded(
    serve, js_client, transport
):
    server = serve({"channels": Channels}, config={"socketio.max_subscriptions": 2})
    client = js_client(server, "/channels", transport)
    assert client.call("subscribe", "room", 1) == ["room-1"]
    assert client.call("subscribe", "room", 2) == ["room-2"]
    assert client.call("subscribe", "room", 3) == [False]
    assert client.events("error") == [[
        "too_many_subscriptions",
        "You may subscribe to 2 channels at most in this namespace "
        "(socketio.max_subscriptions)",
    ]]
    assert client.call("publish", "room-2", {"n": 2}) == [True]
    assert client.call("publish", "room-1", {"n": 1}) == [True]
    client.wait(lambda m: m["type"] == "event" and m["event"] == "pubblication"
                and m["args"][1] == "room-1", seen=True)
    # what socket.io-client hands a handler: (message, channel)
    assert client.events("pubblication") == [[{"n": 2}, "room-2"], [{"n": 1}, "room-1"]]
