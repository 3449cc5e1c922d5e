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

import engineio
import gevent
import socketio

from .admission import parse_server_options
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
engineio.payload.Payload.max_decode_packets = max(
    engineio.payload.Payload.max_decode_packets, 1000
)

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


__all__ = ("LiveServer", "TRANSPORTS", "disconnect_client")
