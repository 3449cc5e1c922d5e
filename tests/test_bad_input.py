"""Bad input on the wire: malformed packets, undecodable frames, oversized
messages. The client gets an error or is disconnected, the server logs one
line, and every other client carries on."""
import json
import logging

import pytest
import websocket

from tgext.socketio import BaseNamespace


class Echo(BaseNamespace):
    def on_add(self, a, b):
        return a + b


@pytest.fixture
def server(serve):
    return serve({"echo": Echo}, config={"socketio.max_http_buffer_size": 10000})


@pytest.fixture
def raw_socket():
    """Factory: a WebSocket speaking Engine.IO/Socket.IO frames by hand, joined
    to /echo of ``server``."""
    sockets = []

    def open_socket(server):
        url = server.url.replace("http", "ws") + "/socketio/?EIO=4&transport=websocket"
        sock = websocket.create_connection(url, timeout=5)
        sockets.append(sock)
        assert sock.recv().startswith('0{"sid":')
        sock.send("40/echo,")
        assert sock.recv().startswith('40/echo,{"sid":')
        return sock

    yield open_socket
    for sock in sockets:
        sock.close()


def receive_skipping_pings(sock):
    while True:
        frame = sock.recv()
        if frame != "2":
            return frame
        sock.send("3")


@pytest.mark.parametrize("payload", ["{}", '"just text"', "[]"])
def test_malformed_event_disconnects_that_namespace_with_one_log_line(
    server, raw_socket, payload, caplog
):
    healthy = server.connect(namespaces=["/echo"])
    sock = raw_socket(server)
    with caplog.at_level(logging.WARNING, logger="tgext.socketio"):
        sock.send("42/echo,1" + payload)
        assert receive_skipping_pings(sock) == "41/echo,"
    warnings = [r for r in caplog.records if "malformed event" in r.getMessage()]
    assert len(warnings) == 1
    assert healthy.call("add", (1, 2), namespace="/echo", timeout=5) == 3


def test_undecodable_frame_closes_only_that_connection(server, raw_socket, caplog):
    healthy = server.connect(namespaces=["/echo"])
    sock = raw_socket(server)
    with caplog.at_level(logging.WARNING):
        sock.send("garbage")
        with pytest.raises(websocket.WebSocketConnectionClosedException):
            while True:
                receive_skipping_pings(sock)
    assert healthy.call("add", (2, 2), namespace="/echo", timeout=5) == 4
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_oversized_message_closes_only_that_connection(server, raw_socket):
    healthy = server.connect(namespaces=["/echo"])
    sock = raw_socket(server)
    sock.send('42/echo,["add","%s",1]' % ("x" * 20000))
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        while True:
            receive_skipping_pings(sock)
    assert healthy.call("add", (3, 2), namespace="/echo", timeout=5) == 5


def test_event_for_a_namespace_not_joined_is_ignored(server, raw_socket):
    sock = raw_socket(server)
    sock.send('42/other,2["add",1,2]')
    sock.send('42/echo,3["add",1,2]')
    assert receive_skipping_pings(sock) == "43/echo,3[3]"


class Watched(BaseNamespace):
    """Reports its recv_disconnect and returns what JSON cannot encode."""

    left = None  # set per test: a gevent Event

    def on_add(self, a, b):
        return a + b

    def on_unencodable(self):
        return {1, 2, 3}  # a set: the ack cannot be encoded

    def recv_disconnect(self):
        type(self).left.set()
        super().recv_disconnect()


@pytest.fixture
def watched(serve):
    import gevent.event

    namespace = type("WatchedHere", (Watched,), {"left": gevent.event.Event()})
    return serve({"echo": namespace}), namespace


def test_unencodable_return_value_is_an_error_and_the_namespace_carries_on(watched):
    server, _ = watched
    client = server.connect(namespaces=["/echo"])
    errors = []
    client.on("error", lambda *args: errors.append(args), namespace="/echo")
    assert client.call("unencodable", namespace="/echo", timeout=5) is None
    assert client.call("add", (1, 1), namespace="/echo", timeout=5) == 2
    assert errors == [
        ("internal_server_error", 'The server failed while running "on_unencodable"')
    ]


def test_client_dropped_for_a_malformed_event_gets_recv_disconnect(watched, raw_socket):
    server, namespace = watched
    sock = raw_socket(server)
    sock.send('42/echo,{"not": "a list"}')
    assert receive_skipping_pings(sock) == "41/echo,"
    assert namespace.left.wait(timeout=5)


def test_bad_binary_placeholder_closes_only_that_connection(server, raw_socket, caplog):
    healthy = server.connect(namespaces=["/echo"])
    sock = raw_socket(server)
    with caplog.at_level(logging.WARNING):
        sock.send('451-/echo,["add",{"_placeholder":true,"num":5},1]')
        sock.send_binary(b"\x01\x02")
        with pytest.raises(websocket.WebSocketConnectionClosedException):
            while True:
                receive_skipping_pings(sock)
    assert healthy.call("add", (4, 2), namespace="/echo", timeout=5) == 6
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r for r in caplog.records if "malformed Socket.IO packet" in r.getMessage()]


def test_rejected_polling_posts_are_answered_and_leave_nothing(serve, wait_for):
    import gc

    import gevent
    import requests

    # ping_interval 1: a closed session's ping greenlet ends at its next tick
    server = serve({"echo": Echo}, config={"socketio.max_http_buffer_size": 10000,
                                           "socketio.ping_interval": 1})

    def live_greenlets():
        gc.collect()
        return sum(1 for obj in gc.get_objects()
                   if isinstance(obj, gevent.Greenlet) and not obj.dead)

    base = server.url + "/socketio/?EIO=4&transport=polling"
    requests.get(base, timeout=5)  # warm up: lazily started tasks
    baseline = live_greenlets()
    for body in ["7", "2probe", "x" * 20_000] * 10:  # the last is over the limit
        sid = json.loads(requests.get(base, timeout=5).text[1:])["sid"]
        with gevent.Timeout(5, AssertionError("no answer to a rejected POST")):
            answer = requests.post(base + "&sid=" + sid, data=body, timeout=5,
                                   headers={"Content-Type": "text/plain;charset=UTF-8"})
        assert answer.status_code == 400
    wait_for(lambda: live_greenlets() <= baseline, timeout=10)


def test_cross_origin_websocket_is_refused_before_the_upgrade(server):
    url = server.url.replace("http", "ws") + "/socketio/?EIO=4&transport=websocket"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, timeout=5, origin="http://evil.example")
    assert refused.value.status_code == 403
    sock = websocket.create_connection(url, timeout=5, origin=server.url)
    try:
        assert sock.recv().startswith("0{")  # its own origin is welcome
    finally:
        sock.close()
