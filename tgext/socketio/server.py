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

from .exceptions import ConfigurationError, MonkeyPatchError  # noqa: E402
from .serving import (  # noqa: E402, F401 (SocketIOHandler is public here too)
    DEFAULT_RESOURCE,
    SocketIOHandler,
    SocketIOServer,
    resource_path,
)

log = logging.getLogger(__name__)


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
