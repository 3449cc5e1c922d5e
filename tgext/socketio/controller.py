"""SocketIOController: the mount point of Socket.IO namespaces in a TG app.

Engine.IO requests reach the controller through TurboGears' own dispatch, so
the whole middleware stack (repoze.who identity, sessions, i18n) has run on
them; the controller then hands the raw request to python-socketio.
"""

import inspect
import logging

import tg
from tg import TGController, expose, request
from tg.controllers.decoratedcontroller import DecoratedController
from tg.exceptions import HTTPNotFound
from webob import Response

from ._config.keys import REQUEST_LOCALS_KEY, SERVER_KEY
from ._engine.runtime import runtime_of
from ._serving import client_bundle
from ._serving.clientlog import printable
from ._serving.http import serve_engine_request
from ._upstream.tg import current_app_config, current_request_locals, root_controller_of
from .namespace import BaseNamespace

log = logging.getLogger(__name__)


class SocketIOController(TGController):
    """Serve every ``BaseNamespace`` subclass among its attributes.

    ``pingpong = PingPong`` serves the namespace ``/pingpong``;
    ``default_namespace = Lobby`` serves ``/``, the namespace a client joins
    with ``io()``. Other exposed methods are ordinary pages. Mount the
    controller where ``socketio_resource`` of ``[server:main]`` points
    (``socketio = MySocketIO()`` for ``socketio_resource = socketio``;
    ``socket_io = MySocketIO()`` for ``socket.io``, as TG dispatches ``.`` to
    ``_``).

    Example::

        class SocketIO(SocketIOController):
            pingpong = PingPong

            @expose("myapp.templates.page")
            def page(self):
                return {}

        class RootController(BaseController):
            socketio = SocketIO()
    """

    #: the namespace class served on "/" (what io() with no namespace joins)
    default_namespace = None

    @classmethod
    def namespace_classes(cls):
        """Return ``{"/name": namespace class}`` for every namespace served."""
        classes = {}
        for name, value in inspect.getmembers(cls, inspect.isclass):
            if (
                issubclass(value, BaseNamespace)
                and not name.startswith("_")
                and name != "default_namespace"
            ):
                classes["/" + name] = value
        if cls.default_namespace is not None:
            classes["/"] = cls.default_namespace
        return classes

    @property
    def engine(self):
        """The python-socketio server of this controller in the current app.

        Each app has its own (see :mod:`tgext.socketio._engine.runtime`), even when
        two apps share a controller instance.
        """
        return runtime_of(current_app_config()).engine_for(self)

    @expose()
    def index(self, *args, **kwargs):
        return self._hand_off_to_engine()

    @expose()
    def _default(self, *args, **kwargs):
        if "EIO" not in request.GET and "sid" not in request.GET:
            bundle_file = client_bundle.response_for(request, args)  # socket.io.js
            if bundle_file is None:
                raise HTTPNotFound()
            return bundle_file
        return self._hand_off_to_engine()

    def _hand_off_to_engine(self):
        environ = request.environ
        try:
            runtime = runtime_of(current_app_config())
            engine = runtime.engine_for(self)
        except Exception as error:  # keep TG's error pages and backlash out
            log.error(
                "Socket.IO engine unavailable for %s: %s: %s",
                environ.get("PATH_INFO"),
                type(error).__name__,
                error,
            )
            return _PlainFailure()
        server = environ.get(SERVER_KEY)
        if server is not None:
            server.own(runtime)  # closed, with its engines, when the server stops
        environ[REQUEST_LOCALS_KEY] = current_request_locals()
        return _EngineResponse(engine)


class _EngineResponse(Response):
    """A response that TGApp calls as a WSGI app after its wrappers returned.

    TGApp calls a returned WebOb response with the raw environ and the
    server's ``start_response`` once identity, transaction and error-page
    wrappers are done, so a WebSocket living for hours is never inside a
    transaction and Engine.IO's 400s are never rewritten into error pages.
    """

    def __init__(self, engine):
        super().__init__()
        self._tgsio_engine = engine

    def __call__(self, environ, start_response):
        if environ.get("wsgi.websocket") is not None:
            # gevent-websocket has answered 101 already and ignores the status;
            # give the WSGI stack one so it can return at once. The WebSocket
            # then runs when the server iterates the body, once TG's frames
            # have unwound: each open connection parks a smaller greenlet.
            start_response("101 Switching Protocols", [])
            return _WebSocketBody(self._tgsio_engine, environ)
        if environ.get("webob.is_body_seekable"):
            # A POST without Content-Type looks like a form to WebOb, which
            # read the body (into a seekable copy) while TG dispatched.
            environ["wsgi.input"].seek(0)
        # Set-Cookie headers TG copied from tg.response (auth_tkt reissue).
        cookies = [("Set-Cookie", value) for value in self.headers.getall("Set-Cookie")]
        return serve_engine_request(
            self._tgsio_engine, environ, start_response, cookies
        )


class _PlainFailure(Response):
    """A plain 500, sent after TG's wrappers: no error page, no debugger."""

    def __call__(self, environ, start_response):
        body = b"Internal Server Error"
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
        )
        return [body]


class _WebSocketBody:
    """The body of an upgraded request: iterating it runs the WebSocket."""

    def __init__(self, engine, environ):
        self._engine = engine
        self._environ = environ

    def __iter__(self):
        engine, environ = self._engine, self._environ
        self._engine = self._environ = None
        try:
            engine.handle_request(environ, _ignore_start_response)
        except Exception as error:  # the engine's boundary, as for HTTP requests
            log.warning(
                "WebSocket %r failed: %s: %s",
                environ.get("PATH_INFO"),
                type(error).__name__,
                printable(str(error)),
            )
        return iter(())


def _ignore_start_response(status, headers, exc_info=None):
    return None


def start_app_runtime(app):
    """Make ``app``'s runtime and the engines of the controllers it mounts.

    Registered on TG's ``configure_new_app`` hook, which every app made after
    this module was imported fires, under any server: a bad ``socketio.*`` or
    ``anypubsub.*`` setting then stops the app from being made, and the
    namespaces served are known before the first request, so the servers'
    checks that need them run at start-up. The root controller is the one
    the app will dispatch to: ``tg.root_controller``, or for an app in the
    quickstart layout ``<package>.controllers.root.RootController``,
    imported now as TG would at the first request. A controller this walk
    cannot reach (one returned by ``_lookup``, say) gets its engine on its
    first request instead.
    """
    runtime = runtime_of(app.config)
    for controller, path in _socketio_controllers(root_controller_of(app)):
        runtime.engine_for(controller)
        runtime.mount_paths.append(path)


def _socketio_controllers(root, max_depth=8):
    """``(controller, "/mount/path")`` for each ``SocketIOController`` below ``root``.

    The path is made of attribute names, as TG's dispatch reaches them.
    """
    found, seen, pending = [], set(), [(root, "", 0)]
    while pending:
        controller, path, depth = pending.pop()
        if not isinstance(controller, DecoratedController):
            continue
        if isinstance(controller, SocketIOController):
            found.append((controller, path))  # once per path it is mounted at
            continue
        if id(controller) in seen or depth >= max_depth:
            continue
        seen.add(id(controller))
        pending.extend(
            (child, path + "/" + name, depth + 1)
            for name, child in _static_items(controller)
        )
    return found


def _static_items(instance):
    """``(name, value)`` of ``instance``'s attributes, running no property."""
    items = dict(vars(instance))
    for cls in type(instance).__mro__:
        for name, value in vars(cls).items():
            items.setdefault(name, value)
    return [(name, value) for name, value in items.items() if not name.startswith("_")]


tg.hooks.register("configure_new_app", start_app_runtime)
