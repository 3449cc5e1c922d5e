"""The events an engine sent to rooms, namespaces and clients, with their offsets.

Each event gets the next offset, a whole number sent to clients as a string
(the event's last argument). A client that comes back says the last one it
received; what it missed is every entry after that one reaching it (its
namespace, one of its rooms, its own sid, or one of its channels). Entries are
kept ``retention`` seconds and within ``max_events`` and ``max_bytes``; a
client whose offset is older than the oldest entry kept cannot recover.

An entry is a tuple of strings and numbers holding the event encoded, offset
included (``ENTRY_FIELDS``): the garbage collector stops looking at such a
tuple after its first pass, so thousands of them cost a busy server's
collections nothing (a log of objects holding the events' data cost 16-28%
of the round trips, measured with ``bench/recovery.py``), and a replay sends
what was sent.
"""

import collections
import itertools
import time

#: what an entry holds, in order: its offset; its namespace; the rooms it
#: went to (``None``: the whole namespace); the PubSub channel of a
#: publication; the sids it skipped; its encoded parts (a text, then any
#: binary attachments); their bytes; when it was sent (time.monotonic())
ENTRY_FIELDS = (
    "offset",
    "namespace",
    "rooms",
    "channel",
    "skip",
    "parts",
    "size",
    "at",
)
OFFSET, NAMESPACE, ROOMS, CHANNEL, SKIP, PARTS, SIZE, AT = range(len(ENTRY_FIELDS))


def reaches(entry, sid, since, rooms_since, channels_since):
    """Whether ``entry`` went to the client ``sid`` (in the entry's
    namespace), which was in the namespace from offset ``since``, in its
    rooms and channels from the offsets mapped."""
    skip = entry[SKIP]
    if skip and sid in skip:
        return False
    offset = entry[OFFSET]
    channel = entry[CHANNEL]
    if channel is not None:
        joined = channels_since.get(channel)
        return joined is not None and offset > joined
    rooms = entry[ROOMS]
    if rooms is None:
        return offset > since
    for room in rooms:
        joined = since if room == sid else rooms_since.get(room)
        if joined is not None and offset > joined:
            return True
    return False


class EventLog:
    """The events one engine sent, newest last.

    :param retention: seconds an entry is kept.
    :param max_events: entries kept at most.
    :param max_bytes: bytes of encoded events kept at most.
    """

    def __init__(self, retention, max_events, max_bytes):
        self.retention = retention
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._entries = collections.deque()
        self._bytes = 0
        #: the offset of the newest entry (0: none yet)
        self.head = 0

    def __len__(self):
        return len(self._entries)

    @property
    def bytes(self):
        return self._bytes

    @property
    def next_offset(self):
        """The offset the next entry gets."""
        return self.head + 1

    def add(self, offset, namespace, rooms, channel, skip, parts):
        """Keep an event (``offset`` is :attr:`next_offset`) sent as ``parts``."""
        size = 0
        for part in parts:
            size += len(part)
        now = time.monotonic()
        entries = self._entries
        entries.append((offset, namespace, rooms, channel, skip, parts, size, now))
        self.head = offset
        self._bytes += size
        if (
            len(entries) > self.max_events
            or self._bytes > self.max_bytes
            or entries[0][AT] < now - self.retention
        ):
            self.trim(now)

    def trim(self, now=None):
        """Forget the entries past the retention and the bounds."""
        entries = self._entries
        if now is None:
            now = time.monotonic()
        oldest = now - self.retention
        while entries and (
            len(entries) > self.max_events
            or self._bytes > self.max_bytes
            or entries[0][AT] < oldest
        ):
            self._bytes -= entries.popleft()[SIZE]

    def covers(self, offset):
        """Whether every entry after ``offset`` is still kept."""
        if offset > self.head:
            return False
        entries = self._entries
        first = entries[0][OFFSET] if entries else self.head + 1
        return offset >= first - 1

    def since(self, offset):
        """The entries after ``offset`` (which :meth:`covers`), oldest first."""
        entries = self._entries
        if not entries or offset >= self.head:
            return iter(())
        start = max(0, offset + 1 - entries[0][OFFSET])
        return itertools.islice(entries, start, None)
