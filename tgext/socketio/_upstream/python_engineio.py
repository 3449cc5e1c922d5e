"""python-engineio's private names, class swaps and forked methods, in one place.

Checked against python-engineio 4.12.2 to 4.15.1. Two of its methods are
forked here, each saying why; :class:`Session` gives the session's private
hooks names of ours, and :func:`adopt_session` turns the sessions
python-engineio builds into the package's own class.
"""

import logging

import engineio
import engineio.payload
import engineio.socket
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from engineio.async_drivers.gevent import WebSocketWSGI

from . import relies_on, rename_hooks

LIBRARY = "python-engineio"
CHECKED = "4.12.2-4.15.1"

log = logging.getLogger("tgext.socketio.engine")

_Socket = engineio.socket.Socket

relies_on(LIBRARY, CHECKED, engineio.Server, "_service_task", ["self"])
_send_ping = relies_on(LIBRARY, CHECKED, _Socket, "_send_ping", ["self"])
relies_on(
    LIBRARY,
    CHECKED,
    _Socket,
    "_upgrade_websocket",
    ["self", "environ", "start_response"],
)
relies_on(LIBRARY, CHECKED, _Socket, "_websocket_handler", ["self", "ws"])
relies_on(LIBRARY, CHECKED, WebSocketWSGI, "__init__", ["self", "handler", "server"])
relies_on(LIBRARY, CHECKED, engineio.payload.Payload, "max_decode_packets")


def raise_max_decode_packets(count):
    """Let a long-polling body hold ``count`` packets (python-engineio drops
    a body of more than 16). A class attribute, so process-wide: only raised."""
    payload_class = engineio.payload.Payload
    payload_class.max_decode_packets = max(payload_class.max_decode_packets, count)


def adopt_session(session, session_class):
    """Make ``session``, a session python-engineio built, a ``session_class``.

    python-engineio builds sessions from the ``Socket`` class of its own
    module; ``session_class`` only adds behaviour (and no slots), so the
    session changes class in place. Sessions of another class are left.
    """
    if type(session) is _Socket:
        session.__class__ = session_class
    return session


class Server(engineio.Server):
    """python-engineio's server, its session sweep holding session ids only.

    A subclass may override :meth:`schedule_first_ping`.
    """

    def _service_task(self):
        """python-engineio's ping-timeout sweep (4.12-4.15), holding session ids only.

        python-engineio's own walks a copy of the sessions table, waiting
        ``ping_timeout / len(sockets)`` between two sessions: that copy kept
        every session that closed meanwhile (its socket, handler, buffers)
        alive for up to ``ping_timeout``.
        """
        self.service_task_event = self.create_event()
        while not self.service_task_event.is_set():
            if not self.sockets:
                if self.service_task_event.wait(timeout=self.ping_timeout):
                    break
                continue
            sleep_interval = float(self.ping_timeout) / len(self.sockets)
            try:
                for sid in list(self.sockets):
                    socket = self.sockets.get(sid)
                    if socket is None:
                        pass
                    elif socket.closed:
                        self.sockets.pop(sid, None)
                    elif not socket.closing:
                        socket.check_ping_timeout()
                    socket = None  # not kept through the wait
                    if self.service_task_event.wait(timeout=sleep_interval):
                        return
            except Exception:  # never let the sweep die with one bad session
                log.exception("service task exception")

    def start_background_task(self, target, *args, **kwargs):
        if getattr(target, "__func__", None) is _send_ping:
            # python-engineio schedules a new session's first ping as a task
            # of its own (4.11: before the session's connect event)
            return self.schedule_first_ping(target.__self__)
        return super().start_background_task(target, *args, **kwargs)

    def schedule_first_ping(self, session):
        """Schedule ``session``'s first ping (python-engineio: a greenlet)."""
        return super().start_background_task(session._send_ping)


class Session(_Socket):
    """python-engineio's session with its WebSocket hooks under names of ours.

    A subclass implements :meth:`upgrade_websocket` (the WSGI app of an
    upgrade request), :meth:`websocket_upgraded` (the session now reads and
    writes on WebSocket) and :meth:`receive_socketio_text` (a text MESSAGE).
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        rename_hooks(cls, {"upgrade_websocket": "_upgrade_websocket"})

    def upgrade_websocket(self, environ, start_response):
        return _Socket._upgrade_websocket(self, environ, start_response)

    def _websocket_handler(self, ws):
        """The session on WebSocket: the upgrade handshake, then its reader.

        python-engineio's (4.12 to 4.15) does the same, and starts a writer
        greenlet per session that waits on the queue; here the subclass
        writes (from :meth:`websocket_upgraded` on), and a text MESSAGE goes
        to :meth:`receive_socketio_text` without decoding a packet first.
        """
        server = self.server
        if self.connected:  # on long-polling until now: an upgrade
            self.upgrading = True  # packets sent meanwhile wait in the queue
            try:
                upgraded = self._upgrade_handshake(ws)
            finally:
                self.upgrading = False
            if not upgraded:
                return []
        else:
            self.connected = True
        self.upgraded = True
        self.websocket_upgraded()
        server.logger.info("%s: Upgrade to websocket successful", self.sid)
        while True:
            try:
                message = ws.wait()
            except Exception as error:  # the connection failed under the reader
                if not self.closed:
                    server.logger.info(
                        '%s: Unexpected error "%s", closing connection', self.sid, error
                    )
                break
            if message is None:  # closed by the client, or refused
                break
            try:
                if type(message) is str and message[:1] == "4":
                    self.receive_socketio_text(message[1:])
                else:
                    self.receive(eio_packet.Packet(encoded_packet=message))
            except eio_exceptions.UnknownPacketError:
                pass
            except eio_exceptions.SocketIsClosedError:
                server.logger.info("Receive error -- socket is closed")
                break
            except Exception:  # the boundary of the session's reader
                server.logger.exception("Unknown receive error")
                break
        self.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
        return []

    def _upgrade_handshake(self, ws):
        """``2probe``, ``3probe``, ``5``: whether the client completed it
        (python-engineio 4.12-4.15's, from its ``_websocket_handler``)."""
        message = ws.wait()
        probe = eio_packet.Packet(encoded_packet=message) if message else None
        if (
            probe is None
            or probe.packet_type != eio_packet.PING
            or (probe.data != "probe")
        ):
            self.server.logger.info(
                "%s: Failed websocket upgrade, no PING packet", self.sid
            )
            return False
        ws.send(eio_packet.Packet(eio_packet.PONG, data="probe").encode())
        self.queue.put(eio_packet.Packet(eio_packet.NOOP))  # ends the pending poll
        message = ws.wait()
        upgrade = eio_packet.Packet(encoded_packet=message) if message else None
        if upgrade is None or upgrade.packet_type != eio_packet.UPGRADE:
            self.server.logger.info(
                "%s: Failed websocket upgrade, expected UPGRADE packet, "
                "received %s instead.",
                self.sid,
                message,
            )
            return False
        return True

    def websocket_upgraded(self):
        """The session reads and writes on WebSocket from now on."""

    def receive_socketio_text(self, data):
        """What ``receive`` does with a text MESSAGE holding ``data``."""
        self.receive(eio_packet.Packet(eio_packet.MESSAGE, data=data))


class WebSocketApp(WebSocketWSGI):
    """python-engineio's gevent-websocket adapter running ``session`` on WebSocket."""

    def __init__(self, session):
        super().__init__(session._websocket_handler, session.server)
        self.session = session
