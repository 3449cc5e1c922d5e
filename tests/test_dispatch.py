"""on_<event> dispatch, the packet parameter, acknowledgements, callbacks,
binary data, call(), auth and the default namespace, over every transport."""

import gevent
import pytest
import socketio
from gevent.queue import Queue

from tgext.socketio import BaseNamespace
from tgext.socketio._engine import client_errors as wire

TRANSPORTS = ["websocket", "polling", "upgrade"]


class Echo(BaseNamespace):
    def on_ping(self, attack):
        self.emit("pong", {"sound": "pong", "attack": attack})

    def on_add(self, a, b):
        return a + b

    def on_pair(self):
        return "one", 2

    def on_nothing(self):
        return None

    def on_inspect(self, packet):
        return {key: packet[key] for key in sorted(packet) if key != "args"} | {
            "args": list(packet["args"])
        }

    def on_two_words(self, value):
        return "two words: %s" % value

    def on_reverse_bytes(self, blob, meta):
        self.emit("bytes back", blob[::-1], {"nested": [blob]})
        return blob.upper()

    def on_ask_client(self, question):
        answer = self.call("question", question, timeout=5)
        return "client said %s" % answer

    def on_ask_with_callback(self):
        self.emit("question", "callback?", callback=self._got_answer)

    def _got_answer(self, *args):
        self.emit("answer received", list(args))

    def on_whoami(self):
        return self.auth

    def on_slow_then_fast(self, label, delay):
        gevent.sleep(delay)
        self.emit("order", label)


def collect(client, event, namespace="/echo"):
    queue = Queue()
    client.on(event, lambda *args: queue.put(args), namespace=namespace)
    return queue


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_event_calls_on_method_and_emit_reaches_client(serve, transport):
    server = serve({"echo": Echo})
    client = server.connect(namespaces=["/echo"], transport=transport)
    pongs = collect(client, "pong")
    client.emit("ping", {"type": "ping"}, namespace="/echo")
    assert pongs.get(timeout=5) == ({"sound": "pong", "attack": {"type": "ping"}},)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_return_value_is_the_acknowledgement(serve, transport):
    server = serve({"echo": Echo})
    client = server.connect(namespaces=["/echo"], transport=transport)
    assert client.call("add", (2, 3), namespace="/echo", timeout=5) == 5
    assert client.call("pair", namespace="/echo", timeout=5) == ("one", 2)
    assert client.call("nothing", namespace="/echo", timeout=5) is None


def test_event_name_with_spaces_calls_underscored_method(serve):
    server = serve({"echo": Echo})
    client = server.connect(namespaces=["/echo"])
    assert client.call("two words", "x", namespace="/echo", timeout=5) == "two words: x"


def test_packet_parameter_receives_the_packet_dict(serve):
    server = serve({"echo": Echo})
    client = server.connect(namespaces=["/echo"])
    packet = client.call("inspect", (1, "two"), namespace="/echo", timeout=5)
    assert packet == {
        "ack": "data",
        "args": [1, "two"],
        "endpoint": "/echo",
        "id": packet["id"],
        "name": "inspect",
        "type": "event",
    }
    assert isinstance(packet["id"], int)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bytes_travel_as_binary_both_ways(serve, transport):
    server = serve({"echo": Echo})
    client = server.connect(namespaces=["/echo"], transport=transport)
    back = collect(client, "bytes back")
    blob = bytes(range(256))
    ack = client.call("reverse_bytes", (blob, {"n": 1}), namespace="/echo", timeout=5)
    assert ack == blob.upper()
    assert back.get(timeout=5) == (blob[::-1], {"nested": [blob]})


def test_call_waits_for_the_clients_acknowledgement(serve):
    server = serve({"echo": Echo})
    client = server.connect(namespaces=["/echo"])
    client.on("question", lambda question: "42 to " + question, namespace="/echo")
    answer = client.call("ask_client", "life", namespace="/echo", timeout=5)
    assert answer == "client said 42 to life"


def test_emit_callback_gets_the_clients_ack_arguments(serve):
    server = serve({"echo": Echo})
    client = server.connect(namespaces=["/echo"])
    client.on("question", lambda question: (question, "yes"), namespace="/echo")
    answers = collect(client, "answer received")
    client.emit("ask_with_callback", namespace="/echo")
    assert answers.get(timeout=5) == (["callback?", "yes"],)


def test_auth_is_the_connect_payload(serve):
    server = serve({"echo": Echo})
    with_auth = server.connect(namespaces=["/echo"], auth={"token": "t0k"})
    without = server.connect(namespaces=["/echo"])
    assert with_auth.call("whoami", namespace="/echo", timeout=5) == {"token": "t0k"}
    assert without.call("whoami", namespace="/echo", timeout=5) is None


def test_default_namespace_serves_slash(serve):
    server = serve({}, default_namespace=Echo)
    client = server.connect()
    assert client.call("add", (1, 1), timeout=5) == 2


def test_events_of_one_namespace_are_handled_in_arrival_order(serve):
    server = serve({"echo": Echo})
    client = server.connect(namespaces=["/echo"])
    order = collect(client, "order")
    client.emit("slow_then_fast", ("slow", 0.3), namespace="/echo")
    client.emit("slow_then_fast", ("fast", 0), namespace="/echo")
    assert [order.get(timeout=5), order.get(timeout=5)] == [("slow",), ("fast",)]


def test_slow_handler_does_not_block_other_namespaces_or_pings(serve):
    server = serve(
        {"echo": Echo, "other": Echo},
        config={"socketio.ping_interval": 0.2, "socketio.ping_timeout": 1.5},
    )
    client = server.connect(namespaces=["/echo", "/other"])
    client.emit("slow_then_fast", ("slow", 4), namespace="/echo")
    # the other namespace answers at once, and pings keep the client alive
    # (a blocked ping would drop it 1.7 s in)
    assert client.call("add", (1, 2), namespace="/other", timeout=1) == 3
    gevent.sleep(2.5)
    assert client.connected
    assert client.call("add", (2, 2), namespace="/echo", timeout=5) == 4


def test_unknown_namespace_is_refused(serve):
    server = serve({"echo": Echo})
    with pytest.raises(socketio.exceptions.ConnectionError):
        server.connect(namespaces=["/nope"], wait_timeout=3)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_burst_of_fifty_emits_is_handled_in_order(serve, transport):
    # Over polling the client batches queued packets into one POST; Engine.IO
    # would drop a POST of more than 16 packets without socketio.max_decode_packets.
    server = serve({"echo": Echo})
    client = server.connect(namespaces=["/echo"], transport=transport)
    acks = Queue()
    for number in range(50):
        client.emit(
            "add",
            (number, 1000),
            namespace="/echo",
            callback=lambda total: acks.put(total),
        )
    assert [acks.get(timeout=10) for _ in range(50)] == list(range(1000, 1050))


def test_slow_handler_of_one_client_does_not_delay_another_client(serve):
    server = serve({"echo": Echo})
    slow, fast = (
        server.connect(namespaces=["/echo"]),
        server.connect(namespaces=["/echo"]),
    )
    order = collect(slow, "order")
    slow.emit("slow_then_fast", ("slow", 1.5), namespace="/echo")
    assert fast.call("add", (20, 22), namespace="/echo", timeout=1) == 42
    assert order.get(timeout=5) == ("slow",)


def test_idle_workers_retire_after_a_burst(serve, monkeypatch, wait_for):
    import gc

    import websocket

    from tgext.socketio._engine import dispatch
    from tgext.socketio._engine.dispatch import EventDispatcher

    # long enough to count the idle workers after the burst even when the
    # machine is busy (a parallel run), short enough to see them retire
    monkeypatch.setattr(dispatch, "IDLE_WORKER_SECONDS", 3)

    class Slow(BaseNamespace):
        def on_nap(self):
            gevent.sleep(0.3)  # every client's event needs a worker at once
            return "rested"

    server = serve({"slow": Slow})
    url = server.url.replace("http", "ws") + "/socketio/?EIO=4&transport=websocket"
    sockets = []
    for _ in range(150):
        sock = websocket.create_connection(url, timeout=5)
        sockets.append(sock)
        assert sock.recv().startswith("0{")
        sock.send("40/slow,")
        assert sock.recv().startswith("40/slow,")
    for sock in sockets:
        sock.send('42/slow,1["nap"]')
    for sock in sockets:
        assert sock.recv() == '43/slow,1["rested"]'
        sock.close()

    def workers():
        gc.collect()
        return [
            obj
            for obj in gc.get_objects()
            if isinstance(obj, gevent.Greenlet)
            and not obj.dead
            and getattr(getattr(obj, "_run", None), "__func__", None)
            is EventDispatcher._work
        ]

    assert len(workers()) == 64  # the burst's workers, trimmed to the limit
    # Idle workers blocked waiting for work used to stay for good; now a
    # worker idle for IDLE_WORKER_SECONDS retires: none is left.
    wait_for(lambda: not workers(), timeout=10)


def test_event_names_stay_checked_past_the_bound_of_the_names_remembered(serve):
    """The name -> method table is bounded (names are what clients send):
    once it has been emptied, names are checked again, not let through."""
    from tgext.socketio import namespace as namespace_module

    bound = namespace_module._EVENT_METHODS_BOUND
    server = serve({"echo": Echo})
    client = server.connect(namespaces=["/echo"])
    errors = collect(client, "error")
    for number in range(bound + 10):
        client.emit("no_such_%d" % number, namespace="/echo")
    for name in ("1st", "bad-name", "no_such_0"):
        client.emit(name, namespace="/echo")
    assert client.call("two words", "y", namespace="/echo", timeout=5) == "two words: y"
    refused = [errors.get(timeout=5) for _ in range(bound + 13)]
    assert len(namespace_module._event_methods) <= bound
    unallowed = ("unallowed_event_name", wire.UNALLOWED_EVENT_NAME_MESSAGE)
    assert refused[-3:] == [
        unallowed,
        unallowed,
        ("no_such_method", 'The method "on_no_such_0" was not found'),
    ]


def test_exception_handler_decorator_set_on_an_instance_is_used(serve):
    """Whether a class has one is remembered; an instance's own is looked
    for at every event."""
    calls = []

    class Decorated(Echo):
        def on_decorate_me(self):
            def wrap(method):
                def wrapped(*args):
                    calls.append(method.__name__)
                    return method(*args)

                return wrapped

            self.exception_handler_decorator = wrap
            return "set"

    server = serve({"echo": Decorated})
    client = server.connect(namespaces=["/echo"])
    assert client.call("add", (1, 2), namespace="/echo", timeout=5) == 3
    assert calls == []
    assert client.call("decorate_me", namespace="/echo", timeout=5) == "set"
    assert client.call("add", (2, 2), namespace="/echo", timeout=5) == 4
    assert calls == ["on_add"]


def test_packets_sent_are_traced_at_debug_only(serve, caplog):
    """python-engineio's per-packet INFO line comes at DEBUG (a TG
    development.ini sets the root logger to INFO)."""
    import logging

    server = serve({"echo": Echo})
    client = server.connect(namespaces=["/echo"])
    trace = "tgext.socketio.engine.packets.engineio"

    def traced():
        return [
            r
            for r in caplog.records
            if r.name == trace and "Sending packet MESSAGE" in r.getMessage()
        ]

    with caplog.at_level(logging.INFO, logger=trace):
        assert client.call("add", (1, 2), namespace="/echo", timeout=5) == 3
    assert traced() == []
    with caplog.at_level(logging.DEBUG, logger=trace):
        assert client.call("add", (2, 2), namespace="/echo", timeout=5) == 4
    (line,) = traced()
    assert line.levelno == logging.DEBUG and "3/echo," in line.getMessage()


def test_an_event_arriving_as_the_last_idle_worker_retires_is_handled(
    serve, monkeypatch
):
    """A worker that timed out waiting for work in the loop iteration an
    event was put in was counted as idle when the event came: no worker was
    started for it, and it waited for the next event of any client. Events
    one at a time, around the idle timeout, keep hitting that window (the
    race depends on the event loop's order, so not every run meets it)."""
    import random

    from tgext.socketio._engine import dispatch

    monkeypatch.setattr(dispatch, "IDLE_WORKER_SECONDS", 0.004)
    server = serve({"echo": Echo})
    client = server.connect(namespaces=["/echo"])
    chance = random.Random(7)
    for number in range(400):
        gevent.sleep(chance.uniform(0.002, 0.006))  # around the idle timeout
        assert client.call("add", (number, 1), namespace="/echo", timeout=3) == number + 1


def test_a_clients_unknown_session_is_a_warning_not_an_error(serve, caplog):
    """python-engineio logs the first poll of an unknown (or just closed)
    session at ERROR: a client's doing, which a rolling restart meets as a
    matter of course. It is a warning, naming the session."""
    import logging

    import requests

    server = serve({"echo": Echo})
    with caplog.at_level(logging.INFO, logger="tgext.socketio"):
        for _ in range(2):
            answer = requests.get(
                server.url + "/socketio/?EIO=4&transport=polling&sid=gone-already",
                timeout=5,
            )
            assert answer.status_code == 400
    lines = [r for r in caplog.records if "gone-already" in r.getMessage()]
    assert [r.levelno for r in lines] == [logging.WARNING], lines
    assert lines[0].getMessage() == (
        "Invalid session gone-already (more of these at DEBUG level)")
