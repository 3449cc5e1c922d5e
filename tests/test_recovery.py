"""Connection state recovery, driven by the official socket.io-client 4.x
(node) with its own recovery logic, against a real server: a client whose
transport drops comes back with its sid, rooms, session, channel
subscriptions and every event it missed, exactly once, in order."""

import base64
import json

import gevent
import pytest
import redis
import socketio
import websocket

from tgext.socketio import BaseNamespace, RoomsMixin
from tgext.socketio._engine.runtime import runtime_of
from tgext.socketio.pubsub import PubSubTGNamespace

from .conftest import build_app, controller_for
from .jsclient import JsClient
from .test_server_runner import gearbox  # noqa: F401 (a fixture)

#: a short window, so that the tests that wait for its end are quick
WINDOW = 2
RECOVERY = {
    "socketio.connection_state_recovery": str(WINDOW),
    "socketio.ping_interval": "1",
    # a loaded machine's stall (this process serves, the node clients
    # answer) is not taken for a dead client
    "socketio.ping_timeout": "3",
}

#: (recovered, session seen) at each recv_connect
CONNECTS = []


class Chat(RoomsMixin, BaseNamespace):
    def recv_connect(self):
        CONNECTS.append((self.recovered, dict(self.session)))
        self.session.setdefault("connects", 0)
        self.session["connects"] += 1

    def on_join(self, room):
        return self.join(room)

    def on_send(self, room, number):
        self.emit_to_room(room, "msg", number)

    def on_name(self, name):
        self.session["name"] = name

    def on_send_bytes(self, room, number):
        self.emit_to_room(room, "blob", bytes([number]) * 3, number)

    def on_whoami(self):
        return self.session.get("name"), self.recovered, self.session["connects"]

    def on_participants(self, room=None):
        return self.participants(room)

    def on_echo(self, value):
        self.emit("echo", value)
        return value


class News(PubSubTGNamespace):
    def subscribe_news(self):
        return True

    def on_publish(self, number):
        self.publish("news", number)

    def on_mine(self):
        return self.subscriptions()

    def on_members(self):
        return self.channel_members("board")


#: raw WebSockets a test opened (closed after it, whatever happened)
RAW_SOCKETS = []


@pytest.fixture(autouse=True)
def _reset_connects():
    del CONNECTS[:]
    yield
    while RAW_SOCKETS:
        RAW_SOCKETS.pop().shutdown()


@pytest.fixture
def clients(live_server):
    made = []

    def connect(server, namespace="/chat", transport="websocket", reconnection=True):
        transports = None if transport == "upgrade" else [transport]
        client = JsClient(
            server.url + namespace, transports, server.resource, reconnection
        )
        made.append(client)
        connected = client.wait(lambda m: m["type"] in ("connect", "connect_error"))
        assert connected["type"] == "connect", connected
        return client

    yield connect
    for client in made:
        client.close()


def room_pair(server, clients, transport="websocket"):
    """A member that reconnects by itself and a sender, both in the room
    ``room``: ``(member, sender, the member's first connect)``."""
    member = clients(server, transport=transport)
    sender = clients(server, reconnection=False)
    first = member.wait_for_type("connect", seen=True)
    assert member.call("join", "room") == [True]
    assert sender.call("join", "room") == [True]
    return member, sender, first


def missed_while_away(server, member, sender, first, wait_for, count):
    """The member closes its transport and stays away while ``count``
    events are sent to the room: it comes back recovered and gets them."""
    member.send("drop", away=300)
    wait_for(lambda: engine_of(server).recovery.dropped)
    for number in range(count):
        sender.emit("send", "room", number)
    back = reconnected(member)
    assert (back["recovered"], back["id"]) == (True, first["id"])
    wait_for(lambda: len(received(member)) >= count)
    gevent.sleep(0.2)
    assert messages(member) == list(range(count))


def engine_of(server):
    (engine,) = runtime_of(server.app_config).engines
    return engine


def drop_from_server(server, client, namespace="/chat"):
    """Close the client's transport on the server's side, as a lost network
    found by the server (whatever the transport)."""
    engine = engine_of(server)
    sid = client.wait_for_type("connect", seen=True)["id"]
    eio_sid = engine.manager.eio_sid_from_sid(sid, namespace)
    assert eio_sid is not None
    engine.drop_connection(eio_sid)


def reconnected(client, timeout=10):
    """The client's next connect after a drop."""
    client.wait(lambda m: m["type"] == "disconnect", timeout)
    return client.wait_for_type("connect", timeout)


def received(client, event="msg"):
    """The arguments of every ``event`` the client reported so far."""
    client.pending_lines()
    return client.events(event)


def messages(client, event="msg"):
    return [args[0] for args in received(client, event)]


def offsets(client, event="msg"):
    return [args[-1] for args in client.events(event)]


@pytest.mark.parametrize("transport", ["websocket", "polling", "upgrade"])
def test_a_room_member_gets_the_100_events_it_missed_once_in_order(
    serve, clients, wait_for, transport
):
    server = serve({"chat": Chat}, config=RECOVERY)
    member = clients(server, transport=transport)
    sender = clients(server, reconnection=False)
    first = member.wait_for_type("connect", seen=True)
    assert member.call("join", "room") == [True]
    assert sender.call("join", "room") == [True]
    member.call("name", "ann")
    for number in range(30):
        sender.emit("send", "room", number)
    wait_for(lambda: len(received(member)) == 30)
    drop_from_server(server, member)
    for number in range(30, 100):
        sender.emit("send", "room", number)
    back = reconnected(member)
    assert back["recovered"] is True
    assert back["id"] == first["id"]
    wait_for(lambda: len(received(member)) >= 100)
    gevent.sleep(0.3)  # nothing more arrives
    assert messages(member) == list(range(100))
    assert len(set(offsets(member))) == 100
    assert member.call("whoami") == ["ann", True, 2]
    assert CONNECTS[-1][0] is True
    # still in the room, under the same sid: what is sent now arrives once
    sender.emit("send", "room", 100)
    wait_for(lambda: messages(member)[-1:] == [100])


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_client_closing_its_own_transport_recovers(
    serve, clients, wait_for, transport
):
    """socket.io-client's ``socket.io.engine.close()``: over long-polling it
    sends an Engine.IO close, which Node's server takes as a transport
    close, so the client comes back to recover."""
    server = serve({"chat": Chat}, config=RECOVERY)
    member, sender, first = room_pair(server, clients, transport)
    missed_while_away(server, member, sender, first, wait_for, 10)


def test_a_client_that_disconnects_does_not_come_back(serve, clients, wait_for):
    """``socket.disconnect()`` says goodbye (a Socket.IO DISCONNECT): nothing
    is kept for it."""
    server = serve({"chat": Chat}, config=RECOVERY)
    member = clients(server, reconnection=False)
    member.call("join", "room")
    member.send("close")
    engine = engine_of(server)
    wait_for(lambda: not engine._instances)
    gevent.sleep(0.2)
    assert engine.recovery.dropped == {}
    assert engine.presence.participants("/chat") == []


@pytest.mark.parametrize("queue", ["memory", "redis"])
def test_binary_events_missed_come_back_as_binary(
    own_redis, serve, clients, wait_for, queue
):
    """Bytes in the events missed, kept in the process's log or (through
    Redis) in the stream."""
    config = RECOVERY if queue == "memory" else over_redis(own_redis, "binary")
    server = serve({"chat": Chat}, config=config)
    member, sender, first = room_pair(server, clients)
    member.send("drop", away=300)
    wait_for(lambda: engine_of(server).recovery.dropped)
    for number in range(3):
        sender.emit("send_bytes", "room", number)
    back = reconnected(member)
    assert (back["recovered"], back["id"]) == (True, first["id"])
    wait_for(lambda: len(received(member, "blob")) >= 3)
    blobs = received(member, "blob")
    assert [args[1] for args in blobs] == [0, 1, 2]
    assert [args[0]["$binary"] for args in blobs] == [
        base64.b64encode(bytes([number]) * 3).decode() for number in range(3)
    ]
    offsets = [args[2] for args in blobs]  # the offset, last
    assert len(set(offsets)) == 3 and all(isinstance(offset, str) for offset in offsets)


def test_a_client_that_stays_away_longer_than_the_window_starts_afresh(
    serve, clients, wait_for
):
    server = serve({"chat": Chat}, config=RECOVERY)
    member = clients(server)
    first = member.wait_for_type("connect", seen=True)
    member.call("join", "room")
    member.call("name", "ann")
    member.send("drop", away=int((WINDOW + 1.5) * 1000))
    back = reconnected(member, timeout=WINDOW + 10)
    assert back["recovered"] is False
    assert back["id"] != first["id"]
    assert member.call("whoami") == [None, False, 1]
    engine = engine_of(server)
    assert engine.recovery.dropped == {}


def test_off_by_default_no_pid_no_offsets(serve, clients):
    server = serve({"chat": Chat}, config={"socketio.ping_interval": "1"})
    member = clients(server)
    first = member.wait_for_type("connect", seen=True)
    member.call("echo", "x")
    assert member.events("echo") == [["x"]]
    member.send("drop")
    back = reconnected(member)
    assert back["recovered"] is False
    assert back["id"] != first["id"]
    assert engine_of(server).recovery is None


def test_every_event_but_acks_carries_its_offset(serve, clients):
    server = serve({"chat": Chat}, config=RECOVERY)
    member = clients(server)
    assert member.call("echo", "x") == ["x"]  # the ack: no offset
    (echo,) = member.events("echo")
    assert echo[0] == "x" and echo[1].isdigit()


def test_a_client_that_received_no_event_yet_recovers(serve, clients, wait_for):
    server = serve({"chat": Chat}, config=RECOVERY)
    member, sender, first = room_pair(server, clients)
    sender.emit("send", "elsewhere", -1)  # offsets move on, not for it
    missed_while_away(server, member, sender, first, wait_for, 5)


def test_three_drops_in_a_row_recover_each_time(serve, clients, wait_for):
    server = serve({"chat": Chat}, config=RECOVERY)
    member, sender, first = room_pair(server, clients)
    number = 0
    for _drop in range(3):
        for _ in range(10):
            sender.emit("send", "room", number)
            number += 1
        member.send("drop", away=200)
        for _ in range(10):
            sender.emit("send", "room", number)
            number += 1
        back = reconnected(member)
        assert (back["recovered"], back["id"]) == (True, first["id"])
    wait_for(lambda: len(received(member)) >= number)
    gevent.sleep(0.2)
    assert messages(member) == list(range(number))
    assert member.call("whoami")[1:] == [True, 4]


def test_subscriptions_and_missed_publications_come_back(serve, clients, wait_for):
    server = serve({"news": News}, config=RECOVERY)
    reader = clients(server, "/news")
    writer = clients(server, "/news", reconnection=False)
    assert reader.call("subscribe", "news") == ["news"]
    writer.emit("publish", 0)
    wait_for(lambda: len(received(reader, "pubblication")) == 1)
    drop_from_server(server, reader, "/news")
    for number in range(1, 21):
        writer.emit("publish", number)
    back = reconnected(reader)
    assert back["recovered"] is True
    wait_for(lambda: len(received(reader, "pubblication")) >= 21)
    gevent.sleep(0.2)
    assert [args[0] for args in reader.events("pubblication")] == list(range(21))
    assert reader.call("mine") == [["news"]]
    writer.emit("publish", 21)
    wait_for(lambda: received(reader, "pubblication")[-1][0] == 21)


def test_a_dropped_client_stays_in_presence_until_its_window_ends(
    serve, clients, wait_for
):
    server = serve({"chat": Chat}, config=RECOVERY)
    member = clients(server, reconnection=False)
    watcher = clients(server, reconnection=False)
    member_sid = member.wait_for_type("connect", seen=True)["id"]
    member.call("join", "room")
    member.send("drop")
    engine = engine_of(server)
    wait_for(lambda: engine.recovery.dropped)
    assert member_sid in watcher.call("participants", "room")[0]
    assert member_sid in watcher.call("participants")[0]
    wait_for(lambda: not engine.recovery.dropped, timeout=WINDOW + 3)
    assert member_sid not in watcher.call("participants", "room")[0]
    assert member_sid not in watcher.call("participants")[0]


def test_what_is_kept_returns_to_nothing_after_the_window(serve, clients, wait_for):
    server = serve({"chat": Chat}, config=RECOVERY)
    member = clients(server, reconnection=False)
    sender = clients(server, reconnection=False)
    member.call("join", "room")
    sender.call("join", "room")
    member.send("drop")
    engine = engine_of(server)
    wait_for(lambda: engine.recovery.dropped)
    for number in range(50):
        sender.emit("send", "room", number)
    sender.call("echo", "sync")
    assert len(engine.recovery.log) > 50
    # the window, then the ping interval and timeout the log also covers
    wait_for(
        lambda: not engine.recovery.dropped and not len(engine.recovery.log),
        timeout=WINDOW + 4 + 4,
    )
    assert engine.recovery.log.bytes == 0
    assert list(engine.recovery.live) == [
        engine.instance_of(sid)._tgsio.recovery.pid for sid in list(engine._instances)
    ]


# -- by hand, frame by frame: what the wire carries ------------------------------


def raw_join(server, namespace="/chat", auth=None):
    """A WebSocket joined to ``namespace`` with ``auth`` in its CONNECT:
    ``(socket, the CONNECT reply's data)``."""
    url = server.url.replace("http", "ws") + "/socketio/?EIO=4&transport=websocket"
    sock = websocket.create_connection(url, timeout=5)
    RAW_SOCKETS.append(sock)
    assert sock.recv().startswith('0{"sid":')
    sock.send("40%s,%s" % (namespace, json.dumps(auth) if auth is not None else ""))
    reply = sock.recv()
    assert reply.startswith("40%s," % namespace), reply
    return sock, json.loads(reply[len("40%s," % namespace) :])


def test_the_connect_reply_carries_a_pid_only_with_recovery_on(serve):
    with_recovery = serve({"chat": Chat}, config=RECOVERY)
    without = serve({"chat": Chat})
    sock, reply = raw_join(with_recovery)
    assert set(reply) == {"sid", "pid"}
    sock.shutdown()
    sock, reply = raw_join(without)
    assert set(reply) == {"sid"}
    sock.shutdown()


def test_a_client_back_before_its_drop_was_seen_takes_its_session_over(serve, wait_for):
    server = serve({"chat": Chat}, config=RECOVERY)
    old, first = raw_join(server)
    old.send('42/chat,1["name","ann"]')
    assert raw_ack(old, 1) == []
    new, second = raw_join(server, auth={"pid": first["pid"]})
    assert second == first  # same sid, same pid
    new.send('42/chat,1["whoami"]')
    assert new.recv() == '43/chat,1["ann",true,2]'
    # the old connection was dropped for it
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        while True:
            old.recv()
    new.shutdown()


def test_a_bad_pid_or_offset_gives_a_fresh_session_never_an_error(serve):
    server = serve({"chat": Chat}, config=RECOVERY)
    sock, first = raw_join(server)
    for auth in (
        {"pid": "nobody"},
        {"pid": 12},
        {"pid": first["pid"], "offset": "not an offset"},
    ):
        other, reply = raw_join(server, auth=auth)
        assert reply["sid"] != first["sid"] and reply["pid"] != first["pid"]
        other.shutdown()
    sock.shutdown()


class RefusingRecovered(Chat):
    def recv_connect(self):
        super().recv_connect()
        return not self.recovered


def test_a_recovered_client_refused_by_recv_connect_is_gone(serve, clients, wait_for):
    server = serve({"chat": RefusingRecovered}, config=RECOVERY)
    member = clients(server)
    member.call("join", "room")
    member.send("drop")
    engine = engine_of(server)
    reconnected(member)  # its CONNECT, then the refusal
    gone = member.wait(lambda m: m["type"] == "disconnect")
    assert gone["reason"] == "io server disconnect"
    assert engine.recovery.dropped == {}
    assert engine.presence.participants("/chat", "room") == []


# -- across processes, through Redis ----------------------------------------------


def over_redis(own_redis, channel="recovery"):
    return dict(
        RECOVERY,
        **{
            "socketio.message_queue": own_redis.url,
            "socketio.channel": channel,
            "anypubsub.backend": "redis",
            "anypubsub.host": own_redis.url,
        },
    )


def raw_ack(sock, ack_id, namespace="/chat", timeout=5):
    """The arguments of acknowledgement ``ack_id``, read from a raw WebSocket
    (answering pings meanwhile): the event was handled."""
    prefix = "43%s,%d" % (namespace, ack_id)
    with gevent.Timeout(timeout, AssertionError("no ack %d" % ack_id)):
        while True:
            frame = sock.recv()
            if frame == "2":
                sock.send("3")
            elif frame.startswith(prefix):
                return json.loads(frame[len(prefix) :])


def answer_pings(sock):
    """Keep a raw WebSocket client alive (run in a greenlet; kill it)."""
    while True:
        if sock.recv() == "2":
            sock.send("3")


def raw_events(sock, count, name=None, timeout=5):
    """The next ``count`` EVENT packets (named ``name``, if given) read from
    a raw WebSocket, decoded."""
    events = []
    with gevent.Timeout(timeout, AssertionError("got only %r" % events)):
        while len(events) < count:
            frame = sock.recv()
            if frame == "2":
                sock.send("3")
                continue
            if frame.startswith("42/"):
                event = json.loads(frame[frame.index(",") + 1 :])
                if name is None or event[0] == name:
                    events.append(event)
    return events


def test_a_client_recovers_on_another_server_sharing_redis(own_redis, serve, wait_for):
    first = serve({"chat": Chat}, config=over_redis(own_redis))
    second = serve({"chat": Chat}, config=over_redis(own_redis))
    member, joined = raw_join(first)
    member.send('42/chat,1["join","room"]')
    member.send('42/chat,2["name","ann"]')
    assert raw_ack(member, 1) == [True]
    assert raw_ack(member, 2) == []
    sender, _ = raw_join(second)
    sender.send('42/chat,1["join","room"]')
    assert sender.recv() == "43/chat,1[true]"
    sender.send('42/chat,["send","room",0]')
    ((name, number, offset),) = raw_events(member, 1)
    assert (name, number) == ("msg", 0)
    member.shutdown()  # dropped, on the first server
    wait_for(lambda: engine_of(first).recovery.dropped)
    for number in range(1, 21):
        sender.send('42/chat,["send","room",%d]' % number)
    back, reply = raw_join(second, auth={"pid": joined["pid"], "offset": offset})
    assert reply == joined
    missed = raw_events(back, 20)
    assert [event[1] for event in missed] == list(range(1, 21))
    back.send('42/chat,9["whoami"]')
    frame = back.recv()
    assert frame == '43/chat,9["ann",true,2]', frame
    sender.send('42/chat,["send","room",21]')
    assert raw_events(back, 1)[0][1] == 21
    sender.shutdown()
    # the first server let it go without a word: it is still here (connected:
    # dropped, it would leave at the end of its own window on the second)
    answering = gevent.spawn(answer_pings, back)
    wait_for(lambda: not engine_of(first).recovery.dropped, timeout=WINDOW + 3)
    assert joined["sid"] in engine_of(second).presence.participants("/chat", "room")
    answering.kill()
    back.shutdown()


def test_a_client_with_no_event_recovers_on_another_server(own_redis, serve, wait_for):
    # nothing ever sent: no stream in Redis at all, and nothing to replay
    first = serve({"chat": Chat}, config=over_redis(own_redis, "quiet"))
    second = serve({"chat": Chat}, config=over_redis(own_redis, "quiet"))
    member, joined = raw_join(first)
    member.send('42/chat,1["name","ann"]')
    assert raw_ack(member, 1) == []
    member.shutdown()
    wait_for(lambda: engine_of(first).recovery.dropped)
    back, reply = raw_join(second, auth={"pid": joined["pid"]})
    assert reply == joined
    back.send('42/chat,9["whoami"]')
    assert back.recv() == '43/chat,9["ann",true,2]'
    back.shutdown()


class Board(News):
    channel_options = {"board": {"presence": True}}

    def subscribe_board(self):
        return True

    def on_publish(self, number):
        self.publish("board", number)


def test_subscriptions_and_publications_recover_on_another_server(
    own_redis, serve, wait_for
):
    first = serve({"news": Board}, config=over_redis(own_redis, "board"))
    second = serve({"news": Board}, config=over_redis(own_redis, "board"))
    reader, joined = raw_join(first, "/news")
    reader.send('42/news,1["subscribe","board"]')
    assert reader.recv() == '43/news,1["board"]'  # Redis confirmed it
    writer, _ = raw_join(second, "/news")
    writer.send('42/news,1["subscribe","board"]')
    assert writer.recv() == '43/news,1["board"]'
    writer.send('42/news,2["publish",0]')
    ((_name, _number, _channel, offset),) = raw_events(reader, 1, "pubblication")
    reader.shutdown()
    wait_for(lambda: engine_of(first).recovery.dropped)
    for number in range(1, 11):
        writer.send('42/news,["publish",%d]' % number)
    back, reply = raw_join(
        second, "/news", auth={"pid": joined["pid"], "offset": offset}
    )
    assert reply == joined
    missed = raw_events(back, 10, "pubblication")
    assert [event[1] for event in missed] == list(range(1, 11))
    back.send('42/news,9["mine"]')
    assert back.recv() == '43/news,9[["board"]]'
    writer.send('42/news,["publish",11]')
    assert raw_events(back, 1, "pubblication")[0][1] == 11
    back.shutdown()
    writer.shutdown()


def test_a_client_of_two_worker_processes_recovers_on_either(
    gearbox,  # noqa: F811 (the fixture imported above)
    redis_server,
    client_factory,
    wait_for,
):
    """``workers = 2`` behind the runner's router, which hands each new
    connection to the next process: the reconnect after a drop lands on
    either, and the client recovers there, every time."""
    server = gearbox(
        server_extra="workers = 2",
        extra="socketio.connection_state_recovery = 10\n"
        "socketio.message_queue = %s\nsocketio.channel = workers-recovery\n"
        "anypubsub.backend = redis\nanypubsub.host = %s" % (redis_server, redis_server),
    )
    server.wait_for_log("with 2 worker processes")
    member = JsClient(
        server.url + "/probe", ["websocket"], "/socketio", reconnection=True
    )
    try:
        first = member.wait_for_type("connect", timeout=10)
        assert member.call("join", "room", timeout=10) == [first["id"]]
        sender = client_factory(socketio.Client(reconnection=False))
        sender.connect(
            server.url,
            namespaces=["/probe"],
            socketio_path="socketio",
            transports=["websocket"],
            wait_timeout=10,
        )
        processes = {member.call("whoami")[0]}
        sent = 0
        for _drop in range(6):
            for _ in range(10):
                sender.emit("to_room", ("room", sent), namespace="/probe")
                sent += 1
            member.send("drop")
            for _ in range(10):
                sender.emit("to_room", ("room", sent), namespace="/probe")
                sent += 1
            back = reconnected(member)
            assert (back["recovered"], back["id"]) == (True, first["id"]), back
            processes.add(member.call("whoami")[0])
        assert len(processes) == 2  # it came back to the other process too
        wait_for(lambda: len(received(member, "heard")) >= sent, timeout=10)
        gevent.sleep(0.3)
        assert [args[0] for args in received(member, "heard")] == list(range(sent))
    finally:
        member.close()


def test_redis_holds_nothing_of_recovery_once_the_window_is_over(
    own_redis, serve, wait_for
):
    config = over_redis(own_redis, "baseline")
    first, second = (
        serve({"chat": Chat}, config=config),
        serve({"chat": Chat}, config=config),
    )
    redis_client = redis.Redis.from_url(own_redis.url)
    try:
        member, joined = raw_join(first)
        member.send('42/chat,1["join","room"]')
        member.send('42/chat,2["echo","x"]')  # one event: its offset
        offset = raw_events(member, 1, "echo")[0][-1]
        member.shutdown()
        stays_away, _ = raw_join(first)
        stays_away.shutdown()  # never comes back
        wait_for(lambda: len(engine_of(first).recovery.dropped) == 2)
        assert redis_client.keys("baseline:recovery:*")
        back, reply = raw_join(second, auth={"pid": joined["pid"], "offset": offset})
        assert reply == joined
        back.shutdown()  # dropped again: kept for the window, then gone
        # the window, then the ping interval and timeout the stream covers
        wait_for(
            lambda: not redis_client.keys("baseline:recovery:*"), timeout=WINDOW + 4 + 6
        )
        assert not engine_of(first).recovery.dropped
        assert not redis_client.keys("baseline:presence:*")
    finally:
        redis_client.close()


def test_a_publication_from_another_process_of_the_app_is_recovered(
    own_redis, serve, wait_for
):
    """A job of the app that serves nobody (the app loaded from its config)
    publishes: its publications reach the subscribers live, and a dropped
    one after it comes back."""
    config = over_redis(own_redis, "outside")
    server = serve({"news": Board}, config=config)
    elsewhere = runtime_of(
        build_app(controller_for({"news": Board}), config=config).app_config
    )
    try:
        reader, joined = raw_join(server, "/news")
        reader.send('42/news,1["subscribe","board"]')
        assert reader.recv() == '43/news,1["board"]'  # Redis confirmed it
        elsewhere.hub.publish("board", json.dumps("live"))
        ((_name, message, _channel, offset),) = raw_events(reader, 1, "pubblication")
        assert message == "live"
        reader.shutdown()
        wait_for(lambda: engine_of(server).recovery.dropped)
        elsewhere.hub.publish("board", json.dumps("missed"))
        back, reply = raw_join(
            server, "/news", auth={"pid": joined["pid"], "offset": offset}
        )
        assert reply == joined
        assert raw_events(back, 1, "pubblication")[0][1] == "missed"
    finally:
        elsewhere.close()
