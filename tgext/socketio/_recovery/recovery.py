"""Connection state recovery for one engine: offsets on what it sends, the
clients whose transport dropped, and what a client coming back gets.

A client's transport drops (closed, failed, or silent past the ping
timeout): its namespace instance ends as it always did (``recv_disconnect``
runs, its greenlets are killed), but its sid, rooms, PubSub subscriptions
and session are kept for the window as a :class:`~.clients.DroppedClient`,
which stays in presence and in its channels. Its CONNECT within the window,
with the ``pid`` it was told and the last offset it received, makes a new
instance with ``recovered`` true under the same sid (``recv_connect``
runs, on the new handshake); it gets CONNECT, then what it missed from the
engine's :class:`~.log.EventLog`, in order, then what was sent meanwhile.
"""

import logging
import time

import gevent
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from .._engine.packets import encode_json_packet
from .clients import DroppedClient, RecoveryState, new_pid
from .log import NAMESPACE, PARTS, EventLog, reaches

log = logging.getLogger("tgext.socketio.recovery")

#: seconds between two sweeps of expired clients and log entries
SWEEP_SECONDS = 1.0

#: the longest offset a client may send (a log's offsets are whole numbers)
_MAX_OFFSET_DIGITS = 19


class ConnectionStateRecovery:
    """The recovery of one engine's clients.

    :param engine: the :class:`~tgext.socketio._engine.engine.SocketIOEngine`.
    :param window: seconds a dropped client may come back
        (``socketio.connection_state_recovery``).
    :param max_events: events kept for recovery (``socketio.recovery_max_events``).
    :param max_bytes: their bytes (``socketio.recovery_max_bytes``).
    :param detection: seconds a dead transport may go unnoticed (ping
        interval and timeout): what was sent then is kept too.
    """

    def __init__(self, engine, window, max_events, max_bytes, detection):
        self.engine = engine
        self.window = window
        self.log = EventLog(window + detection, max_events, max_bytes)
        self.dropped = {}  # pid -> DroppedClient, oldest first
        self.live = {}  # pid -> namespace instance of a connected client
        #: sids of clients being recovered: what is sent to them waits in
        #: the log until their CONNECT is sent
        self.restoring = set()
        self._sweeper = None

    # -- what is sent ----------------------------------------------------------

    def record(self, namespace, rooms, channel, skip, data):
        """Log an event (``data`` is ``[name, *args]``) sent to ``rooms`` of
        ``namespace`` (``None``: all of it) or to the subscribers of
        ``channel``, but ``skip``; return its Socket.IO packet, offset
        appended, as the encoded parts python-socketio sends (a text, then
        any binary attachments)."""
        log_ = self.log
        offset = log_.next_offset
        parts = self.encode(namespace, data, offset)
        log_.add(offset, namespace, rooms, channel, skip, parts)
        if self._sweeper is None:
            self._start_sweeping()
        return parts

    def encode(self, namespace, data, offset):
        """The encoded parts (a tuple) of the EVENT of ``data`` with
        ``offset`` appended."""
        text = encode_json_packet(sio_packet.EVENT, namespace, data)
        if text is not None:  # [..., "offset"]: one more item, spliced in
            return ('%s,"%s"]' % (text[:-1], offset),)
        full = [*data, str(offset)]
        parts = self.engine.packet_class(
            sio_packet.EVENT, namespace=namespace, data=full
        ).encode()
        return tuple(parts) if isinstance(parts, list) else (parts,)

    def entered(self, sid, room):
        """Client ``sid`` entered ``room``: what was sent there before does not reach it."""
        instance = self.engine.instance_of(sid)
        if instance is not None and instance._tgsio.recovery is not None:
            instance._tgsio.recovery.rooms_since.setdefault(room, self.log.head)

    def subscribed(self, instance, channel):
        """``instance`` subscribed to PubSub ``channel``."""
        state = instance._tgsio.recovery
        if state is not None:
            state.channels_since.setdefault(channel, self.log.head)

    def unsubscribed(self, instance, channel):
        state = instance._tgsio.recovery
        if state is not None:
            state.channels_since.pop(channel, None)

    # -- clients ---------------------------------------------------------------

    def new_state(self):
        """The RecoveryState of a client joining a namespace afresh."""
        return RecoveryState(new_pid(), self.log.head)

    def accepted(self, instance):
        state = instance._tgsio.recovery
        state.connected = True
        self.live[state.pid] = instance

    def forget(self, instance):
        state = instance._tgsio.recovery
        if state is not None and self.live.get(state.pid) is instance:
            del self.live[state.pid]

    def keep(self, instance, reason, rooms):
        """Keep what ``instance``'s client had, its transport having dropped
        for ``reason``: returns whether it may come back."""
        state = instance._tgsio
        recovery_state = state.recovery
        if (
            recovery_state is None
            or not recovery_state.connected
            or state.leaving
            or reason not in self.engine.recoverable_reasons
        ):
            return False
        subscriptions = dict(state.subscriptions) if state.subscriptions else None
        since = recovery_state.since
        recovery_state.rooms_since = {
            room: recovery_state.rooms_since.get(room, since)
            for room in rooms
            if room != state.sid
        }
        dropped = DroppedClient(
            self.engine,
            instance.ns_name,
            state.sid,
            recovery_state,
            list(recovery_state.rooms_since),
            subscriptions,
            instance.session,
            time.monotonic() + self.window,
            hub=state.hub,
            user=_user_of(instance.environ),
        )
        if subscriptions:
            for channel in dropped.channels:
                state.hub.hand_over(channel, instance, dropped)
            state.subscriptions = None  # the channels are the dropped client's now
        self.live.pop(recovery_state.pid, None)
        self.dropped[recovery_state.pid] = dropped
        if self._sweeper is None:
            self._start_sweeping()
        return True

    def claim(self, auth):
        """The ``pid`` and ``offset`` a client's CONNECT carries, and its
        auth data without them (``None`` when empty)."""
        if not isinstance(auth, dict) or "pid" not in auth:
            return None, None, auth
        rest = {
            key: value for key, value in auth.items() if key not in ("pid", "offset")
        }
        return auth.get("pid"), auth.get("offset"), rest or None

    def supersede(self, pid, namespace):
        """A client comes back while its old connection has not been seen
        to drop yet (its pings are still within the timeout): that one has
        dropped."""
        instance = self.live.get(pid)
        if instance is None or instance.ns_name != namespace:
            return
        self.engine.drop_connection(instance._tgsio.eio_sid)

    def take(self, pid, offset, namespace, environ):
        """The dropped client of ``pid`` in ``namespace`` coming back with
        the last ``offset`` it received, and where its missed events
        start: ``(dropped, start)``, or ``None`` (it starts afresh)."""
        if not isinstance(pid, str):
            return None
        dropped = self.dropped.get(pid)
        if dropped is None or dropped.ns_name != namespace:
            return None
        del self.dropped[pid]
        start = _parse_offset(offset, dropped.state.since)
        reason = None
        if dropped.expires < time.monotonic():
            reason = "its window has passed"
        elif start is None:
            reason = "its offset %r is not one this server sent" % (str(offset)[:40],)
        elif not self.log.covers(start):
            reason = "the events since its offset are no longer kept"
        elif _user_of(environ) != dropped.user:
            reason = "its connection has another TG user"
        if reason is not None:
            log.info("client %s cannot recover: %s", dropped.sid, reason)
            self.end(dropped)
            return None
        return dropped, start

    def restore(self, instance, dropped):
        """Make ``instance`` the recovered client of ``dropped`` (before its
        hooks run): its session, and its RecoveryState."""
        state = dropped.state
        state.restoring = True
        state.connected = False
        instance._tgsio.recovery = state
        self.restoring.add(dropped.sid)
        session = instance.session
        if dropped.session is not session:
            for key, value in dropped.session.items():
                session.setdefault(key, value)
        instance.recovered = True

    def missed(self, instance, dropped, start):
        """Hand ``dropped``'s channels to the recovered ``instance`` and
        return the events it missed since ``start``, oldest first, each as
        its encoded parts.

        Called where nothing can switch greenlets until they are sent.
        """
        state = instance._tgsio
        recovery_state = state.recovery
        if dropped.subscriptions:
            hub = dropped.hub
            state.hub = hub
            state.subscriptions = dropped.subscriptions
            for channel in dropped.channels:
                hub.hand_over(channel, dropped, instance)
            dropped.subscriptions = None
        recovery_state.restoring = False
        self.restoring.discard(dropped.sid)
        sid, namespace = dropped.sid, dropped.ns_name
        since = recovery_state.since
        rooms_since = recovery_state.rooms_since
        channels_since = recovery_state.channels_since
        return [
            entry[PARTS]
            for entry in self.log.since(start)
            if entry[NAMESPACE] == namespace
            and reaches(entry, sid, since, rooms_since, channels_since)
        ]

    def abandon(self, instance, dropped):
        """A recovering client was refused or left during its connect."""
        self.restoring.discard(dropped.sid)
        self.end(dropped)

    def end(self, dropped):
        """The window of ``dropped`` is over: it leaves its channels and presence."""
        if dropped.subscriptions and dropped.hub is not None:
            for channel in dropped.channels:
                dropped.hub.unsubscribe(channel, dropped)
            dropped.subscriptions = None
        self.engine.presence.forget(dropped.sid)

    def lingering(self, namespace, room):
        """The sids of dropped clients still in ``namespace`` (or its ``room``)."""
        return [
            dropped.sid
            for dropped in self.dropped.values()
            if dropped.ns_name == namespace and (room is None or room in dropped.rooms)
        ]

    def close(self):
        if self._sweeper is not None:
            self._sweeper.kill(block=False)
            self._sweeper = None
        dropped, self.dropped = list(self.dropped.values()), {}
        for client in dropped:
            try:
                self.end(client)
            except Exception:  # one failing must not keep the others
                log.exception("ending the recoverable session of %s failed", client.sid)
        self.live.clear()

    # -- the window ------------------------------------------------------------

    def _start_sweeping(self):
        self._sweeper = gevent.spawn(self._sweep)

    def _sweep(self):
        try:
            while self.dropped or len(self.log):
                gevent.sleep(SWEEP_SECONDS)
                now = time.monotonic()
                self.log.trim(now)
                while self.dropped:
                    pid, dropped = next(iter(self.dropped.items()))
                    if dropped.expires > now:
                        break
                    del self.dropped[pid]
                    try:
                        self.end(dropped)
                    except Exception:  # the hub's or presence's backend failing
                        log.exception(
                            "ending the recoverable session of %s failed", dropped.sid
                        )
        finally:
            if self._sweeper is gevent.getcurrent():
                self._sweeper = None


def _parse_offset(offset, default):
    """A client's offset as a log offset; ``default`` when it sent none,
    ``None`` when it is none this server sends."""
    if offset is None:
        return default
    if (
        not isinstance(offset, str)
        or not offset.isdigit()
        or len(offset) > _MAX_OFFSET_DIGITS
        or not offset.isascii()
    ):
        return None
    return int(offset)


def _user_of(environ):
    identity = (environ or {}).get("repoze.who.identity") or {}
    return identity.get("repoze.who.userid")


def take_over_sid(manager, eio_sid, namespace, sid, rooms):
    """Put ``sid`` back in ``namespace`` for the Engine.IO session
    ``eio_sid``, and in ``rooms``, as python-socketio's manager puts a new
    client (its ``connect`` would make a new sid). Returns whether it could:
    not when ``sid`` or ``eio_sid`` is in the namespace already."""
    if manager.is_connected(sid, namespace) or (
        manager.eio_sid_from_sid(sid, namespace) is not None
        or manager.sid_from_eio_sid(eio_sid, namespace) is not None
    ):
        return False
    manager.basic_enter_room(sid, namespace, None, eio_sid=eio_sid)
    manager.basic_enter_room(sid, namespace, sid, eio_sid=eio_sid)
    for room in rooms:
        try:
            manager.basic_enter_room(sid, namespace, room)
        except ValueError:  # a room named as another client's sid by now
            pass
    return True


def as_engineio_packets(parts):
    """Engine.IO MESSAGE packets of a Socket.IO packet's encoded parts."""
    return [eio_packet.Packet(eio_packet.MESSAGE, part) for part in parts]
