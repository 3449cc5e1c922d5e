"""SocketIOWorker: gunicorn's gevent worker, serving as ``gearbox serve`` does.

Use it with the same ini as ``gearbox serve``::

    gunicorn --paste development.ini -k tgext.socketio.gunicorn.SocketIOWorker

``socketio_resource`` is read from ``[server:main]`` of that ini (without
``--paste``, from the environment variable ``TGEXT_SOCKETIO_RESOURCE``, else
``socketio``), and so are the timeouts and caps (``header_timeout``,
``max_sessions``...: see :ref:`server-keys`). Like the paste runner, the worker upgrades to WebSocket only
under the resource, rewrites ``/socket.io/`` for TG's dispatch, sets
``TCP_NODELAY``, patches gevent before the app (and TurboGears) is imported,
refuses to serve when TurboGears came first, and closes the app's engines
when it stops, so clients get a clean disconnect.

gunicorn imports this module in its master process, which must stay
unpatched and free of ``tg``: everything that imports ``tg`` happens in the
workers, after gevent patched them.
"""

import configparser
import functools
import os

from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

from ._metrics.processes import check_gunicorn_workers, child_exited
from ._serving.admission import parse_server_options
from ._serving.http import (
    DEFAULT_RESOURCE,
    SocketIOHandler,
    SocketIOServer,
    resource_path,
)

#: where the resource comes from when gunicorn runs without ``--paste``
RESOURCE_ENVIRON = "TGEXT_SOCKETIO_RESOURCE"


class SocketIOGunicornHandler(SocketIOHandler, PyWSGIHandler):
    """The paste runner's handler, logging requests through gunicorn."""


class SocketIOWorker(GeventPyWSGIWorker):
    """A gunicorn worker class for TurboGears apps serving Socket.IO."""

    wsgi_handler = SocketIOGunicornHandler

    _tgsio_runtime = None

    @property
    def server_class(self):
        return functools.partial(
            SocketIOServer,
            resource=socketio_resource(self.cfg),
            runtime=self._tgsio_runtime,
            limits=parse_server_options(
                server_section(self.cfg), "[server:main] of the --paste ini"
            ),
        )

    def load_wsgi(self):
        # the app (and tg) is imported here, in the patched worker; with the
        # controller module imported first, the app's engines are built when
        # the app is made, whatever its layout (see tgext.socketio.server)
        from . import controller  # noqa: F401

        super().load_wsgi()
        from ._config.settings import check_known_keys
        from ._serving.workers import check_processes
        from .server import SERVER_KEYS, check_app_config, check_monkey_patching

        section = server_section(self.cfg)
        if section.get("use", "").replace(" ", "").endswith("tgext.socketio#socketio"):
            # the section is this package's (gunicorn reads only -b, -w...)
            check_known_keys(set(section) - {"use"}, SERVER_KEYS, "[server:main]")
        check_monkey_patching()
        runtime = self._tgsio_runtime = check_app_config()
        runtime.check_mounted_at(
            resource_path(socketio_resource(self.cfg)),
            "socketio_resource (in [server:main] of the --paste ini, or %s)"
            % RESOURCE_ENVIRON,
        )
        workers = self.cfg.workers
        check_processes(runtime, workers, False, "gunicorn -w %d" % workers)
        check_gunicorn_workers(runtime, workers)


def child_exit(server, worker):
    """gunicorn's ``child_exit`` hook for ``socketio.metrics`` with ``-w N``:
    the sessions a dead worker held no longer count (set it in gunicorn's
    config: ``child_exit = tgext.socketio.gunicorn.child_exit``)."""
    child_exited(worker.pid)


def server_section(cfg):
    """The keys of ``[server:main]`` in the ``--paste`` ini (``{}`` without)."""
    paste = getattr(cfg, "paste", None)
    if not paste:
        return {}
    path = paste.split("#", 1)[0]
    if path.startswith("config:"):
        path = path[len("config:") :]
    path = os.path.abspath(path)
    parser = configparser.ConfigParser(
        defaults={"here": os.path.dirname(path), "__file__": path}
    )
    parser.read([path])
    if not parser.has_section("server:main"):
        return {}
    # the section's own keys, not those of [DEFAULT]
    own = set(parser.options("server:main")) - set(parser.defaults())
    return {key: parser.get("server:main", key) for key in own}


def socketio_resource(cfg):
    """``socketio_resource`` of ``[server:main]`` in the ``--paste`` ini."""
    return (
        server_section(cfg).get("socketio_resource")
        or os.environ.get(RESOURCE_ENVIRON)
        or DEFAULT_RESOURCE
    )
