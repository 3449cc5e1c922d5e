"""Engine.IO sessions that refuse bad input at once and bound what they hold.

python-engineio's ``Socket`` is one client's session over long-polling or
WebSocket. Against a buggy or hostile client it falls short in ways that
reach every other client:

* an undecodable long-polling body is logged with a traceback and answered
  ``200 OK`` (its packets silently dropped);
* an undecodable WebSocket message (the frame ``x``, say) escapes its read
  loop: the session stays registered until the ping timeout;
* a client that sends faster than its events are handled is read without
  pause, holding the loop, and a client that does not read has every packet
  for it queued without limit.

:class:`GuardedSocket` answers each of these with one log line
(:class:`RejectionLog`), a ``400`` for long-polling or a close frame for
WebSocket, and the end of that session only. The engine makes every session
of its Engine.IO server one of these (``_TrackedEngineIOServer``).
"""

import logging
import socket
import struct
import time

import gevent
import gevent.queue
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet

from .._upstream import python_engineio
from .clientlog import BurstLog, printable
from .session_events import session_events
from .websocket import (
    MESSAGE_TOO_BIG,
    FrameWriter,
    InvalidMessage,
    SocketReader,
    encode_frame,
)

log = logging.getLogger("tgext.socketio.transport")

#: seconds to spend sending a refused client its close frame
CLOSE_FRAME_SECONDS = 1
#: seconds to spend, after it, reading what the client still sends
DRAIN_SECONDS = 1

#: messages a WebSocket reader takes in a row before letting other greenlets run
MESSAGES_PER_TURN = 8

#: what the first character of a client's Engine.IO text packet may be:
#: close, ping, pong, upgrade, noop (message, "4", is checked apart)
_CONTROL_PACKET_TYPES = frozenset("12356")
#: what may follow "4": a Socket.IO packet type
_SOCKETIO_PACKET_TYPES = frozenset("0123456")


class RejectedInput(eio_exceptions.EngineIOError):
    """A session's input was refused: python-engineio ends it, answering 400."""


class RejectionLog:
    """One log line per refused input, then a summary when they pour in.

    Up to ``burst`` lines per ``window`` seconds are written as they come;
    the rest are counted, and written as one line when the window ends.
    """

    def __init__(self, logger, burst=20, window=60.0):
        self._logger = logger
        self._lines = BurstLog(
            logger,
            burst,
            window,
            "refused input from clients: %d more in the last %g s (%s)",
        )

    def report(self, sid, reason):
        reason = printable(reason, 200)
        if self._lines.allow(reason.split(" (", 1)[0]):
            self._logger.warning(
                "refused input from %s: %s; session closed", sid, reason
            )


rejections = RejectionLog(log)


class GuardedSocket(python_engineio.Session):
    """python-engineio's session, refusing bad input and bounding its queue.

    The engine's server sets ``max_queued_packets`` and ``max_queued_bytes``
    on itself; past either, a client that does not read (fast enough) is
    disconnected. On WebSocket, what the session
    sends is written by the sender (:class:`~.websocket.FrameWriter`), not by
    a greenlet per session. Closed, the session lets go of its memory at once
    and says so (:mod:`tgext.socketio._serving.session_events`).
    """

    #: why this session's input was refused (``None`` while it was not)
    rejected = None
    #: the gevent-websocket connection, once on WebSocket
    _websocket = None
    #: what writes to it
    _frames = None
    #: whether packets go to ``_frames`` (from the end of the upgrade on)
    #: rather than to the queue long-polling reads
    _sends_frames = False

    #: the timer of the next ping
    _ping_timer = None
    #: what counts the session against its client's address (set at connect)
    ticket = None
    #: whether the server's metrics count it among the sessions open
    _tgsio_metered = False

    def schedule_ping(self):
        """Send a ping ``ping_interval`` from now.

        python-engineio starts a greenlet per session to sleep until then: a
        sleeping greenlet keeps its saved stack and its Python frames (idle
        connections took 60.2 KiB each with it, 50.9 without: ``bench/run.py``)
        and sleeps on after the session closes, keeping the session alive. A timer of the event
        loop costs a few hundred bytes and is stopped at close.
        """
        # called at connect, then at each pong; a pong nobody asked for
        # while the next ping is pending changes nothing (python-engineio's
        # own guard, "if self.last_ping", fails at connect on 4.11, where
        # last_ping starts as None)
        self.last_ping = None
        if self._ping_timer is None and not self.closed:
            timer = gevent.get_hub().loop.timer(self.server.ping_interval)
            timer.start(self._ping_due)
            self._ping_timer = timer

    def _ping_due(self):
        # in the event loop, where nothing may block: sending may cut a
        # client that does not read, which writes to its socket
        self._ping_timer = None
        gevent.spawn(self._send_ping_now)

    def _send_ping_now(self):
        if not self.closing and not self.closed:
            self.last_ping = time.time()
            self.send(eio_packet.Packet(eio_packet.PING))

    def close(self, wait=True, abort=False, reason=None):
        sends_frames = self._sends_frames
        # on WebSocket the queue has no reader to wait for: the CLOSE packet
        # is written (or waits in the FrameWriter) before close() returns
        super().close(wait=wait and not sends_frames, abort=abort, reason=reason)
        if self.closed:
            websocket = self._websocket
            if sends_frames and not websocket.closed:
                websocket.close()  # a close frame after what was written
            timer, self._ping_timer = self._ping_timer, None
            if timer is not None:
                timer.close()
            ticket, self.ticket = self.ticket, None
            if ticket is not None:
                ticket.close()
            if self._tgsio_metered:
                self._tgsio_metered = False
                self.server.metrics.session_closed(sends_frames)
            session_events.closed(self)

    def reject(self, reason, code=1008):
        """Refuse this session's input: log ``reason``, end the session.

        On WebSocket the client gets a close frame with ``code`` (1008, policy
        violation, by default; ``None`` for none) and the connection is cut
        at once, not when the client answers the close.
        """
        if self.rejected is not None:
            return
        self.rejected = reason
        rejections.report(self.sid, reason)
        if self.server.metrics is not None:
            self.server.metrics.refuse_session(reason)
        websocket = self._websocket
        if websocket is not None:
            _cut(websocket, code, self._frames)
        if not self.closed:
            self.close(
                wait=False, abort=True, reason=self.server.reason.CLIENT_DISCONNECT
            )
        # gone from the server now: a long-poll request that comes later
        # gets "Invalid session" rather than a closed session's queue
        if self.server.sockets.get(self.sid) is self:
            del self.server.sockets[self.sid]

    #: bytes of the packets waiting in the long-polling queue
    _queued_bytes = 0

    def send(self, pkt):
        if self._sends_frames:
            # A packet sent to many clients (a broadcast, a publication) is
            # framed once: every client that waits for it holds the same frame.
            frame = pkt.__dict__.get(_FRAME)
            if frame is None:
                frame = pkt.__dict__[_FRAME] = encode_frame(pkt.encode())
            self._write(frame, pkt.packet_type, pkt.data)
            return
        super().send(pkt)
        self._queued_bytes += _packet_size(pkt)
        self._bound_backlog(self.queue.qsize(), self._queued_bytes)

    def send_message(self, text):
        """Send the Engine.IO MESSAGE ``text``, as ``send`` would send its packet."""
        if self._sends_frames:
            self._write(encode_frame("4" + text), eio_packet.MESSAGE, text)
        else:
            self.send(eio_packet.Packet(eio_packet.MESSAGE, data=text))

    def poll(self):
        packets = super().poll()
        if self._queued_bytes:
            self._queued_bytes = max(
                0, self._queued_bytes - sum(_packet_size(pkt) for pkt in packets)
            )
        return packets

    def _write(self, frame, packet_type, data):
        if not self.check_ping_timeout():
            return
        frames = self._frames
        backlog = frames.write(frame)
        logger = self.server.logger
        if logger.isEnabledFor(logging.DEBUG):  # python-engineio's line, at DEBUG
            logger.info(
                "%s: Sending packet %s data %s",
                self.sid,
                eio_packet.packet_names[packet_type],
                "<binary>" if isinstance(data, bytes) else data,
            )
        if backlog:
            self._bound_backlog(backlog, frames.pending_bytes)

    def _bound_backlog(self, backlog, backlog_bytes):
        if self.rejected is not None:
            return
        server = self.server
        if server.metrics is not None:
            server.metrics.queued(backlog, backlog_bytes)
        for waiting, limit, what in (
            (backlog, server.max_queued_packets, "packets"),
            (backlog_bytes, server.max_queued_bytes, "bytes"),
        ):
            if limit is not None and waiting > limit:
                self.reject(
                    "more than %d %s waiting to be sent (it does not read, or "
                    "too slowly; socketio.max_queued_%s)" % (limit, what, what),
                    code=None,
                )
                return

    def handle_post_request(self, environ):
        try:
            super().handle_post_request(environ)
        except eio_exceptions.ContentTooLongError:
            self.reject(
                "a long-polling body of %s bytes (socketio.max_http_buffer_size "
                "is %d)"
                % (environ.get("CONTENT_LENGTH"), self.server.max_http_buffer_size)
            )
            raise
        except eio_exceptions.EngineIOError:
            raise
        except (ValueError, TypeError, LookupError, RecursionError) as error:
            # undecodable UTF-8 or packet, too many packets in one body
            self.reject("an undecodable long-polling body (%s: %s)" % _describe(error))
            raise RejectedInput() from None
        except OSError as error:
            # the body was cut short (the client went away) or stalled past
            # the server's header_timeout: python-engineio would log a
            # traceback and answer 200
            self.reject("a long-polling body cut short (%s: %s)" % _describe(error))
            raise RejectedInput() from None
        if self.rejected is not None:
            raise RejectedInput()  # a packet in it was refused: 400, not 200

    def upgrade_websocket(self, environ, start_response):
        if self.upgraded:
            raise OSError("Socket has been upgraded already")
        return _GuardedWebSocketWSGI(self)(environ, start_response)

    def receive_socketio_text(self, data):
        """What ``receive`` does with a text MESSAGE (``wait`` let through only
        those holding a Socket.IO packet), without decoding a packet first."""
        server = self.server
        server.logger.info("%s: Received packet MESSAGE data %s", self.sid, data)
        try:
            server.handlers["message"](self.sid, data)
        except Exception:  # the boundary python-engineio keeps around handlers
            server.logger.exception("message handler error")

    def websocket_upgraded(self):
        """Write what waits in the queue; later packets are written as sent."""
        queue, frames = self.queue, self._frames
        while queue.qsize():
            pkt = queue.get(block=False)
            queue.task_done()
            if pkt is None:  # closed meanwhile: what was queued before is out
                break
            frames.write(encode_frame(pkt.encode()))
        self._queued_bytes = 0
        self._sends_frames = True
        if self._tgsio_metered:
            self.server.metrics.session_upgraded()
        # python-engineio's, unused from now on: the long-poll pending at the
        # upgrade took the NOOP put for it, and later ones get a NOOP
        # without polling (handle_get_request, once upgraded)
        self.queue = _NO_QUEUE
        if self.closed and not self._websocket.closed:
            self._websocket.close()


class _NoQueue:
    """The queue of a session that writes its packets as they are sent.

    python-engineio's (a gevent ``JoinableQueue``, 2.5 KiB a session) only
    carries packets to long-polling GETs; on WebSocket nothing reads it
    once the upgrade ended, and ``close()`` only puts its end marker in it.
    """

    __slots__ = ()

    def put(self, item, *args, **kwargs):
        pass

    def get(self, *args, **kwargs):
        raise gevent.queue.Empty()

    def qsize(self):
        return 0

    def task_done(self):
        pass

    def join(self, timeout=None):
        return True


_NO_QUEUE = _NoQueue()


class _GuardedWebSocketWSGI(python_engineio.WebSocketApp):
    """python-engineio's gevent-websocket adapter, checking what it reads.

    Engine.IO text packets that python-engineio could not decode end the
    session here (upstream, the decode error escaped its read loop and left
    the session registered). After ``MESSAGES_PER_TURN`` messages in a row the
    reader yields, so a client sending without pause shares the loop.
    """

    #: the size limit, checked here once a message is read, where the
    #: server is not ours and reads messages without it (our frame reader
    #: refuses them on their header)
    _read_limit = None

    #: messages read since the reader last yielded
    _turn = 0

    def __call__(self, environ, start_response):
        websocket = environ.get("wsgi.websocket")
        if websocket is not None:
            session = self.session
            limit = session.server.max_http_buffer_size
            if isinstance(websocket.stream, SocketReader):
                # on the reader, not the HTTP handler: a new attribute there
                # grew its dict by 1.5 KiB per connection
                websocket.stream.max_message_size = limit
            else:
                self._read_limit = limit
            session._websocket = websocket
            # gevent-websocket's own frames (a pong, a close) come in line
            session._frames = FrameWriter(websocket.handler.socket)
            websocket.raw_write = session._frames.write
        return super().__call__(environ, start_response)

    def wait(self):
        session = self.session
        if session.rejected is not None:
            return None  # refused meanwhile (a bad Socket.IO packet): stop reading
        try:
            message = session._websocket.receive()
        except InvalidMessage as error:
            session.reject(str(error), error.code)
            return None
        if message is None:
            return None
        limit = self._read_limit
        if limit is not None and len(message) > limit:
            session.reject(
                "a message of %d bytes (the limit is %d)" % (len(message), limit),
                MESSAGE_TOO_BIG,
            )
            return None
        if isinstance(message, str):
            bad = _bad_text_packet(message)
            if bad:
                session.reject(bad)
                return None
        self._turn += 1
        if self._turn >= MESSAGES_PER_TURN:
            self._turn = 0
            gevent.sleep(0)
        return message


#: where a packet keeps its frame, once framed (see GuardedSocket.send)
_FRAME = "_tgsio_frame"


def _packet_size(pkt):
    """Bytes (or characters) of a packet's data, as a queue holds it."""
    data = pkt.data
    return len(data) if type(data) in (str, bytes) else 0


def _bad_text_packet(text):
    """Why ``text`` is no Engine.IO v4 packet a client sends, or ``""``.

    Cheap: the packet type, and for a message the Socket.IO packet type.
    python-engineio JSON-decodes "4[..." or "4{...", which a Socket.IO client
    never sends (and which, nested deep enough, raises RecursionError).
    """
    first = text[:1]
    if first == "4":
        if text[1:2] in _SOCKETIO_PACKET_TYPES:
            return ""
        return "a message that is no Socket.IO packet (%r)" % text[:20]
    if first in _CONTROL_PACKET_TYPES:
        return ""
    return "an unknown Engine.IO packet (%r)" % text[:20]


def _describe(error):
    text = str(error)
    if len(text) > 100:
        text = text[:100] + "..."
    return type(error).__name__, text


def _cut(websocket, code, frames):
    """Send a close frame with ``code``, then end the TCP connection.

    gevent-websocket's ``close(code)`` sends no code, so the frame is built
    here. What the client still sends is read and dropped for up to
    ``DRAIN_SECONDS`` (closing a socket with unread input sends a reset,
    which can destroy the close frame before the client reads it), then the
    connection is shut down, which wakes any greenlet reading it. ``code``
    ``None`` skips the frame and the wait (a client that does not read:
    its socket buffer is full), and so does a frame cut short by the end
    of the ``frames`` still waiting.
    """
    raw = getattr(websocket.handler, "socket", None)
    if frames.abandon():
        code = None
    if code is not None and not websocket.closed:
        websocket.send_frame(struct.pack("!H", code), websocket.OPCODE_CLOSE)
        if frames.join(CLOSE_FRAME_SECONDS) and raw is not None:
            try:
                raw.shutdown(socket.SHUT_WR)
                _drain(raw)
            except OSError as error:  # the peer is gone
                log.debug("close frame not sent: %s", error)
    frames.abandon()
    websocket.closed = True
    if raw is not None:
        try:
            raw.shutdown(socket.SHUT_RDWR)
        except OSError:  # gone already
            pass


def _drain(raw):
    """Read and drop input until the peer closes, for ``DRAIN_SECONDS`` at most."""
    with gevent.Timeout(DRAIN_SECONDS, False):
        while raw.recv(65536):
            pass
