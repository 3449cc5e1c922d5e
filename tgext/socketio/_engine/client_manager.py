"""The client manager of an engine: in memory, or a message queue shared by
processes (Redis, Valkey, Sentinel, or any Kombu URL), holding what is sent
to a client whose namespace connect is being decided."""

import importlib
import logging
import types
from urllib.parse import urlparse

import socketio
from engineio import packet as eio_packet

from .._upstream import python_socketio
from .._upstream.redis import disconnect_client
from ..exceptions import ConfigurationError

log = logging.getLogger("tgext.socketio.engine")


class _HoldingConnects:
    """A client manager that names, as the Engine.IO session of a client whose
    connect is being decided, what holds its output (see
    ``SocketIOEngine.handle_namespace_connect``).

    ``connecting`` maps those clients' sids to it.
    """

    connecting = types.MappingProxyType({})

    def get_participants(self, namespace, room):
        connecting = self.connecting
        participants = super().get_participants(namespace, room)
        if not connecting:
            return participants
        return ((sid, connecting.get(sid, eio_sid)) for sid, eio_sid in participants)


class _RecoveringManager(socketio.Manager):
    """A client manager whose emits go through the engine's connection state
    recovery (:mod:`tgext.socketio._recovery`), and that tells it when a
    client enters a room. An emit asking for an ack passes untouched (it
    carries no offset, as in Node's server)."""

    #: the engine's ConnectionStateRecovery
    recovery = None

    def enter_room(self, sid, namespace, room, eio_sid=None):
        if self.recovery is not None:
            self.recovery.entered(sid, room)
        return super().enter_room(sid, namespace, room, eio_sid=eio_sid)

    def emit(
        self,
        event,
        data,
        namespace,
        room=None,
        skip_sid=None,
        callback=None,
        to=None,
        **kwargs,
    ):
        recovery = self.recovery
        if recovery is None or callback or not self._recorded(kwargs):
            return super().emit(
                event,
                data,
                namespace,
                room=room,
                skip_sid=skip_sid,
                callback=callback,
                to=to,
                **kwargs,
            )
        if isinstance(data, tuple):  # python-socketio's rule for data
            args = list(data)
        else:
            args = [] if data is None else [data]
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        self._send_recorded(
            recovery,
            namespace or "/",
            to or room,
            tuple(sid for sid in skip if sid is not None),
            [event, *args],
        )

    def _recorded(self, kwargs):
        """Whether an emit with ``kwargs`` goes through recovery."""
        return True

    def _send_recorded(self, recovery, namespace, room, skip, data):
        raise NotImplementedError


class _RecordingEmits(_RecoveringManager):
    """Emits to this process's clients logged by the engine's recovery,
    offset appended, then sent.

    It comes after a message queue's manager in the MRO, so it takes what
    that one delivers here, from this process or another.
    """

    def _send_recorded(self, recovery, namespace, room, skip, data):
        # logged even with nobody here: a client dropped meanwhile missed it
        parts = recovery.record(namespace, _rooms_of(room), None, skip, data)
        if namespace not in self.rooms:
            return
        packets = [eio_packet.Packet(eio_packet.MESSAGE, part) for part in parts]
        restoring = recovery.restoring
        send = self.server.send_engineio_packet
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip or (restoring and sid in restoring):
                continue
            for packet in packets:
                send(eio_sid, packet)


class _StreamedEmits(_RecoveringManager):
    """A Redis manager whose emits go through the engine's recovery stream
    (:mod:`tgext.socketio._recovery.stream`) rather than pub/sub: every
    process's reader delivers them, offset appended. It comes before the
    Redis manager in the MRO; what python-socketio's own messages carry
    (rooms entered from another process, disconnects) and a local-only emit
    (``ignore_queue``) still go its way."""

    def _recorded(self, kwargs):
        return not kwargs.get("ignore_queue")

    def _send_recorded(self, recovery, namespace, room, skip, data):
        recovery.record(namespace, _rooms_of(room), None, skip, data)


def _rooms_of(room):
    """``None`` (the whole namespace), or a tuple of rooms."""
    if room is None:
        return None
    if hasattr(room, "__len__") and not isinstance(room, str):
        return tuple(room)
    return (room,)


class _Manager(_HoldingConnects, socketio.Manager):
    pass


class _RedisManager(_HoldingConnects, socketio.RedisManager):
    pass


class _KombuManager(_HoldingConnects, socketio.KombuManager):
    pass


class _RecordingManager(_HoldingConnects, _RecordingEmits):
    pass


class _RecordingRedisManager(_HoldingConnects, _StreamedEmits, socketio.RedisManager):
    pass


class _RecordingKombuManager(_HoldingConnects, socketio.KombuManager, _RecordingEmits):
    pass


def is_redis_url(url):
    """Whether message-queue ``url`` goes to python-socketio's ``RedisManager``
    (the schemes the installed version takes: ``redis://``, ``rediss://``,
    ``unix://``; on newer ones ``valkey://``, ``valkeys://`` and Sentinel's
    ``redis+sentinel://``, ``valkey+sentinel://``), rather than to Kombu's."""
    return urlparse(url).scheme.lower() in python_socketio.redis_url_schemes()


def redis_module_for(url):
    """The client library a Redis ``url`` needs (``redis`` or ``valkey``).

    :raises ConfigurationError: it is not installed.
    """
    scheme = urlparse(url).scheme.lower()
    name, extra = (
        ("valkey", "valkey")
        if scheme.startswith("valkey")
        else ("redis", "tgext.socketio[redis]")
    )
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigurationError(
            "socketio.message_queue = %s needs %s; run 'pip install %s'."
            % (url, "redis-py" if name == "redis" else name, extra)
        ) from None


def client_manager(options):
    """The client manager of an engine with the parsed ``options``."""
    url = options["message_queue"]
    recording = bool(options.get("connection_state_recovery"))
    if url is None:
        return _RecordingManager() if recording else _Manager()
    if is_redis_url(url):
        redis_module_for(url)
        manager_class = _RecordingRedisManager if recording else _RedisManager
        return manager_class(url, channel=options["channel"])
    try:
        manager_class = _RecordingKombuManager if recording else _KombuManager
        return manager_class(url, channel=options["channel"])
    except RuntimeError as error:  # kombu is not installed
        raise ConfigurationError(
            "socketio.message_queue = %s needs kombu (%s); install it, or use a "
            "redis:// URL." % (url, error)
        ) from None


def write_only_manager(url, channel):
    """A manager that only publishes to the processes sharing ``url`` and
    ``channel`` (see :func:`tgext.socketio.emit`)."""
    if is_redis_url(url):
        redis_module_for(url)
        return socketio.RedisManager(url, channel=channel, write_only=True)
    return socketio.KombuManager(url, channel=channel, write_only=True)


def close_client_manager(manager):
    """Close the Redis connections of a message queue manager: the one it
    listens on, and those it publishes on (redis-py's pool)."""
    pubsub = getattr(manager, "pubsub", None)  # RedisManager's redis-py PubSub
    if pubsub is not None:
        try:
            pubsub.close()
        except Exception as error:  # a connection already lost
            log.debug("closing the message queue connection failed: %s", error)
    client = getattr(manager, "redis", None)
    if getattr(client, "connection_pool", None) is not None:
        disconnect_client(client, "the message queue's connections")
