"""How a WebSocket session reads and writes its frames, against a live server.

The server reads frames from the socket itself (no buffered file per
connection) and writes them from the sender, handing what the client does not
take at once to a greenlet started then: frames that arrive in pieces, with
the upgrade request, or bigger than a read; packets for a client that reads
slowly, all in order; the same bytes on the wire as gevent-websocket's.
"""

import base64
import json
import os
import socket
import struct

import gevent
import pytest
import websocket
from geventwebsocket.websocket import Header

from tgext.socketio import BaseNamespace
from tgext.socketio._engine.runtime import runtime_of
from tgext.socketio._serving.websocket import RECV_SIZE, encode_frame

from .test_abuse import masked_frame

NAMESPACE = "/io"


class Frames(BaseNamespace):
    def on_add(self, a, b):
        return a + b

    def on_echo(self, text):
        return text

    def on_numbered(self, count, size):
        for number in range(count):
            self.emit("blob", number, "x" * size)
        return count


@pytest.fixture
def server(serve):
    return serve({"io": Frames})


def masked(payload):
    return masked_frame(payload, mask=b"\x01\x02\x03\x04")


class RawClient:
    """A WebSocket client over a plain TCP socket: every byte by hand."""

    def __init__(self, server, first_frames=b""):
        host, port = server.url.split("//")[1].split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            "GET /socketio/?EIO=4&transport=websocket HTTP/1.1\r\n"
            "Host: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (host, port, key)
        )
        # frames in the same write as the request, before the 101 is read
        self.sock.sendall(request.encode() + first_frames)
        self.received = b""
        while b"\r\n\r\n" not in self.received:
            self.received += self._recv()
        head, self.received = self.received.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _recv(self):
        data = self.sock.recv(65536)
        assert data, "the server closed the connection"
        return data

    def _take(self, size):
        while len(self.received) < size:
            self.received += self._recv()
        data, self.received = self.received[:size], self.received[size:]
        return data

    def frame(self):
        """(opcode, payload) of the server's next frame, checked unmasked and final."""
        first, second = self._take(2)
        assert first & 0x80 and not second & 0x80
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", self._take(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", self._take(8))[0]
        return first & 0x0F, self._take(size)

    def text(self):
        opcode, payload = self.frame()
        assert opcode == 0x1
        return payload.decode()

    def close(self):
        self.sock.close()


def test_frames_sent_with_the_upgrade_request_are_read(server):
    client = RawClient(
        server, masked("40%s," % NAMESPACE) + masked('42%s,1["add",2,3]' % NAMESPACE)
    )
    assert client.text().startswith('0{"sid":')
    assert client.text().startswith('40%s,{"sid":' % NAMESPACE)
    assert client.text() == "43%s,1[5]" % NAMESPACE
    client.close()


def test_a_frame_arriving_a_byte_at_a_time_is_read(server):
    client = RawClient(server)
    assert client.text().startswith("0{")
    client.sock.sendall(masked("40%s," % NAMESPACE))
    assert client.text().startswith("40%s," % NAMESPACE)
    for byte in masked('42%s,7["add",20,22]' % NAMESPACE):
        client.sock.sendall(bytes((byte,)))
        gevent.sleep(0.002)
    assert client.text() == "43%s,7[42]" % NAMESPACE
    client.close()


@pytest.mark.parametrize("size", [100, 1000, 100_000, 3 * RECV_SIZE + 7])
def test_messages_of_every_length_encoding_come_back_whole(server, size):
    """7-bit, 16-bit and 64-bit lengths, and a payload longer than one read,
    in a stream of frames that several messages share."""
    client = RawClient(server)
    assert client.text().startswith("0{")
    text = "".join(chr(ord("a") + number % 26) for number in range(size))
    joined = masked("40%s," % NAMESPACE)
    for number in range(3):
        joined += masked('42%s,%d["echo",%s]' % (NAMESPACE, number, json.dumps(text)))
    client.sock.sendall(joined)
    assert client.text().startswith("40%s," % NAMESPACE)
    for number in range(3):
        assert client.text() == "43%s,%d[%s]" % (NAMESPACE, number, json.dumps(text))
    client.close()


def test_a_client_reading_slowly_gets_every_packet_in_order(server, wait_for):
    """More than the socket buffers hold: the rest waits in the server, in
    order, until the client reads; then the session goes on."""
    url = server.url.replace("http", "ws") + "/socketio/?EIO=4&transport=websocket"
    sock = websocket.create_connection(
        url, timeout=10, sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)]
    )
    assert sock.recv().startswith("0{")
    sock.send("40%s," % NAMESPACE)
    assert sock.recv().startswith("40%s," % NAMESPACE)
    count, size = 400, 20_000  # 8 MB, far more than the socket buffers
    sock.send('42%s,1["numbered",%d,%d]' % (NAMESPACE, count, size))
    (engine,) = runtime_of(server.app_config).engines

    def backlog():
        # what a greenlet writes out as the client reads (LiveServer's
        # readiness probe may hold a session of its own)
        return max((s._frames.backlog for s in engine.eio.sockets.values() if s._frames),
                   default=0)

    wait_for(lambda: backlog() > 10, timeout=10)  # not reading: the server's writes wait
    numbers = []
    while len(numbers) < count:
        message = sock.recv()
        assert message.startswith('42%s,["blob",' % NAMESPACE), message[:40]
        number, blob = json.loads(message[len(NAMESPACE) + 3 :])[1:]
        assert blob == "x" * size
        numbers.append(number)
    assert numbers == list(range(count))
    assert sock.recv() == "43%s,1[%d]" % (NAMESPACE, count)
    sock.send('42%s,2["add",1,1]' % NAMESPACE)
    assert sock.recv() == "43%s,2[2]" % NAMESPACE
    sock.close()


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
@pytest.mark.parametrize("kind", [str, bytes])
def test_frames_are_the_bytes_gevent_websocket_writes(size, kind):
    message = (
        kind("é" * (size // 2) + "x" * (size % 2)) if kind is str else os.urandom(size)
    )
    payload = message.encode() if kind is str else message
    opcode = 0x1 if kind is str else 0x2
    expected = Header.encode_header(True, opcode, b"", len(payload), 0) + payload
    assert encode_frame(message) == expected


def test_a_small_message_over_a_small_limit_is_refused(serve):
    """Messages under 126 bytes are read in one step; the limit holds there too."""
    server = serve({"io": Frames}, config={"socketio.max_http_buffer_size": 60})
    client = RawClient(server)
    assert client.text().startswith("0{")
    client.sock.sendall(masked("40%s," % NAMESPACE))
    assert client.text().startswith("40%s," % NAMESPACE)
    client.sock.sendall(masked('42%s,1["add",1,2]' % NAMESPACE))  # 23 bytes
    assert client.text() == "43%s,1[3]" % NAMESPACE
    client.sock.sendall(masked('42%s,2["echo","%s"]' % (NAMESPACE, "x" * 50)))  # 73
    opcode, payload = client.frame()
    assert (opcode, payload[:2]) == (0x8, struct.pack("!H", 1009))
    client.close()


def test_under_gevent_websockets_own_handler_the_limit_holds_too():
    """Served by pywsgi with gevent-websocket's handler (not ours: messages
    are read whole, then checked), the app still works and refuses a
    message over the limit with close code 1009."""
    from gevent.pywsgi import WSGIServer
    from geventwebsocket.handler import WebSocketHandler

    from .conftest import build_app, controller_for

    app = build_app(
        controller_for({"io": Frames}), config={"socketio.max_http_buffer_size": 100}
    )
    server = WSGIServer(("127.0.0.1", 0), app, handler_class=WebSocketHandler)
    server.start()
    try:
        url = "ws://127.0.0.1:%d/socketio/?EIO=4&transport=websocket" % server.server_port
        sock = websocket.create_connection(url, timeout=5)
        assert sock.recv().startswith("0{")
        sock.send("40%s," % NAMESPACE)
        assert sock.recv().startswith("40%s," % NAMESPACE)
        sock.send('42%s,1["add",2,3]' % NAMESPACE)
        assert sock.recv() == "43%s,1[5]" % NAMESPACE
        sock.send('42%s,2["echo","%s"]' % (NAMESPACE, "x" * 200))
        opcode, data = sock.recv_data(control_frame=True)
        assert (opcode, data[:2]) == (websocket.ABNF.OPCODE_CLOSE, struct.pack("!H", 1009))
        sock.shutdown()
    finally:
        server.stop()
