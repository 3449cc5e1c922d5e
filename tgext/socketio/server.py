"""socketio_server_runner: the ``paste.server_runner`` that serves a TG app
with Socket.IO on gevent (``use = egg:tgext.socketio#socketio``).

gearbox imports this module (to find the entry point) before it loads the
application, so patching gevent in the module body is early enough for
TurboGears: its request locals are created when ``tg`` is first imported and
must be greenlet-local. Keep ``tg`` imports out of the module body.
"""

from gevent import monkey


def _patch_standard_library():
    """``monkey.patch_all()``, also when other threads already run.

    gevent adopts the locks held by the patching thread only when it is the
    process's one thread. Under ``gearbox serve --reload`` hupper has started
    two threads in the serving process before gearbox imports this module, so
    the import lock held for this very import keeps its native owner and
    releasing it fails ("cannot release un-acquired lock"). Hand the import
    locks this thread holds to its main greenlet, as gevent does alone.
    """
    import threading

    native_ident = threading.get_ident()
    alone = threading.active_count() == 1
    monkey.patch_all()
    if alone:
        return
    import gc
    import importlib._bootstrap

    module_lock_type = importlib._bootstrap._ModuleLock
    greenlet_ident = threading.get_ident()
    for candidate in gc.get_objects():
        if (
            type(candidate) is module_lock_type
            and getattr(candidate, "owner", None) == native_ident
        ):
            candidate.owner = greenlet_ident


if not monkey.is_module_patched("socket"):
    _patch_standard_library()

import logging  # noqa: E402
import socket  # noqa: E402

from gevent.pywsgi import WSGIHandler, WSGIServer  # noqa: E402
from geventwebsocket.handler import WebSocketHandler  # noqa: E402

from .exceptions import ConfigurationError, MonkeyPatchError  # noqa: E402
from .keys import SERVER_KEY  # noqa: E402

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
        if self.server.resource_has_extension and (
            self.environ["PATH_INFO"] == self.server.resource_prefix
        ):
            # TG strips a file extension from the last path segment, so it
            # would dispatch "/socket.io/" to "socket" (with ".io"); naming
            # the action keeps "socket.io" a segment TG maps to "socket_io".
            self.environ["PATH_INFO"] = self.server.resource_prefix + "index"
        return super().run_application()

    def log_request(self):
        # gevent-websocket's own version logs through a logger it rewires.
        if "101" not in str(self.status):
            WSGIHandler.log_request(self)


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

    def __init__(self, listener, application, resource=DEFAULT_RESOURCE, **kwargs):
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

    def own(self, closable):
        """Close ``closable`` (anything with ``close()``) when the server stops.

        The controller hands it the runtime of each app it serves: engines
        and pub/sub hub.
        """
        if not any(owned is closable for owned in self._owned):
            self._owned.append(closable)

    def stop(self, timeout=None):
        """Stop accepting, close the apps' engines (clients get a clean
        disconnect), then wait for the open requests to end."""
        self.close()
        owned, self._owned = self._owned, []
        for closable in reversed(owned):
            try:
                closable.close()
            except Exception:  # one failing resource must not keep the rest
                log.exception("closing %r when the server stopped failed", closable)
        super().stop(timeout=timeout)

    def handle(self, sock, address):
        # Nagle's algorithm holds a second small frame (an ack after an emit)
        # until the client's delayed ACK: ~44 ms per round trip, measured.
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not a TCP socket (a UNIX socket, say)
            pass
        return super().handle(sock, address)


def resource_path(resource):
    """``"socketio"`` or ``"/chat/live/"`` -> ``"/socketio"``, ``"/chat/live"``."""
    resource = (resource or "").strip().strip("/")
    if not resource:
        raise ConfigurationError(
            "socketio_resource is empty; set it in [server:main] to the path "
            "where your SocketIOController is mounted, e.g. socketio_resource = "
            "socketio."
        )
    return "/" + resource


def check_monkey_patching():
    """Refuse to serve when TG's request context is not greenlet-local."""
    from ._tg import context_is_greenlet_local

    if not context_is_greenlet_local():
        raise MonkeyPatchError(
            "TurboGears was imported before gevent patched the standard "
            "library, so concurrent Socket.IO handlers would share one request "
            "context. Start the server with 'gearbox serve -c development.ini' "
            "(use = egg:tgext.socketio#socketio), or call "
            "gevent.monkey.patch_all() before anything imports tg."
        )


def check_app_config():
    """Parse the app's ``socketio.*`` options now, so a typo stops start-up."""
    import tg

    from .config import parse_options
    from .hub import create_backend

    parse_options(tg.config)
    create_backend(tg.config)  # the anypubsub.* settings; connects nowhere yet


def socketio_server_runner(wsgi_app, global_config, **kw):
    """Serve ``wsgi_app`` forever: the ``egg:tgext.socketio#socketio`` runner.

    Options of ``[server:main]``: ``host`` (default ``127.0.0.1``), ``port``
    (``8080``), ``socketio_resource`` (``socketio``).
    """
    host = kw.get("host") or "127.0.0.1"
    try:
        port = int(kw.get("port", 8080))
    except ValueError:
        raise ConfigurationError(
            "port = %r is not a port number; set it in [server:main] to a whole "
            "number such as 8080." % kw.get("port")
        ) from None
    check_monkey_patching()
    check_app_config()
    server = SocketIOServer(
        (host, port), wsgi_app, resource=kw.get("socketio_resource", DEFAULT_RESOURCE)
    )
    server.init_socket()
    log.info(
        "serving Socket.IO at http://%s:%s%s (gevent, websocket via gevent-websocket)",
        host,
        server.server_port,
        server.resource,
    )
    server.serve_forever()
