"""PubSubTGNamespace over real servers and clients, on the memory backend and
on the suite's own redis-server: subscribe/publish, subchannels, the 0.0.x
errors, @require and @validate on subscribe_<channel>, unsubscribe, and what
is left once clients go (backend subscriptions, greenlets)."""
import gc
import json
import os
import uuid
import warnings

import gevent
import pytest
import websocket
from gevent.queue import Empty, Queue
from tg import predicates, require, validate
from tg.validation import Convert

from tgext.socketio._channels.backends import RedisChannels
from tgext.socketio._config.keys import PUBSUB_CHANNEL_PREFIX
from tgext.socketio._engine.runtime import runtime_of
from tgext.socketio.pubsub import PubSubTGNamespace

from .apps.auth_app import build_remote_user_app
from .conftest import controller_for


class News(PubSubTGNamespace):
    def subscribe_news(self):
        return None  # accept the channel as named

    def subscribe_room(self, roomid):
        return "room-%s" % roomid

    def subscribe_closed(self):
        return False

    @require(predicates.not_anonymous())
    def subscribe_secret(self):
        return True

    @validate({"level": Convert(int, "Must be a number")})
    def subscribe_level(self, level):
        return "level-%d" % level

    def subscribe_daily_news(self):
        return None

    def on_publish(self, channel, message):
        return self.publish(channel, message)

    def on_channels(self):
        return self.subscriptions()

    def on_leave(self):
        self.disconnect()


def redis_config(url):
    return {"anypubsub.backend": "redis", "anypubsub.host": url}


@pytest.fixture(params=["memory", "redis"])
def backend(request):
    """The ``anypubsub.*`` config of each backend (Redis: the suite's own)."""
    if request.param == "memory":
        return {}
    return redis_config(request.getfixturevalue("redis_server"))


@pytest.fixture
def news(serve, backend):
    return serve({"news": News}, config=backend)


def listen(client, event="pubblication", namespace="/news"):
    """A queue of what ``event`` brings: one argument, or a tuple of them;
    for ``pubblication``, the message (``listen_with_channels`` for both)."""
    queue = Queue()
    if event == "pubblication":
        def handler(message, channel):
            queue.put(message)
    else:
        def handler(*args):
            queue.put(args[0] if len(args) == 1 else args)
    client.on(event, handler, namespace=namespace)
    return queue


def listen_with_channels(client, namespace="/news"):
    """A queue of ``(message, channel)`` for each ``pubblication``."""
    queue = Queue()
    client.on("pubblication", lambda *args: queue.put(args), namespace=namespace)
    return queue


def subscribe(client, *args, namespace="/news"):
    return client.call("subscribe", args, namespace=namespace, timeout=5)


def nothing_in(queue, wait=0.3):
    try:
        item = queue.get(timeout=wait)
    except Empty:
        return True
    raise AssertionError("unexpected delivery: %r" % (item,))


def hub_of_server(server):
    return runtime_of(server.app_config).hub


@pytest.mark.parametrize("transport", ["websocket", "polling", "upgrade"])
def test_publish_reaches_every_subscriber_with_the_ack_naming_the_channel(
    news, transport
):
    alice = news.connect(namespaces=["/news"], transport=transport)
    bob = news.connect(namespaces=["/news"], transport=transport)
    to_alice, to_bob = listen(alice), listen(bob)
    assert subscribe(alice, "news") == "news"
    assert subscribe(bob, "news") == "news"
    message = {"title": "hello", "tags": ["a", "b"], "count": 3, "ok": True}
    assert bob.call("publish", ("news", message), namespace="/news", timeout=5) is True
    assert to_alice.get(timeout=5) == message
    assert to_bob.get(timeout=5) == message


def test_a_non_subscriber_receives_nothing(news):
    reader, other = (news.connect(namespaces=["/news"]) for _ in range(2))
    heard_by_other = listen(other)
    assert subscribe(reader, "news") == "news"
    reader.call("publish", ("news", "only for subscribers"), namespace="/news", timeout=5)
    assert nothing_in(heard_by_other)


def test_subchannels_keep_their_messages_apart(news):
    five, six = news.connect(namespaces=["/news"]), news.connect(namespaces=["/news"])
    to_five, to_six = listen(five), listen(six)
    assert subscribe(five, "room", 5) == "room-5"
    assert subscribe(six, "room", 6) == "room-6"
    five.call("publish", ("room-5", "for five"), namespace="/news", timeout=5)
    six.call("publish", ("room-6", "for six"), namespace="/news", timeout=5)
    assert to_five.get(timeout=5) == "for five"
    assert to_six.get(timeout=5) == "for six"
    assert nothing_in(to_five) and nothing_in(to_six)


def test_spaces_in_a_channel_name_become_underscores(news):
    client = news.connect(namespaces=["/news"])
    assert subscribe(client, "daily news") == "daily news"
    heard = listen(client)
    client.call("publish", ("daily news", "extra!"), namespace="/news", timeout=5)
    assert heard.get(timeout=5) == "extra!"


@pytest.mark.parametrize("args, error", [
    ((), ("channel_not_specified", "You must specify the channel you want to subscribe")),
    (("",), ("channel_not_specified", "You must specify the channel you want to subscribe")),
    (("nowhere",), ("channel_not_available",
                    "Trying to subscribe to a channel not available")),
    (("../news",), ("channel_not_available",
                    "Trying to subscribe to a channel not available")),
    ((42,), ("channel_not_available", "Trying to subscribe to a channel not available")),
    (("closed",), ("subscription_rejected",
                   "Your subscription has been rejected by server")),
    (("level", "high"), ("invalid_method_args", {"level": "Must be a number"})),
])
def test_rejections_send_the_0_0_x_errors_ack_false_and_deliver_nothing(
    news, args, error
):
    client = news.connect(namespaces=["/news"])
    errors, heard = listen(client, "error"), listen(client)
    assert subscribe(client, *args) is False
    assert errors.get(timeout=5) == error
    assert client.call("channels", namespace="/news", timeout=5) == []
    channel = args[0] if args and isinstance(args[0], str) and args[0] else "news"
    for name in {channel, "level-0", "closed"}:
        client.call("publish", (name, "must not arrive"), namespace="/news", timeout=5)
    assert nothing_in(heard)


def test_validated_arguments_pick_the_subchannel(news):
    client = news.connect(namespaces=["/news"])
    assert subscribe(client, "level", "7") == "level-7"


@pytest.fixture
def guarded(live_server, backend):
    controller = controller_for({"news": News})
    app = build_remote_user_app(controller)
    server = live_server(app)
    return server


def test_require_on_subscribe_denies_anonymous_for_good(guarded):
    anonymous = guarded.connect(namespaces=["/news"])
    member = guarded.connect(namespaces=["/news"], headers={"X-Test-User": "bob"})
    errors, heard_by_anonymous, heard_by_member = (
        listen(anonymous, "error"), listen(anonymous), listen(member)
    )
    assert subscribe(anonymous, "secret") is False
    assert errors.get(timeout=5) == (
        "method_access_denied", 'You do not have access to method "subscribe_secret"'
    )
    assert subscribe(member, "secret") == "secret"
    member.call("publish", ("secret", "for members"), namespace="/news", timeout=5)
    assert heard_by_member.get(timeout=5) == "for members"
    assert nothing_in(heard_by_anonymous)


def test_subscribing_twice_is_one_subscription(news):
    client = news.connect(namespaces=["/news"])
    heard = listen(client)
    assert subscribe(client, "news") == "news"
    assert subscribe(client, "news") == "news"
    client.call("publish", ("news", "once"), namespace="/news", timeout=5)
    assert heard.get(timeout=5) == "once"
    assert nothing_in(heard)


def test_unsubscribe_with_the_subscribe_arguments_undoes_one(news):
    client = news.connect(namespaces=["/news"])
    heard = listen(client)
    assert subscribe(client, "room", 1) == "room-1"
    assert subscribe(client, "news") == "news"
    assert client.call("unsubscribe", ("room", 1), namespace="/news", timeout=5) == "room-1"
    assert client.call("unsubscribe", ("room", 1), namespace="/news", timeout=5) is False
    assert client.call("channels", namespace="/news", timeout=5) == ["news"]
    client.call("publish", ("room-1", "gone"), namespace="/news", timeout=5)
    client.call("publish", ("news", "still here"), namespace="/news", timeout=5)
    assert heard.get(timeout=5) == "still here"
    assert nothing_in(heard)


def test_unsubscribe_without_arguments_drops_every_subscription(news):
    client = news.connect(namespaces=["/news"])
    heard = listen(client)
    subscribe(client, "room", 1)
    subscribe(client, "room", 2)
    subscribe(client, "news")
    dropped = client.call("unsubscribe", namespace="/news", timeout=5)
    assert dropped == ["news", "room-1", "room-2"]
    for channel in dropped:
        client.call("publish", (channel, "gone"), namespace="/news", timeout=5)
    assert nothing_in(heard)
    assert hub_of_server(news).channel_names() == []


def test_two_apps_in_one_process_keep_their_own_memory_backends(serve):
    first, second = serve({"news": News}), serve({"news": News})
    here, there = first.connect(namespaces=["/news"]), second.connect(namespaces=["/news"])
    heard_here, heard_there = listen(here), listen(there)
    subscribe(here, "news")
    subscribe(there, "news")
    here.call("publish", ("news", "first app only"), namespace="/news", timeout=5)
    assert heard_here.get(timeout=5) == "first app only"
    assert nothing_in(heard_there)
    assert hub_of_server(first) is not hub_of_server(second)


def test_two_servers_sharing_redis_deliver_each_others_publishes(serve, redis_server):
    config = redis_config(redis_server)
    first, second = serve({"news": News}, config=config), serve({"news": News}, config=config)
    here, there = first.connect(namespaces=["/news"]), second.connect(namespaces=["/news"])
    heard_here, heard_there = listen(here), listen(there)
    subscribe(here, "news")
    subscribe(there, "news")
    here.call("publish", ("news", "from the first"), namespace="/news", timeout=5)
    there.call("publish", ("news", "from the second"), namespace="/news", timeout=5)
    assert {heard_here.get(timeout=5), heard_here.get(timeout=5)} == {
        "from the first", "from the second"}
    assert {heard_there.get(timeout=5), heard_there.get(timeout=5)} == {
        "from the first", "from the second"}
    assert nothing_in(heard_here) and nothing_in(heard_there)


# -- nothing outlives a client --------------------------------------------------


def live_listeners():
    """The hubs' Redis readers still running (at most one per app)."""
    return [
        obj for obj in gc.get_objects()
        if isinstance(obj, gevent.Greenlet) and not obj.dead
        and getattr(obj, "_run", None) is not None
        and getattr(obj._run, "__func__", None) is RedisChannels._read
    ]


def live_greenlets():
    return sum(
        1 for obj in gc.get_objects() if isinstance(obj, gevent.Greenlet) and not obj.dead
    )


def numsub(redis_url, channel):
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        # PubSub channels are prefixed on the backend (apart from the queue's)
        name = PUBSUB_CHANNEL_PREFIX + channel
        return dict(client.pubsub_numsub(name))[name.encode()]
    finally:
        client.connection_pool.disconnect()  # redis-py 5.0's close() leaves it open


class RawClient:
    """An Engine.IO WebSocket client that can leave in every way a client can."""

    def __init__(self, server, namespace="/news"):
        url = server.url.replace("http", "ws") + "/socketio/?EIO=4&transport=websocket"
        self.sock = websocket.create_connection(url, timeout=5)
        self.namespace = namespace
        assert self.receive().startswith("0{")
        self.sock.send("40%s," % namespace)
        assert self.receive().startswith("40%s," % namespace)
        self.next_id = 0

    def receive(self):
        while True:
            frame = self.sock.recv()
            if frame == "2":
                self.sock.send("3")
                continue
            return frame

    def call(self, event, *args):
        self.next_id += 1
        self.sock.send("42%s,%d%s" % (self.namespace, self.next_id,
                                      json.dumps([event, *args])))
        prefix = "43%s,%d" % (self.namespace, self.next_id)
        while True:
            frame = self.receive()
            if frame.startswith(prefix):
                return json.loads(frame[len(prefix):])

    def close(self):
        self.sock.close()
        self.sock.shutdown()  # close() leaves the socket open once the peer closed

    def drop(self):
        """Cut the TCP connection: no close frame, no Socket.IO disconnect."""
        import socket

        self.sock.sock.shutdown(socket.SHUT_RDWR)
        self.sock.sock.close()


def leave(client, how):
    if how == "clean":
        client.sock.send("41%s," % client.namespace)
        client.close()
    elif how == "close":
        client.close()
    elif how == "drop":
        client.drop()
    elif how == "namespace":
        client.sock.send("42%s,[\"leave\"]" % client.namespace)
    elif how == "malformed":
        client.sock.send("4x-not-a-packet")


@pytest.mark.parametrize("how", ["clean", "close", "drop", "namespace", "malformed"])
def test_a_client_leaving_takes_its_subscriptions_along(news, wait_for, how):
    client = RawClient(news)
    assert client.call("subscribe", "room", 9) == ["room-9"]
    hub = hub_of_server(news)
    assert hub.channel_names() == ["room-9"]
    leave(client, how)
    wait_for(lambda: hub.channel_names() == [])
    wait_for(lambda: not live_listeners())
    client.close()


def test_ping_timeout_takes_the_subscriptions_along(serve, wait_for):
    server = serve({"news": News},
                   config={"socketio.ping_interval": 1, "socketio.ping_timeout": 1})
    url = server.url.replace("http", "ws") + "/socketio/?EIO=4&transport=websocket"
    sock = websocket.create_connection(url, timeout=5)
    assert sock.recv().startswith("0{")
    sock.send("40/news,")
    assert sock.recv().startswith("40/news,")
    sock.send('42/news,1["subscribe","news"]')
    assert sock.recv() == '43/news,1["news"]'
    hub = hub_of_server(server)
    assert hub.channel_names() == ["news"]
    # never answer the server's pings
    wait_for(lambda: hub.channel_names() == [], timeout=10)
    sock.close()


def test_200_clients_subscribe_and_leave_half_dropping_tcp(serve, redis_server, wait_for):
    config = dict(redis_config(redis_server), **{"socketio.ping_interval": 1})
    server = serve({"news": News}, config=config)
    channel = "room-" + uuid.uuid4().hex

    def round_trip():
        connections_before = len(news_connections(server))
        clients = [RawClient(server) for _ in range(200)]
        for client in clients:
            assert client.call("subscribe", "room", channel[5:]) == [channel]
        assert numsub(redis_server, channel) == 1  # one per process
        publisher = RawClient(server)
        publisher.call("publish", channel, "to 200")
        for client in clients:
            assert json.loads(client.receive()[len('42/news,'):]) == [
                "pubblication", "to 200", channel]
        for number, client in enumerate(clients + [publisher]):
            client.drop() if number % 2 else client.close()
        wait_for(lambda: numsub(redis_server, channel) == 0, timeout=10)
        wait_for(lambda: not live_listeners())
        wait_for(lambda: len(news_connections(server)) == connections_before, timeout=10)

    round_trip()  # warms the dispatcher's reusable workers up
    gc.collect()
    baseline, open_fds = live_greenlets(), len(os.listdir("/proc/self/fd"))
    round_trip()
    gc.collect()
    # every greenlet and every file descriptor is back to the baseline
    wait_for(lambda: live_greenlets() <= baseline, timeout=10)
    wait_for(lambda: len(os.listdir("/proc/self/fd")) <= open_fds, timeout=10)


def news_connections(server):
    return runtime_of(server.app_config).engines[0]._connections


def test_server_stop_ends_the_hub_listeners(serve, redis_server, wait_for):
    server = serve({"news": News}, config=redis_config(redis_server))
    client = server.connect(namespaces=["/news"])
    subscribe(client, "news")
    assert len(live_listeners()) == 1
    server.stop()
    wait_for(lambda: not live_listeners())


class Ping(PubSubTGNamespace):
    def on_ping(self):
        return "pong"


def test_redis_going_away_fails_publishes_and_subscriptions_resume(serve, own_redis):
    import redis

    server = serve({"news": News, "ping": Ping}, config=redis_config(own_redis.url))
    reader = server.connect(namespaces=["/news", "/ping"])
    publisher = server.connect(namespaces=["/news"])
    heard, errors = listen(reader), listen(publisher, "error")
    assert subscribe(reader, "news") == "news"

    own_redis.stop()
    assert publisher.call("publish", ("news", "lost"), namespace="/news", timeout=5) is False
    name, message = errors.get(timeout=5)
    assert name == "publish_failed"
    assert message == 'Could not publish on channel "news": the pub/sub backend is unavailable'
    # the server and the other namespaces carry on meanwhile
    assert reader.call("ping", namespace="/ping", timeout=5) == "pong"
    assert subscribe(publisher, "room", 3) == "room-3"

    own_redis.start()
    direct = redis.Redis.from_url(own_redis.url)
    try:
        with gevent.Timeout(15, AssertionError("delivery did not resume")):
            while True:  # the hub subscribes again by itself, within 5 s
                direct.publish(PUBSUB_CHANNEL_PREFIX + "news", json.dumps("back"))
                try:
                    assert heard.get(timeout=0.3) == "back"
                    break
                except Empty:
                    continue
    finally:
        direct.close()
    assert publisher.call("publish", ("news", "again"), namespace="/news", timeout=5) is True
    while heard.get(timeout=5) == "back":
        pass  # resume probes still in flight
    server.stop()
    # redis-py (8.1) can leave one socket of a PubSub reconnect that raced
    # the shutdown to the garbage collector: collect it here, quietly
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def test_publish_from_a_controller_action(serve, backend):
    import requests
    from tg import expose

    from tgext.socketio.pubsub import publish

    @expose("json")
    def announce(self, text):
        publish("news", {"announcement": text})
        return {"ok": True}

    server = serve({"news": News}, config=backend, announce=announce)
    client = server.connect(namespaces=["/news"])
    heard = listen(client)
    subscribe(client, "news")
    response = requests.get(server.url + "/socketio/announce", params={"text": "hi"},
                            timeout=5)
    assert response.json() == {"ok": True}
    assert heard.get(timeout=5) == {"announcement": "hi"}


@pytest.mark.parametrize("config, message", [
    ({"anypubsub.backend": "carrier-pigeon"}, "anypubsub.backend = 'carrier-pigeon'"),
    ({"anypubsub.backend": "redis", "anypubsub.port": "x"}, "anypubsub.port = 'x'"),
    ({"anypubsub.backend": "redis", "anypubsub.url": "redis://x"},
     "the redis backend does not take anypubsub.url"),
    ({"anypubsub.backend": "redis", "anypubsub.host": "redis://h:port/0"},
     "anypubsub.host = 'redis://h:port/0' is not a Redis address"),
])
def test_bad_settings_name_the_key(config, message):
    from tgext.socketio._channels.hub import create_backend
    from tgext.socketio.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError) as failure:
        create_backend(config)
    assert message in str(failure.value)


def test_server_stop_closes_the_backends_redis_connections(serve, redis_server, wait_for):
    """Publishing opened a pooled connection: the server's stop closes it
    rather than leaving it to the garbage collector."""
    import redis

    admin = redis.Redis.from_url(redis_server)
    try:
        before = len(admin.client_list())
        server = serve({"news": News}, config=redis_config(redis_server))
        client = RawClient(server)
        assert client.call("subscribe", "room", "stop") == ["room-stop"]
        client.call("publish", "room-stop", "hello")
        assert len(admin.client_list()) > before
        client.close()
        server.stop()
        # (<=: an earlier test's connection may still be closing when "before" was taken)
        try:
            wait_for(lambda: len(admin.client_list()) <= before)
        except AssertionError:
            raise AssertionError([(c["name"], c["cmd"], c["age"], c["sub"]) for c in admin.client_list()]) from None
    finally:
        admin.close()


class AnyChannel(PubSubTGNamespace):
    """An authorizer that lets a client name any channel (the risky kind)."""

    def subscribe_socketio(self):
        return None

    def on_shout(self, text):
        self.spawn(self._shout, text)

    def _shout(self, text):
        self._tgsio.engine.emit("shouted", (text,), namespace=self.ns_name)


def test_a_channel_named_like_the_message_queue_receives_nothing_internal(
    serve, redis_server
):
    """The message queue (socketio.channel, "socketio") and PubSub share one
    Redis: PubSub channels are prefixed there, so a client subscribed to
    the channel "socketio" never sees the queue's internal packets."""
    config = dict(redis_config(redis_server), **{"socketio.message_queue": redis_server})
    server = serve({"any": AnyChannel}, config=config)
    listener, shouter = (server.connect(namespaces=["/any"]) for _ in range(2))
    publications = listen(listener, namespace="/any")
    shouts = listen(shouter, event="shouted", namespace="/any")
    assert subscribe(listener, "socketio", namespace="/any") == "socketio"
    for number in range(20):  # emits through the Redis message queue
        shouter.emit("shout", "hello %d" % number, namespace="/any")
    # each shout is published by its own greenlet: in any order
    assert sorted(shouts.get(timeout=5) for _ in range(20)) == sorted(
        "hello %d" % number for number in range(20))
    assert nothing_in(publications)


def test_a_client_is_refused_past_max_subscriptions(serve, backend):
    server = serve({"news": News}, config=dict(backend, **{"socketio.max_subscriptions": 3}))
    client = server.connect(namespaces=["/news"])
    errors, heard = listen(client, "error"), listen_with_channels(client)
    assert [subscribe(client, "room", number) for number in range(3)] == [
        "room-0", "room-1", "room-2"]
    assert subscribe(client, "room", 3) is False
    assert errors.get(timeout=5) == (
        "too_many_subscriptions",
        "You may subscribe to 3 channels at most in this namespace "
        "(socketio.max_subscriptions)",
    )
    assert subscribe(client, "room", 1) == "room-1"  # one it has: no new channel
    client.call("publish", ("room-3", "not for you"), namespace="/news", timeout=5)
    client.call("publish", ("room-2", "for you"), namespace="/news", timeout=5)
    assert heard.get(timeout=5) == ("for you", "room-2")
    assert nothing_in(heard)
    # another connection has a budget of its own; leaving one makes room
    assert client.call("unsubscribe", ("room", 0), namespace="/news", timeout=5) == "room-0"
    assert subscribe(client, "room", 3) == "room-3"


def test_a_publication_over_the_limit_is_refused_naming_it(serve, backend):
    server = serve({"news": News},
                   config=dict(backend, **{"socketio.max_publication_bytes": 1000}))
    client = server.connect(namespaces=["/news"])
    errors, heard = listen(client, "error"), listen(client)
    subscribe(client, "news")
    assert client.call("publish", ("news", "x" * 998), namespace="/news", timeout=5) is True
    assert heard.get(timeout=5) == "x" * 998  # 1,000 bytes of JSON
    assert client.call("publish", ("news", "x" * 999), namespace="/news", timeout=5) is False
    assert errors.get(timeout=5) == (
        "publication_too_large",
        "A publication of 1001 bytes is over the limit of 1000 "
        "(socketio.max_publication_bytes)",
    )
    assert nothing_in(heard)
