"""Socket.IO for TurboGears2, on python-socketio and gevent.

The public names are resolved lazily: importing this package must not import
``tg``, because :mod:`tgext.socketio.server` (which imports this package first)
has to monkey-patch gevent before TurboGears creates its thread locals.
"""

from importlib import import_module

from ._compat import refuse_gevent_socketio

# read by setup.py with a regular expression, without importing the package
__version__ = "0.1.0"

refuse_gevent_socketio()

_PUBLIC_NAMES = {
    "SocketIOController": ".controller",
    "BaseNamespace": ".namespace",
    "SocketIOTGNamespace": ".tgnamespace",
    "BroadcastMixin": ".mixins",
    "RoomsMixin": ".mixins",
    "emit": ".emitter",
    "MetricsController": ".metrics",
    "SocketIOAdminController": ".admin",
    "fetch_clients": ".cluster",
    "disconnect_clients": ".cluster",
    "emit_with_acks": ".cluster",
    "ClientInfo": ".cluster",
    "Acks": ".cluster",
    "participants": ".presence",
    "PubSubTGNamespace": ".pubsub",
}

__all__ = tuple(_PUBLIC_NAMES) + ("plugme",)


def __getattr__(name):
    module_name = _PUBLIC_NAMES.get(name)
    if module_name is None:
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    value = getattr(import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


def plugme(app_config, options):
    """Entry point for ``tgext.pluggable.plug(base_config, "tgext.socketio")``.

    Plugging is optional: mounting a :class:`SocketIOController` and serving
    with ``egg:tgext.socketio#socketio`` is all the extension needs.
    """
    return dict(appid="tgext.socketio")
