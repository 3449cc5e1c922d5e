"""python-socketio's and python-engineio's per-packet lines, kept at DEBUG."""

import logging

from .._serving import clientlog
from .._serving.clientlog import printable

#: how python-engineio ends the first line of each kind of client mistake
#: (an unknown or closed session, a bad transport...), logged at ERROR
#: once, then at INFO (which this adapter makes DEBUG); checked against
#: python-engineio 4.12.2-4.15.1
FIRST_OF_A_KIND = " (further occurrences of this error will be logged with level INFO)"


class PacketTraceLogger(logging.LoggerAdapter):
    """python-socketio and engineio log every packet at INFO; make it DEBUG.

    A TurboGears development.ini sets the root logger to INFO, which would
    otherwise print a line per packet. Warnings and errors pass unchanged.
    """

    def info(self, msg, *args, **kwargs):
        # called for every packet: check the level before anything else
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug(msg, *args, **kwargs)

    def log(self, level, msg, *args, **kwargs):
        if level == logging.ERROR and str(msg).endswith(FIRST_OF_A_KIND):
            # a client's doing (a poll of a session a stopping worker just
            # closed, say), not the server's: a warning, and the rest debug
            level = logging.WARNING
            msg = str(msg)[: -len(FIRST_OF_A_KIND)] + " (more of these at DEBUG level)"
        # their warnings and errors may quote the wire (a session id from
        # the query string): one line each, whatever it holds; and clients
        # cause most of them: within the budget of client-caused lines
        if level >= logging.WARNING and self.logger.isEnabledFor(level):
            if not clientlog.client_lines.allow(printable(str(msg), 40)):
                return
            text = str(msg) % args if args else str(msg)
            self.logger.log(level, "%s", printable(text, 500), **kwargs)
        else:
            super().log(level, msg, *args, **kwargs)
