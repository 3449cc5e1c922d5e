"""The engine's python-engineio server: guarded sessions, tracked tasks, and
what is sent to a client whose namespace connect is being decided held."""

import gevent

from .._serving.engineio_session import GuardedSocket
from .._serving.session_events import session_events
from .._upstream import python_engineio


class EngineIOServer(python_engineio.Server):
    """python-engineio's server, keeping its background greenlets to end them.

    The ping-timeout sweep and the message queue's listener would otherwise
    run on after the engine closed (pings come from each session's timer,
    writes from their senders: neither is a task here).
    """

    def __init__(self, *args, **kwargs):
        self._background = set()
        super().__init__(*args, **kwargs)

    #: what starts every session id (``socketio.node_id`` and the worker's
    #: tag), for sticky routing by a balancer or the workers' router
    session_prefix = ""
    #: packets waiting to be sent to one client before it is disconnected
    max_queued_packets = None
    #: bytes waiting to be sent to one client before it is disconnected
    max_queued_bytes = None
    #: what counts its sessions (``socketio.metrics``): an EngineMetrics, or None
    metrics = None

    def guard(self, sid, ticket=None):
        """Make session ``sid`` a :class:`GuardedSocket` (called at its connect).

        python-engineio builds its sessions from its own ``Socket`` class;
        the guarded one only adds behaviour, so the session changes class in
        place (:func:`~tgext.socketio._upstream.python_engineio.adopt_session`).

        :param ticket: what counts the session against its client's address
            until it closes (:class:`~tgext.socketio._serving.admission.SessionTicket`).
        """
        socket = self.sockets.get(sid)
        if socket is None:
            return
        python_engineio.adopt_session(socket, GuardedSocket)
        if ticket is not None and isinstance(socket, GuardedSocket):
            ticket.open()
            socket.ticket = ticket
        if self.metrics is not None and isinstance(socket, GuardedSocket):
            self.metrics.session_opened(socket)
        session_events.opened(socket)

    def generate_id(self):
        return self.session_prefix + super().generate_id()

    def send_packet(self, sid, pkt):
        if type(sid) is _HeldFrom:  # a client whose connect is being decided
            sid.hold(pkt)
            return
        super().send_packet(sid, pkt)

    def disconnect(self, sid=None):
        """Close sessions without waiting for a long-poll to take the CLOSE.

        python-engineio closes with ``wait=True``, which blocks in
        ``queue.join()`` until a GET drains the queue: a long-polling POST it
        rejects (a bad packet, an oversized body) would never be answered,
        and its socket and greenlet would stay for good.
        """
        sids = list(self.sockets) if sid is None else [sid]
        for session_id in sids:
            socket = self.sockets.pop(session_id, None)
            if socket is not None:
                socket.close(wait=False, reason=self.reason.SERVER_DISCONNECT)

    def schedule_first_ping(self, session):
        # python-engineio 4.11 schedules a new session's first ping before
        # its connect event makes it a GuardedSocket: the ping comes from
        # the guarded session's timer instead of a greenlet
        python_engineio.adopt_session(session, GuardedSocket).schedule_ping()

    def start_background_task(self, target, *args, **kwargs):
        task = super().start_background_task(target, *args, **kwargs)
        if task is not None:
            background = self._background
            background.add(task)
            task.rawlink(background.discard)
        return task

    def end_background_tasks(self):
        """Let writers flush what was queued (a CLOSE), then kill every task."""
        gevent.sleep(0)
        gevent.killall(list(self._background), timeout=1)


class HeldOutput:
    """What is sent to a client while its namespace connect is decided.

    It stands for the client's Engine.IO session id: the engine's Engine.IO
    server keeps what is sent to ``for_namespace`` (the namespace
    instance's own sends) or to ``for_rooms`` (what the client manager
    sends to the namespace and its rooms), in order, in ``packets``.
    """

    __slots__ = ("packets", "for_namespace", "for_rooms")

    def __init__(self):
        self.packets = []  # (Engine.IO packet, whether sent to a room)
        self.for_namespace = _HeldFrom(self.packets, False)
        self.for_rooms = _HeldFrom(self.packets, True)


class _HeldFrom:
    __slots__ = ("packets", "rooms")

    def __init__(self, packets, rooms):
        self.packets, self.rooms = packets, rooms

    def hold(self, packet):
        self.packets.append((packet, self.rooms))
