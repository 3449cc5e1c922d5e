"""How a hub's channels reach the other processes: not at all (memory), or
all of them over one Redis connection read by one greenlet.

anypubsub, the configuration surface, gives each subscriber a Redis
connection and a blocked reader of its own and has no way to add a channel
to a subscription or end one: past the pool's size (100 by default) a
subscription was acknowledged and never delivered. Here a process listens to
every channel it needs on one redis-py ``PubSub``, owned by one reader
greenlet, which adds and drops channels as the hub asks; publishing shares a
small bounded pool. See ``docs/decisions.rst``.
"""

import collections
import itertools
import json
import logging
import time
import uuid

import gevent
from gevent import GreenletExit

from .._config.keys import PUBSUB_CHANNEL_PREFIX
from .._serving.session_events import session_events
from .._upstream.redis import disconnect_pool

log = logging.getLogger("tgext.socketio.hub_backends")

#: seconds a reader waits before subscribing again after losing Redis
RETRY_FIRST_DELAY = 0.2
RETRY_MAX_DELAY = 5.0
#: seconds the reader waits for a message before looking at its work again
READ_TIMEOUT = 1.0
#: channel names per SUBSCRIBE or UNSUBSCRIBE sent
NAMES_PER_COMMAND = 1000
#: messages the reader handles in a row before letting other greenlets run
MESSAGES_PER_TURN = 64
#: channels whose history the memory backend keeps (the least recently
#: published dropped first): clients may name channels
MEMORY_HISTORY_CHANNELS = 10000
#: seconds a presence entry lives in Redis unless its process renews it
PRESENCE_TTL = 30
#: seconds between two renewals (and sweeps of the entries of dead processes)
PRESENCE_HEARTBEAT = 10
#: where history and presence live in Redis (keys, apart from the channels)
HISTORY_KEY_PREFIX = "pubsub-history:"
PRESENCE_KEY_PREFIX = "pubsub-presence:"
#: starts the name of each reader's wake-up channel (never a PubSub channel's:
#: those start with PUBSUB_CHANNEL_PREFIX)
WAKE_CHANNEL_PREFIX = "tgext.socketio.hub:"


class LocalChannels:
    """The memory backend: a publication reaches this process's subscribers,
    delivered by the publisher's own greenlet (anypubsub's memory backend
    queued it per subscriber, and kept an entry for every channel name
    ever published). History and presence live in this process."""

    #: a subscription is confirmed at once
    available = True

    def __init__(self, hub):
        self._hub = hub
        self._history = collections.OrderedDict()  # name -> deque of entries
        self._next_id = itertools.count(1)
        self._present = {}  # name -> {sid: presence entry}

    def listen(self, name):
        self._hub.confirmed(name)

    def unlisten(self, name):
        pass

    def publish(self, name, payload):
        self._hub.deliver(name, payload)

    def append_history(self, name, payload, options):
        entries = self._history.pop(name, None)
        if entries is None or entries.maxlen != options.history:
            entries = collections.deque(entries or (), maxlen=options.history)
        self._history[name] = entries  # the most recently written last
        while len(self._history) > MEMORY_HISTORY_CHANNELS:
            self._history.popitem(last=False)
        entry_id = next(self._next_id)
        entries.append((entry_id, time.monotonic(), payload))
        return entry_id

    def history(self, name, options):
        oldest = time.monotonic() - options.history_seconds
        return [
            (entry_id, json.loads(payload))
            for entry_id, written, payload in self._history.get(name, ())
            if written >= oldest
        ][-options.history :]

    def presence_add(self, name, who):
        members = self._present.setdefault(name, {})
        added = who["sid"] not in members
        members[who["sid"]] = who
        return added

    def presence_remove(self, name, who):
        members = self._present.get(name)
        if members is None or members.pop(who["sid"], None) is None:
            return False
        if not members:
            del self._present[name]
        return True

    def presence_members(self, name):
        return list(self._present.get(name, {}).values())

    def presence_keep(self, name, who):
        self._present.setdefault(name, {})[who["sid"]] = who

    def presence_release(self, name, who):
        members = self._present.get(name)
        if members is not None:
            members.pop(who["sid"], None)
            if not members:
                del self._present[name]

    def close(self):
        self._history.clear()
        self._present.clear()


class RedisChannels:
    """Every channel of a process over one Redis connection.

    The reader greenlet alone uses the connection: it sends SUBSCRIBE and
    UNSUBSCRIBE for what changed in ``listen``/``unlisten`` (in batches),
    reads the messages and hands them to the hub. To have it act at once, a
    caller publishes an empty message on the reader's own wake-up channel
    (through the publishing pool). Losing Redis, the reader backs off
    (0.2 s doubling to 5 s), then subscribes everything again on a new
    connection; a Redis that hangs only keeps it waiting.

    :param backend: anypubsub's Redis backend (its ``connection_pool`` and
        ``publish``).
    """

    #: what learns when Redis fails and is back (``socketio.metrics``), or None
    metrics = None

    def __init__(self, hub, backend):
        import redis

        self._hub = hub
        self._backend = backend
        pool = backend.connection_pool
        self._client = redis.Redis(connection_pool=pool)
        # wake-ups go over one connection of their own, whatever their number
        self._waker = redis.Redis(
            connection_pool=redis.BlockingConnectionPool(
                connection_class=pool.connection_class,
                max_connections=1,
                timeout=5,
                **pool.connection_kwargs,
            )
        )
        self._wake_channel = WAKE_CHANNEL_PREFIX + uuid.uuid4().hex
        self._wanted = set()  # backend channel names the hub listens to
        self._sent = set()  # those SUBSCRIBE was sent for on this connection
        self._pubsub = None
        self._reader = None
        self._wake_pending = False
        self._wakes_asked = 0
        self._waker_job = None
        self._closed = False
        self._present = {}  # name -> {Redis member: presence entry} of this process
        self._keeper = None
        # an entry per channel: rebuilt small after a wave of clients left
        for table in ("_wanted", "_sent", "_present"):
            session_events.table(self, table)
        #: whether the reader has a working connection (waking it makes sense)
        self.connected = False
        #: whether Redis has not failed the reader since it last worked (a
        #: subscribe waits for Redis's confirmation only then)
        self.available = True

    # -- what the hub calls ---------------------------------------------------------

    def listen(self, name):
        self._wanted.add(PUBSUB_CHANNEL_PREFIX + name)
        self._start()
        self._wake()

    def unlisten(self, name):
        self._wanted.discard(PUBSUB_CHANNEL_PREFIX + name)
        self._wake()

    def publish(self, name, payload):
        self._backend.publish(PUBSUB_CHANNEL_PREFIX + name, payload)

    def append_history(self, name, payload, options):
        """Keep ``payload`` in the channel's Redis stream (capped at about
        ``options.history`` entries, gone ``history_seconds`` after the last
        publication); its id."""
        key = HISTORY_KEY_PREFIX + name
        pipeline = self._client.pipeline(transaction=False)
        pipeline.xadd(key, {"m": payload}, maxlen=options.history, approximate=True)
        pipeline.pexpire(key, int(options.history_seconds * 1000))
        entry_id, _expires = pipeline.execute()
        return entry_id.decode() if isinstance(entry_id, bytes) else entry_id

    def history(self, name, options):
        """``[(id, message)]``: the channel's last publications, oldest first."""
        oldest = int((time.time() - options.history_seconds) * 1000)
        entries = self._client.xrevrange(
            HISTORY_KEY_PREFIX + name, max="+", min=str(oldest), count=options.history
        )
        return [
            (_text(entry_id), json.loads(fields[b"m"]))
            for entry_id, fields in reversed(entries)
        ]

    def presence_add(self, name, who):
        member = _presence_member(who)
        self._present.setdefault(name, {})[member] = who
        key = PRESENCE_KEY_PREFIX + name
        pipeline = self._client.pipeline(transaction=False)
        pipeline.zadd(key, {member: time.time() + PRESENCE_TTL})
        pipeline.expire(key, PRESENCE_TTL * 2)
        added, _expires = pipeline.execute()
        if self._keeper is None or self._keeper.dead:
            self._keeper = gevent.spawn(self._keep_presence)
        return added == 1

    def presence_remove(self, name, who):
        member = _presence_member(who)
        members = self._present.get(name)
        if members is not None:
            members.pop(member, None)
            if not members:
                del self._present[name]
        return self._client.zrem(PRESENCE_KEY_PREFIX + name, member) == 1

    def presence_members(self, name):
        entries = self._client.zrangebyscore(
            PRESENCE_KEY_PREFIX + name, time.time(), "+inf"
        )
        return [_presence_entry(entry) for entry in entries]

    def presence_keep(self, name, who):
        """Renew ``who``'s entry in channel ``name`` from this process, as
        if it had joined here (it is in Redis already)."""
        self._present.setdefault(name, {})[_presence_member(who)] = who
        if self._keeper is None or self._keeper.dead:
            self._keeper = gevent.spawn(self._keep_presence)

    def presence_release(self, name, who):
        """Stop renewing ``who``'s entry from this process, leaving it in Redis."""
        members = self._present.get(name)
        if members is not None:
            members.pop(_presence_member(who), None)
            if not members:
                del self._present[name]

    def _keep_presence(self):
        """Renew this process's presence entries every PRESENCE_HEARTBEAT
        seconds, and tell the leaves of entries their process stopped
        renewing (whoever removes an entry tells it, once)."""
        while self._present:
            gevent.sleep(PRESENCE_HEARTBEAT)
            try:
                self._renew_presence()
            except Exception as error:  # Redis away: entries expire, retried
                log.debug("pub/sub: presence not renewed: %s", error)

    def _renew_presence(self):
        now = time.time()
        pipeline = self._client.pipeline(transaction=False)
        names = list(self._present)
        for name in names:
            key = PRESENCE_KEY_PREFIX + name
            pipeline.zadd(
                key, dict.fromkeys(self._present.get(name, ()), now + PRESENCE_TTL)
            )
            pipeline.expire(key, PRESENCE_TTL * 2)
            pipeline.zrangebyscore(key, "-inf", now)
        results = pipeline.execute()
        for name, expired in zip(names, results[2::3]):
            for member in expired:
                if self._client.zrem(PRESENCE_KEY_PREFIX + name, member) == 1:
                    self._hub.send_raw(name, json.dumps(["l", _presence_entry(member)]))

    def close(self):
        """End the reader and close its connection; a later ``listen`` starts anew."""
        self._closed = True
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.kill(block=True, timeout=1)
        self._present = {}
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.kill(block=True, timeout=1)
        waker, self._waker_job = self._waker_job, None
        if waker is not None:
            waker.join(timeout=1)  # between two Redis calls, not inside one
            waker.kill(block=True, timeout=1)
        self._reset()
        self._wanted.clear()
        disconnect_pool(self._waker.connection_pool, "the pub/sub reader's waker")
        self._closed = False

    # -- the reader ---------------------------------------------------------------

    def _start(self):
        if self._reader is None or self._reader.dead:
            self._reader = gevent.spawn(self._read)

    def _wake(self):
        """Have the reader look at its work now, not at its next timeout.

        One greenlet sends the wake-ups, one after the other (the caller
        does not wait for Redis); asked again while it sends, it sends once
        more.
        """
        if self._reader is None or not self.connected:
            return  # a starting reader looks at its work first anyway
        self._wake_pending = True
        self._wakes_asked += 1
        if self._waker_job is None or self._waker_job.dead:
            self._waker_job = gevent.spawn(self._send_wakes)

    def _send_wakes(self):
        while not self._closed:
            asked = self._wakes_asked
            try:
                self._waker.publish(self._wake_channel, b"")
            except Exception as error:  # Redis away: the reader finds out too
                log.debug("waking the pub/sub reader failed: %s", error)
                return
            if self._wakes_asked == asked:
                return

    def _read(self):
        delay = RETRY_FIRST_DELAY
        lost = False
        try:
            # until nothing is wanted nor subscribed: no connection is held
            # then, and the next listen starts another reader
            while not self._closed and (self._wanted or self._sent):
                try:
                    self._turn()
                    self.available = True
                    if lost:
                        if self.metrics is not None:
                            self.metrics.backend("pubsub", True)
                        log.warning(
                            "pub/sub: subscribed again to %d channels", len(self._sent)
                        )
                        lost, delay = False, RETRY_FIRST_DELAY
                except GreenletExit:
                    raise
                except Exception as error:  # the backend's boundary (Redis away)
                    # one line when Redis goes, one when it is back
                    (log.debug if lost else log.warning)(
                        "pub/sub: lost Redis (%s: %s); subscribing again every "
                        "%.1fs at most",
                        type(error).__name__,
                        error,
                        RETRY_MAX_DELAY,
                    )
                    if not lost and self.metrics is not None:
                        self.metrics.backend("pubsub", False)
                    lost = True
                    self.available = False
                    self._reset()
                    gevent.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_DELAY)
        finally:
            self._reset()
            if self._reader is gevent.getcurrent():
                self._reader = None
                if self._wanted and not self._closed:
                    self._start()  # wanted again while this one was ending

    def _turn(self):
        """Send what changed, then hand over what came (or wait for it)."""
        if self._pubsub is None:
            self._pubsub = self._client.pubsub()
            self._pubsub.subscribe(self._wake_channel)  # connects
        self._wake_pending = False
        wanted, sent = self._wanted, self._sent
        for batch in _batches(sent - wanted):
            self._pubsub.unsubscribe(*batch)
            sent.difference_update(batch)
        for batch in _batches(wanted - sent):
            self._pubsub.subscribe(*batch)
            sent.update(batch)
        message = self._pubsub.get_message(timeout=READ_TIMEOUT)
        self.connected = True
        handled = 0
        while message is not None:
            self._handle(message)
            handled += 1
            if handled % MESSAGES_PER_TURN == 0:
                gevent.sleep(0)  # a burst (10,000 confirmations) shares the loop
            if self._wake_pending:
                return  # new work came meanwhile: send it first
            message = self._pubsub.get_message(timeout=0)

    def _handle(self, message):
        kind = message["type"]
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode("utf-8", "replace")
        if not channel.startswith(PUBSUB_CHANNEL_PREFIX):
            return  # the wake-up channel's
        name = channel[len(PUBSUB_CHANNEL_PREFIX) :]
        if kind == "message":
            self._hub.deliver(name, message["data"])
        elif kind == "subscribe":
            self._hub.confirmed(name)

    def _reset(self):
        """Close the connection; everything is subscribed again on the next."""
        self.connected = False
        self._sent = set()
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception as error:  # a connection already lost
                log.debug("closing the pub/sub connection failed: %s", error)


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _presence_member(who):
    """A presence entry as a member of the channel's Redis sorted set."""
    return json.dumps(who, sort_keys=True)


def _presence_entry(member):
    return json.loads(member)


def _batches(names):
    names = list(names)
    for start in range(0, len(names), NAMES_PER_COMMAND):
        yield names[start : start + NAMES_PER_COMMAND]


def channels_for(hub, backend):
    """The channels object of ``backend`` (an anypubsub backend)."""
    if getattr(backend, "connection_pool", None) is not None:
        return RedisChannels(hub, backend)
    return LocalChannels(hub)
