"""The pub/sub channels of one app: one backend subscription per channel per
process, fanned out to that process's subscribers, with history and
presence for the channels that declare them.

anypubsub gives each subscriber a backend subscription of its own (a Redis
connection and a blocked reader each) and has no way to end one. The hub keeps
a single subscription per channel however many clients of the process listen,
all of them over one Redis connection (:mod:`tgext.socketio._channels.backends`),
ends it with the channel's last local subscriber, and outlives the backend
going away: the reader that loses Redis backs off and subscribes again.

A channel with options (:mod:`tgext.socketio._channels.options`) carries an
envelope on the backend, so that every process tells publications (with
their history id) from joins and leaves: ``["m", id, message]``,
``["j", member]``, ``["l", member]``. A new subscriber catches up (presence
state, then history, then what arrived meanwhile) before it gets live
traffic.
"""

import json
import logging

import gevent
import gevent.event

from .._serving.session_events import session_events
from .._upstream.redis import disconnect_pool
from ..exceptions import SocketIOExtError
from .backends import channels_for
from .options import ChannelRegistry
from .settings import (  # noqa: F401 (imported from here by older code)
    DEFAULT_BACKEND,
    PREFIX,
    backend_settings,
    create_backend,
)

log = logging.getLogger("tgext.socketio.hub")

#: the event every subscriber receives, spelled as in tgext.socketio 0.0.x
PUBLICATION_EVENT = "pubblication"
#: who is in a channel, sent to a new subscriber of a presence channel
PRESENCE_STATE_EVENT = "presence_state"
#: who joined and who left, sent to every subscriber of a presence channel
PRESENCE_DIFF_EVENT = "presence_diff"
#: what marks a publication delivered from history (its third argument)
HISTORY_MARK = {"history": True}

#: seconds a subscribe waits for the backend to confirm a new channel
SUBSCRIBE_WAIT = 2.0


class PublishError(SocketIOExtError):
    """The pub/sub backend could not take a message (Redis is down, say)."""


class PublicationTooLarge(PublishError):
    """A publication is over ``socketio.max_publication_bytes``."""

    def __init__(self, size, limit):
        super().__init__(
            "a publication of %d bytes is over socketio.max_publication_bytes "
            "(%d)" % (size, limit)
        )
        self.size, self.limit = size, limit


class _Channel:
    """One channel of a hub: its local subscribers, whether the backend has
    confirmed the subscription, its options, the subscribers still
    catching up (with what arrived for them meanwhile), and those that got
    history whose live copies may still be on their way."""

    __slots__ = (
        "name",
        "groups",
        "live",
        "options",
        "catching_up",
        "present",
        "history_sent",
    )

    def __init__(self, name, options):
        self.name = name
        # (engine, namespace) -> {namespace instance: None}: one packet is
        # encoded per group and sent to each of its members
        self.groups = {}
        self.live = gevent.event.Event()
        self.options = options
        self.catching_up = {}  # member -> [envelope, ...] arrived meanwhile
        self.present = {}  # member -> its presence entry, as told at its join
        #: member -> the order of the last history entry it was sent, until
        #: a newer publication arrives: a publication is in the history
        #: before it is published, so one read as history may still come live
        self.history_sent = {}


class PubSubHub:
    """Channels and their local subscribers, over one backend.

    :param backend: an anypubsub ``PubSub`` (see :func:`create_backend`).
    :param max_publication_bytes: the largest publication's JSON, or ``None``.
    """

    #: what counts publications and deliveries (``socketio.metrics``), or None
    metrics = None

    def __init__(self, backend, max_publication_bytes=None):
        self.backend = backend
        self.max_publication_bytes = max_publication_bytes
        #: the channel options every namespace of the app declares
        self.registry = ChannelRegistry()
        self._channels = {}  # channel name -> _Channel
        self._backend_channels = channels_for(self, backend)
        #: with connection state recovery across processes, the stream that
        #: carries every publication instead of the backend's pub/sub (set
        #: by the app's runtime; see :mod:`tgext.socketio._recovery.stream`)
        self.stream = None
        # an entry per channel: rebuilt small after a wave of clients left
        session_events.table(self, "_channels")

    def channel_names(self):
        """The channels with at least one subscriber in this process."""
        return sorted(self._channels)

    def subscribe(self, name, member, who=None):
        """Deliver the messages of channel ``name`` to ``member``.

        ``member`` is a namespace instance; ``who`` its presence entry
        (``{"sid": ..., "user": ..., **what the app adds}``), kept until it
        leaves. Before this returns, the backend
        has confirmed the channel's subscription (or ``SUBSCRIBE_WAIT``
        seconds passed: Redis is away or slow, and the reader subscribes by
        itself later), so a publish made after the client's ``subscribe``
        ack reaches it.

        :returns: whether ``member`` must catch up (:meth:`snapshot`, then
            :meth:`catch_up`): it is new to a channel with history or
            presence, and what arrives for it waits until then.
        """
        channel = self._channel(name)
        key = (member._tgsio.engine, member.ns_name)
        members = channel.groups.setdefault(key, {})
        new = member not in members
        members[member] = None
        options = channel.options
        if new and options is not None:
            channel.catching_up[member] = []
        if not channel.live.is_set() and self._backend_channels.available:
            channel.live.wait(SUBSCRIBE_WAIT)
        if new and options is not None and options.presence and who is not None:
            channel.present[member] = who
            self._tell_presence(name, "j", who)
        return new and options is not None

    def _channel(self, name):
        """Channel ``name``, made (and listened to) if new."""
        channel = self._channels.get(name)
        if channel is None:
            options = self.registry.options_for(name)
            channel = self._channels[name] = _Channel(name, options)
            if self.stream is not None:
                channel.live.set()  # the stream brings every channel's traffic
            else:
                self._backend_channels.listen(name)
        return channel

    def snapshot(self, name, member):
        """What a new subscriber of channel ``name`` is sent when it catches
        up: who is in the channel and its history, read now, before its ack
        (a publication made after the ack is then sent live, not as
        history). ``None`` when ``member`` has nothing to catch up."""
        channel = self._channels.get(name)
        if channel is None or member not in channel.catching_up:
            return None
        options = channel.options
        state = (
            _presence_state(self._presence_members(name)) if options.presence else None
        )
        history = self._history(name, options) if options.history else []
        return state, history

    def catch_up(self, name, member, snapshot):
        """Send a new subscriber its ``snapshot`` (:meth:`snapshot`): who is
        in the channel, then its history, then what arrived meanwhile, in
        order; from then on it gets live traffic."""
        channel = self._channels.get(name)
        if channel is None or member not in channel.catching_up:
            return
        # no greenlet switch from here on: nothing new can come in between
        waiting = channel.catching_up.pop(member, [])
        state, history = snapshot
        if state is not None:
            member._tgsio.engine.send_to_instances(
                [member], member.ns_name, PRESENCE_STATE_EVENT, (state, name)
            )
        last = None
        for entry_id, message in history:
            member._tgsio.engine.send_to_instances(
                [member],
                member.ns_name,
                PUBLICATION_EVENT,
                (message, name, HISTORY_MARK),
            )
            last = entry_id
        for envelope in waiting:
            if envelope[0] == "m" and last is not None and envelope[1] is not None:
                if _id_order(envelope[1]) <= _id_order(last):
                    continue  # it came with the history already
            # to this member only (the others got it live)
            event, args = _event_of(name, envelope)
            member._tgsio.engine.send_to_instances(
                [member], member.ns_name, event, args
            )
        if last is not None:
            channel.history_sent[member] = _id_order(last)
        recovery = member._tgsio.engine.recovery
        if recovery is not None:
            recovery.subscribed(member, name)

    def hand_over(self, name, old, new):
        """Let ``new`` take ``old``'s place in channel ``name``: its
        subscription and presence entry, without a presence diff (a client
        whose transport dropped, and the same client recovered). A catch-up
        under way is not carried over: what it held is in the engine's
        recovery log."""
        channel = self._channels.get(name)
        if channel is None:
            return
        members = channel.groups.get((old._tgsio.engine, old.ns_name))
        if members is None or old not in members:
            return
        del members[old]
        members[new] = None
        channel.catching_up.pop(old, None)
        channel.history_sent.pop(old, None)
        if old in channel.present:
            channel.present[new] = channel.present.pop(old)

    def adopt(self, name, member, who=None):
        """Make ``member`` a subscriber of channel ``name`` at once, with
        its presence entry ``who`` kept (and renewed) here but not told: a
        client recovering here that subscribed on another process, where it
        is still in the channel's presence until that process lets it go
        (:meth:`forget_member`)."""
        channel = self._channel(name)
        channel.groups.setdefault((member._tgsio.engine, member.ns_name), {})[
            member
        ] = None
        options = channel.options
        if who is not None and options is not None and options.presence:
            channel.present[member] = who
            try:
                self._backend_channels.presence_keep(name, who)
            except Exception as error:  # Redis away: the entry expires
                log.debug("pub/sub channel %r: presence not kept: %s", name, error)

    def forget_member(self, name, member):
        """Let ``member`` go from channel ``name`` without telling presence
        (it recovered on another process, which keeps its entry)."""
        channel = self._channels.get(name)
        if channel is None:
            return
        members = channel.groups.get((member._tgsio.engine, member.ns_name))
        if members is not None:
            members.pop(member, None)
            if not members:
                del channel.groups[(member._tgsio.engine, member.ns_name)]
        channel.catching_up.pop(member, None)
        channel.history_sent.pop(member, None)
        who = channel.present.pop(member, None)
        if who is not None:
            self._backend_channels.presence_release(name, who)
        if not channel.groups:
            del self._channels[name]
            if self.stream is None:
                self._backend_channels.unlisten(name)

    def presence_entry(self, name, member):
        """``member``'s presence entry in channel ``name``, or ``None``."""
        channel = self._channels.get(name)
        return None if channel is None else channel.present.get(member)

    def unsubscribe(self, name, member):
        """Stop delivering channel ``name`` to ``member``; the last one ends it."""
        channel = self._channels.get(name)
        if channel is None:
            return
        key = (member._tgsio.engine, member.ns_name)
        members = channel.groups.get(key)
        if members is None or member not in members:
            return
        del members[member]
        if not members:
            del channel.groups[key]
        channel.catching_up.pop(member, None)
        channel.history_sent.pop(member, None)
        who = channel.present.pop(member, None)
        if who is not None:
            self._tell_presence(name, "l", who)
        if not channel.groups:
            del self._channels[name]
            if self.stream is None:
                self._backend_channels.unlisten(name)

    def publish(self, name, message):
        """Send ``message`` (a JSON text) to every subscriber of channel ``name``.

        :raises PublicationTooLarge: past ``max_publication_bytes``.
        :raises PublishError: when the backend cannot take it.
        """
        limit = self.max_publication_bytes
        # json.dumps writes ASCII: characters are bytes
        if limit is not None and len(message) > limit:
            raise PublicationTooLarge(len(message), limit)
        options = self.registry.options_for(name)
        try:
            if options is not None:
                entry_id = (
                    self._backend_channels.append_history(name, message, options)
                    if options.history
                    else None
                )
                message = '["m",%s,%s]' % (json.dumps(entry_id), message)
            self.send_raw(name, message)
        except Exception as error:  # the backend's boundary (Redis away)
            raise PublishError(
                "pub/sub backend refused a message for channel %r: %s: %s"
                % (name, type(error).__name__, error)
            ) from error
        if self.metrics is not None:
            self.metrics.published()

    def send_raw(self, name, raw):
        """Send what channel ``name`` carries (an envelope's JSON) to every
        process: over the recovery stream when there is one, else the
        backend's pub/sub."""
        if self.stream is not None:
            self.stream.add([None, None, name, None, raw])
        else:
            self._backend_channels.publish(name, raw)

    def members(self, name):
        """Who is in channel ``name`` (a presence channel), over every
        process: ``{key: {"user": name or None, "metas": [{"sid": ...}]}}``,
        keyed by user name, or by sid for a client TG knows no user of.

        :raises ValueError: when the channel declares no presence.
        """
        options = self.registry.options_for(name)
        if options is None or not options.presence:
            raise ValueError(
                "channel %r has no presence: declare it in a namespace's "
                'channel_options ({"pattern": {"presence": True}})' % name
            )
        return _presence_state(self._presence_members(name))

    def close(self):
        """Stop listening, and close the backend's connections (redis-py's
        pool, which publishing uses): left to the garbage collector, a socket
        may be finalized before the connection that would have closed it."""
        self._channels = {}
        self._backend_channels.close()
        pool = getattr(self.backend, "connection_pool", None)
        if pool is not None:
            disconnect_pool(pool, "the pub/sub backend's connections")

    # -- what the backend calls -------------------------------------------------

    def confirmed(self, name):
        """The backend is subscribed to channel ``name``."""
        channel = self._channels.get(name)
        if channel is not None:
            channel.live.set()

    def deliver(self, name, raw, offset=None, engine=None):
        """Hand what came on channel ``name`` to its local subscribers.

        From the recovery stream: its ``offset``, and the ``engine`` whose
        subscribers to serve (each engine reads the stream).
        """
        channel = self._channels.get(name)
        if channel is None:
            return  # unsubscribed meanwhile
        envelope = self._envelope(channel, raw)
        if envelope is None:
            return
        catching_up = channel.catching_up
        history_sent = channel.history_sent
        sent_already = _sent_as_history(history_sent, envelope) if history_sent else ()
        for (group_engine, namespace), members in list(channel.groups.items()):
            if engine is not None and group_engine is not engine:
                continue
            if catching_up or sent_already:
                live = [
                    member
                    for member in members
                    if member not in catching_up and member not in sent_already
                ]
                for member in members:
                    waiting = catching_up.get(member)
                    if waiting is not None:
                        waiting.append(envelope)
            else:
                live = list(members)
            self._send_envelope(live, group_engine, namespace, name, envelope, offset)
            if self.metrics is not None:
                self.metrics.delivered(len(live))

    def event_of(self, name, raw):
        """``(event, args)`` a subscriber of channel ``name`` gets for what
        the channel carried (``raw``), or ``None``."""
        envelope = self._envelope(self._channels.get(name), raw, name)
        if envelope is None:
            return None
        return _event_of(name, envelope)

    def _envelope(self, channel, raw, name=None):
        options = (
            channel.options if channel is not None else self.registry.options_for(name)
        )
        try:
            decoded = json.loads(raw)
            envelope = ("m", None, decoded) if options is None else tuple(decoded)
            if envelope[0] not in ("m", "j", "l") or len(envelope) != (
                3 if envelope[0] == "m" else 2
            ):
                raise ValueError("an unknown envelope")
        except (ValueError, TypeError, IndexError) as error:
            log.warning(
                "pub/sub channel %r: dropped a message that is not JSON (%s)",
                name if channel is None else channel.name,
                error,
            )
            return None
        return envelope

    # -- internals ----------------------------------------------------------------

    @staticmethod
    def _send_envelope(members, engine, namespace, name, envelope, offset=None):
        if not members and engine.recovery is None:
            return
        event, args = _event_of(name, envelope)
        engine.send_to_instances(members, namespace, event, args, name, offset)

    def _tell_presence(self, name, kind, who):
        try:
            changed = (
                self._backend_channels.presence_add(name, who)
                if kind == "j"
                else self._backend_channels.presence_remove(name, who)
            )
            if changed:
                self.send_raw(name, json.dumps([kind, who]))
        except Exception as error:  # Redis away: members expire on their own
            log.debug("pub/sub channel %r: presence not told: %s", name, error)

    def _presence_members(self, name):
        try:
            return self._backend_channels.presence_members(name)
        except Exception as error:  # Redis away: an empty state, said once
            log.debug("pub/sub channel %r: presence unknown: %s", name, error)
            return []

    def _history(self, name, options):
        try:
            return self._backend_channels.history(name, options)
        except Exception as error:  # Redis away: no history
            log.debug("pub/sub channel %r: history unavailable: %s", name, error)
            return []


def _event_of(name, envelope):
    """What a subscriber of channel ``name`` gets for ``envelope``:
    ``(event, args)``."""
    if envelope[0] == "m":
        return PUBLICATION_EVENT, (envelope[2], name)
    diff = {"joins": {}, "leaves": {}}
    diff["joins" if envelope[0] == "j" else "leaves"] = _presence_state([envelope[1]])
    return PRESENCE_DIFF_EVENT, (diff, name)


def _presence_state(members):
    """``{key: {"user": ..., "metas": [{"sid": ..., ...}, ...]}}`` of presence
    entries: a meta holds the entry but its user."""
    state = {}
    for who in members:
        user = who.get("user")
        entry = state.setdefault(user or who["sid"], {"user": user, "metas": []})
        entry["metas"].append(
            {key: value for key, value in who.items() if key != "user"}
        )
    return state


def _sent_as_history(history_sent, envelope):
    """The members ``envelope`` (a publication) reached as history already;
    the others, past their last history entry, no longer need checking."""
    if envelope[0] != "m" or envelope[1] is None:
        return ()
    order = _id_order(envelope[1])
    sent = set()
    for member, last in list(history_sent.items()):
        if order <= last:
            sent.add(member)
        else:
            del history_sent[member]
    return sent


def _id_order(entry_id):
    """A history id as something ordered: Redis's ``ms-seq``, or a number."""
    if isinstance(entry_id, str) and "-" in entry_id:
        milliseconds, _dash, sequence = entry_id.partition("-")
        return (int(milliseconds), int(sequence))
    return (int(entry_id), 0)
