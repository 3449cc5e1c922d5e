"""Helpers for application tests: a real server on a free port, real clients.

Import this module only in a process where gevent patched the standard library
first (put ``from gevent import monkey; monkey.patch_all()`` at the top of
your ``conftest.py``, before anything imports ``tg``).

Example::

    from tgext.socketio.testing import LiveServer

    def test_ping_gets_pong(app):
        with LiveServer(app) as server:
            client = server.connect(namespaces=["/pingpong"])
            assert client.call("ping", {"type": "ping"}, namespace="/pingpong")
"""

import logging
import time

import gevent
import gevent.queue
import socketio

from ._serving.admission import parse_server_options
from ._upstream import python_engineio
from .server import SocketIOServer, resource_path

try:
    import requests
    import websocket  # noqa: F401 (websocket-client: the clients' WebSocket)
except ImportError as error:
    raise ImportError(
        "tgext.socketio.testing needs requests and websocket-client (%s); "
        'install them with the testing extra: pip install "tgext.socketio[testing]"'
        % error,
        name=error.name,
    ) from error

log = logging.getLogger(__name__)

# python-engineio's client aborts ("Unexpected packet from server") when one
# long-polling response carries more than 16 packets, as the answer to a burst
# of emits does. The limit is process-wide; test clients need a higher one.
python_engineio.raise_max_decode_packets(1000)

#: the transports keyword for each way a client can connect
TRANSPORTS = {
    "polling": ["polling"],
    "websocket": ["websocket"],
    "upgrade": ["polling", "websocket"],
}


class LiveServer:
    """Serve a WSGI app (your TG app) on ``127.0.0.1`` and a free port.

    :param app: the WSGI application, e.g. ``loadapp("config:test.ini")``.
    :param resource: ``socketio_resource``: where the controller is mounted.
    :param ready_timeout: seconds to wait for the server to answer.
    :param limits: ``[server:main]``'s timeouts and caps, e.g.
        ``{"max_sessions_per_address": "10"}`` (their defaults otherwise).

    ``url`` and ``port`` tell where it listens once started; ``connect()``
    returns python-socketio clients that are disconnected at ``stop()``.
    """

    def __init__(
        self, app, resource="socketio", host="127.0.0.1", ready_timeout=10, limits=None
    ):
        self.app = app
        self.limits = parse_server_options(limits or {})
        self.resource = resource_path(resource)
        self.host = host
        self.ready_timeout = ready_timeout
        self.port = None
        self.url = None
        self._server = None
        self._clients = []

    def start(self):
        self._server = SocketIOServer(
            (self.host, 0), self.app, resource=self.resource, limits=self.limits
        )
        self._server.start()
        self.port = self._server.server_port
        self.url = "http://%s:%d" % (self.host, self.port)
        self._wait_until_ready()
        return self

    def _wait_until_ready(self):
        deadline = time.monotonic() + self.ready_timeout
        handshake = "%s%s/?EIO=4&transport=polling" % (self.url, self.resource)
        while True:
            try:
                response = requests.get(handshake, timeout=self.ready_timeout)
                if response.status_code == 200 and response.text.startswith("0{"):
                    return
                failure = "HTTP %s: %.200s" % (response.status_code, response.text)
            except requests.RequestException as error:
                failure = str(error)
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    "no Engine.IO handshake at %s within %ss (%s); is a "
                    "SocketIOController mounted at %s?"
                    % (handshake, self.ready_timeout, failure, self.resource)
                )
            gevent.sleep(0.05)

    def connect(
        self,
        namespaces=None,
        transport="websocket",
        headers=None,
        auth=None,
        wait_timeout=10,
        **client_options,
    ):
        """Return a ``socketio.Client`` connected to this server.

        :param namespaces: the namespaces to join, e.g. ``["/pingpong"]``.
        :param transport: ``"websocket"``, ``"polling"`` or ``"upgrade"``
            (long-polling first, then WebSocket).
        :param headers: extra HTTP headers, e.g. ``{"Cookie": ...}``.
        :param auth: the connect payload (the namespace's ``auth``).
        """
        client = socketio.Client(**client_options)
        self._clients.append(client)
        client.connect(
            self.url,
            namespaces=namespaces,
            transports=TRANSPORTS[transport],
            socketio_path=self.resource.lstrip("/"),
            headers=headers or {},
            auth=auth,
            wait_timeout=wait_timeout,
        )
        return client

    def channels(self, namespace, **connect):
        """A :class:`ChannelClient` of a ``PubSubTGNamespace``, on a client
        connected as :meth:`connect` does (``transport=``, ``headers=``...)."""
        return ChannelClient(self.connect(namespaces=[namespace], **connect), namespace)

    def stop(self, timeout=5):
        """Disconnect the clients made by ``connect()`` and stop serving."""
        clients, self._clients = self._clients, []
        for client in clients:
            disconnect_client(client, timeout)
        if self._server is not None:
            self._server.stop(timeout=timeout)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


class ChannelClient:
    """Assertions on the channels of a ``PubSubTGNamespace``, for app tests.

    Wraps a connected python-socketio client and records, in order, what the
    namespace sends it about channels: publications (live and from history),
    presence state and diffs, errors. Each assertion waits (``timeout``
    seconds) and fails saying what was received instead.

    Example::

        def test_a_member_hears_the_room(app):
            with LiveServer(app) as server:
                alice, bob = server.channels("/chat"), server.channels("/chat")
                assert alice.subscribe("room", "lobby") == "room-lobby"
                assert bob.refused("room", "not a room!") == "invalid_method_args"
                bob.client.emit("say", ("lobby", "hi"), namespace="/chat")
                assert alice.publication("room-lobby") == {"text": "hi"}
                bob.assert_nothing()

    :param client: a connected ``socketio.Client``.
    :param namespace: the ``PubSubTGNamespace`` it joined, such as ``"/chat"``.
    """

    #: the events recorded, each as ``(event, *arguments)``
    EVENTS = ("pubblication", "presence_state", "presence_diff", "error")

    def __init__(self, client, namespace):
        self.client = client
        self.namespace = namespace
        self._received = gevent.queue.Queue()
        #: what the assertions read so far and did not match, oldest first
        self.skipped = []
        for event in self.EVENTS:
            client.on(event, self._recorder(event), namespace=namespace)

    def _recorder(self, event):
        return lambda *args: self._received.put((event, *args))

    def subscribe(self, channel, *args, timeout=5):
        """Subscribe, and assert it was accepted; the channel subscribed.

        :raises AssertionError: naming the error when it was refused.
        """
        acked = self._call("subscribe", channel, *args, timeout=timeout)
        if acked is False:
            raise AssertionError(
                "subscribe%r was refused: %s" % ((channel, *args), self._error(timeout))
            )
        return acked

    def refused(self, channel, *args, timeout=5):
        """Subscribe, and assert it was refused; the error's name.

        :raises AssertionError: when it was accepted.
        """
        acked = self._call("subscribe", channel, *args, timeout=timeout)
        if acked is not False:
            raise AssertionError(
                "subscribe%r was accepted (%r)" % ((channel, *args), acked)
            )
        return self._error(timeout)[0]

    def unsubscribe(self, *args, timeout=5):
        """Unsubscribe (no arguments: from everything); the ack."""
        return self._call("unsubscribe", *args, timeout=timeout)

    def publication(self, channel=None, timeout=5, history=False):
        """Wait for a publication (on ``channel``, when given); its message.

        :param history: whether it must come from the channel's history
            (``True``) or be live (``False``).
        """

        def wanted(item):
            return (
                item[0] == "pubblication"
                and (channel is None or item[2] == channel)
                and (len(item) > 3) == history
            )

        what = "a %s publication%s" % (
            "history" if history else "live",
            "" if channel is None else " on %r" % channel,
        )
        return self._wait(wanted, what, timeout)[1]

    def presence_state(self, channel, timeout=5):
        """Wait for the members a presence channel told on subscribing."""
        return self._presence("presence_state", channel, timeout)

    def presence_diff(self, channel, timeout=5):
        """Wait for the next ``{"joins": ..., "leaves": ...}`` of a channel."""
        return self._presence("presence_diff", channel, timeout)

    def _presence(self, event, channel, timeout):
        return self._wait(
            lambda item: item[0] == event and item[2] == channel,
            "%s on %r" % (event, channel),
            timeout,
        )[1]

    def assert_nothing(self, wait=0.3):
        """Assert no publication arrives within ``wait`` seconds."""
        deadline = time.monotonic() + wait
        while True:
            try:
                item = self._received.get(timeout=max(0, deadline - time.monotonic()))
            except gevent.queue.Empty:
                return
            if item[0] == "pubblication":
                raise AssertionError("a publication arrived: %r" % (item[1:],))
            self.skipped.append(item)

    def _call(self, event, *args, timeout):
        return self.client.call(event, args, namespace=self.namespace, timeout=timeout)

    def _error(self, timeout):
        return self._wait(lambda item: item[0] == "error", "an error event", timeout)[
            1:
        ]

    def _wait(self, wanted, what, timeout):
        for index, item in enumerate(self.skipped):
            if wanted(item):
                return self.skipped.pop(index)
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self._received.get(timeout=max(0, deadline - time.monotonic()))
            except gevent.queue.Empty:
                raise AssertionError(
                    "waited %g s for %s; received %s"
                    % (timeout, what, self.skipped or "nothing")
                ) from None
            if wanted(item):
                return item
            self.skipped.append(item)


def disconnect_client(client, timeout=5):
    """Disconnect a python-socketio client so that the server hears it at once.

    A polling client that disconnects while a POST is in flight loses its
    goodbye (the server would only notice at ping timeout); waiting for the
    client's write queue to drain first avoids that.
    """
    eio = client.eio
    if eio.state == "connected" and eio.current_transport == "polling":
        deadline = time.monotonic() + timeout
        while not eio.queue.empty() and time.monotonic() < deadline:
            gevent.sleep(0.01)
    try:
        client.disconnect()
    except Exception as error:  # a client already gone is the goal anyway
        log.debug("client disconnect failed: %s", error)
    # When the server closed the WebSocket first (it stopped, say),
    # websocket-client's close() returns early and leaves its socket open.
    websocket = getattr(eio, "ws", None)
    if websocket is not None:
        websocket.shutdown()


__all__ = ("ChannelClient", "LiveServer", "TRANSPORTS", "disconnect_client")
