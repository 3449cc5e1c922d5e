"""python-socketio's private names, in one place.

Checked against python-socketio 5.12.0 to 5.18.1. The engine
(:mod:`tgext.socketio._engine.engine`) subclasses :class:`Server` and
overrides the hooks under the names of :data:`HOOKS`; python-socketio calls
them under its own names (made the same functions when the subclass is
defined, so a packet costs no extra call).

Why the engine needs these rather than python-socketio's public route (a
registered ``socketio.Namespace`` whose ``trigger_event`` is called, as
Flask-SocketIO does): a namespace connect must be decided before CONNECT is
sent and what is sent meanwhile held (``_handle_connect``), binary
attachments bounded as they arrive and events decoded in one step
(``_handle_eio_message``), and events queued per client in arrival order
(``_handle_event``); ``trigger_event`` is reached only after all three.
"""

import importlib
from urllib.parse import urlparse

import socketio
import socketio.base_server
import socketio.redis_manager

from . import INSTANCE_ATTRIBUTE, relies_on, rename_hooks

LIBRARY = "python-socketio"
CHECKED = "5.12.0-5.18.1"

_Server = socketio.Server

#: the engine's names for python-socketio's hooks: ``{ours: theirs}``
HOOKS = {
    "handle_engineio_connect": "_handle_eio_connect",
    "handle_engineio_disconnect": "_handle_eio_disconnect",
    "handle_engineio_message": "_handle_eio_message",
    "handle_namespace_connect": "_handle_connect",
    "handle_event": "_handle_event",
    "trigger_handler": "_trigger_event",
}

_PARAMETERS = {
    "_handle_eio_connect": ["self", "eio_sid", "environ"],
    "_handle_eio_disconnect": ["self", "eio_sid", "reason"],
    "_handle_eio_message": ["self", "eio_sid", "data"],
    "_handle_connect": ["self", "eio_sid", "namespace", "data"],
    "_handle_event": ["self", "eio_sid", "namespace", "id", "data"],
    "_trigger_event": ["self", "event", "namespace", "args"],
}
for _theirs, _parameters in _PARAMETERS.items():
    relies_on(LIBRARY, CHECKED, _Server, _theirs, _parameters)
relies_on(LIBRARY, CHECKED, _Server, "_engineio_server_class", ["self"])
relies_on(
    LIBRARY,
    CHECKED,
    socketio.base_server.BaseServer,
    "_binary_packet",
    INSTANCE_ATTRIBUTE,
)
_send_packet = relies_on(
    LIBRARY, CHECKED, _Server, "_send_packet", ["self", "eio_sid", "pkt"]
)
_send_eio_packet = relies_on(
    LIBRARY, CHECKED, _Server, "_send_eio_packet", ["self", "eio_sid", "eio_pkt"]
)
_generate_ack_id = relies_on(
    LIBRARY, CHECKED, socketio.Manager, "_generate_ack_id", ["self", "sid", "callback"]
)


class Server(_Server):
    """``socketio.Server`` with the hooks the engine overrides under names of ours.

    A subclass overrides ``handle_engineio_message`` (say) and calls
    ``super().handle_engineio_message(...)`` for python-socketio's own
    handling. Set ``engineio_server_class`` to the Engine.IO server class.
    """

    #: the python-engineio server class python-socketio builds
    engineio_server_class = None

    handle_engineio_connect = _Server._handle_eio_connect
    handle_engineio_disconnect = _Server._handle_eio_disconnect
    handle_engineio_message = _Server._handle_eio_message
    handle_namespace_connect = _Server._handle_connect
    handle_event = _Server._handle_event
    trigger_handler = _Server._trigger_event

    #: send a Socket.IO packet to an Engine.IO session: ``(eio_sid, pkt)``
    send_packet = _send_packet
    #: send an encoded Engine.IO packet to a session: ``(eio_sid, eio_pkt)``
    send_engineio_packet = _send_eio_packet

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        rename_hooks(cls, HOOKS)

    def _engineio_server_class(self):
        return self.engineio_server_class

    def binary_packet_of(self, eio_sid):
        """The binary packet of ``eio_sid`` waiting for its attachments, or ``None``."""
        return self._binary_packet.get(eio_sid)

    def drop_binary_packet(self, eio_sid):
        """Forget the binary packet of ``eio_sid`` waiting for attachments."""
        self._binary_packet.pop(eio_sid, None)


def new_ack_id(manager, sid, callback):
    """An ack id of ``sid`` whose answer runs ``callback``, from ``manager``."""
    return _generate_ack_id(manager, sid, callback)


def redis_url_schemes():
    """The message-queue URL schemes python-socketio's ``RedisManager`` takes.

    5.12: what redis-py's ``Redis.from_url`` takes; 5.13: Sentinel's too
    (``parse_redis_sentinel_url``); 5.14 on: Valkey's (``_get_redis_module``).
    """
    schemes = {"redis", "rediss", "unix"}
    sentinel = hasattr(socketio.redis_manager, "parse_redis_sentinel_url")
    valkey = hasattr(socketio.RedisManager, "_get_redis_module")
    if sentinel:
        schemes.add("redis+sentinel")
    if valkey:
        schemes |= {"valkey", "valkeys"}
    if sentinel and valkey:
        schemes.add("valkey+sentinel")
    return frozenset(schemes)


def redis_client(url, channel, **options):
    """A client of the Redis (or Valkey) server of message-queue ``url``,
    connected as python-socketio's ``RedisManager`` of ``channel`` connects
    (a Sentinel URL without a service name names the ``channel``)."""
    scheme = urlparse(url).scheme.lower()
    if scheme.startswith("valkey"):
        import valkey as module
    else:
        import redis as module
    if scheme.endswith("+sentinel"):
        importlib.import_module(module.__name__ + ".sentinel")
        sentinels, service, connection_options = (
            socketio.redis_manager.parse_redis_sentinel_url(url)
        )
        sentinel = module.sentinel.Sentinel(
            sentinels, **dict(options, **connection_options)
        )
        return sentinel.master_for(service or channel)
    return module.Redis.from_url(url, **options)
