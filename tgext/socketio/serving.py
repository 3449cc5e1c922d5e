"""SocketIOServer: the gevent WSGI server serving pages and Socket.IO on one
port, and its request handler.

No patching and no TurboGears here: the gunicorn worker imports this module
in gunicorn's master process, which must stay unpatched and must not import
``tg`` (the workers patch, then load the app). :mod:`tgext.socketio.server`
patches first for ``gearbox serve``.
"""

import logging
import socket

from gevent.pywsgi import WSGIHandler, WSGIServer
from geventwebsocket.handler import WebSocketHandler
from geventwebsocket.websocket import WebSocket

from .clientlog import printable
from .keys import SERVER_KEY
from .memory import trimmer
from .websocket import BoundedWebSocket

log = logging.getLogger(__name__)

DEFAULT_RESOURCE = "socketio"


class SocketIOHandler(WebSocketHandler):
    """Upgrade to WebSocket only under the Socket.IO resource path.

    gevent-websocket would upgrade any path; pages of the app stay plain HTTP.
    """

    def run_application(self):
        if not self.path.startswith(self.server.resource_prefix):
            return WSGIHandler.run_application(self)
        # what the app starts for Socket.IO (its pub/sub hub) ends with the server
        self.environ[SERVER_KEY] = self.server
        upgrading = self.environ.get("HTTP_UPGRADE", "").lower() == "websocket"
        if upgrading and not self.server.allows_origin(self.environ):
            # before the 101, which gevent-websocket would send before the app
            # runs (python-engineio then refuses, too late for the browser)
            return self._refuse("403 Forbidden", b"Not an accepted origin.")
        if self.server.one_request_per_connection and not upgrading:
            # workers = N: the next long-polling request may belong to a
            # session of another process; a new connection gets routed anew
            self.close_connection = True
        if not upgrading:
            engine = self.server.engine_of_session(self.environ.get("QUERY_STRING", ""))
            if engine is not None:
                # long-polling of a session this server holds: TG's stack
                # ran for its handshake (auth, sessions: the TG context the
                # namespaces use was captured then); running it again for
                # every poll cost 2.5 times raw python-socketio's round trip
                return self._run_engine(engine)
        if self.server.resource_has_extension and (
            self.environ["PATH_INFO"] == self.server.resource_prefix
        ):
            # TG strips a file extension from the last path segment, so it
            # would dispatch "/socket.io/" to "socket" (with ".io"); naming
            # the action keeps "socket.io" a segment TG maps to "socket_io".
            self.environ["PATH_INFO"] = self.server.resource_prefix + "index"
        return super().run_application()

    def upgrade_connection(self):
        result = super().upgrade_connection()
        websocket = getattr(self, "websocket", None)
        if websocket is not None and type(websocket) is WebSocket:
            # same slots: the connection changes class in place
            websocket.__class__ = BoundedWebSocket
            websocket.read_from_socket()
        return result

    def _run_engine(self, engine):
        """Answer this request with ``engine`` alone, as gevent's
        ``run_application`` answers with the app (the result closed, then
        dropped: the next request on this connection starts clean)."""
        try:
            self.result = serve_engine_request(
                engine, self.environ, self.start_response
            )
            self.process_result()
        finally:
            close = getattr(self.result, "close", None)
            self.result = None
            if close is not None:
                close()

    #: True while the connection waits for its next request (keep-alive)
    idle = True

    def handle_one_request(self):
        if self.server.stopping:
            return None  # the server is closing: end this connection
        self.idle = True
        return super().handle_one_request()

    def read_request(self, raw_requestline):
        self.idle = False
        return super().read_request(raw_requestline)

    def _refuse(self, status, body):
        self.start_response(
            status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        )
        self.result = [body]
        self.process_result()

    def start_response(self, status, headers, exc_info=None):
        if self.close_connection and self.server.one_request_per_connection:
            headers = list(headers) + [("Connection", "close")]
        return super().start_response(status, headers, exc_info)

    def log_request(self):
        # gevent-websocket's own version logs through a logger it rewires:
        # skip it (the gunicorn worker's handler logs through gunicorn's).
        if "101" not in str(self.status):
            super(WebSocketHandler, self).log_request()


class _AccessLog:
    """gevent's access lines, one per HTTP request, at DEBUG (polling is chatty)."""

    def __init__(self, logger):
        self._logger = logger

    def write(self, line):
        if self._logger.isEnabledFor(logging.DEBUG):
            self._logger.debug("%s", line.rstrip())


class SocketIOServer(WSGIServer):
    """A gevent ``WSGIServer`` serving pages and Socket.IO on one port.

    :param listener: ``(host, port)`` or a listening socket.
    :param application: the WSGI application (the whole TG stack).
    :param resource: where the ``SocketIOController`` is mounted, e.g.
        ``"socketio"`` or ``"chat/live"``.
    """

    def __init__(
        self, listener, application, resource=DEFAULT_RESOURCE, runtime=None, **kwargs
    ):
        kwargs.setdefault("handler_class", SocketIOHandler)
        # gevent writes access and error lines to stderr unless given loggers.
        kwargs.setdefault("log", _AccessLog(logging.getLogger(__name__ + ".access")))
        kwargs.setdefault("error_log", logging.getLogger(__name__ + ".errors"))
        super().__init__(listener, application, **kwargs)
        self.resource = resource_path(resource)
        # gevent-websocket creates (and rewires) its own logger unless the
        # server already has one.
        self.logger = logging.getLogger(__name__ + ".websocket")
        self.resource_prefix = self.resource + "/"
        self.resource_has_extension = "." in self.resource.rsplit("/", 1)[-1]
        self._owned = []
        #: answer each Engine.IO request with Connection: close (workers = N)
        self.one_request_per_connection = False
        self.stopping = False
        self._handlers = set()
        # an entry per connection (gevent-websocket's ``clients`` too):
        # rebuilt small after a wave of clients left
        trimmer.watch_table(self, "_handlers")
        trimmer.watch_table(self, "clients")
        if runtime is not None:
            self.own(runtime)

    def own(self, closable):
        """Close ``closable`` (anything with ``close()``) when the server stops.

        The controller hands it the runtime of each app it serves: engines
        and pub/sub hub.
        """
        if not any(owned is closable for owned in self._owned):
            self._owned.append(closable)

    def allows_origin(self, environ):
        """Whether the app(s) served accept the request's ``Origin``.

        Known once the server owns an app's runtime (the runners give it at
        start; otherwise the first Engine.IO request does): until then the
        engine itself decides, after the upgrade.
        """
        for owned in self._owned:
            allows_origin = getattr(owned, "allows_origin", None)
            if allows_origin is not None and not allows_origin(environ):
                return False
        return True

    def engine_of_session(self, query_string):
        """The engine holding the Engine.IO session named by ``sid=`` in
        ``query_string``, among the apps' engines this server owns, or ``None``."""
        if "sid=" not in query_string:
            return None
        for item in query_string.split("&"):
            if item.startswith("sid="):
                sid = item[4:]
                break
        else:
            return None
        for owned in self._owned:
            for engine in getattr(owned, "engines", ()):
                if sid in engine.eio.sockets:
                    return engine
        return None

    def close(self):
        """Stop accepting, then close the apps' engines and hubs: every client
        gets a clean disconnect, so open WebSockets end by themselves.

        gunicorn's workers call ``close()`` and wait for open requests;
        ``stop()`` calls it too.
        """
        self.stopping = True
        super().close()
        owned, self._owned = self._owned, []
        for closable in reversed(owned):
            try:
                closable.close()
            except Exception:  # one failing resource must not keep the rest
                log.exception("closing %r when the server stopped failed", closable)
        # Keep-alive connections waiting for a next request would hold
        # gunicorn's graceful shutdown for its whole timeout: end them.
        for handler in list(self._handlers):
            if handler.idle and handler.socket is not None:
                try:
                    handler.socket.shutdown(socket.SHUT_RDWR)
                except OSError:  # already gone
                    pass

    def handle(self, sock, address):
        # Nagle's algorithm holds a second small frame (an ack after an emit)
        # until the client's delayed ACK: ~44 ms per round trip, measured.
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not a TCP socket (a UNIX socket, say)
            pass
        handler = self.handler_class(sock, address, self)
        self._handlers.add(handler)
        try:
            handler.handle()
        finally:
            self._handlers.discard(handler)


def serve_engine_request(engine, environ, start_response, extra_headers=()):
    """Run one Engine.IO request through ``engine`` as a WSGI app.

    An engine failure is a logged line and a 400, never a traceback page;
    ``extra_headers`` (Set-Cookie from TG) go with its answer.
    """
    started = []

    def engine_start_response(status, headers, exc_info=None):
        started.append(status)
        return start_response(status, list(headers) + list(extra_headers), exc_info)

    try:
        body = engine.handle_request(environ, engine_start_response)
    except Exception as error:  # the engine's boundary
        log.warning(
            "Engine.IO request %s %r failed: %s: %s",
            environ.get("REQUEST_METHOD"),
            environ.get("PATH_INFO"),
            type(error).__name__,
            printable(str(error)),
        )
        body = []
        if not started:
            engine_start_response("400 BAD REQUEST", [("Content-Length", "0")])
    if not started:
        # After a WebSocket, python-engineio's gevent driver returns
        # without calling start_response (gevent-websocket answered 101).
        engine_start_response("200 OK", [("Content-Length", "0")])
    return body


def resource_path(resource):
    """``"socketio"`` or ``"/chat/live/"`` -> ``"/socketio"``, ``"/chat/live"``."""
    resource = (resource or "").strip().strip("/")
    if not resource:
        from .exceptions import ConfigurationError  # imports tg: only when failing

        raise ConfigurationError(
            "socketio_resource is empty; set it in [server:main] to the path "
            "where your SocketIOController is mounted, e.g. socketio_resource = "
            "socketio."
        )
    return "/" + resource
