"""Acting on clients wherever they are connected: disconnect them, list
them, ask them all for an answer.

Like :func:`tgext.socketio.emit`, each function works from a namespace's
handler, a controller action, or a process that serves no client (a
worker, a cron job: pass ``message_queue=``). With ``socketio.message_queue``
on Redis, every process serving the app takes part (``workers = N``,
several hosts); without a message queue, this process's clients are all
there are. The operations go through Redis pub/sub (``<channel>:cluster``),
not through clients: nothing a client sends starts one.
"""

import dataclasses

from ._cluster import bus, operations
from ._config.keys import RUNTIME_KEY
from ._engine.client_manager import is_redis_url
from ._upstream.tg import current_app_config
from .exceptions import ConfigurationError

#: seconds the processes get to answer a fetch or a disconnect
DEFAULT_TIMEOUT = 5.0


@dataclasses.dataclass(frozen=True)
class ClientInfo:
    """One client connected to one namespace, as :func:`fetch_clients` lists it."""

    #: its Socket.IO session id in the namespace
    sid: str
    namespace: str
    #: its TG user id (``repoze.who.userid`` of the handshake), or ``None``
    user: object
    #: the rooms it is in (not counting its own sid's)
    rooms: tuple
    #: ``"websocket"`` or ``"polling"``
    transport: str
    #: ``REMOTE_ADDR`` of its handshake (a proxy's, behind one)
    address: object
    #: when its connection opened, in seconds since the epoch
    connected_at: float
    #: the process holding it, ``host:pid``
    server: str


@dataclasses.dataclass(frozen=True)
class Acks:
    """What :func:`emit_with_acks` collected."""

    #: ``{sid: [the arguments of its acknowledgement]}``
    answers: dict
    #: the sids of the clients sent the event that did not answer in time
    missing: tuple
    #: processes that received the request but did not report in time
    #: (their clients, if any, are in neither of the above)
    silent_servers: int = 0


def fetch_clients(
    namespace=None,
    to=None,
    user=None,
    *,
    timeout=DEFAULT_TIMEOUT,
    message_queue=None,
    channel="socketio",
):
    """The clients of ``namespace`` (every namespace when ``None``) in every
    process, in room ``to`` (or the one client whose sid it is) and of TG
    user ``user`` when given.

    :returns: a list of :class:`ClientInfo`, oldest connection first.

    Example (a controller action listing a chat room)::

        from tgext.socketio import fetch_clients

        @expose("json")
        @require(has_permission("manage"))
        def who(self, room):
            clients = fetch_clients("/chat", to=room)
            return {"users": sorted({c.user for c in clients if c.user})}
    """
    results = _run(
        "fetch",
        {"namespace": namespace, "to": to, "user": user},
        timeout,
        message_queue,
        channel,
    )[0]
    clients = [
        ClientInfo(**dict(described, rooms=tuple(described["rooms"])))
        for result in results
        for described in result
    ]
    clients.sort(key=lambda client: (client.connected_at or 0, client.sid))
    return clients


def disconnect_clients(
    namespace=None,
    to=None,
    user=None,
    *,
    timeout=DEFAULT_TIMEOUT,
    message_queue=None,
    channel="socketio",
):
    """Disconnect, in every process, the clients of ``namespace`` (every
    namespace when ``None``) in room ``to`` (or the one client whose sid it
    is), or of TG user ``user``.

    Each client gets a Socket.IO DISCONNECT from its namespace (it does not
    reconnect by itself) and its namespace's ``recv_disconnect`` runs, as
    for ``self.disconnect()`` in a handler. With ``user``, the user's
    connections are closed too and their dropped sessions (connection state
    recovery) cannot come back: a user who logged out or was banned is gone
    everywhere. Refusing them when they connect again is the namespaces'
    ``@require`` on ``recv_connect``.

    :returns: how many namespace clients were disconnected.
    :raises ValueError: with neither ``to`` nor ``user`` (it would
        disconnect every client: name a room they are all in if that is
        what you mean).
    """
    if to is None and user is None:
        raise ValueError(
            "disconnect_clients() needs to= (a room or a sid) or user= (a TG "
            "user id): it would disconnect every client otherwise"
        )
    results = _run(
        "disconnect",
        {"namespace": namespace, "to": to, "user": user},
        timeout,
        message_queue,
        channel,
    )[0]
    return sum(results)


def emit_with_acks(
    event,
    *args,
    namespace="/",
    to=None,
    timeout=DEFAULT_TIMEOUT,
    message_queue=None,
    channel="socketio",
):
    """Send ``event`` with ``args`` to the clients of ``namespace`` (in room
    ``to`` when given) in every process, each asked for an acknowledgement,
    and collect the answers that come within ``timeout`` seconds.

    :returns: :class:`Acks`: who answered what, and who did not.

    Example (a poll; each client's ``socket.on("vote", (q, answer) =>
    answer(choice))`` answers)::

        acks = emit_with_acks("vote", "lunch?", namespace="/team", to="office",
                              timeout=10)
        votes = collections.Counter(answer[0] for answer in acks.answers.values())
    """
    if not isinstance(event, str) or not event:
        raise ValueError("emit_with_acks() needs an event name, not %r" % (event,))
    results, asked = _run(
        "acks",
        {
            "event": event,
            "args": list(args),
            "namespace": namespace,
            "to": to,
            "timeout": timeout,
        },
        timeout,
        message_queue,
        channel,
    )
    answers, missing = {}, []
    for result in results:
        answers.update(result["answers"])
        missing.extend(result["missing"])
    return Acks(answers, tuple(sorted(missing)), max(0, asked - len(results)))


def _run(operation, params, timeout, message_queue, channel):
    """Run ``operation`` where the clients are: ``(results, processes asked)``."""
    runtime = None
    if message_queue is None:
        app_config = current_app_config()
        if app_config is not None:
            runtime = app_config.get(RUNTIME_KEY)
            if runtime is not None:
                message_queue = runtime.options["message_queue"]
                channel = runtime.options["channel"]
            else:
                message_queue = app_config.get("socketio.message_queue") or None
                channel = app_config.get("socketio.channel") or channel
    if message_queue is None:
        if runtime is None:
            raise RuntimeError(
                "%s found no Socket.IO server in this process and no message "
                "queue; call it while serving a request of the app, or pass "
                "message_queue= (the socketio.message_queue URL of the servers)."
                % _public_name(operation)
            )
        return [operations.perform(runtime, operation, params)], 1
    if not is_redis_url(message_queue):
        raise ConfigurationError(
            "%s needs a Redis message queue to reach every process, and "
            "socketio.message_queue is %s: use a redis:// URL."
            % (_public_name(operation), message_queue)
        )
    listener = getattr(runtime, "cluster", None)
    client = (
        listener.client
        if listener is not None
        and (listener.url, listener.channel) == (message_queue, channel)
        else None
    )
    return bus.ask(message_queue, channel, operation, params, timeout, client=client)


def _public_name(operation):
    return {
        "fetch": "fetch_clients()",
        "disconnect": "disconnect_clients()",
        "acks": "emit_with_acks()",
        "overview": "SocketIOAdminController",
    }[operation]
