"""Channels that declare history (the last publications for late joiners)
and presence (who is in them, with joins and leaves), on both backends and
across two processes sharing Redis."""

import time

import gevent
import gevent.event
import pytest
from gevent.queue import Empty, Queue

from tgext.socketio._engine.runtime import runtime_of
from tgext.socketio.pubsub import PubSubTGNamespace
from tgext.socketio.testing import disconnect_client

from .apps.auth_app import build_remote_user_app
from .conftest import controller_for
from .test_pubsub import backend, redis_config  # noqa: F401 (fixture)


class Rooms(PubSubTGNamespace):
    channel_options = {
        "kept-*": {"history": 3, "history_seconds": 1.5},
        "live-*": {"presence": True},
        "both-*": {"history": 5, "presence": True},
    }

    def subscribe_kept(self, name):
        return "kept-%s" % name

    def subscribe_live(self, name):
        return "live-%s" % name

    def subscribe_both(self, name):
        return "both-%s" % name

    def subscribe_plain(self):
        return None

    def on_publish(self, channel, message):
        return self.publish(channel, message)

    def on_members(self, channel):
        return self.channel_members(channel)


@pytest.fixture
def rooms(serve, backend):  # noqa: F811
    return serve({"rooms": Rooms}, config=backend)


class Recorder:
    """What a python-socketio client of /rooms receives, in order."""

    def __init__(self, client):
        self.client = client
        self.events = Queue()
        for event in ("pubblication", "presence_state", "presence_diff", "error"):
            client.on(event, self._recorder(event), namespace="/rooms")

    def _recorder(self, event):
        return lambda *args: self.events.put((event, *args))

    def call(self, event, *args):
        return self.client.call(event, args, namespace="/rooms", timeout=10)

    def next(self, timeout=5):
        return self.events.get(timeout=timeout)

    def nothing(self, wait=0.3):
        try:
            item = self.events.get(timeout=wait)
        except Empty:
            return True
        raise AssertionError("unexpected: %r" % (item,))


def recorder(server, **connect):
    return Recorder(server.connect(namespaces=["/rooms"], **connect))


# -- history ---------------------------------------------------------------------


def test_a_late_joiner_gets_the_last_publications_marked_then_live_traffic(rooms):
    publisher = recorder(rooms)
    for number in range(5):
        assert publisher.call("publish", "kept-a", {"n": number}) is True
    joiner = recorder(rooms)
    assert joiner.call("subscribe", "kept", "a") == "kept-a"
    for number in (2, 3, 4):  # the last 3, oldest first, marked
        assert joiner.next() == ("pubblication", {"n": number}, "kept-a", {"history": True})
    publisher.call("publish", "kept-a", {"n": 5})
    assert joiner.next() == ("pubblication", {"n": 5}, "kept-a")
    assert joiner.nothing()


def test_history_expires_and_plain_channels_keep_none(rooms):
    publisher = recorder(rooms)
    publisher.call("publish", "kept-b", "old")
    publisher.call("publish", "plain", "never kept")
    gevent.sleep(1.7)  # past history_seconds
    publisher.call("publish", "kept-b", "new")
    joiner = recorder(rooms)
    assert joiner.call("subscribe", "kept", "b") == "kept-b"
    assert joiner.call("subscribe", "plain") == "plain"
    assert joiner.next() == ("pubblication", "new", "kept-b", {"history": True})
    assert joiner.nothing()


def test_a_joiner_during_a_stream_gets_each_publication_once_in_order(rooms, wait_for):
    publisher = recorder(rooms)
    published = []

    def stream():
        for number in range(200):
            publisher.call("publish", "both-s", number)
            published.append(number)

    streaming = gevent.spawn(stream)
    wait_for(lambda: len(published) >= 10)  # past the history's 5
    joiner = recorder(rooms)
    assert joiner.call("subscribe", "both", "s") == "both-s"
    streaming.join(timeout=30)
    received = []
    while not received or received[-1] != 199:  # the last is the end
        event = joiner.next(timeout=5)
        if event[0] == "pubblication":
            received.append(event[1])
    assert joiner.nothing()
    # from some point of the history on: every publication, once, in order
    assert received == list(range(received[0], 200)), received
    assert received[0] <= 200 - 5 and received[0] > 0


def test_a_publication_read_as_history_is_not_sent_again_live(rooms, monkeypatch):
    # A publication enters the history before it is published: one read as
    # history by a joiner may still arrive live after the joiner caught up.
    hub = runtime_of(rooms.app_config).hub
    backend_channels = hub._backend_channels
    publish = backend_channels.publish
    in_history = gevent.event.Event()

    def slow_publish(name, message):
        in_history.set()
        gevent.sleep(0.3)  # the joiner catches up meanwhile
        publish(name, message)

    publisher = recorder(rooms)
    monkeypatch.setattr(backend_channels, "publish", slow_publish)
    publishing = gevent.spawn(publisher.call, "publish", "kept-r", "once")
    assert in_history.wait(5)
    joiner = recorder(rooms)
    assert joiner.call("subscribe", "kept", "r") == "kept-r"
    assert joiner.next() == ("pubblication", "once", "kept-r", {"history": True})
    assert publishing.get(timeout=5) is True
    monkeypatch.setattr(backend_channels, "publish", publish)
    assert joiner.nothing(wait=0.5)
    publisher.call("publish", "kept-r", "next")  # and live traffic goes on
    assert joiner.next() == ("pubblication", "next", "kept-r")


def test_history_crosses_processes(serve, redis_server):
    config = redis_config(redis_server)
    first, second = serve({"rooms": Rooms}, config=config), serve({"rooms": Rooms}, config=config)
    recorder(first).call("publish", "kept-x", "from the first")
    joiner = recorder(second)
    assert joiner.call("subscribe", "kept", "x") == "kept-x"
    assert joiner.next() == ("pubblication", "from the first", "kept-x", {"history": True})


# -- presence --------------------------------------------------------------------


def test_presence_state_then_joins_and_leaves(rooms):
    alice = recorder(rooms)
    assert alice.call("subscribe", "live", "1") == "live-1"
    alice_sid = alice.client.get_sid("/rooms")
    event, state, channel = alice.next()
    assert (event, channel) == ("presence_state", "live-1")
    assert state == {alice_sid: {"user": None, "metas": [{"sid": alice_sid}]}}
    assert alice.next()[:2] == ("presence_diff", {  # its own join
        "joins": {alice_sid: {"user": None, "metas": [{"sid": alice_sid}]}}, "leaves": {}})

    bob = recorder(rooms)
    assert bob.call("subscribe", "live", "1") == "live-1"
    bob_sid = bob.client.get_sid("/rooms")
    joined = {"joins": {bob_sid: {"user": None, "metas": [{"sid": bob_sid}]}}, "leaves": {}}
    assert alice.next() == ("presence_diff", joined, "live-1")
    event, state, _channel = bob.next()
    assert event == "presence_state" and set(state) == {alice_sid, bob_sid}
    assert set(alice.call("members", "live-1")) == {alice_sid, bob_sid}

    disconnect_client(bob.client)
    left = {"joins": {}, "leaves": {bob_sid: {"user": None, "metas": [{"sid": bob_sid}]}}}
    assert alice.next() == ("presence_diff", left, "live-1")
    assert set(alice.call("members", "live-1")) == {alice_sid}


def test_one_user_with_two_tabs_is_one_member_with_two_metas(serve, backend):  # noqa: F811
    app = build_remote_user_app(controller_for({"rooms": Rooms}))
    from tgext.socketio.testing import LiveServer

    server = LiveServer(app).start()
    server.app_config = app.app_config
    try:
        tabs = [recorder(server, headers={"X-Test-User": "alice"}) for _ in range(2)]
        other = recorder(server, headers={"X-Test-User": "bob"})
        for client in tabs + [other]:
            assert client.call("subscribe", "live", "u") == "live-u"
        members = other.call("members", "live-u")
        assert set(members) == {"alice", "bob"}
        assert members["alice"]["user"] == "alice"
        assert sorted(meta["sid"] for meta in members["alice"]["metas"]) == sorted(
            tab.client.get_sid("/rooms") for tab in tabs
        )
    finally:
        server.stop()


def test_presence_crosses_processes_and_a_cut_connection_leaves(serve, redis_server):
    config = dict(
        redis_config(redis_server), **{"socketio.ping_interval": 0.5, "socketio.ping_timeout": 2}
    )
    first, second = serve({"rooms": Rooms}, config=config), serve({"rooms": Rooms}, config=config)
    watcher = recorder(first)
    assert watcher.call("subscribe", "live", "p") == "live-p"
    assert watcher.next()[0] == "presence_state"
    assert watcher.next()[0] == "presence_diff"  # its own join
    import websocket

    url = second.url.replace("http", "ws") + "/socketio/?EIO=4&transport=websocket"
    sock = websocket.create_connection(url, timeout=5)
    assert sock.recv().startswith("0{")
    sock.send("40/rooms,")
    joined = sock.recv()
    assert joined.startswith("40/rooms,")
    sock.send('42/rooms,1["subscribe","live","p"]')
    event, diff, channel = watcher.next()
    assert (event, channel) == ("presence_diff", "live-p") and len(diff["joins"]) == 1
    started = time.monotonic()
    sock.sock.shutdown(2)  # cut: no goodbye; the other process notices at ping timeout
    sock.sock.close()
    event, diff, channel = watcher.next(timeout=10)
    assert event == "presence_diff" and diff["leaves"] == {
        key: value for key, value in diff["leaves"].items()} and len(diff["leaves"]) == 1
    assert time.monotonic() - started < 5


def test_the_members_of_a_dead_process_leave_within_the_presence_ttl(
    serve, redis_server, tmp_path, monkeypatch
):
    import os
    import signal

    import socketio

    from tgext.socketio._channels import backends as hub_backends

    from .test_server_runner import GearboxServer

    monkeypatch.setattr(hub_backends, "PRESENCE_TTL", 2)
    monkeypatch.setattr(hub_backends, "PRESENCE_HEARTBEAT", 0.5)
    config = redis_config(redis_server)
    here = serve({"rooms": Rooms}, config=config)
    there = GearboxServer(
        tmp_path,
        app="tests.apps.presence_app:make_app",
        extra="anypubsub.backend = redis\nanypubsub.host = %s" % redis_server,
    )
    try:
        there.wait_for_log("serving Socket.IO at")
        watcher = recorder(here)
        assert watcher.call("subscribe", "live", "d") == "live-d"
        assert [watcher.next()[0], watcher.next()[0]] == ["presence_state", "presence_diff"]
        doomed = socketio.Client()
        doomed.connect(there.url, namespaces=["/rooms"], socketio_path="socketio",
                       transports=["websocket"], wait_timeout=10)
        assert doomed.call("subscribe", ("live", "d"), namespace="/rooms", timeout=5) == "live-d"
        event, diff, _channel = watcher.next()
        assert event == "presence_diff" and len(diff["joins"]) == 1
        (member,) = diff["joins"]
        started = time.monotonic()
        os.killpg(there.process.pid, signal.SIGKILL)  # no goodbye from anyone
        event, diff, _channel = watcher.next(timeout=10)
        assert event == "presence_diff" and set(diff["leaves"]) == {member}
        assert time.monotonic() - started < 2 + 0.5 + 1.5
        assert set(watcher.call("members", "live-d")) == {watcher.client.get_sid("/rooms")}
        doomed.disconnect()
    finally:
        there.stop()


# -- the test helper -------------------------------------------------------------


def test_the_channel_client_asserts_what_a_test_of_an_app_needs(rooms):
    alice, bob = rooms.channels("/rooms"), rooms.channels("/rooms")
    assert alice.subscribe("kept", "h") == "kept-h"
    assert bob.refused("nowhere") == "channel_not_available"
    bob.client.call("publish", ("kept-h", "hello"), namespace="/rooms", timeout=5)
    assert alice.publication("kept-h") == "hello"
    bob.assert_nothing()
    late = rooms.channels("/rooms")
    assert late.subscribe("kept", "h") == "kept-h"
    assert late.publication("kept-h", history=True) == "hello"
    with pytest.raises(AssertionError) as failure:
        late.publication("kept-h", timeout=0.2)
    assert "waited 0.2 s for a live publication on 'kept-h'; received nothing" in str(
        failure.value)
    with pytest.raises(AssertionError) as failure:
        bob.subscribe("nowhere")
    assert "channel_not_available" in str(failure.value)
    assert alice.subscribe("live", "t") == "live-t"
    state = alice.presence_state("live-t")
    assert list(state) == [alice.client.get_sid("/rooms")]
