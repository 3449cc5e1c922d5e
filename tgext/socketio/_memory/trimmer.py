"""Give memory back to the system after clients leave.

What a thousand connections used (greenlet stacks, buffers, tables) goes
back to glibc's heap when they end, but glibc keeps free memory inside the
heap: the process's RSS stayed some 200 MB above its start after 3,000
clients came and went. ``malloc_trim(0)`` returns those free pages to the
system. Asked for whenever a session closes, it runs ``TRIM_DELAY`` seconds
after the last close of a wave (when the greenlets of the leaving clients
have ended) and once more ``TRIM_INTERVAL`` seconds after that; while
sessions keep closing, every ``TRIM_INTERVAL`` at most. It is a no-op where
the C library has no such call (musl, macOS).

CPython's small objects live in 1 MiB arenas, and an arena goes back to the
system only when its last object goes; a wave of 3,000 clients took some 75
arenas, and a few objects left in each kept them all (RSS 2.4 times its
start a minute after the clients left). So before trimming:

* the interpreter's free lists (of tuples, lists, dicts, floats: several
  hundred spare objects scattered over those arenas) are emptied, by a
  full collection of an empty heap: every object is frozen out of the
  collector's sight first (a full collection of the real heap takes 100 ms
  per 1,000 open connections; this one 0.1 ms); cyclic garbage is left to
  the collector's own runs;
* CPython's attribute lookup cache is emptied: it holds the name of each of
  its last 4,096 lookups, and a name built per request (TurboGears dispatch
  looks up each path segment, a new string every time) is a new object
  each time;
* the tables that held every connection (sessions by id, handlers, worker
  greenlets: registered with :meth:`MemoryTrimmer.watch_table`) are rebuilt
  at their present size: a dict or set keeps the table of its largest size
  when entries go (100-500 KiB each after 3,000 clients).

Even so, the few long-lived objects made while a wave leaves (a counter, a
timestamp) kept some ten arenas (1.17 times the start a minute after 3,000
clients left). So once more than ``socketio.malloc_above`` sessions are
open, new objects come from the C library's ``malloc``
(:mod:`tgext.socketio._memory.allocator`), which trimming gives back a page at a
time; CPython's allocator takes over again at the second trim of a wave
that finds no more than ``malloc_above`` sessions open (``TRIM_INTERVAL``
after the first, when what the leaving clients held is freed). Where the C
library cannot trim, nothing is switched.
"""

import ctypes
import ctypes.util
import gc
import logging
import sys
import time
import weakref

import gevent

from .._serving.session_events import session_events
from .allocator import AllocatorSwitch

log = logging.getLogger("tgext.socketio.memory")

#: seconds between two trims at most
TRIM_INTERVAL = 10
#: seconds to wait after a session closes: the dispatcher's idle workers end
#: 5 s after their last event
TRIM_DELAY = 6


#: empties CPython's attribute lookup cache (renamed in 3.13)
_clear_lookup_cache = getattr(sys, "_clear_internal_caches", None) or getattr(
    sys, "_clear_type_cache", lambda: None
)


def _clear_free_lists():
    """What a full collection clears last, without its walk of the heap.

    Not where the application freezes objects itself (before forking
    workers, say): unfreezing would hand them back to the collector.
    """
    if gc.get_freeze_count():
        return
    gc.freeze()
    try:
        gc.collect()
    finally:
        gc.unfreeze()


def _shrink(table):
    """Rebuild a dict or set in place if a copy of it is smaller.

    In place, so every reference to it stays good; nothing here runs Python
    code (no switch to another greenlet between clear and update), but an
    iterator over the table would lose its place: only tables nobody
    iterates across a switch are watched.
    """
    if type(table) not in (dict, set):
        return
    copy = type(table)(table)
    if sys.getsizeof(copy) < sys.getsizeof(table):
        table.clear()
        table.update(copy)


def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


class MemoryTrimmer:
    """Trims a little after sessions close, not too often."""

    def __init__(self):
        self._trim = _malloc_trim()
        self._pending = None
        self._closed_since = 0  # sessions closed since the last trim
        self._last_close = 0.0
        self._tables = []  # (weakref to owner, attribute name)
        self._open = weakref.WeakSet()  # the sessions of every engine
        self.watch_table(self._open, "data")
        self.allocator = AllocatorSwitch()

    @property
    def malloc_above(self):
        """``socketio.malloc_above``: open sessions past which new objects
        come from malloc (``None``: never), as the last engine made announced it."""
        return session_events.malloc_above

    @malloc_above.setter
    def malloc_above(self, sessions):
        session_events.malloc_above = sessions

    def watch_table(self, owner, name):
        """Shrink ``owner.<name>`` (a dict or set that holds an entry per
        connection) at each trim, for as long as ``owner`` lives."""
        self._tables = [(ref, attr) for ref, attr in self._tables if ref() is not None]
        self._tables.append((weakref.ref(owner), name))

    def session_opened(self, session):
        open_sessions = self._open
        open_sessions.add(session)
        above = self.malloc_above
        if (
            above is not None
            and len(open_sessions) > above
            and self._trim is not None
            and not self.allocator.using_malloc
            and self.allocator.use_malloc()
        ):
            log.info(
                "%d sessions open (socketio.malloc_above = %d): new objects "
                "come from malloc until they leave",
                len(open_sessions),
                above,
            )

    def session_closed(self, session):
        self._open.discard(session)
        if self._trim is None:
            return
        self._closed_since += 1
        self._last_close = time.monotonic()
        if self._pending is None:
            self._pending = gevent.spawn(self._run)

    def _run(self):
        try:
            while self._closed_since:
                # TRIM_DELAY after the last close of a wave (its greenlets
                # have ended by then), or TRIM_INTERVAL after its first
                # while sessions keep closing
                batch_started = time.monotonic()
                while True:
                    now = time.monotonic()
                    due = min(
                        self._last_close + TRIM_DELAY, batch_started + TRIM_INTERVAL
                    )
                    if now >= due:
                        break
                    gevent.sleep(due - now)
                closed, self._closed_since = self._closed_since, 0
                self._trim_now(closed)
                # once more: not all the leaving clients held is freed by then
                gevent.sleep(TRIM_INTERVAL)
                self._trim_now(0)
        finally:
            self._pending = None

    def _trim_now(self, closed):
        started = time.monotonic()
        for owner, name in self._tables:
            owner = owner()
            if owner is not None:
                _shrink(getattr(owner, name, None))
        _clear_free_lists()
        _clear_lookup_cache()
        try:
            self._trim(0)
        except Exception as error:  # never worth failing for
            log.debug("malloc_trim failed: %s", error)
        if not closed and self.allocator.using_malloc:
            self._back_to_pymalloc()
        log.debug(
            "%d sessions closed: memory trimmed in %.1f ms",
            closed,
            1000 * (time.monotonic() - started),
        )

    def _back_to_pymalloc(self):
        """At a wave's second trim (what it left is trimmed), if no more than
        ``malloc_above`` sessions are open: sessions may still come and go."""
        above = self.malloc_above
        if above is None or len(self._open) <= above:
            if self.allocator.use_pymalloc():
                log.info(
                    "%d sessions open: new objects come from pymalloc", len(self._open)
                )


trimmer = MemoryTrimmer()
