"""gevent-websocket's connection: its frames read under a size limit at C
speed, and written without a greenlet per connection.

gevent-websocket reads a whole message before anyone can look at its size,
unmasks it byte by byte in Python and checks its UTF-8 twice, in Python too
unless ``wsaccel`` is importable: a 5 MB message held the loop 3 s (every
client waited) before python-engineio refused it for size. Here a message
is refused as soon as a frame header announces more than the limit, the
payload is unmasked by ``wsaccel`` (or by one big-integer XOR), and text is
checked by ``bytes.decode``. Measured (``bench/README.rst``), per 1 MB
message: 51 ms unmasking in gevent-websocket, 0.5 ms with ``wsaccel``.

Frames are read from the socket by a :class:`SocketReader`, which holds only
what it has not handed out yet, and written by a :class:`FrameWriter`, which
writes from the sender and needs a greenlet only while a client does not
take what it is sent.
"""

import collections
import logging
import os
import socket
import struct

import gevent
from gevent.socket import socket as PlainSocket
from geventwebsocket.exceptions import ProtocolError, WebSocketError
from geventwebsocket.websocket import MSG_ALREADY_CLOSED, WebSocket

try:
    from wsaccel.xormask import XorMaskerSimple
except ImportError:  # PyPy, or a platform without a wheel: slower, still C
    XorMaskerSimple = None

log = logging.getLogger("tgext.socketio.websocket")

#: the close codes of RFC 6455 this module sends
PROTOCOL_ERROR = 1002
INVALID_PAYLOAD = 1007
MESSAGE_TOO_BIG = 1009


class _NoApp:
    """What gevent-websocket tells of a closing connection: no one listens."""

    def on_close(self, reason):
        pass


_NO_APP = _NoApp()


class InvalidMessage(WebSocketError):
    """The peer sent what the protocol forbids; ``code`` is the close code."""

    code = PROTOCOL_ERROR


class MessageTooBig(InvalidMessage):
    code = MESSAGE_TOO_BIG


class NotUTF8(InvalidMessage):
    code = INVALID_PAYLOAD


def unmask(payload, mask):
    """XOR ``payload`` with the 4-byte ``mask`` repeated, as RFC 6455 masks."""
    if XorMaskerSimple is not None:
        return XorMaskerSimple(mask).process(payload)
    size = len(payload)
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        size, "little"
    )


class BoundedWebSocket(WebSocket):
    """A gevent-websocket ``WebSocket`` that refuses oversized messages early.

    The limit is the ``max_message_size`` of its :class:`SocketReader`
    (bytes, ``None`` for none), set by whoever reads the connection (the
    Engine.IO session, from its ``max_http_buffer_size``). No new slot, so
    the handler can turn the ``WebSocket`` it made into this class in place.
    """

    __slots__ = ()

    @property
    def current_app(self):
        # gevent-websocket's makes a new class on every call (four per
        # connection), each a reference cycle left for the collector
        return _NO_APP

    def receive(self):
        """The next message (``str`` or ``bytes``), or ``None`` once closed.

        :raises InvalidMessage: the peer broke the protocol or the limit;
            the caller closes with ``error.code``.
        """
        if self.closed:
            raise WebSocketError(MSG_ALREADY_CLOSED)
        try:
            return self.read_message()
        except InvalidMessage:
            raise
        except ProtocolError as error:  # gevent-websocket's, from a header or close
            raise InvalidMessage(str(error) or "a malformed frame") from None
        except UnicodeError:  # a close frame's reason
            raise NotUTF8("a close reason that is not UTF-8") from None
        except socket.error:
            self.close()
            return None

    def read_from_socket(self):
        """Read frames from the socket itself from now on.

        gevent-websocket reads through the HTTP handler's buffered file,
        whose 8 KiB buffer stays allocated as long as the connection. A
        :class:`SocketReader` holds only what it has received and not yet
        handed out: nothing, between two messages. What the client sent
        right after its upgrade request, already in that buffer, comes first.
        """
        handler = self.handler
        rfile, sock = handler.rfile, handler.socket
        timeout = sock.gettimeout()
        sock.settimeout(0.0)  # what the buffer holds, without waiting for more
        try:
            early = rfile.read1(RECV_SIZE)
        except OSError:  # nothing buffered, nothing received yet
            early = b""
        finally:
            sock.settimeout(timeout)
        rfile.close()  # frees its buffer; the socket stays open
        self.stream = reader = SocketReader(sock, early)
        self.raw_read = reader.read

    def read_message(self):
        stream = self.stream
        if stream is None:  # closed by gevent-websocket
            return None
        limit = getattr(stream, "max_message_size", None)
        if type(stream) is SocketReader:
            frame = stream.small_message()
            if frame is not None:  # the common case, in one step
                opcode, payload = frame
                _check_size(len(payload), limit)
                return _message(opcode, payload)
        read = stream.read
        opcode = None
        parts = []
        size = 0
        while True:
            head = read(2)
            if len(head) != 2:
                raise WebSocketError("Unexpected EOF while decoding header")
            first, second = head
            if first & 0x70:
                raise InvalidMessage("a frame with reserved bits set")
            frame_opcode = first & 0x0F
            length = second & 0x7F
            if frame_opcode > 0x07:  # a control frame
                if not first & 0x80:
                    raise InvalidMessage("a fragmented control frame")
                if length > 125:
                    raise InvalidMessage("a control frame of over 125 bytes")
            elif length == 126:
                length = _read_length(read, 2)
            elif length == 127:
                length = _read_length(read, 8)
            mask = None
            if second & 0x80:
                mask = read(4)
                if len(mask) != 4:
                    raise WebSocketError("Unexpected EOF while decoding header")
            if frame_opcode > 0x07:
                payload = _read_payload(read, length, mask)
                if frame_opcode == self.OPCODE_CLOSE:
                    self.handle_close(None, payload)
                    return None
                if frame_opcode == self.OPCODE_PING:
                    self.handle_ping(None, payload)
                elif frame_opcode != self.OPCODE_PONG:
                    raise InvalidMessage("a frame of opcode %d" % frame_opcode)
                continue
            if frame_opcode in (self.OPCODE_TEXT, self.OPCODE_BINARY):
                if opcode is not None:
                    raise InvalidMessage("a new message inside a fragmented one")
                opcode = frame_opcode
            elif frame_opcode != self.OPCODE_CONTINUATION or opcode is None:
                raise InvalidMessage("a frame of opcode %d out of place" % frame_opcode)
            size += length
            _check_size(size, limit)  # on the header's word, before the payload
            parts.append(_read_payload(read, length, mask))
            if first & 0x80:
                break
        return _message(opcode, parts[0] if len(parts) == 1 else b"".join(parts))


def _check_size(size, limit):
    if limit is not None and size > limit:
        raise MessageTooBig(
            "a message of over %d bytes (the limit is %d)" % (size, limit)
        )


def _message(opcode, payload):
    """A binary message as bytes, a text one as ``str`` once checked UTF-8."""
    if opcode == WebSocket.OPCODE_BINARY:
        return payload
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise NotUTF8("a text message that is not UTF-8") from None


def _read_length(read, size):
    data = read(size)
    if len(data) != size:
        raise WebSocketError("Unexpected EOF while decoding header")
    return int.from_bytes(data, "big")


def _read_payload(read, length, mask):
    if not length:
        return b""
    payload = read(length)
    if len(payload) != length:
        raise WebSocketError("Unexpected EOF reading frame payload")
    if mask is not None:
        payload = unmask(payload, mask)
    return payload


#: the first byte of a final, unfragmented text or binary frame, RSV bits clear
_SMALL_MESSAGE_FIRST_BYTES = (0x81, 0x82)

#: bytes asked of the socket at once when reading frames
RECV_SIZE = 16384


class SocketReader:
    """``read(size)`` over a socket, keeping only what was received and not
    yet read (a buffered file keeps its whole buffer for its lifetime).

    ``read`` returns fewer bytes than asked only at the end of the stream.
    """

    __slots__ = ("_socket", "_buffer", "_offset", "max_message_size")

    def __init__(self, sock, received=b""):
        self._socket = sock
        self._buffer = received
        self._offset = 0
        #: the largest message ``BoundedWebSocket`` reads (``None``: any)
        self.max_message_size = None

    def small_message(self):
        """``(opcode, unmasked payload)`` of the next frame if it is a whole
        message already received: final, masked, text or binary, under 126
        bytes (what nearly every event is); else ``None``, reading nothing."""
        buffer = self._buffer
        start = self._offset
        if len(buffer) - start < 6 or buffer[start] not in _SMALL_MESSAGE_FIRST_BYTES:
            return None
        second = buffer[start + 1]
        if second < 0x80 or second == 0xFE or second == 0xFF:
            return None  # unmasked, or a 16- or 64-bit length
        end = start + second - 0x80 + 6
        if end > len(buffer):
            return None
        mask = buffer[start + 2 : start + 6]
        payload = buffer[start + 6 : end]
        if end == len(buffer):
            self._buffer, self._offset = b"", 0
        else:
            self._offset = end
        return buffer[start] & 0x0F, unmask(payload, mask) if payload else payload

    def read(self, size):
        buffer = self._buffer
        start = self._offset
        end = start + size
        if end < len(buffer):
            self._offset = end
            return buffer[start:end]
        if end == len(buffer):
            self._buffer, self._offset = b"", 0
            return buffer[start:] if start else buffer
        parts = [buffer[start:]] if start < len(buffer) else []
        have = len(buffer) - start
        recv = self._socket.recv
        while have < size:
            wanted = size - have
            chunk = recv(wanted if wanted > RECV_SIZE else RECV_SIZE)
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if have > size:
            self._buffer, self._offset = data, size
            return data[:size]
        self._buffer, self._offset = b"", 0
        return data


_FIN_TEXT = 0x81
_FIN_BINARY = 0x82


def encode_frame(message):
    """One unmasked, unfragmented frame carrying ``message``: text for a
    ``str``, binary for bytes (the frames gevent-websocket's ``send`` makes).
    """
    if type(message) is str:
        payload, first = message.encode(), _FIN_TEXT
    else:
        payload, first = bytes(message), _FIN_BINARY
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", first, 126, size) + payload
    return struct.pack("!BBQ", first, 127, size) + payload


class FrameWriter:
    """Writes one connection's frames in order, never blocking the writer.

    python-engineio gives each WebSocket session a greenlet that waits on the
    session's queue for the next packet to write: a greenlet per idle
    connection (its stack and frames) and a switch to it for every packet.
    Here whoever sends writes the frame to the socket itself; gevent's sockets
    are non-blocking, so the kernel takes what fits at once. What it does not
    take (a client reading slower than it is sent to) waits in ``pending``,
    written out by a greenlet started then, which ends once it is all out.

    A TLS socket is always written through that greenlet (its records are
    not the socket's bytes). Once the connection failed, writes are dropped
    and the socket is shut down, which wakes its reader.
    """

    __slots__ = (
        "_socket",
        "_direct",
        "_pending",
        "_flusher",
        "failed",
        "pending_bytes",
    )

    def __init__(self, sock):
        self._socket = sock
        self._direct = type(sock) is PlainSocket
        self._pending = None  # frames waiting for the flusher, while it runs
        self._flusher = None
        self.failed = False
        #: bytes of the frames waiting in ``pending``
        self.pending_bytes = 0

    @property
    def backlog(self):
        """How many frames wait for the client to read."""
        pending = self._pending
        return 0 if pending is None else len(pending)

    def write(self, data):
        """Write ``data`` (bytes) after what was written before; the backlog
        then (0: all written, or dropped on a failed connection).

        ``data`` may be shared by many writers (a frame sent to many
        clients): what waits refers to it, never copies it.
        """
        if self.failed:
            return 0
        pending = self._pending
        if pending is None:
            if self._direct:
                fileno = self._socket.fileno()
                if fileno < 0:  # closed: the number may be another socket's now
                    self.failed = True
                    return 0
                try:
                    sent = os.write(fileno, data)
                except BlockingIOError:
                    sent = 0
                except OSError as error:
                    self._fail(error)
                    return 0
                if sent == len(data):
                    return 0
                data = memoryview(data)[sent:]
            self._pending = pending = collections.deque()
            self._flusher = gevent.spawn(self._flush)
        pending.append(data)
        self.pending_bytes += len(data)
        return len(pending)

    def join(self, timeout):
        """Wait up to ``timeout`` seconds for the pending frames to be written;
        whether they were."""
        flusher = self._flusher
        if flusher is not None:
            flusher.join(timeout)
        return self._pending is None and not self.failed

    def abandon(self):
        """Stop writing, dropping what waits; whether a frame may have been
        cut in the middle (the connection can carry no other frame then)."""
        flusher, self._flusher = self._flusher, None
        self._pending = None
        self.pending_bytes = 0
        if flusher is not None:
            flusher.kill(block=False)
            return True
        return False

    def _flush(self):
        pending = self._pending
        try:
            while pending:
                self._socket.sendall(pending[0])
                self.pending_bytes -= len(pending.popleft())
        except OSError as error:
            self._fail(error)
        finally:
            # abandon() may have started another flusher meanwhile
            if self._pending is pending:
                self._pending = None
                self.pending_bytes = 0
            if self._flusher is gevent.getcurrent():
                self._flusher = None

    def _fail(self, error):
        log.debug("writing to a WebSocket client failed: %s", error)
        self.failed = True
        self._pending = None
        self.pending_bytes = 0
        try:
            self._socket.shutdown(socket.SHUT_RDWR)
        except OSError:  # gone already
            pass
