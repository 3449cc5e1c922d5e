"""What clients can make the server log: a few lines each, never a flood,
never a forged line.

Every warning a client causes (an event to a namespace it did not join, an
error sent to it, a handler failing on its input) goes through the budget of
its connection (:class:`ConnectionLog`): ``LINES_PER_CONNECTION`` lines a
``WINDOW``, the rest counted and told in one line later. Some of them are
offences, which a well-behaved client does not commit more than once in a
while (an event to a namespace it did not join, a namespace that is not
served): past ``OFFENCES_BEFORE_CUT`` in a window its connection is cut.
Then all clients together write at most ``PROCESS_LINES`` lines a window
(:data:`client_lines`), the rest summed up in one line at the window's end.

What comes from the wire (namespace and event names, a channel, a path) is
logged through :func:`printable`: a newline in a namespace name cannot start
a line of its own.
"""

import logging
import time

import gevent

log = logging.getLogger("tgext.socketio.clientlog")

#: seconds of one budget window
WINDOW = 60.0
#: lines one connection may write in a window
LINES_PER_CONNECTION = 5
#: offences of one connection in a window past which it is cut
OFFENCES_BEFORE_CUT = 20
#: lines all clients together may write in a window
PROCESS_LINES = 100


def printable(value, limit=100):
    """``value`` as one line of at most ``limit`` characters: control
    characters (newlines among them) escaped as ``repr`` escapes them."""
    text = value if type(value) is str else repr(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return repr(text)[1:-1]


class BurstLog:
    """Up to ``burst`` lines per ``window`` seconds, written as they come;
    the rest counted by kind and written as one line when the window ends.

    :param summary: the summary line's format, given the count, the window
        and the kinds counted (``"3: event to an unjoined namespace; ..."``).
    """

    def __init__(self, logger, burst, window, summary):
        self._logger = logger
        self.burst = burst
        self.window = window
        self._summary_format = summary
        self._window_start = 0.0
        self._written = 0
        self._held = {}  # kind -> count, for the summary
        self._summary = None

    def allow(self, kind):
        """Whether a line of ``kind`` may be written now (else it is counted)."""
        now = time.monotonic()
        if now - self._window_start >= self.window:
            self._window_start, self._written = now, 0
        if self._written < self.burst:
            self._written += 1
            return True
        self._held[kind] = self._held.get(kind, 0) + 1
        if self._summary is None:
            delay = self._window_start + self.window - now
            self._summary = gevent.spawn_later(delay, self._write_summary)
        return False

    def _write_summary(self):
        held, self._held, self._summary = self._held, {}, None
        if held:
            self._logger.warning(
                self._summary_format,
                sum(held.values()),
                self.window,
                "; ".join("%d: %s" % (count, kind) for kind, count in held.items()),
            )


#: every client-caused line of the process passes this
client_lines = BurstLog(
    log,
    PROCESS_LINES,
    WINDOW,
    "client-caused warnings: %d more in the last %g s, not logged (%s)",
)


class ConnectionLog:
    """One connection's budget of log lines and offences (see the module)."""

    __slots__ = ("_window_start", "_written", "_held", "_offences")

    def __init__(self):
        self._window_start = time.monotonic()
        self._written = 0
        self._held = 0
        self._offences = 0

    def warn(self, logger, who, kind, message, *args, offence=False, exc_info=None):
        """Log ``message % args`` if the budgets allow; whether the
        connection has now committed too many offences (cut it then).

        :param who: the connection, for the line telling what was held back.
        :param kind: a few words saying what happened, for summaries.
        """
        now = time.monotonic()
        if now - self._window_start >= WINDOW:
            if self._held:
                self._write_held(logger, who)
            self._window_start, self._written, self._offences = now, 0, 0
        if offence:
            self._offences += 1
        if self._written < LINES_PER_CONNECTION:
            self._written += 1
            if client_lines.allow(kind):
                logger.warning(message, *args, exc_info=exc_info)
        else:
            self._held += 1
        return self._offences > OFFENCES_BEFORE_CUT

    def close(self, logger, who):
        """The connection ended: tell what was held back, if anything."""
        if self._held:
            self._write_held(logger, who)

    def _write_held(self, logger, who):
        held, self._held = self._held, 0
        if client_lines.allow("lines held back"):
            logger.warning("%d more warnings caused by %s were not logged", held, who)

    @property
    def offences(self):
        """Offences committed in the current window."""
        return self._offences
