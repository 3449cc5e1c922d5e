"""SocketIOServer: the gevent WSGI server serving pages and Socket.IO on one
port, and its request handler.

No patching and no TurboGears here: the gunicorn worker imports this module
in gunicorn's master process, which must stay unpatched and must not import
``tg`` (the workers patch, then load the app). :mod:`tgext.socketio.server`
patches first for ``gearbox serve``.
"""

import errno
import logging
import socket
import time

import gevent
from gevent.pywsgi import WSGIServer

from .._config.keys import SERVER_KEY, SESSION_TICKET_KEY
from .._memory.trimmer import trimmer
from .._metrics.hooks import watch_server
from .._upstream import gevent_websocket
from . import clientlog
from .admission import Admission, parse_server_options
from .clientlog import BurstLog, printable
from .session_events import session_events
from .websocket import BoundedWebSocket

log = logging.getLogger("tgext.socketio.serving")

DEFAULT_RESOURCE = "socketio"

_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
)
_BAD_REQUEST_RESPONSE = (
    b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
)
_BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 5\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 13\r\n\r\nServer busy.\n"
)

#: what accept() fails with when the process or the system is out of descriptors
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

#: invalid requests (a bad request line, a header cut short): summed up past 20 a minute
_bad_requests = BurstLog(
    log, 20, 60.0, "invalid HTTP requests: %d more in the last %g s, not logged (%s)"
)


class _HeaderTimedOut(Exception):
    """The request header did not arrive whole within ``header_timeout``."""


class _HeaderCutShort(Exception):
    """The connection ended inside the request header."""


class _HeaderLines:
    """The handler's input as the header parser reads it, telling whether
    the header ended with its blank line or with the end of the input."""

    __slots__ = ("_file", "ended")

    def __init__(self, file):
        self._file = file
        self.ended = False  # by its blank line

    def readline(self, limit=-1):
        line = self._file.readline(limit)
        self.ended = line in (b"\r\n", b"\n")
        return line


class SocketIOHandler(gevent_websocket.Handler):
    """Upgrade to WebSocket only under the Socket.IO resource path.

    gevent-websocket would upgrade any path; pages of the app stay plain HTTP.
    """

    def run_application(self):
        if not self.path.startswith(self.server.resource_prefix):
            return self.run_plain_application()
        # what the app starts for Socket.IO (its pub/sub hub) ends with the server
        self.environ[SERVER_KEY] = self.server
        if not self._admit_session():
            self.close_connection = True
            return self._refuse("503 Service Unavailable", b"Server busy.\n")
        upgrading = self.environ.get("HTTP_UPGRADE", "").lower() == "websocket"
        if upgrading and not self.server.allows_origin(self.environ):
            # before the 101, which gevent-websocket would send before the app
            # runs (python-engineio then refuses, too late for the browser)
            if self.server.admission.metrics is not None:
                self.server.admission.metrics.refuse("origin")
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
        if websocket is not None:
            self.socket.settimeout(None)  # a WebSocket may be quiet for long
        if websocket is not None:
            gevent_websocket.adopt_websocket(websocket, BoundedWebSocket)
            if type(websocket) is BoundedWebSocket:
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

    def _admit_session(self):
        """Whether the caps let this request open an Engine.IO session (it
        opens one if it is a handshake: no ``sid``)."""
        query = self.environ.get("QUERY_STRING", "")
        if "EIO=" not in query or "sid=" in query:
            return True
        admission = self.server.admission
        ticket = admission.admit_session(admission.client_address(self.environ))
        if ticket is None:
            return False
        self.environ[SESSION_TICKET_KEY] = ticket
        return True

    #: True while the connection waits for its next request (keep-alive)
    idle = True
    #: when the request header must have arrived whole (time.monotonic())
    _header_deadline = None

    def handle_one_request(self):
        if self.server.stopping:
            return None  # the server is closing: end this connection
        if self._header_deadline is not None:
            # a next request on this connection: its bytes may be buffered
            # already (pipelined), and gevent would answer them all in a
            # row, holding the loop (50,000 pipelined requests: seconds)
            gevent.sleep(0)
        self.idle = True
        return super().handle_one_request()

    def read_requestline(self):
        """The request line, or ``""`` (the connection closes) when it does not
        come in time: ``header_timeout`` from the connection's opening for the
        first request, ``keepalive_timeout`` between two requests."""
        admission = self.server.admission
        first = self._header_deadline is None
        timeout = admission.header_timeout if first else admission.keepalive_timeout
        started = time.monotonic()
        with gevent.Timeout(timeout, False):
            line = super().read_requestline()
            self._header_deadline = (
                started if first else time.monotonic()
            ) + admission.header_timeout
            return line
        return ""

    def read_request(self, raw_requestline):
        self.idle = False
        remaining = self._header_deadline - time.monotonic()
        if remaining > 0:
            with gevent.Timeout(remaining, False):
                parsed = super().read_request(raw_requestline)
                # nor may the body: one that stops coming for as long ends
                # the request (until the answer starts; a WebSocket drops
                # this once upgraded)
                self.socket.settimeout(self.server.admission.header_timeout)
                return parsed
        raise _HeaderTimedOut()

    def MessageClass(self, file, *args):
        # the headers parser stops at the end of the input as at the blank
        # line that ends a header: a header cut short would run as a request
        lines = _HeaderLines(file)
        headers = super().MessageClass(lines, *args)
        if not lines.ended and not headers.status:
            raise _HeaderCutShort()
        return headers

    def handle_client_error(self, error):
        """An invalid request: one line (or a summary), an answer, the end of
        the connection; never a traceback (gevent prints one for errors
        that are no ``ValueError``)."""
        if isinstance(error, _HeaderCutShort):
            return None  # the client is gone: nobody to answer
        if isinstance(error, _HeaderTimedOut):
            status, response = "408", _TIMEOUT_RESPONSE
            reason = "no complete header within header_timeout"
        else:
            status, response = "400", _BAD_REQUEST_RESPONSE
            reason = printable(str(error) or type(error).__name__, 200)
        metrics = self.server.admission.metrics
        if metrics is not None:
            metrics.refuse("bad_request" if status == "400" else "header_timeout")
        if _bad_requests.allow(reason.split(":", 1)[0]):
            log.warning(
                "invalid request from %s: %s", _host(self.client_address), reason
            )
        return status, response

    def _refuse(self, status, body):
        headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        if self.close_connection and not self.server.one_request_per_connection:
            headers.append(("Connection", "close"))  # (else start_response adds it)
        self.start_response(status, headers)
        self.result = [body]
        self.process_result()

    def start_response(self, status, headers, exc_info=None):
        if self.close_connection and self.server.one_request_per_connection:
            headers = list(headers) + [("Connection", "close")]
        # the body has been read: the answer may take its time to a slow reader
        self.socket.settimeout(None)
        return super().start_response(status, headers, exc_info)

    def log_request(self):
        # gevent-websocket's own version logs through a logger it rewires:
        # skip it (the gunicorn worker's handler logs through gunicorn's).
        if "101" not in str(self.status):
            self.log_plain_request()


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
    :param limits: the timeouts and caps of ``[server:main]`` (see
        :ref:`server-keys`), as parsed from its keys; their defaults when
        not given.
    """

    def __init__(
        self,
        listener,
        application,
        resource=DEFAULT_RESOURCE,
        runtime=None,
        limits=None,
        **kwargs,
    ):
        kwargs.setdefault("handler_class", SocketIOHandler)
        if isinstance(listener, tuple):  # (a socket comes with its own)
            # gevent's default (the system's smaller one) overflowed under a
            # wave of connections: clients left half-open for a minute
            kwargs.setdefault("backlog", 1024)
        # gevent writes access and error lines to stderr unless given loggers.
        kwargs.setdefault(
            "log", _AccessLog(logging.getLogger("tgext.socketio.serving.access"))
        )
        kwargs.setdefault(
            "error_log", logging.getLogger("tgext.socketio.serving.errors")
        )
        super().__init__(listener, application, **kwargs)
        self.resource = resource_path(resource)
        # gevent-websocket creates (and rewires) its own logger unless the
        # server already has one.
        self.logger = logging.getLogger("tgext.socketio.serving.websocket")
        self.resource_prefix = self.resource + "/"
        self.resource_has_extension = "." in self.resource.rsplit("/", 1)[-1]
        self._owned = []
        #: answer each Engine.IO request with Connection: close (workers = N)
        self.one_request_per_connection = False
        self.stopping = False
        self.admission = Admission(limits or parse_server_options({}))
        self._accept_delay = 0.0
        self._handlers = set()
        # the process's owner decides its memory policy: trims after waves
        session_events.attach(trimmer)
        # an entry per connection (gevent-websocket's ``clients`` too):
        # rebuilt small after a wave of clients left
        session_events.table(self, "_handlers")
        session_events.table(self, "clients")
        if runtime is not None:
            self.own(runtime)

    def own(self, closable):
        """Close ``closable`` (anything with ``close()``) when the server stops.

        The controller hands it the runtime of each app it serves: engines
        and pub/sub hub.
        """
        if not any(owned is closable for owned in self._owned):
            self._owned.append(closable)
            watch_server(self, closable)

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
        peer = _host(address)
        admission = self.admission
        if not admission.admit_connection(peer):
            _answer_and_close(sock, _BUSY_RESPONSE)
            return
        try:
            # Nagle's algorithm holds a second small frame (an ack after an
            # emit) until the client's delayed ACK: ~44 ms per round trip.
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
        finally:
            admission.release_connection(peer)

    def do_read(self):
        """Accept a connection; out of file descriptors, stop accepting for
        a while (doubling up to a second) with one log line, where gevent
        would print a traceback per try."""
        try:
            result = super().do_read()
        except OSError as error:
            if error.errno not in _OUT_OF_DESCRIPTORS:
                raise
            self._pause_accepting(error)
            return None
        self._accept_delay = 0.0
        return result

    def _pause_accepting(self, error):
        first = not self._accept_delay
        self._accept_delay = min(max(self._accept_delay * 2, 0.05), 1.0)
        if first and _bad_requests.allow("out of descriptors"):
            log.warning(
                "cannot accept connections: %s (ulimit -n?); retrying every "
                "%.2f-1 s while it lasts",
                error,
                self._accept_delay,
            )
        self.stop_accepting()
        gevent.spawn_later(self._accept_delay, self._resume_accepting)

    def _resume_accepting(self):
        if self.started and not self.stopping:
            self.start_accepting()


def _answer_and_close(sock, response):
    """Write ``response`` if the socket takes it at once, then close."""
    try:
        sock.setblocking(False)
        sock.send(response)
    except OSError:  # full, or gone: closing is the answer then
        pass
    finally:
        sock.close()


def _host(address):
    """The host of a peer's address (a tuple, or a string for UNIX sockets)."""
    return address[0] if isinstance(address, tuple) and address else str(address)


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
        # a client can cause these (a POST to a session closing meanwhile):
        # within the budget of client-caused lines
        if clientlog.client_lines.allow("failed Engine.IO request"):
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
        from ..exceptions import ConfigurationError  # imports tg: only when failing

        raise ConfigurationError(
            "socketio_resource is empty; set it in [server:main] to the path "
            "where your SocketIOController is mounted, e.g. socketio_resource = "
            "socketio."
        )
    return "/" + resource
