"""python-socketio's and python-engineio's per-packet lines, kept at DEBUG."""

import logging

from .._serving import clientlog
from .._serving.clientlog import printable


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
