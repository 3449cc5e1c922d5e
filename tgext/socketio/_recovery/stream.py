"""Recovery across processes: what a recovering client needs, in Redis.

With ``socketio.message_queue`` on Redis, the events of a recovering engine
travel through one Redis stream (``<channel>:recovery:events``) instead of
the message queue's pub/sub: each process adds what it sends (``XADD``),
and one reader greenlet per engine delivers every entry, in the stream's
order, to this process's clients. An entry's id is its offset, the same in
every process, so a client that comes back to another process says where it
was in terms that process understands; the process reads what it missed
with ``XRANGE``, up to the last entry its reader delivered (what comes after
reaches the client live). Pub/sub has no ids and no order across
publishers; a stream has both, and keeps its entries for the window (``MAXLEN``
on each add, ``MINID`` by time from the sweeper).

A dropped client's state is a JSON record (``<channel>:recovery:session:<pid>``)
with the window as its expiry; a reconnect takes it once (a Lua script:
read, delete, and mark it taken for the process that dropped it).
"""

import logging
import time

import gevent

from .._engine.tagged_json import dumps as _dumps
from .._engine.tagged_json import loads as _loads
from .._upstream import python_socketio
from .._upstream.redis import disconnect_client

log = logging.getLogger("tgext.socketio.recovery")

#: milliseconds a read waits for new entries before looking again
READ_BLOCK_MS = 1000
#: entries read at once
READ_COUNT = 512
#: seconds the reader waits before reading again after losing Redis
RETRY_DELAY = 0.5

#: read a record, delete it, and mark its pid taken (KEYS: record, mark;
#: ARGV: the mark's milliseconds)
_TAKE = """
local record = redis.call('GET', KEYS[1])
if record then
    redis.call('DEL', KEYS[1])
    redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
end
return record
"""

#: delete a stream left empty (KEYS: the stream), so that no key outlives
#: the window
_DROP_EMPTY = """
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('XLEN', KEYS[1]) == 0 then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def id_order(entry_id):
    """A stream entry id (``"ms-seq"``) as something ordered."""
    milliseconds, _dash, sequence = entry_id.partition("-")
    return (int(milliseconds), int(sequence or 0))


def id_text(order):
    return "%d-%d" % order


class RecoveryStream:
    """The events of the processes sharing a Redis message queue, and the
    records of dropped clients.

    :param url: ``socketio.message_queue``.
    :param channel: ``socketio.channel``: every key starts with it.
    :param retention: seconds an entry is kept.
    :param max_events: entries kept at most (about: ``MAXLEN ~``).
    :param deliver: called with each entry read, ``(offset text, offset,
        entry)``, in the stream's order; ``None``: a stream only written to
        (the pub/sub hub's, in a process that may serve no engine).
    """

    #: what learns when Redis fails and is back (``socketio.metrics``), or None
    metrics = None

    def __init__(self, url, channel, retention, max_events, deliver):
        self.key = "%s:recovery:events" % channel
        self._prefix = "%s:recovery:" % channel
        self.retention = retention
        self.max_events = max_events
        self._deliver = deliver
        self._redis = python_socketio.redis_client(
            url, channel, socket_connect_timeout=5
        )
        self._reading = python_socketio.redis_client(
            url,
            channel,
            socket_connect_timeout=5,
            socket_timeout=READ_BLOCK_MS / 1000 + 5,
        )
        self._take = self._redis.register_script(_TAKE)
        self._drop_empty = self._redis.register_script(_DROP_EMPTY)
        #: the id (ordered) of the last entry delivered by this process
        self.head = (0, 0)
        self._failing = False
        self._stopping = False
        self._reader = None
        if deliver is not None:
            newest = self._redis.xrevrange(self.key, count=1)
            if newest:
                self.head = id_order(_text(newest[0][0]))
            self._reader = gevent.spawn(self._read)

    # -- events -------------------------------------------------------------------

    def add(self, entry):
        """Add an event (``[namespace, rooms, channel, skip, data]``, see
        :mod:`.log`) for every process to deliver; return its offset."""
        return _text(
            self._redis.xadd(
                self.key,
                {"e": _dumps(entry)},
                maxlen=self.max_events,
                approximate=True,
            )
        )

    def covers(self, start):
        """Whether every entry after ``start`` (an order) is still kept."""
        if not self._redis.exists(self.key):
            # Nothing is kept, and nothing a client within its window may
            # have missed was deleted: the stream is deleted only once every
            # entry is older than the window (and the time a drop may go
            # unnoticed). A client that had no event sees this.
            return True
        info = self._redis.xinfo_stream(self.key)
        deleted = info.get("max-deleted-entry-id")
        if deleted is not None:
            return id_order(_text(deleted)) <= start
        first = info.get("first-entry")  # Redis before 7.0: the oldest kept
        return not first or id_order(_text(first[0])) <= start

    def since(self, start, until):
        """The entries after ``start`` up to ``until`` (orders), oldest
        first: ``[(order, entry), ...]``."""
        if not start < until:
            return []
        entries = self._redis.xrange(
            self.key, min="(" + id_text(start), max=id_text(until)
        )
        return [
            (id_order(_text(entry_id)), _loads(fields[b"e"]))
            for entry_id, fields in entries
        ]

    def trim(self):
        """Forget the entries older than the retention; a stream left empty
        goes."""
        oldest = int((time.time() - self.retention) * 1000)
        self._redis.xtrim(self.key, minid="%d-0" % oldest, approximate=False)
        self._drop_empty(keys=[self.key])

    def _read(self):
        while not self._stopping:
            try:
                answer = self._reading.xread(
                    {self.key: id_text(self.head)},
                    count=READ_COUNT,
                    block=READ_BLOCK_MS,
                )
                if self._failing:
                    log.warning("connection state recovery: Redis is back")
                    self._failing = False
                    if self.metrics is not None:
                        self.metrics.backend("recovery_stream", True)
            except Exception as error:  # the backend's boundary (Redis away)
                if not self._failing:
                    log.warning(
                        "connection state recovery: reading %s failed: %s: %s; "
                        "retrying",
                        self.key,
                        type(error).__name__,
                        error,
                    )
                    self._failing = True
                    if self.metrics is not None:
                        self.metrics.backend("recovery_stream", False)
                if not self._stopping:
                    gevent.sleep(RETRY_DELAY)
                continue
            for _key, entries in answer or ():
                for entry_id, fields in entries:
                    text = _text(entry_id)
                    self.head = id_order(text)
                    try:
                        self._deliver(text, self.head, _loads(fields[b"e"]))
                    except Exception:  # one bad entry must not stop the reader
                        log.exception("connection state recovery: entry %s", text)

    # -- records of dropped clients ---------------------------------------------

    def put_record(self, pid, record, seconds):
        self._redis.set(
            self._prefix + "session:" + pid, _dumps(record), px=int(seconds * 1000)
        )

    def take_record(self, pid, seconds):
        """The record of ``pid``, taken: no one else gets it."""
        raw = self._take(
            keys=[self._prefix + "session:" + pid, self._prefix + "taken:" + pid],
            args=[int(seconds * 1000) + 60000],
        )
        return None if raw is None else _loads(raw)

    def was_taken(self, pid):
        """Whether the record of ``pid`` was taken (by any process)."""
        return bool(self._redis.delete(self._prefix + "taken:" + pid))

    def drop_record(self, pid):
        self._redis.delete(self._prefix + "session:" + pid)

    def close(self):
        """Stop reading (between two reads: killed in the middle of one,
        redis-py may leave a socket it was connecting unclosed), then close
        the connections."""
        self._stopping = True
        if self._reader is not None:
            self._reader.join(READ_BLOCK_MS / 1000 + 1)
            self._reader.kill(block=True, timeout=1)
        for client, what in ((self._redis, "writes"), (self._reading, "reads")):
            disconnect_client(client, "connection state recovery's Redis " + what)


def _text(value):
    return value.decode() if isinstance(value, bytes) else value
