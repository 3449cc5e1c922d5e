"""Connection state recovery for one engine: offsets on what it sends, the
clients whose transport dropped, and what a client coming back gets.

A client's transport drops (closed, failed, or silent past the ping
timeout): its namespace instance ends as it always did (``recv_disconnect``
runs, its greenlets are killed), but its sid, rooms, PubSub subscriptions
and session are kept for the window as a :class:`~.clients.DroppedClient`,
which stays in presence and in its channels. Its CONNECT within the window,
with the ``pid`` it was told and the last offset it received, makes a new
instance with ``recovered`` true under the same sid (``recv_connect``
runs, on the new handshake); it gets CONNECT, then what it missed, in
order, then what was sent meanwhile.

What it missed comes from the engine's :class:`~.log.EventLog` (one
process), or from the Redis stream every process shares
(:mod:`.stream`, with a Redis ``socketio.message_queue``), where the
dropped client's state is too, so that it recovers on any process.
"""

import logging
import time

import gevent
import gevent.event
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from .._engine.connection import user_of
from .._engine.packets import encode_json_packet
from .clients import DroppedClient, RecoveryState, new_pid
from .log import CHANNEL, NAMESPACE, PARTS, EventLog, reaches
from .stream import RecoveryStream, id_order

log = logging.getLogger("tgext.socketio.recovery")

#: seconds between two sweeps of expired clients and log entries
SWEEP_SECONDS = 1.0

#: the longest offset a client may send
_MAX_OFFSET_CHARACTERS = 41

#: across processes, seconds a reconnect looks for the record of its pid
#: (the process it dropped from may not have seen the drop yet), and
#: between two looks; a client whose state cannot be found starts afresh
#: this much later
RECORD_WAIT = 1.0
RECORD_POLL = 0.05


class ConnectionStateRecovery:
    """The recovery of one engine's clients.

    :param engine: the :class:`~tgext.socketio._engine.engine.SocketIOEngine`.
    :param window: seconds a dropped client may come back
        (``socketio.connection_state_recovery``).
    :param max_events: events kept for recovery (``socketio.recovery_max_events``).
    :param max_bytes: their bytes (``socketio.recovery_max_bytes``).
    :param detection: seconds a dead transport may go unnoticed (ping
        interval and timeout): what was sent then is kept too.
    :param redis: ``(url, channel)`` of a Redis message queue: recover
        across the processes sharing it.
    """

    def __init__(self, engine, window, max_events, max_bytes, detection, redis=None):
        self.engine = engine
        self.window = window
        self.log = EventLog(window + detection, max_events, max_bytes)
        self.stream = None
        if redis is not None:
            self.stream = RecoveryStream(
                redis[0], redis[1], window + detection, max_events, self._deliver
            )
        #: the app's PubSub hub (set by the app's runtime)
        self.hub = None
        self.dropped = {}  # pid -> DroppedClient, oldest first
        self.live = {}  # pid -> namespace instance of a connected client
        #: sids of clients being recovered (one process): what is sent to
        #: them waits in the log until their CONNECT is sent, so nothing is
        #: sent to them directly meanwhile
        self.restoring = set()
        self._sweeper = None
        self._stop = gevent.event.Event()
        self._writes_failing = False
        if self.stream is not None:
            self._start_sweeping()

    @property
    def head(self):
        """The offset of the last event sent here (in order)."""
        return self.stream.head if self.stream is not None else self.log.head

    # -- what is sent ----------------------------------------------------------

    def record(self, namespace, rooms, channel, skip, data):
        """Log an event (``data`` is ``[name, *args]``) sent to ``rooms`` of
        ``namespace`` (``None``: all of it) or to the subscribers of
        ``channel``, but ``skip``; return its Socket.IO packet, offset
        appended, as the encoded parts python-socketio sends (a text, then
        any binary attachments), for the caller to send.

        Across processes it is added to the stream instead, whose reader
        delivers it, here and everywhere: ``None``.
        """
        if self.stream is not None:
            try:
                self.stream.add([namespace, rooms, channel, skip, data])
            except Exception as error:  # the backend's boundary (Redis away)
                if not self._writes_failing:  # said once, until it works again
                    log.warning(
                        "connection state recovery: events to %s are not sent "
                        "while Redis fails: %s: %s",
                        namespace,
                        type(error).__name__,
                        error,
                    )
                    self._writes_failing = True
            else:
                if self._writes_failing:
                    log.warning("connection state recovery: events are sent again")
                    self._writes_failing = False
            return None
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

    def _deliver(self, offset, order, entry):
        """The stream's reader: send an entry to this process's clients."""
        namespace, rooms, channel, skip, data = entry
        if channel is not None:
            if self.hub is not None:
                self.hub.deliver(channel, data, offset=offset, engine=self.engine)
            return
        engine = self.engine
        if namespace not in engine.namespace_classes and namespace != "/":
            return
        packets = as_engineio_packets(self.encode(namespace, data, offset))
        room = None if rooms is None else rooms[0] if len(rooms) == 1 else rooms
        send = engine.send_engineio_packet
        for sid, eio_sid in engine.manager.get_participants(namespace, room):
            if skip and sid in skip:
                continue
            for packet in packets:
                send(eio_sid, packet)

    def entered(self, sid, room):
        """Client ``sid`` entered ``room``: what was sent there before does not reach it."""
        instance = self.engine.instance_of(sid)
        if instance is not None and instance._tgsio.recovery is not None:
            instance._tgsio.recovery.rooms_since.setdefault(room, self.head)

    def subscribed(self, instance, channel):
        """``instance`` subscribed to PubSub ``channel``."""
        state = instance._tgsio.recovery
        if state is not None:
            state.channels_since.setdefault(channel, self.head)

    def unsubscribed(self, instance, channel):
        state = instance._tgsio.recovery
        if state is not None:
            state.channels_since.pop(channel, None)

    # -- clients ---------------------------------------------------------------

    def new_state(self):
        """The RecoveryState of a client joining a namespace afresh."""
        return RecoveryState(new_pid(), self.head)

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
            user=user_of(instance.environ),
        )
        if subscriptions:
            dropped.presence = {
                channel: state.hub.presence_entry(channel, instance)
                for channel in dropped.channels
            }
            for channel in dropped.channels:
                state.hub.hand_over(channel, instance, dropped)
            state.subscriptions = None  # the channels are the dropped client's now
        self.live.pop(recovery_state.pid, None)
        self.dropped[recovery_state.pid] = dropped
        if self.stream is not None:
            self._put_record(dropped)
        if self._sweeper is None:
            self._start_sweeping()
        return True

    def _put_record(self, dropped):
        state = dropped.state
        record = {
            "namespace": dropped.ns_name,
            "sid": dropped.sid,
            "since": state.since,
            "rooms": [[room, since] for room, since in state.rooms_since.items()],
            "channels": [[name, since] for name, since in state.channels_since.items()],
            "subscriptions": dropped.subscriptions,
            "presence": dropped.presence,
            "session": dropped.session,
            "user": dropped.user,
        }
        try:
            self.stream.put_record(state.pid, record, self.window)
        except Exception as error:  # Redis away, or a session that is not JSON
            log.warning(
                "client %s can recover only on this process: its state could "
                "not be kept in Redis (%s: %s)",
                dropped.sid,
                type(error).__name__,
                error,
            )

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
        if not isinstance(pid, str) or len(pid) > 100:
            return None
        dropped = self.dropped.get(pid)
        if self.stream is not None:
            dropped = self._take_record(pid, dropped)
        elif dropped is not None:
            del self.dropped[pid]
        if dropped is None:
            return None
        start = self._parse_offset(offset, dropped.state.since)
        reason = None
        if dropped.ns_name != namespace:
            reason = "it asks for another namespace"
        elif dropped.expires < time.monotonic():
            reason = "its window has passed"
        elif start is None:
            reason = "its offset %r is not one this server sent" % (str(offset)[:40],)
        elif not self._covers(start):
            reason = "the events since its offset are no longer kept"
        elif user_of(environ) != dropped.user:
            reason = "its connection has another TG user"
        if reason is not None:
            log.info("client %s cannot recover: %s", dropped.sid, reason)
            self.end(dropped)
            return None
        return dropped, start

    def _take_record(self, pid, local):
        """The dropped client of ``pid`` from Redis (taken: no other
        process gets it), ``local`` when it dropped here.

        A client may come back (to another process) before the process it
        dropped from has seen its transport close and written its record:
        a record not found is looked for again for ``RECORD_WAIT`` seconds.
        """
        deadline = time.monotonic() + (RECORD_WAIT if local is None else 0)
        try:
            record = self.stream.take_record(pid, self.window)
            while record is None and time.monotonic() < deadline:
                gevent.sleep(RECORD_POLL)
                record = self.stream.take_record(pid, self.window)
        except Exception as error:  # Redis away: it starts afresh
            log.warning(
                "client with pid %r cannot recover: %s: %s",
                pid[:40],
                type(error).__name__,
                error,
            )
            return None
        if local is not None:
            del self.dropped[pid]
            if record is None:  # taken elsewhere, or expired
                self.end(local, taken=True)
                return None
            self._forget_taken(pid)  # no other process is left to ask
            return local
        if record is None:
            return None
        try:
            return self._from_record(pid, record)
        except (KeyError, TypeError, ValueError) as error:
            log.warning(
                "client with pid %r: an unreadable record (%s)", pid[:40], error
            )
            return None

    def _forget_taken(self, pid):
        try:
            self.stream.was_taken(pid)
        except Exception as error:  # Redis away: the mark expires
            log.debug("connection state recovery: %s", error)

    def _from_record(self, pid, record):
        """A DroppedClient of another process, from its record."""
        state = RecoveryState(
            pid,
            tuple(record["since"]),
            {room: tuple(since) for room, since in record["rooms"]},
            {name: tuple(since) for name, since in record["channels"]},
        )
        dropped = DroppedClient(
            self.engine,
            record["namespace"],
            record["sid"],
            state,
            list(state.rooms_since),
            record["subscriptions"],
            record["session"],
            time.monotonic() + self.window,
            hub=None,  # not in this process's channels
            user=record["user"],
        )
        dropped.presence = record["presence"] or {}
        return dropped

    def _parse_offset(self, offset, default):
        """A client's offset as one of this engine's; ``default`` when it
        sent none, ``None`` when it is none this server sends."""
        if offset is None:
            return default
        if (
            not isinstance(offset, str)
            or len(offset) > _MAX_OFFSET_CHARACTERS
            or not offset.isascii()
        ):
            return None
        try:
            if self.stream is not None:
                return id_order(offset)
            return int(offset) if offset.isdigit() else None
        except ValueError:
            return None

    def _covers(self, start):
        if self.stream is None:
            return self.log.covers(start)
        try:
            return start <= self.stream.head and self.stream.covers(start)
        except Exception as error:  # Redis away: it starts afresh
            log.warning(
                "connection state recovery: %s: %s", type(error).__name__, error
            )
            return False

    def restore(self, instance, dropped):
        """Make ``instance`` the recovered client of ``dropped`` (before its
        hooks run): its session, its RecoveryState and (across processes)
        its channels. Called with nothing switching greenlets since the
        client was put back in its rooms."""
        state = dropped.state
        state.connected = False
        instance._tgsio.recovery = state
        session = instance.session
        if dropped.session is not session:
            for key, value in dropped.session.items():
                session.setdefault(key, value)
        instance.recovered = True
        if self.stream is None:
            self.restoring.add(dropped.sid)
            return
        # what the stream delivers from now on reaches it live (held until
        # its connect is decided); what came before is read up to here
        dropped.until = self.stream.head
        self._adopt_channels(instance, dropped)

    def _adopt_channels(self, instance, dropped):
        if not dropped.subscriptions:
            return
        state = instance._tgsio
        hub = dropped.hub or self.hub
        state.hub = hub
        state.subscriptions = dropped.subscriptions
        for channel in dropped.channels:
            if dropped.hub is not None:  # it dropped here: its stand-in's place
                hub.hand_over(channel, dropped, instance)
            else:
                hub.adopt(channel, instance, dropped.presence.get(channel))
        dropped.subscriptions = None

    def fetch(self, dropped, start):
        """Across processes, what ``dropped`` missed from ``start`` up to
        where the stream was when it came back (``None`` on one process:
        the log is read by :meth:`missed`)."""
        if self.stream is None:
            return None
        try:
            return self.stream.since(start, dropped.until)
        except Exception as error:  # Redis away: what it missed is lost
            log.warning(
                "client %s recovered without what it missed: %s: %s",
                dropped.sid,
                type(error).__name__,
                error,
            )
            return []

    def missed(self, instance, dropped, start, fetched):
        """The events ``instance``'s client missed since ``start``, oldest
        first, each as its encoded parts (``fetched``: :meth:`fetch`).

        Called where nothing can switch greenlets until they are sent; on
        one process, hands the dropped client's channels over first.
        """
        state = instance._tgsio.recovery
        sid, namespace = dropped.sid, dropped.ns_name
        since, rooms_since = state.since, state.rooms_since
        channels_since = state.channels_since
        if fetched is not None:
            return self._missed_from_stream(
                fetched, sid, namespace, since, rooms_since, channels_since
            )
        self._adopt_channels(instance, dropped)
        self.restoring.discard(sid)
        return [
            entry[PARTS]
            for entry in self.log.since(start)
            if entry[NAMESPACE] == namespace
            and reaches(entry, sid, since, rooms_since, channels_since)
        ]

    def _missed_from_stream(self, fetched, sid, namespace, since, rooms, channels):
        missed = []
        for order, entry in fetched:
            entry_namespace, entry_rooms, channel, skip, data = entry
            logged = (order, entry_namespace, entry_rooms, channel, skip)
            if channel is None and entry_namespace != namespace:
                continue
            if not reaches(logged, sid, since, rooms, channels):
                continue
            offset = "%d-%d" % order
            if logged[CHANNEL] is not None:
                event = self.hub.event_of(channel, data) if self.hub else None
                if event is None:
                    continue
                data = [event[0], *event[1]]
            missed.append(self.encode(namespace, data, offset))
        return missed

    def abandon(self, instance, dropped):
        """A recovering client was refused or left during its connect."""
        self.restoring.discard(dropped.sid)
        self.end(dropped)

    def end(self, dropped, taken=False):
        """The window of ``dropped`` is over, or (``taken``) it recovered on
        another process: it leaves its channels and presence here (quietly
        when taken: it is still there, from the other process)."""
        hub = dropped.hub
        if dropped.subscriptions and hub is not None:
            for channel in dropped.channels:
                if taken:
                    hub.forget_member(channel, dropped)
                else:
                    hub.unsubscribe(channel, dropped)
            dropped.subscriptions = None
        presence = self.engine.presence
        if taken:
            presence.drop_local(dropped.sid)
        else:
            presence.forget(dropped.sid)

    def end_sessions(self, matches):
        """End now the windows of the dropped clients ``matches(dropped)``
        picks (a user disconnected everywhere must not come back by
        recovering): returns how many."""
        ended = [
            (pid, dropped) for pid, dropped in self.dropped.items() if matches(dropped)
        ]
        for pid, dropped in ended:
            del self.dropped[pid]
            if self.stream is not None:
                try:
                    self.stream.drop_record(pid)
                except Exception as error:  # Redis away: the record expires
                    log.warning(
                        "the recoverable session of %s stays in Redis until "
                        "its window ends (%s: %s)",
                        dropped.sid,
                        type(error).__name__,
                        error,
                    )
            self._expire(pid, dropped)
        return len(ended)

    def lingering(self, namespace, room):
        """The sids of dropped clients still in ``namespace`` (or its ``room``)."""
        return [
            dropped.sid
            for dropped in self.dropped.values()
            if dropped.ns_name == namespace and (room is None or room in dropped.rooms)
        ]

    def close(self):
        sweeper = self._sweeper
        if sweeper is not None:
            # between two sweeps (killed in one, redis-py may leave a socket
            # it was connecting unclosed)
            self._stop.set()
            sweeper.join(5)
            sweeper.kill(block=True, timeout=1)
            self._sweeper = None
        dropped, self.dropped = list(self.dropped.values()), {}
        for client in dropped:
            try:
                # across processes, its record stays in Redis for another
                # process to take (this one is stopping: a rolling restart),
                # and it leaves quietly, as when taken; its memberships
                # expire unless it recovers
                self.end(client, taken=self.stream is not None)
            except Exception:  # one failing must not keep the others
                log.exception("ending the recoverable session of %s failed", client.sid)
        self.live.clear()
        if self.stream is not None:
            self.stream.close()

    # -- the window ------------------------------------------------------------

    def _start_sweeping(self):
        self._sweeper = gevent.spawn(self._sweep)

    def _sweep(self):
        try:
            while self.stream is not None or self.dropped or len(self.log):
                if self._stop.wait(SWEEP_SECONDS):
                    return
                now = time.monotonic()
                self.log.trim(now)
                if self.stream is not None:
                    self._trim_stream()
                while self.dropped:
                    pid, dropped = next(iter(self.dropped.items()))
                    if dropped.expires > now:
                        break
                    del self.dropped[pid]
                    self._expire(pid, dropped)
        finally:
            if self._sweeper is gevent.getcurrent():
                self._sweeper = None

    def _trim_stream(self):
        try:
            self.stream.trim()
        except Exception as error:  # Redis away: trimmed next time
            log.debug("connection state recovery: trimming failed: %s", error)

    def _expire(self, pid, dropped):
        try:
            taken = self.stream is not None and self.stream.was_taken(pid)
            self.end(dropped, taken=taken)
        except Exception:  # the hub's or presence's backend failing
            log.exception("ending the recoverable session of %s failed", dropped.sid)


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
