"""Who is in a namespace or a room, over every process sharing the message queue.

python-socketio's client manager knows the clients of its own process only.
With ``socketio.message_queue`` on Redis, each engine also keeps its clients'
memberships in Redis: one sorted set per namespace and room, each member
scored with the time it expires. Joins and leaves go to Redis in batches from
one greenlet; every ``HEARTBEAT`` seconds the engine renews its members, so a
process that dies without a word drops out after ``TTL`` seconds. A client
that vanishes without a disconnect leaves when the engine notices (its ping
timeout), like any other client.
"""

import logging
import time

import gevent
from gevent.event import Event

from ._engine.client_manager import is_redis_url
from ._upstream import python_socketio
from ._upstream.redis import disconnect_client

log = logging.getLogger(__name__)

#: seconds a membership lives in Redis unless its process renews it
TTL = 30
#: seconds between two renewals
HEARTBEAT = 10


class LocalPresence:
    """Presence in one process: python-socketio's manager already knows it."""

    #: with connection state recovery, ``(namespace, room) -> sids`` of the
    #: clients dropped within their window, still counted
    lingering = None

    def __init__(self, manager):
        self._manager = manager

    def add(self, namespace, room, sid):
        pass

    def remove(self, namespace, room, sid):
        pass

    def forget(self, sid):
        pass

    def drop_local(self, sid):
        pass

    def participants(self, namespace, room=None):
        connecting = self._manager.connecting  # not accepted (yet)
        sids = {
            sid
            for sid, _eio_sid in self._manager.get_participants(namespace, room)
            if sid not in connecting
        }
        if self.lingering is not None:
            sids.update(self.lingering(namespace, room))
        return sorted(sids)

    def close(self):
        pass


class RedisPresence:
    """Presence over every process sharing a Redis message queue.

    :param url: the Redis URL of ``socketio.message_queue`` (any that
        python-socketio's ``RedisManager`` takes).
    :param channel: ``socketio.channel``, which prefixes every key.
    """

    #: what learns when Redis fails and is back (``socketio.metrics``), or None
    metrics = None

    #: not needed here: a dropped client's memberships stay (and are
    #: renewed) until the engine forgets it, when its window is over
    lingering = None

    def __init__(self, url, channel):
        self._redis = python_socketio.redis_client(
            url, channel, socket_connect_timeout=5
        )
        self._prefix = "%s:presence:" % channel
        self._memberships = {}  # key -> set of sids of this process
        self._rooms_of = {}  # sid -> set of keys
        self._pending = []  # ("add" | "remove", key, sid), in order
        self._wake = Event()
        self._stopped = Event()
        self._failing = False
        self._worker = gevent.spawn(self._run)

    def key(self, namespace, room=None):
        return "%s%s:%s" % (self._prefix, namespace, "" if room is None else room)

    def add(self, namespace, room, sid):
        key = self.key(namespace, room)
        self._memberships.setdefault(key, set()).add(sid)
        self._rooms_of.setdefault(sid, set()).add(key)
        self._queue("add", key, sid)

    def remove(self, namespace, room, sid):
        key = self.key(namespace, room)
        self._drop_local(key, sid)
        keys = self._rooms_of.get(sid)
        if keys is not None:
            keys.discard(key)
        self._queue("remove", key, sid)

    def forget(self, sid):
        """``sid`` has left: take it out of every room it was in."""
        for key in self._rooms_of.pop(sid, ()):
            self._drop_local(key, sid)
            self._queue("remove", key, sid)

    def drop_local(self, sid):
        """Stop renewing ``sid``'s memberships from this process, leaving them
        in Redis: it recovered its connection on another process."""
        for key in self._rooms_of.pop(sid, ()):
            self._drop_local(key, sid)

    def participants(self, namespace, room=None):
        """The sids in ``namespace`` (or its ``room``), over every process."""
        self._flush()
        members = self._redis.zrangebyscore(
            self.key(namespace, room), time.time(), "+inf"
        )
        return sorted(member.decode() for member in members)

    def close(self):
        """Take this process's members out of Redis and stop renewing them."""
        self._stop_renewing()
        pending = [
            ("remove", key, sid)
            for key, sids in self._memberships.items()
            for sid in sids
        ]
        self._memberships.clear()
        self._rooms_of.clear()
        self._pending = pending
        try:
            self._flush()
        except Exception as error:  # Redis away: the members expire anyway
            log.debug("presence: could not remove members at close: %s", error)
        self._redis.close()
        disconnect_client(self._redis, "presence's Redis connections")

    def _stop_renewing(self, timeout=1):
        """End the renewing greenlet between two Redis operations.

        Killed in the middle of one, redis-py (5.0) leaves a socket it was
        connecting unclosed, for the garbage collector to find. It is killed
        only if the operation it is in outlasts ``timeout`` seconds.
        """
        self._stopped.set()
        self._wake.set()
        self._worker.join(timeout)
        self._worker.kill(timeout=1)

    def _drop_local(self, key, sid):
        sids = self._memberships.get(key)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del self._memberships[key]

    def _queue(self, operation, key, sid):
        self._pending.append((operation, key, sid))
        self._wake.set()

    def _flush(self):
        pending, self._pending = self._pending, []
        if not pending:
            return
        expires = time.time() + TTL
        pipeline = self._redis.pipeline(transaction=False)
        for operation, key, sid in pending:
            if operation == "add":
                pipeline.zadd(key, {sid: expires})
            else:
                pipeline.zrem(key, sid)
        pipeline.execute()

    def _renew(self):
        now = time.time()
        pipeline = self._redis.pipeline(transaction=False)
        for key, sids in self._memberships.items():
            pipeline.zadd(key, dict.fromkeys(sids, now + TTL))
            pipeline.zremrangebyscore(key, "-inf", now)  # members of dead processes
            pipeline.expire(key, TTL * 2)
        pipeline.execute()

    def _run(self):
        next_renewal = time.monotonic() + HEARTBEAT
        stopped = self._stopped
        while not stopped.is_set():
            self._wake.wait(timeout=max(0, next_renewal - time.monotonic()))
            self._wake.clear()
            if stopped.is_set():
                return
            try:
                self._flush()
                if time.monotonic() >= next_renewal:
                    next_renewal = time.monotonic() + HEARTBEAT
                    self._renew()
                if self._failing:
                    log.warning("presence: Redis is back")
                    self._failing = False
                    if self.metrics is not None:
                        self.metrics.backend("message_queue", True)
            except Exception as error:  # the backend's boundary (Redis away)
                if not self._failing:
                    log.warning("presence: Redis unavailable (%s); retrying", error)
                    self._failing = True
                    if self.metrics is not None:
                        self.metrics.backend("message_queue", False)
                stopped.wait(timeout=1)


def presence_for(manager, options):
    """Presence over the message queue when it is Redis, else this process's."""
    url = options["message_queue"]
    if url is not None and is_redis_url(url):
        return RedisPresence(url, options["channel"])
    return LocalPresence(manager)


def participants(namespace="/", room=None):
    """The sids of the clients in ``namespace`` (or its ``room``), over every
    process sharing ``socketio.message_queue``.

    Call it where TG's context is active (a controller action, a spawned
    job); in a namespace, ``self.participants(room)`` does the same.

    :raises RuntimeError: when no ``SocketIOController`` of the app serves
        ``namespace``.
    """
    from ._config.keys import RUNTIME_KEY
    from ._upstream.tg import current_app_config

    app_config = current_app_config()
    runtime = app_config.get(RUNTIME_KEY) if app_config is not None else None
    for engine in runtime.engines if runtime is not None else ():
        if namespace in engine.namespace_classes:
            return engine.presence.participants(namespace, room)
    raise RuntimeError(
        "participants(%r) found no SocketIOController serving that namespace "
        "in the current app; call it while serving a request of the app" % namespace
    )
