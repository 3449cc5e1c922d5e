"""PubSub at scale on the Redis backend: a process listens to every channel
over one Redis connection whatever their number, publications name their
channel, and Redis dying or hanging never blocks the server."""

import json
import os
import signal
import time

import gevent
import pytest
import redis
import websocket
from gevent.queue import Empty, Queue

from tgext.socketio._channels.backends import RedisChannels
from tgext.socketio._config.keys import PUBSUB_CHANNEL_PREFIX
from tgext.socketio._engine.runtime import runtime_of
from tgext.socketio.pubsub import PubSubTGNamespace

CLIENTS = 100
CHANNELS_PER_CLIENT = 100
BATCH = 50  # subscribes in flight per client (under max_queued_events)


class Rooms(PubSubTGNamespace):
    def subscribe_room(self, roomid):
        return "room-%s" % roomid

    def on_publish(self, channel, message):
        return self.publish(channel, message)

    def on_ping(self):
        return "pong"


def redis_config(url):
    return {"anypubsub.backend": "redis", "anypubsub.host": url}


@pytest.fixture
def rooms(serve, own_redis):
    server = serve({"rooms": Rooms}, config=redis_config(own_redis.url))
    server.redis = own_redis
    return server


class Subscriber:
    """A raw WebSocket client of /rooms that subscribes in acked batches."""

    def __init__(self, server):
        url = server.url.replace("http", "ws") + "/socketio/?EIO=4&transport=websocket"
        self.sock = websocket.create_connection(url, timeout=30)
        assert self.sock.recv().startswith("0{")
        self.sock.send("40/rooms,")
        assert self.sock.recv().startswith("40/rooms,")
        self.next_id = 0

    def subscribe_rooms(self, roomids):
        for start in range(0, len(roomids), BATCH):
            batch = roomids[start : start + BATCH]
            for roomid in batch:
                self.next_id += 1
                self.sock.send('42/rooms,%d["subscribe","room",%d]' % (self.next_id, roomid))
            acks = 0
            while acks < len(batch):
                frame = self.sock.recv()
                if frame == "2":
                    self.sock.send("3")
                elif frame.startswith("43/rooms,"):
                    assert json.loads(frame[frame.index("["):])[0].startswith("room-")
                    acks += 1

    def close(self):
        self.sock.shutdown()


def redis_clients(admin):
    """Connections to Redis but the admin's own."""
    return len(admin.client_list()) - 1


def reader_greenlets():
    import gc

    return [
        obj for obj in gc.get_objects()
        if isinstance(obj, gevent.Greenlet) and not obj.dead
        and getattr(getattr(obj, "_run", None), "__func__", None) is RedisChannels._read
    ]


def test_10000_channels_over_one_connection_and_dropped_without_a_stall(rooms, wait_for):
    admin = redis.Redis.from_url(rooms.redis.url)
    try:
        subscribers = [Subscriber(rooms) for _ in range(CLIENTS)]
        jobs = [
            gevent.spawn(
                subscriber.subscribe_rooms,
                list(range(index * CHANNELS_PER_CLIENT, (index + 1) * CHANNELS_PER_CLIENT)),
            )
            for index, subscriber in enumerate(subscribers)
        ]
        gevent.joinall(jobs, raise_error=True)
        channels = admin.pubsub_channels(PUBSUB_CHANNEL_PREFIX + "*")
        assert len(channels) == CLIENTS * CHANNELS_PER_CLIENT
        assert dict(admin.pubsub_numsub(PUBSUB_CHANNEL_PREFIX + "room-1234")) == {
            (PUBSUB_CHANNEL_PREFIX + "room-1234").encode(): 1
        }
        # one connection listens; publishing (the reader's wake-ups) took a few
        assert redis_clients(admin) <= 4, admin.client_list()
        assert len(reader_greenlets()) == 1
        # a publication on one of them reaches its subscriber, naming the channel
        subscribers[12].sock.send('42/rooms,["publish","room-1234","hello"]')
        while True:
            frame = subscribers[12].sock.recv()
            if frame.startswith("42/rooms,"):
                assert json.loads(frame[len("42/rooms,"):]) == [
                    "pubblication", "hello", "room-1234"]
                break

        # every client leaves at once: 10,000 channels dropped; the loop
        # keeps running meanwhile (a timer checks how late it wakes, in
        # this process's CPU time: the time the OS gives other processes,
        # a parallel test run's, is no stall of this loop)
        lateness = []

        def tick():
            while True:
                started = time.process_time()
                gevent.sleep(0.01)
                lateness.append(time.process_time() - started)

        ticking = gevent.spawn(tick)
        for subscriber in subscribers:
            subscriber.close()
        hub = runtime_of(rooms.app_config).hub
        wait_for(lambda: hub.channel_names() == [], timeout=20)
        wait_for(lambda: admin.pubsub_channels(PUBSUB_CHANNEL_PREFIX + "*") == [], timeout=20)
        wait_for(lambda: not reader_greenlets(), timeout=10)
        ticking.kill()
        assert max(lateness) < 0.25, "the loop stalled %.2f s" % max(lateness)
        # nothing listens any more: the listening connection is closed
        wait_for(lambda: redis_clients(admin) <= 3, timeout=10)
    finally:
        admin.close()


def listen_with_channels(client):
    queue = Queue()
    client.on("pubblication", lambda *args: queue.put(args), namespace="/rooms")
    return queue


def test_publications_name_their_channel(rooms):
    client = rooms.connect(namespaces=["/rooms"])
    heard = listen_with_channels(client)
    assert client.call("subscribe", ("room", 1), namespace="/rooms", timeout=5) == "room-1"
    assert client.call("subscribe", ("room", 2), namespace="/rooms", timeout=5) == "room-2"
    client.call("publish", ("room-2", {"n": 2}), namespace="/rooms", timeout=5)
    client.call("publish", ("room-1", {"n": 1}), namespace="/rooms", timeout=5)
    assert heard.get(timeout=5) == ({"n": 2}, "room-2")
    assert heard.get(timeout=5) == ({"n": 1}, "room-1")


def test_a_hung_redis_blocks_nothing_and_delivery_resumes(rooms):
    listener = rooms.connect(namespaces=["/rooms"])
    publisher = rooms.connect(namespaces=["/rooms"])
    heard = listen_with_channels(listener)
    assert listener.call("subscribe", ("room", 7), namespace="/rooms", timeout=5) == "room-7"
    pid = rooms.redis.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        # the server answers at once, even a new subscription (not confirmed)
        started = time.monotonic()
        for _ in range(10):
            assert listener.call("ping", namespace="/rooms", timeout=5) == "pong"
        assert time.monotonic() - started < 2
        assert listener.call("subscribe", ("room", 8), namespace="/rooms", timeout=10) == "room-8"
    finally:
        os.kill(pid, signal.SIGCONT)
    with gevent.Timeout(20, AssertionError("delivery did not resume")):
        while True:
            publisher.call("publish", ("room-8", "back"), namespace="/rooms", timeout=10)
            try:
                assert heard.get(timeout=0.5) == ("back", "room-8")
                break
            except Empty:
                continue
