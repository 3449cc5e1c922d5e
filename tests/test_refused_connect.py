"""A client refused at connect receives nothing sent to the namespace or its
rooms, on either transport, however often it asks again; a connection that
keeps asking is cut after a few refusals.

The app broadcasts to the namespace and to a room every 10 ms while refused
clients come and go (SPEC section 5: "No event broadcast to a namespace or
room reaches a client before the namespace accepted it").
"""

import json
import logging

import gevent
import pytest
import requests
import socketio
import websocket
from tg import predicates, require

from tgext.socketio import BaseNamespace, RoomsMixin, SocketIOTGNamespace
from tgext.socketio._engine.client_errors import METHOD_ACCESS_DENIED
from tgext.socketio._engine.engine import MAX_REFUSED_CONNECTS
from tgext.socketio._engine.runtime import runtime_of
from tgext.socketio.testing import disconnect_client


class RefusesByFalse(RoomsMixin, BaseNamespace):
    def recv_connect(self):
        self.join("lobby")  # joined, then refused: must not receive either
        gevent.sleep(0.02)  # the refusal takes a while: broadcasts go on meanwhile
        if self.auth != {"token": "ok"}:
            return False


class RefusesByRequire(SocketIOTGNamespace):
    @require(predicates.not_anonymous())
    def recv_connect(self):
        pass


class RefusesByRaising(BaseNamespace):
    def recv_connect(self):
        gevent.sleep(0.02)
        raise RuntimeError("refused by an exception")


NAMESPACES = {"byfalse": RefusesByFalse, "byrequire": RefusesByRequire, "byraise": RefusesByRaising}


@pytest.fixture
def broadcasting(serve):
    """A server whose app sends ``tick`` to every namespace and to the room
    ``lobby`` every 10 ms; yields ``(server, ticks sent)``."""
    server = serve(NAMESPACES, config={"socketio.ping_interval": 5})
    (engine,) = runtime_of(server.app_config).engines
    sent = []

    def tick():
        while True:
            for name in NAMESPACES:
                engine.emit("tick", (len(sent),), namespace="/" + name)
                engine.emit("tick", (len(sent),), to="lobby", namespace="/" + name)
            sent.append(1)
            gevent.sleep(0.01)

    ticker = gevent.spawn(tick)
    yield server, sent
    ticker.kill()


def ws_url(server):
    return server.url.replace("http", "ws") + "/socketio/?EIO=4&transport=websocket"


def ticks_in(frames):
    return [frame for frame in frames if '"tick"' in frame]


def receive_until_refused(sock, namespace, timeout=5):
    """Frames of ``namespace`` until its DISCONNECT (``41/ns,``); the frames."""
    frames = []
    sock.settimeout(timeout)
    while True:
        frame = sock.recv()
        if frame == "2":  # ping
            sock.send("3")
            continue
        frames.append(frame)
        if frame.startswith("41/%s," % namespace):
            return frames


@pytest.mark.parametrize("namespace", sorted(NAMESPACES))
def test_refused_websocket_joins_receive_no_broadcast(broadcasting, namespace):
    server, sent = broadcasting
    received = []

    def join_once():
        sock = websocket.create_connection(ws_url(server), timeout=5)
        try:
            assert sock.recv().startswith("0{")
            sock.send("40/%s," % namespace)
            received.extend(receive_until_refused(sock, namespace))
            gevent.sleep(0.05)  # anything sent after the refusal would arrive now
            sock.settimeout(0.01)
            try:
                received.append(sock.recv())
            except websocket.WebSocketTimeoutException:
                pass
        finally:
            sock.close()

    for _ in range(4):
        gevent.joinall([gevent.spawn(join_once) for _ in range(25)], raise_error=True)
    assert len(sent) > 20  # broadcasts went on all along
    assert ticks_in(received) == []
    if namespace == "byrequire":  # the denial itself is sent
        assert any(METHOD_ACCESS_DENIED in frame for frame in received)


def test_a_socket_asking_again_gets_nothing_and_is_cut(broadcasting, caplog):
    """Node's and python-socketio's servers let one socket ask again and
    again; here it is cut after MAX_REFUSED_CONNECTS refusals."""
    server, sent = broadcasting
    sock = websocket.create_connection(ws_url(server), timeout=5)
    assert sock.recv().startswith("0{")
    received = []
    refusals = 0
    with caplog.at_level(logging.WARNING):
        for _ in range(MAX_REFUSED_CONNECTS + 5):
            try:
                sock.send("40/byfalse,")
                received.extend(receive_until_refused(sock, "byfalse", timeout=2))
            except (websocket.WebSocketException, ConnectionError, OSError):
                break
            refusals += 1
    sock.close()
    assert ticks_in(received) == []
    assert refusals == MAX_REFUSED_CONNECTS
    cut = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert any("connects refused" in line for line in cut), cut


def test_the_same_client_accepted_receives_broadcasts(broadcasting, wait_for):
    """The guard keeps refused clients out, not accepted ones."""
    server, _sent = broadcasting
    ticks = []
    client = socketio.Client()
    client.on("tick", lambda number: ticks.append(number), namespace="/byfalse")
    client.connect(
        server.url,
        namespaces=["/byfalse"],
        transports=["websocket"],
        socketio_path="socketio",
        auth={"token": "ok"},
        wait_timeout=5,
    )
    # two per period: the namespace's and the room's
    wait_for(lambda: len(ticks) > 10)
    disconnect_client(client)


def test_refused_polling_joins_receive_no_broadcast(broadcasting):
    server, sent = broadcasting
    base = server.url + "/socketio/?EIO=4&transport=polling"
    received = []
    for _ in range(20):
        session = requests.Session()
        opened = session.get(base, timeout=5).text
        sid = json.loads(opened[1:])["sid"]
        url = base + "&sid=" + sid
        assert session.post(url, data="40/byfalse,", timeout=5).ok
        for _ in range(10):
            body = session.get(url, timeout=5).text
            packets = body.split("\x1e")
            received.extend(packets)
            if any(packet.startswith("41/byfalse,") for packet in packets):
                break
        try:  # anything sent after the refusal would come now
            received.extend(session.get(url, timeout=0.2).text.split("\x1e"))
        except requests.exceptions.ReadTimeout:
            pass
        session.post(url, data="1", timeout=5)
        session.close()
    assert len(sent) > 20
    assert any(packet.startswith("41/byfalse,") for packet in received)
    assert ticks_in(received) == []
