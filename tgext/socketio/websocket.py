"""gevent-websocket's connection, reading messages under a size limit at C speed.

gevent-websocket reads a whole message before anyone can look at its size,
unmasks it byte by byte in Python and checks its UTF-8 twice, in Python too
unless ``wsaccel`` is importable: a 5 MB message held the loop 3 s (every
client waited) before python-engineio refused it for size. Here a message
is refused as soon as a frame header announces more than the limit, the
payload is unmasked by ``wsaccel`` (or by one big-integer XOR), and text is
checked by ``bytes.decode``. Measured (``bench/README.rst``), per 1 MB
message: 51 ms unmasking in gevent-websocket, 0.5 ms with ``wsaccel``.
"""

import socket

from geventwebsocket.exceptions import ProtocolError, WebSocketError
from geventwebsocket.websocket import MSG_ALREADY_CLOSED, Header, WebSocket

try:
    from wsaccel.xormask import XorMaskerSimple
except ImportError:  # PyPy, or a platform without a wheel: slower, still C
    XorMaskerSimple = None

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

    The limit is the handler's ``max_message_size`` (bytes, ``None`` for
    none), set by whoever reads the connection (the Engine.IO session, from
    its ``max_http_buffer_size``). No new slot, so the handler can turn the
    ``WebSocket`` it made into this class in place.
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

    def read_message(self):
        limit = getattr(self.handler, "max_message_size", None)
        opcode = None
        parts = []
        size = 0
        while True:
            header = Header.decode_header(self.stream)
            if header.flags:
                raise InvalidMessage("a frame with reserved bits set")
            if header.opcode in (self.OPCODE_CLOSE, self.OPCODE_PING, self.OPCODE_PONG):
                # decode_header refused control frames over 125 bytes
                payload = self._read_payload(header)
                if header.opcode == self.OPCODE_CLOSE:
                    self.handle_close(header, payload)
                    return None
                if header.opcode == self.OPCODE_PING:
                    self.handle_ping(header, payload)
                continue
            if header.opcode in (self.OPCODE_TEXT, self.OPCODE_BINARY):
                if opcode is not None:
                    raise InvalidMessage("a new message inside a fragmented one")
                opcode = header.opcode
            elif header.opcode != self.OPCODE_CONTINUATION or opcode is None:
                raise InvalidMessage(
                    "a frame of opcode %d out of place" % header.opcode
                )
            size += header.length
            if limit is not None and size > limit:
                # refused on the header's word, before reading the payload
                raise MessageTooBig(
                    "a message of over %d bytes (the limit is %d)" % (size, limit)
                )
            parts.append(self._read_payload(header))
            if header.fin:
                break
        message = parts[0] if len(parts) == 1 else b"".join(parts)
        if opcode == self.OPCODE_BINARY:
            return message
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError:
            raise NotUTF8("a text message that is not UTF-8") from None

    def _read_payload(self, header):
        if not header.length:
            return b""
        payload = self.raw_read(header.length)
        if len(payload) != header.length:
            raise WebSocketError("Unexpected EOF reading frame payload")
        if header.mask:
            payload = unmask(payload, header.mask)
        return payload
