"""participants(): who is in a namespace or a room, over two servers sharing
the suite's Redis message queue (and this process's alone without one); a
client whose TCP connection is cut leaves the list at its ping timeout."""
import json
import uuid

import gevent
import pytest
import requests
import websocket
from tg import expose

from tgext.socketio import BaseNamespace, RoomsMixin, participants


class Lobby(RoomsMixin, BaseNamespace):
    def on_whoami(self):
        return self._tgsio.sid

    def on_join(self, room):
        self.join(room)

    def on_leave(self, room):
        self.leave(room)

    def on_who(self, room=None):
        return self.participants(room)


@expose("json")
def who(self, room=None):
    return {"sids": participants("/lobby", room)}


@pytest.fixture
def two_servers(serve, redis_server):
    config = {"socketio.message_queue": redis_server,
              "socketio.channel": "presence-" + uuid.uuid4().hex,
              # a pong may come late on a busy machine: a long-polling
              # client gets 3 s (a cut WebSocket is seen at once anyway)
              "socketio.ping_interval": 1, "socketio.ping_timeout": 3}
    return [serve({"lobby": Lobby}, config=config, who=who) for _ in range(2)]


def test_participants_span_both_servers_and_rooms(two_servers, wait_for):
    first, second = two_servers
    here = [first.connect(namespaces=["/lobby"]) for _ in range(2)]
    there = [second.connect(namespaces=["/lobby"], transport="polling")
             for _ in range(3)]
    sids = {client: client.call("whoami", namespace="/lobby", timeout=5)
            for client in here + there}
    everyone = sorted(sids.values())
    assert here[0].call("who", namespace="/lobby", timeout=5) == everyone
    assert there[0].call("who", namespace="/lobby", timeout=5) == everyone

    for client in (here[1], there[2]):
        client.call("join", "tea", namespace="/lobby", timeout=5)
    tea = sorted([sids[here[1]], sids[there[2]]])
    assert here[0].call("who", "tea", namespace="/lobby", timeout=5) == tea
    assert requests.get(second.url + "/socketio/who", params={"room": "tea"},
                        timeout=5).json() == {"sids": tea}

    there[2].call("leave", "tea", namespace="/lobby", timeout=5)
    assert here[0].call("who", "tea", namespace="/lobby", timeout=5) == [sids[here[1]]]
    there[1].disconnect()
    wait_for(lambda: sids[there[1]] not in here[0].call(
        "who", namespace="/lobby", timeout=5))


def test_a_client_cut_off_leaves_within_its_ping_timeout(two_servers, wait_for):
    first, second = two_servers
    watcher = first.connect(namespaces=["/lobby"])
    url = second.url.replace("http", "ws") + "/socketio/?EIO=4&transport=websocket"
    sock = websocket.create_connection(url, timeout=5)
    assert sock.recv().startswith("0{")
    sock.send("40/lobby,")
    joined = sock.recv()
    cut_sid = json.loads(joined[len("40/lobby,"):])["sid"]
    # another process's joins reach Redis within milliseconds
    wait_for(lambda: cut_sid in watcher.call("who", namespace="/lobby", timeout=5))
    sock.sock.shutdown(2)  # no close frame, no disconnect: the cable is cut
    sock.shutdown()
    # the server sees the cut at once (at worst, ping_interval 1 s +
    # ping_timeout 3 s): gone within a few seconds
    wait_for(lambda: cut_sid not in watcher.call("who", namespace="/lobby", timeout=5),
             timeout=10)


def test_participants_without_a_message_queue_are_this_process(serve):
    server = serve({"lobby": Lobby})
    clients = [server.connect(namespaces=["/lobby"]) for _ in range(3)]
    sids = sorted(client.call("whoami", namespace="/lobby", timeout=5)
                  for client in clients)
    assert clients[0].call("who", namespace="/lobby", timeout=5) == sids
    clients[1].call("join", "tea", namespace="/lobby", timeout=5)
    assert clients[0].call("who", "tea", namespace="/lobby", timeout=5) == [
        clients[1].call("whoami", namespace="/lobby", timeout=5)]


def test_members_of_a_process_that_died_expire(redis_server, monkeypatch, wait_for):
    from tgext.socketio import presence

    monkeypatch.setattr(presence, "TTL", 1)
    monkeypatch.setattr(presence, "HEARTBEAT", 0.2)  # the live process renews
    channel = "presence-" + uuid.uuid4().hex
    dead, alive = (presence.RedisPresence(redis_server, channel) for _ in range(2))
    dead.add("/lobby", None, "from-the-dead-process")
    alive.add("/lobby", None, "from-the-live-one")
    wait_for(lambda: alive.participants("/lobby") == [
        "from-the-dead-process", "from-the-live-one"])
    dead._stop_renewing()  # the process dies: no renewal, no removal
    dead._redis.connection_pool.disconnect()  # its sockets die with it
    wait_for(lambda: alive.participants("/lobby") == ["from-the-live-one"], timeout=5)
    alive.close()


def test_close_ends_the_renewing_greenlet_between_two_operations(
    redis_server, wait_for
):
    """Killed in the middle of a Redis operation, the greenlet could leave a
    socket redis-py was connecting unclosed: it is told to stop instead."""
    from tgext.socketio import presence

    members = presence.RedisPresence(redis_server, "presence-" + uuid.uuid4().hex)
    members.add("/lobby", None, "someone")
    wait_for(lambda: members.participants("/lobby") == ["someone"])
    worker = members._worker
    members.close()
    assert worker.dead and worker.value is None  # returned: a kill leaves GreenletExit


def test_close_closes_its_redis_connections(redis_server, wait_for):
    """redis-py 5.0's Redis.close() leaves its pool's connections open: a
    socket left to the collector may be finalized unclosed."""
    import redis

    from tgext.socketio import presence

    observer = redis.Redis.from_url(redis_server)

    def connected():
        return {client["id"] for client in observer.client_list()}

    try:
        before = connected()
        members = presence.RedisPresence(redis_server, "presence-" + uuid.uuid4().hex)
        members.add("/lobby", None, "someone")
        wait_for(lambda: members.participants("/lobby") == ["someone"])
        its_own = connected() - before
        assert its_own
        members.close()
        wait_for(lambda: not its_own & connected())
    finally:
        observer.connection_pool.disconnect()


def test_close_while_redis_is_away_ends_the_retrying_greenlet_at_once():
    import socket
    import time

    from tgext.socketio import presence

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = "redis://127.0.0.1:%d/0" % probe.getsockname()[1]
    members = presence.RedisPresence(url, "presence-" + uuid.uuid4().hex)
    members.add("/lobby", None, "someone")  # the worker fails, then waits 1 s
    with gevent.Timeout(5, AssertionError("the worker did not fail")):
        while not members._failing:
            gevent.sleep(0.01)
    started = time.monotonic()
    members.close()
    assert time.monotonic() - started < 0.5
    assert members._worker.dead and members._worker.value is None
