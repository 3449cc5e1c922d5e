"""The cluster operations on the clients of this process's engines.

Each process sharing the message queue runs these on its own clients when
asked (:mod:`.bus`), and answers with plain data (JSON, bytes tagged), so
that the answers of every process can be put together.
"""

import logging
import os
import socket

import gevent
from gevent.event import Event

from .._engine.connection import user_of

log = logging.getLogger("tgext.socketio.cluster")


def server_name():
    """``host:pid`` of this process (forked workers have pids of their own)."""
    return "%s:%d" % (socket.gethostname(), os.getpid())


def matching_clients(runtime, namespace=None, to=None, user=None):
    """``(engine, instance)`` of each connected client of ``runtime``'s
    engines in ``namespace`` (every namespace when ``None``), in room ``to``
    (or with sid ``to``) when given, of TG user ``user`` when given.

    Clients whose connect is still being decided, and dropped clients within
    their recovery window, are not among them.
    """
    found = []
    for engine in runtime.engines:
        manager = engine.manager
        namespaces = (
            [namespace] if namespace is not None else list(engine.namespace_classes)
        )
        for name in namespaces:
            if name not in manager.rooms:
                continue
            connecting = manager.connecting
            for sid, _eio_sid in list(manager.get_participants(name, to)):
                if sid in connecting:
                    continue
                instance = engine.instance_of(sid)
                if instance is None or instance._tgsio.closed:
                    continue
                if user is not None and user_of(instance.environ) != user:
                    continue
                found.append((engine, instance))
    return found


def describe(engine, instance):
    """One client as :func:`tgext.socketio.fetch_clients` lists it."""
    state = instance._tgsio
    connection = engine.connection_of(state.eio_sid)
    eio_socket = engine.eio.sockets.get(state.eio_sid)
    environ = instance.environ or {}
    rooms = engine.manager.get_rooms(state.sid, instance.ns_name)
    return {
        "sid": state.sid,
        "namespace": instance.ns_name,
        "user": user_of(environ),
        "rooms": sorted(
            room for room in rooms if room is not None and room != state.sid
        ),
        "transport": "websocket"
        if eio_socket is not None and eio_socket.upgraded
        else "polling",
        "address": environ.get("REMOTE_ADDR"),
        "connected_at": connection.opened_at if connection is not None else None,
        "server": server_name(),
    }


def fetch(runtime, namespace=None, to=None, user=None):
    """The clients of this process, described."""
    return [
        describe(engine, instance)
        for engine, instance in matching_clients(runtime, namespace, to, user)
    ]


def disconnect(runtime, namespace=None, to=None, user=None):
    """Disconnect the clients of this process that match (each from its
    namespace: it gets a DISCONNECT, as from ``disconnect()`` in a handler,
    and ``recv_disconnect`` runs); with ``user``, their connections close
    too, and their dropped sessions cannot be recovered any more.

    Returns how many namespace clients were disconnected.
    """
    clients = matching_clients(runtime, namespace, to, user)
    connections = set()
    for engine, instance in clients:
        state = instance._tgsio
        connections.add((engine, state.eio_sid))
        engine.disconnect(state.sid, namespace=instance.ns_name, ignore_queue=True)
    ended = 0
    if user is not None:
        for engine in runtime.engines:
            if engine.recovery is not None:
                ended += engine.recovery.end_sessions(
                    lambda dropped: dropped.user == user
                )
        for engine, eio_sid in connections:
            connection = engine.connection_of(eio_sid)
            if connection is not None and not connection.active_ns:
                # socket.io-client has closed it already (its last namespace
                # was disconnected); any other client must not stay
                # connected under that identity
                gevent.spawn(engine.eio.disconnect, eio_sid)
    if ended:
        log.info("ended %d recoverable sessions of user %r", ended, user)
    return len(clients)


def emit_with_acks(runtime, event, args, namespace="/", to=None, timeout=5.0):
    """Send ``event`` to the clients of this process that match, asking each
    for an acknowledgement; wait at most ``timeout`` seconds.

    Returns ``{"answers": {sid: [ack arguments]}, "missing": [sids]}``.
    """
    answers = {}
    waiting = set()
    done = Event()

    def answered(sid, *arguments):
        if sid in waiting:
            waiting.discard(sid)
            answers[sid] = list(arguments)
            if not waiting:
                done.set()

    clients = matching_clients(runtime, namespace, to)
    for _engine, instance in clients:
        waiting.add(instance._tgsio.sid)
    for engine, instance in clients:
        sid = instance._tgsio.sid
        engine.send_event(instance, event, list(args), callback=_bound(answered, sid))
    if waiting:
        done.wait(max(0.0, timeout))
    return {"answers": answers, "missing": sorted(waiting)}


def _bound(callback, sid):
    return lambda *arguments: callback(sid, *arguments)
