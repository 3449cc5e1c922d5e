"""socketio_server_runner: the ``paste.server_runner`` that serves a TG app
with Socket.IO on gevent (``use = egg:tgext.socketio#socketio``).

gearbox imports this module (to find the entry point) before it loads the
application, so patching gevent in the module body is early enough for
TurboGears: its request locals are created when ``tg`` is first imported and
must be greenlet-local. Keep ``tg`` imports out of the module body.
"""

import functools

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
    # Those threads unregister themselves under threading.get_ident(), now
    # gevent's, which is not the key they registered under: KeyError at exit.
    for thread in threading.enumerate():
        if thread.ident != greenlet_ident and hasattr(thread, "_delete"):
            thread._delete = functools.partial(_unregister_thread, thread)


def _unregister_thread(thread):
    import threading

    threading._active.pop(thread.ident, None)


if not monkey.is_module_patched("socket"):
    _patch_standard_library()

import logging  # noqa: E402
import signal  # noqa: E402

import gevent  # noqa: E402

# gearbox loads the app next: with the controller module imported, TG's
# configure_new_app hook builds the app's engines when the app is made, even
# for an app whose config names only its package (the quickstart layout),
# whose modules import tgext.socketio at the first request only.
from . import controller as _controller  # noqa: E402, F401
from ._serving.admission import SERVER_OPTIONS, parse_server_options  # noqa: E402
from ._serving.http import (  # noqa: E402, F401 (SocketIOHandler is public here too)
    DEFAULT_RESOURCE,
    SocketIOHandler,
    SocketIOServer,
    resource_path,
)
from .exceptions import ConfigurationError, MonkeyPatchError  # noqa: E402

log = logging.getLogger(__name__)

#: the keys of ``[server:main]`` this runner reads (PasteDeploy hands it the
#: section's own keys, without ``use`` and those of ``[DEFAULT]``)
SERVER_KEYS = ("host", "port", "socketio_resource", "workers") + tuple(
    name for name, *_rest in SERVER_OPTIONS
)


def check_monkey_patching():
    """Refuse to serve when TG's request context is not greenlet-local."""
    from ._upstream.tg import context_is_greenlet_local

    if not context_is_greenlet_local():
        raise MonkeyPatchError(
            "TurboGears was imported before gevent patched the standard "
            "library, so concurrent Socket.IO handlers would share one request "
            "context. Start the server with 'gearbox serve -c development.ini' "
            "(use = egg:tgext.socketio#socketio), or call "
            "gevent.monkey.patch_all() before anything imports tg."
        )


def check_app_config():
    """Return the served app's runtime; making it checks every ``socketio.*``
    and ``anypubsub.*`` setting (apps made after ``tgext.socketio`` was
    imported have it already)."""
    from ._engine.runtime import runtime_of
    from ._upstream.tg import current_app_config

    return runtime_of(current_app_config())


def socketio_server_runner(wsgi_app, global_config, **kw):
    """Serve ``wsgi_app`` forever: the ``egg:tgext.socketio#socketio`` runner.

    Options of ``[server:main]``: ``host`` (default ``127.0.0.1``), ``port``
    (``8080``), ``socketio_resource`` (``socketio``), ``workers`` (``1``: the
    number of serving processes, see :mod:`tgext.socketio._serving.workers`), and the
    timeouts and caps of :ref:`server-keys`.
    """
    from ._config.settings import check_known_keys

    check_known_keys(kw, SERVER_KEYS, "[server:main]")
    host = kw.get("host") or "127.0.0.1"
    port = _whole_number(kw, "port", 8080, "a port number such as 8080")
    workers = _whole_number(kw, "workers", 1, "a number of processes such as 2")
    resource = resource_path(kw.get("socketio_resource", DEFAULT_RESOURCE))
    limits = parse_server_options(kw)
    check_monkey_patching()
    runtime = check_app_config()
    runtime.check_mounted_at(resource)
    from ._serving.workers import check_processes, serve_workers

    check_processes(runtime, workers, True, "workers = %d in [server:main]" % workers)
    if workers > 1:
        from ._metrics.processes import shared_between_workers

        runtime.close()  # each worker process builds its own engines
        with shared_between_workers(runtime, workers):  # socketio.metrics
            return serve_workers(
                wsgi_app,
                host,
                port,
                resource,
                workers,
                runtime.options["node_id"],
                limits,
            )
    server = SocketIOServer(
        (host, port), wsgi_app, resource=resource, runtime=runtime, limits=limits
    )
    # SIGTERM (systemd, hupper restarting the server for --reload): close
    # cleanly, as Ctrl-C does, rather than dying wherever SystemExit lands.
    gevent.signal_handler(signal.SIGTERM, server.close)
    server.init_socket()
    log.info(
        "serving Socket.IO at http://%s:%s%s (gevent, websocket via gevent-websocket)",
        host,
        server.server_port,
        server.resource,
    )
    server.serve_forever()


def _whole_number(kw, key, default, expected):
    try:
        value = int(kw.get(key, default))
    except (TypeError, ValueError):
        value = -1
    if value < (0 if key == "port" else 1):
        raise ConfigurationError(
            "%s = %r is not %s; set it in [server:main]." % (key, kw.get(key), expected)
        )
    return value
