"""The python-socketio server of a SocketIOController, bridged to namespaces.

python-socketio owns the wire (Engine.IO transports, Socket.IO packets, acks,
binary attachments). This module subclasses its ``Server`` at the three points
where gevent-socketio's model differs from python-socketio's handler model:
a namespace connect creates a ``BaseNamespace`` instance, a disconnect tears
it down, and events are handed to that instance (through
:mod:`tgext.socketio._engine.dispatch`) in arrival order.
"""

import functools
import logging

import gevent
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from .._config.keys import SESSION_TICKET_KEY
from .._recovery.recovery import (
    ConnectionStateRecovery,
    as_engineio_packets,
    take_over_sid,
)
from .._serving import clientlog
from .._serving.clientlog import ConnectionLog, printable
from .._serving.engineio_session import GuardedSocket
from .._serving.session_events import session_events
from .._upstream import python_engineio, python_socketio
from ..namespace import DENIED, BaseNamespace, is_refusal
from ..presence import presence_for
from . import jsoncodec
from .client_errors import INVALID_NAMESPACE_MESSAGE
from .client_manager import client_manager, close_client_manager, is_redis_url
from .client_state import ClientState
from .connection import Connection
from .context import call_in_context
from .dispatch import EventDispatcher
from .engineio_server import EngineIOServer, HeldOutput
from .packet_log import PacketTraceLogger
from .packets import decode_json_event, encode_json_packet

log = logging.getLogger("tgext.socketio.engine")

#: seconds between the CONNECT packet and what follows it (see _pause_after_connect)
CONNECT_FLUSH_DELAY = 0.001

#: namespace connects refused on one connection before the connection is cut
MAX_REFUSED_CONNECTS = 5

#: starts every Engine.IO session id this process makes: with workers = N,
#: the worker's tag, which the router reads to keep a client on it (set in
#: each worker process before its engines are built)
SESSION_PREFIX = ""


class SocketIOEngine(python_socketio.Server):
    """A ``socketio.Server`` serving ``BaseNamespace`` classes.

    :param namespace_classes: ``{"/name": BaseNamespace subclass}``.
    :param options: the parsed ``socketio.*`` options
        (:mod:`tgext.socketio._config.settings`).
    """

    engineio_server_class = EngineIOServer
    #: what counts its traffic (``socketio.metrics``): an EngineMetrics, or None
    metrics = None
    #: where the events it receives are kept for the admin view (an
    #: ``EventLog``, set when the app mounts a SocketIOAdminController), or None
    event_log = None

    def __init__(self, namespace_classes, options):
        self.namespace_classes = dict(namespace_classes)
        self._connections = {}  # Engine.IO sid -> Connection
        self._instances = {}  # Socket.IO sid -> namespace instance
        self._dispatcher = EventDispatcher(
            self, max_queued_events=options["max_queued_events"]
        )
        # A client that batches more than 16 queued packets into one polling
        # POST (socket.io-client does, for any burst of emits) would have the
        # whole POST dropped.
        python_engineio.raise_max_decode_packets(options["max_decode_packets"])
        super().__init__(
            async_mode="gevent",
            always_connect=True,
            namespaces=list(self.namespace_classes),
            client_manager=client_manager(options),
            logger=PacketTraceLogger(
                logging.getLogger("tgext.socketio.engine.packets"), {}
            ),
            engineio_logger=PacketTraceLogger(
                logging.getLogger("tgext.socketio.engine.packets.engineio"), {}
            ),
            cors_allowed_origins=options["cors_allowed_origins"],
            ping_interval=options["ping_interval"],
            ping_timeout=options["ping_timeout"],
            max_http_buffer_size=options["max_http_buffer_size"],
            transports=options["transports"],
            allow_upgrades=options["allow_upgrades"],
            http_compression=options["http_compression"],
            json=jsoncodec,
        )
        #: Socket.IO sids whose connect is being decided -> what holds
        #: what is sent to them
        self.manager.connecting = {}
        self.presence = presence_for(self.manager, options)
        #: connection state recovery, when ``socketio.connection_state_recovery``
        #: is set (:mod:`tgext.socketio._recovery`)
        self.recovery = None
        #: why a transport may drop and its client still come back
        self.recoverable_reasons = frozenset(
            (
                self.reason.TRANSPORT_CLOSE,
                self.reason.TRANSPORT_ERROR,
                self.reason.PING_TIMEOUT,
            )
        )
        if options["connection_state_recovery"]:
            url = options["message_queue"]
            self.recovery = ConnectionStateRecovery(
                self,
                options["connection_state_recovery"],
                options["recovery_max_events"],
                options["recovery_max_bytes"],
                options["ping_interval"] + options["ping_timeout"],
                redis=(url, options["channel"])
                if url is not None and is_redis_url(url)
                else None,
            )
            self.manager.recovery = self.recovery
            self.presence.lingering = self.recovery.lingering
        #: channels one client may subscribe to in one PubSubTGNamespace, and
        #: rooms it may be in (RoomsMixin)
        self.max_subscriptions = options["max_subscriptions"]
        self.max_rooms = options["max_rooms"]
        self.eio.max_queued_packets = options["max_queued_packets"]
        self.eio.max_queued_bytes = options["max_queued_bytes"]
        session_events.malloc_above = options["malloc_above"]
        self._attachment_limits = (
            options["max_attachments"],
            options["max_attachment_bytes"] or options["max_http_buffer_size"],
        )
        node_id = options["node_id"]
        self.eio.session_prefix = SESSION_PREFIX or (node_id + "." if node_id else "")
        # an entry per connection: rebuilt small after a wave of clients left
        for name in ("_connections", "_instances", "environ"):
            session_events.table(self, name)
        session_events.table(self.eio, "sockets")

    def close(self):
        """Close every client's connection, then end every greenlet the engine runs.

        Namespaces see their clients leave (``recv_disconnect``). Clients see
        their transport close, not a Socket.IO DISCONNECT, so they reconnect
        by themselves, to the restarted server or to another process: what a
        Node.js Socket.IO server does when it closes. With connection state
        recovery across processes (a Redis message queue), their state is
        kept as for a transport that dropped, so that they recover on
        another process (a worker stopped by a rolling restart, a host
        drained).
        """
        reason = self.reason.SERVER_DISCONNECT
        if self.recovery is not None and self.recovery.stream is not None:
            reason = self.reason.TRANSPORT_CLOSE
        for eio_sid in list(self._connections):
            socket = self.eio.sockets.pop(eio_sid, None)
            if socket is not None:
                socket.close(wait=False, abort=True, reason=reason)
        self.eio.shutdown()
        if self.recovery is not None:
            self.recovery.close()
        self.presence.close()
        self._dispatcher.close()
        self.eio.end_background_tasks()
        close_client_manager(self.manager)

    # -- connections ------------------------------------------------------------

    def handle_engineio_connect(self, eio_sid, environ):
        self.eio.guard(eio_sid, environ.pop(SESSION_TICKET_KEY, None))
        super().handle_engineio_connect(eio_sid, environ)
        connection = Connection(eio_sid, environ)
        environ["socketio"] = connection  # where gevent-socketio kept it
        self._connections[eio_sid] = connection

    def handle_engineio_disconnect(self, eio_sid, reason):
        if reason == self.reason.CLIENT_DISCONNECT and self.recovery is not None:
            socket = self.eio.sockets.get(eio_sid)
            if socket is not None and not getattr(socket, "rejected", None):
                # An Engine.IO close with no Socket.IO DISCONNECT before it
                # (socket.io-client's socket.io.engine.close(), a polling
                # transport closing): Node's server calls it a transport
                # close, and its client comes back to recover.
                reason = self.reason.TRANSPORT_CLOSE
        if self.metrics is not None:
            self.metrics.disconnected(reason)
        try:
            super().handle_engineio_disconnect(eio_sid, reason)
        finally:
            connection = self._connections.pop(eio_sid, None)
            if connection is not None:
                connection.release()

    def handle_engineio_message(self, eio_sid, data):
        pending = self.binary_packet_of(eio_sid)
        try:
            event = decode_json_event(data) if pending is None else None
            if event is not None:
                self.handle_event(eio_sid, *event)
                return
            if pending is not None:
                self._check_attachment(pending, data)
            super().handle_engineio_message(eio_sid, data)
            if pending is None:
                pending = self.binary_packet_of(eio_sid)
                if pending is not None:
                    self._check_attachment(pending, None)
        except (ValueError, TypeError, LookupError, RecursionError) as error:
            # Undecodable JSON (or nested too deep to decode), an unknown
            # packet type, a stray or excess attachment: python-engineio
            # would log a traceback per packet. One line, and the connection
            # that sent it ends; user code never runs here (events run in
            # their own greenlet, callbacks are wrapped).
            self.drop_binary_packet(eio_sid)
            reason = "a malformed Socket.IO packet (%s: %s)" % (
                type(error).__name__,
                printable(str(error)),
            )
            self._cut(eio_sid, reason)

    def _check_attachment(self, pending, attachment):
        """Bound a binary packet's attachments: how many, and their bytes.

        ``attachment`` is the one arriving for ``pending`` (``None`` when
        ``pending`` has just announced its count).
        """
        limits = self._attachment_limits
        if attachment is None:
            if pending.attachment_count > limits[0]:
                raise ValueError(
                    "%d attachments announced (socketio.max_attachments is %d)"
                    % (pending.attachment_count, limits[0])
                )
            pending._tgsio_attachment_bytes = 0
            return
        size = len(attachment) + getattr(pending, "_tgsio_attachment_bytes", 0)
        if size > limits[1]:
            raise ValueError(
                "attachments of over %d bytes (socketio.max_attachment_bytes is %d)"
                % (size, limits[1])
            )
        pending._tgsio_attachment_bytes = size

    def handle_namespace_connect(self, eio_sid, namespace, data):
        """A client asks to join ``namespace``: decide, then answer.

        python-socketio sends CONNECT before the connect handler runs (with
        ``always_connect``), or puts the client in the namespace's rooms
        before it (5.17's two-phase connect): either way a client being
        refused receives what is sent to the namespace meanwhile. Here the
        client is in the rooms, but everything sent to it waits
        (:class:`HeldOutput`) until ``recv_connect`` decided; then CONNECT
        goes out, followed by what waited: all of it for an accepted
        client, only what its own namespace sent (the refusal's ``error``)
        for a refused one, followed by DISCONNECT (as 0.0.x did).
        """
        namespace = namespace or "/"
        # python-socketio's own rule (it serves "/" when given no namespace)
        if namespace not in self.namespaces and namespace not in self.handlers:
            # python-socketio 5.12-5.18 answers a bare string here, which
            # socket.io-client 4.x turns into an Error with an empty message:
            # Socket.IO v5 carries {"message": ...}, as Node's server does.
            self.warn_about_client(
                eio_sid,
                log,
                "namespace not served",
                "client %s asked for namespace %r, which is not served",
                eio_sid,
                namespace[:100],
                offence=True,
            )
            self._refuse_connect(eio_sid, namespace, INVALID_NAMESPACE_MESSAGE)
            return
        restored = None
        if self.recovery is not None:
            restored, data = self._restorable(eio_sid, namespace, data)
        if restored is not None:
            sid = restored[0].sid
        else:
            # python-socketio 5.12-5.18: enters the namespace and the sid's
            # room, returns the new sid (None: joined already)
            sid = self.manager.connect(eio_sid, namespace)
        if sid is None:
            self._refuse_connect(eio_sid, namespace, "Unable to connect")
            return
        held = HeldOutput()
        connecting = self.manager.connecting
        connecting[sid] = held.for_rooms
        try:
            self._decide_connect(eio_sid, namespace, sid, data or None, held, restored)
        finally:
            connecting.pop(sid, None)
            if restored is not None:
                self.recovery.restoring.discard(sid)

    def _restorable(self, eio_sid, namespace, data):
        """The dropped client a CONNECT asks to recover, put back under its
        sid in the namespace and its rooms, with where what it missed
        starts: ``((dropped, start) or None, data without pid and offset)``."""
        recovery = self.recovery
        pid, offset, data = recovery.claim(data)
        if pid is None:
            return None, data
        if self.metrics is not None:
            self.metrics.recovery_attempted()
        recovery.supersede(pid, namespace)
        restored = recovery.take(
            pid, offset, namespace, self._connections[eio_sid].environ
        )
        if restored is None:
            return None, data
        dropped = restored[0]
        if not take_over_sid(
            self.manager, eio_sid, namespace, dropped.sid, dropped.rooms
        ):
            recovery.end(dropped)
            return None, data
        return restored, data

    def _refuse_connect(self, eio_sid, namespace, message):
        self.send_packet(
            eio_sid,
            self.packet_class(
                sio_packet.CONNECT_ERROR, data={"message": message}, namespace=namespace
            ),
        )

    def trigger_handler(self, event, namespace, *args):
        # python-socketio calls this for disconnects only: connects are
        # handled above, ordinary events arrive through handle_event below.
        if event == "disconnect":
            return self._disconnect_instance(*args)
        return self.not_handled

    def _decide_connect(self, eio_sid, namespace, sid, auth, held, restored=None):
        """Run the namespace's connect hooks, then accept or refuse.

        ``restored``: ``(dropped client, where what it missed starts)`` for
        a client recovering its connection state.
        """
        connection = self._connections[eio_sid]
        try:
            result = call_in_context(
                connection.request_locals,
                self._open_instance,
                connection,
                namespace,
                sid,
                auth,
                held.for_namespace,
                restored[0] if restored is not None else None,
            )
        except Exception:  # the boundary where user code (__init__, hooks) runs
            self.warn_about_client(
                eio_sid,
                log,
                "recv_connect failed",
                "Unhandled exception in %s recv_connect",
                namespace,
                exc_info=True,
            )
            result = DENIED
        accepted = result is not False and not is_refusal(result)
        instance = self._instances.get(sid)  # None if it failed to be made
        fetched = None
        if accepted and instance is not None and restored is not None:
            # across processes, what it missed is read now (it may yield)
            fetched = self.recovery.fetch(*restored)
        if self.manager.is_connected(sid, namespace):
            reply = {"sid": sid}
            if instance is not None and instance._tgsio.recovery is not None:
                reply["pid"] = instance._tgsio.recovery.pid
            self.send_packet(
                eio_sid,
                self.packet_class(sio_packet.CONNECT, reply, namespace=namespace),
            )
            self._pause_after_connect(eio_sid)
        if not self.manager.is_connected(sid, namespace):
            # The client left while recv_connect ran (it may yield): whatever
            # that hook started after the disconnect must not outlive it.
            if restored is not None:
                self.recovery.abandon(instance, restored[0])
            self._close(self._forget(sid))
            return
        # no greenlet switch from here on: nothing new can come in between
        self.manager.connecting.pop(sid, None)
        if accepted and instance is not None and restored is not None:
            if self.metrics is not None:
                self.metrics.recovery_succeeded()
            dropped, start = restored
            for parts in self.recovery.missed(instance, dropped, start, fetched):
                for part in as_engineio_packets(parts):
                    self.eio.send_packet(eio_sid, part)
            for room in dropped.rooms:
                self.presence.add(namespace, room, sid)
        elif restored is not None:
            self.recovery.abandon(instance, restored[0])
        for packet, for_rooms in held.packets:
            if accepted or not for_rooms:
                self.eio.send_packet(eio_sid, packet)
        held.packets.clear()
        if instance is not None:
            instance._tgsio.send_to = eio_sid
        if accepted and instance is not None:
            self.presence.add(namespace, None, sid)
            if self.recovery is not None:
                self.recovery.accepted(instance)
            self._dispatcher.start(instance)  # the events that came meanwhile
            return
        self._close(self._forget(sid))
        # Returning False would make python-socketio send a DISCONNECT
        # carrying a reason, which socket.io-client 4.x rejects as a parse
        # error, dropping every namespace of the connection. A plain
        # DISCONNECT ends only this namespace.
        self.disconnect(sid, namespace=namespace, ignore_queue=True)
        self._count_refusal(connection, namespace)

    def _pause_after_connect(self, eio_sid):
        """Let CONNECT reach the peer before what follows it.

        With TCP_NODELAY, CONNECT and what follows (what recv_connect
        emitted, the CONNECT of the client's next namespace) can reach the
        peer in one read, and a peer that adds its next listener only after
        handling CONNECT misses the second: the official Socket.IO v5
        protocol suite on ws 8 (0-3 passes in 4 on four connect tests, 4 in
        4 with this pause), python-socketio 5.12's client joining two
        namespaces at once ("One or more namespaces failed to connect"). One
        millisecond per namespace join over WebSocket (long-polling batches
        packets anyway); what is sent meanwhile keeps waiting.
        """
        eio_socket = self.eio.sockets.get(eio_sid)
        if eio_socket is not None and eio_socket.upgraded:
            gevent.sleep(CONNECT_FLUSH_DELAY)

    def _count_refusal(self, connection, namespace):
        """Cut a connection that keeps asking for namespaces it is refused.

        Node's server and python-socketio's let one connection ask again
        and again: each try costs the app a connect hook.
        """
        connection.refused_connects += 1
        if self.metrics is not None:
            self.metrics.refuse("connect_refused")
        if connection.refused_connects < MAX_REFUSED_CONNECTS:
            return
        self._cut(
            connection.id,
            "%d namespace connects refused (the last to %r)"
            % (connection.refused_connects, namespace[:100]),
        )

    def _open_instance(self, connection, namespace, sid, auth, send_to, dropped=None):
        """Create the namespace instance for a client, then run its hooks.

        What the instance sends goes to ``send_to`` until it is accepted.
        ``dropped``: the dropped client it recovers.
        """
        # "/" of an engine serving no namespace (python-socketio serves it
        # then, as Node's server always does) is a bare BaseNamespace
        namespace_class = self.namespace_classes.get(namespace, BaseNamespace)
        instance = namespace_class.__new__(namespace_class)
        # its events wait in the inbox until the connect is accepted
        # (ClientState starts "draining")
        instance._tgsio = ClientState(
            self, sid, connection.id, send_to, connection.request_locals
        )
        instance.auth = auth
        instance.ns_name = namespace  # (__init__ sets it too)
        connection.active_ns[namespace] = instance
        self._instances[sid] = instance
        if self.metrics is not None:
            self.metrics.connected(namespace)
        if self.recovery is not None:
            if dropped is not None:
                instance.session = connection.session
                self.recovery.restore(instance, dropped)
            else:
                instance._tgsio.recovery = self.recovery.new_state()
        instance.__init__(connection.environ, namespace, request=connection.request)
        instance.initialize()
        return instance.process_packet({"type": "connect", "endpoint": namespace})

    def connection_of(self, eio_sid):
        """The :class:`Connection` of Engine.IO session ``eio_sid``, or ``None``."""
        return self._connections.get(eio_sid)

    def instance_of(self, sid):
        """The namespace instance of Socket.IO sid ``sid``, or ``None``."""
        return self._instances.get(sid)

    def drop_connection(self, eio_sid):
        """End the Engine.IO session ``eio_sid`` as a transport that closed."""
        socket = self.eio.sockets.pop(eio_sid, None)
        if socket is not None:
            socket.close(wait=False, abort=True, reason=self.reason.TRANSPORT_CLOSE)

    def _forget(self, sid, kept=False):
        """Take ``sid``'s instance out of the engine; ``kept``: its client
        may recover, and stays in presence for the window."""
        instance = self._instances.pop(sid, None)
        if instance is None:
            return None
        if self.metrics is not None:
            self.metrics.left(instance.ns_name)
        instance._tgsio.closed = True  # spawn() and emit() stop working
        if self.recovery is not None:
            self.recovery.forget(instance)
        if not kept:
            self.presence.forget(sid)
        instance._tgsio.inbox.clear()  # events not handled yet are dropped
        connection = self._connections.get(instance._tgsio.eio_sid)
        if connection is not None:
            connection.active_ns.pop(instance.ns_name, None)
        return instance

    @staticmethod
    def _close(instance):
        if instance is not None and hasattr(instance, "jobs"):
            instance._tgsio_release()

    def _disconnect_instance(self, sid, reason=None):
        kept = False
        if self.recovery is not None:
            instance = self._instances.get(sid)
            if instance is not None:
                kept = self.recovery.keep(
                    instance, reason, self.manager.get_rooms(sid, instance.ns_name)
                )
        instance = self._forget(sid, kept)
        if instance is None:
            return
        try:
            # gevent-socketio ran recv_disconnect whenever a client went away,
            # but not when the namespace itself called disconnect().
            if not instance._tgsio.leaving:
                call_in_context(
                    instance._tgsio.request_locals,
                    instance.process_packet,
                    {"type": "disconnect", "endpoint": instance.ns_name},
                )
        except Exception:  # user code in recv_disconnect
            self.warn_about_client(
                instance._tgsio.eio_sid,
                log,
                "recv_disconnect failed",
                "Unhandled exception in %s recv_disconnect",
                instance.ns_name,
                exc_info=True,
            )
        finally:
            self._close(instance)

    def disconnect_namespace(self, instance, silent=False):
        """Disconnect ``instance``'s client from its namespace."""
        sid = instance._tgsio.sid
        if sid not in self._instances:
            return
        instance._tgsio.leaving = True
        if not silent:
            self.disconnect(sid, namespace=instance.ns_name, ignore_queue=True)
            return
        self.manager.pre_disconnect(sid, namespace=instance.ns_name)
        self._disconnect_instance(sid)
        self.manager.disconnect(sid, namespace=instance.ns_name, ignore_queue=True)

    # -- what clients make the server log ---------------------------------------

    def warn_about_client(
        self, eio_sid, logger, kind, message, *args, offence=False, exc_info=None
    ):
        """Log a warning caused by the client of Engine.IO session ``eio_sid``,
        within its connection's budget (:mod:`.clientlog`); past too many
        offences, the connection is cut.

        :param kind: a few words saying what happened, for summaries.
        :param offence: whether a well-behaved client would not do it.
        """
        if offence and self.metrics is not None:
            self.metrics.offence(kind)
        connection = self._connections.get(eio_sid)
        if connection is None:  # gone already
            if clientlog.client_lines.allow(kind):
                logger.warning(message, *args, exc_info=exc_info)
            return
        budget = connection.log
        if budget is None:
            budget = connection.log = ConnectionLog()
        if budget.warn(
            logger, eio_sid, kind, message, *args, offence=offence, exc_info=exc_info
        ):
            self._cut(
                eio_sid,
                "%d offences in a minute, the last: %s" % (budget.offences, kind),
            )

    def _cut(self, eio_sid, reason):
        """End the Engine.IO session ``eio_sid`` for ``reason`` (logged once)."""
        socket = self.eio.sockets.get(eio_sid)
        if isinstance(socket, GuardedSocket):
            socket.reject(reason)
        elif socket is not None:
            if self.metrics is not None:
                self.metrics.refuse_session(reason)
            log.warning("refused input from %s: %s; session closed", eio_sid, reason)
            self.eio.disconnect(eio_sid)

    # -- events -------------------------------------------------------------------

    def handle_event(self, eio_sid, namespace, id, data):
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace or "/")
        instance = self._instances.get(sid)
        if type(data) is not list or not data:
            # "42{}" or '42"text"' decode to a dict or a string, not [name, ...]
            self.warn_about_client(
                eio_sid,
                log,
                "malformed event",
                "malformed event (%s, not [name, ...]) from %s: disconnecting it [%r]",
                type(data).__name__,
                eio_sid,
                namespace or "/",
                offence=True,
            )
            if instance is not None:
                self.disconnect(sid, namespace=namespace or "/", ignore_queue=True)
            return
        if instance is None:
            self.warn_about_client(
                eio_sid,
                log,
                "event to a namespace not joined",
                "event from %s ignored: not connected to namespace %r",
                eio_sid,
                (namespace or "/")[:100],
                offence=True,
            )
            return
        if self.event_log is not None:
            self.event_log.received(instance.ns_name, data[0], sid)
        self._dispatcher.submit(instance, id, data)

    def send_event(self, instance, event, args, callback=None):
        """Send ``event`` with ``args`` to one instance's client, directly.

        The instance's client is always connected to this process, so this
        skips the room lookup and any message queue.
        """
        if instance._tgsio.closed:
            return  # the client has left the namespace
        sid = instance._tgsio.sid
        ack_id = None
        if callback is not None:
            callback = functools.partial(self._run_callback, instance, callback)
            ack_id = python_socketio.new_ack_id(self.manager, sid, callback)
        elif self.recovery is not None:
            parts = self.recovery.record(
                instance.ns_name, (sid,), None, (), [event, *args]
            )
            # None: the recovery stream delivers it; restoring: the log does
            # once the client is recovered
            if parts is not None and sid not in self.recovery.restoring:
                self._send_parts(instance._tgsio.send_to, parts)
            return
        self.send_socketio_packet(
            instance._tgsio.send_to,
            sio_packet.EVENT,
            instance.ns_name,
            [event, *args],
            ack_id,
        )

    def send_socketio_packet(self, eio_sid, packet_type, namespace, data, id=None):
        """Send one client an EVENT or ACK of ``data`` (a list), encoded as
        python-socketio encodes it.

        python-socketio's packet first walks ``data`` for bytes (a binary
        packet), then encodes it as JSON, then python-engineio wraps it in a
        packet of its own: about 6 us per packet. Here ``data`` is encoded
        at once; only when that fails (bytes in it, or what JSON cannot
        encode) does python-socketio's packet take over, to send attachments
        or raise its error.
        """
        encoded = encode_json_packet(packet_type, namespace, data, id)
        session = self.eio.sockets.get(eio_sid)
        if encoded is None or not isinstance(session, GuardedSocket) or session.closed:
            self.send_packet(
                eio_sid,
                self.packet_class(packet_type, namespace=namespace, data=data, id=id),
            )
        else:
            session.send_message(encoded)

    def _send_parts(self, eio_sid, parts):
        """Send a Socket.IO packet's encoded ``parts`` to one Engine.IO session."""
        session = self.eio.sockets.get(eio_sid) if len(parts) == 1 else None
        if isinstance(session, GuardedSocket) and not session.closed:
            session.send_message(parts[0])
            return
        for part in as_engineio_packets(parts):
            self.eio.send_packet(eio_sid, part)

    def send_to_instances(
        self, instances, namespace, event, args, channel=None, offset=None
    ):
        """Send one event to several instances of ``namespace``, encoded once.

        :param channel: the PubSub channel whose subscribers they are, if
            they are: what a recovering client missed is found by it.
        :param offset: its offset, when it comes from the recovery stream
            (logged already).
        """
        if offset is not None:
            encoded = self.recovery.encode(namespace, [event, *args], offset)
        elif self.recovery is not None:
            rooms = (
                None
                if channel is not None
                else tuple(instance._tgsio.sid for instance in instances)
            )
            encoded = self.recovery.record(
                namespace, rooms, channel, (), [event, *args]
            )
            if encoded is None:  # the recovery stream delivers it
                return
        else:
            encoded = self.packet_class(
                sio_packet.EVENT, namespace=namespace, data=[event, *args]
            ).encode()
            if not isinstance(encoded, list):
                encoded = [encoded]
        eio_packets = [eio_packet.Packet(eio_packet.MESSAGE, part) for part in encoded]
        connecting = self.manager.connecting
        for instance in instances:
            state = instance._tgsio
            if state.closed:
                continue
            # a client recovering across processes is a subscriber already:
            # what it is sent waits with the rest until its connect is decided
            target = (
                connecting.get(state.sid, state.eio_sid)
                if connecting
                else state.eio_sid
            )
            for part in eio_packets:
                self.send_engineio_packet(target, part)

    @staticmethod
    def _run_callback(instance, callback, *args):
        """Run an ``emit(callback=)`` callback as a handler: TG context, errors logged."""
        try:
            call_in_context(instance._tgsio.request_locals, callback, *args)
        except Exception:  # the boundary where user callback code runs
            instance._tgsio.engine.warn_about_client(
                instance._tgsio.eio_sid,
                log,
                "ack callback failed",
                "Unhandled exception in %s ack callback",
                instance.ns_name,
                exc_info=True,
            )
