"""``workers = N``: several serving processes on one port, each client kept
on the process that holds its Engine.IO session.

The parent process accepts every connection, reads its request line without
consuming it, and hands the socket itself to a child process (over a UNIX
socket): the child whose tag starts the ``sid`` of the request, else the next
one in turn. Each child tags the session ids it makes and answers every
Engine.IO request with ``Connection: close``, so each long-polling request
arrives on a new connection and is routed anew; a WebSocket stays on the
connection, hence on its process. This is what Node's ``@socket.io/sticky``
does for a cluster. Emits, broadcasts, rooms and pub/sub cross the processes
through Redis (``socketio.message_queue``, ``anypubsub.backend = redis``).
"""

import itertools
import logging
import os
import signal
import socket
import time
from urllib.parse import parse_qs, urlsplit

import gevent
from gevent.event import Event
from gevent.pool import Pool
from gevent.server import StreamServer

from .._engine import engine as engine_module
from ..exceptions import ConfigurationError, WorkerDiedError
from .admission import parse_server_options
from .http import SocketIOServer

log = logging.getLogger("tgext.socketio.workers")

#: the most bytes read (peeked) to find a request line
MAX_REQUEST_LINE = 8192
#: seconds a child gets to disconnect its clients when told to stop
CHILD_STOP_TIMEOUT = 5


def check_processes(runtime, processes, sticky, where):
    """Refuse settings that cannot work across ``processes`` processes.

    :param sticky: whether each long-polling request reaches the process that
        holds its session (the paste runner's router does that; gunicorn
        does not).
    :param where: how the user asked for several processes, for the message.
    :raises ConfigurationError: naming the keys to change.
    """
    if processes <= 1:
        return
    options = runtime.options
    if options["message_queue"] is None:
        raise ConfigurationError(
            "%s runs %d processes, and a client's emits, broadcasts and rooms "
            "reach the clients of the other processes only through a message "
            "queue: set socketio.message_queue = redis://localhost:6379/0 in "
            "[app:main], or serve with one process." % (where, processes)
        )
    if runtime.serves_pubsub() and runtime.pubsub_backend != "redis":
        raise ConfigurationError(
            "%s runs %d processes, and PubSubTGNamespace channels reach the "
            "subscribers of the other processes only through Redis: set "
            "anypubsub.backend = redis (and anypubsub.host) in [app:main], or "
            "serve with one process." % (where, processes)
        )
    if not sticky and "polling" in options["transports"]:
        raise ConfigurationError(
            "%s runs %d processes without sticky routing, so a long-polling "
            "client's requests would reach processes that do not hold its "
            "session: set socketio.transports = websocket in [app:main] "
            "(socketio.message_queue is set), serve with workers = %d in "
            "[server:main] of gearbox serve (which routes each request to its "
            "process), or use one process." % (where, processes, processes)
        )


def serve_workers(app, host, port, resource, count, node_id=None, limits=None):
    """Serve ``app`` from ``count`` child processes on ``(host, port)``, forever.

    :param node_id: ``socketio.node_id``, which starts the workers' tags.
    :param limits: the timeouts and caps of ``[server:main]`` (each child
        applies them; the router gives a request line ``header_timeout``).
    """
    limits = limits or parse_server_options({})
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1024)
    children = []  # (pid, channel to the child)
    for index in range(count):
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:  # the child: never returns
            listener.close()
            parent_end.close()
            for _pid, channel in children:
                channel.close()
            _run_child(
                worker_tag(index, node_id),
                child_end,
                app,
                (host, port),
                resource,
                limits,
            )
        child_end.close()
        children.append((pid, parent_end))
    router = _Router(
        listener,
        [channel for _pid, channel in children],
        node_id,
        limits["header_timeout"],
    )
    gevent.signal_handler(signal.SIGTERM, router.close)
    log.info(
        "serving Socket.IO at http://%s:%s%s with %d worker processes (pids %s)",
        host,
        listener.getsockname()[1],
        resource,
        count,
        " ".join(str(pid) for pid, _channel in children),
    )
    watcher = gevent.spawn(_watch_children, [pid for pid, _channel in children], router)
    try:
        router.serve_forever()
    finally:
        watcher.kill()
        router.close()
        _stop_children([pid for pid, _channel in children])
    if router.lost_worker is not None:
        # a failure, for whoever supervises the server (systemd's
        # Restart=on-failure restarts it)
        raise WorkerDiedError(
            "worker process %d exited, so the server stopped" % router.lost_worker
        )


def worker_tag(index, node_id=None):
    """What starts the session ids of worker ``index`` (``a-w0.``, ``w1.``)."""
    return "%sw%d." % (node_id + "-" if node_id else "", index)


class _Router(StreamServer):
    """Hands each accepted connection to the child that holds its session."""

    #: the pid of a worker that died, which stopped the server
    lost_worker = None

    def __init__(self, listener, channels, node_id=None, header_timeout=10.0):
        super().__init__(listener, self._route)
        self._channels = channels
        self._header_timeout = header_timeout
        self._tags = {
            worker_tag(index, node_id): index for index in range(len(channels))
        }
        self._next = itertools.cycle(range(len(channels)))

    def _route(self, client, address):
        try:
            request_line = _peek_request_line(client, self._header_timeout)
            if not request_line:
                # nothing came in time (or the client left): the worker would
                # only wait for it again, holding a descriptor meanwhile
                return
            index = self._owner(request_line)
            if index is None:
                index = next(self._next)
            peer = ("%s %s" % address[:2]).encode()
            socket.send_fds(self._channels[index], [peer], [client.fileno()])
        except OSError as error:  # the client or a child went away
            log.debug("routing a connection from %s failed: %s", address, error)
        finally:
            client.close()

    def _owner(self, request_line):
        """The child holding the session of ``request_line``'s ``sid``, if any."""
        try:
            target = request_line.split(b" ", 2)[1].decode("latin-1")
            sid = parse_qs(urlsplit(target).query).get("sid", [""])[0]
        except (IndexError, ValueError):
            return None
        tag, dot, _rest = sid.partition(".")
        return self._tags.get(tag + dot) if dot else None


def _peek_request_line(client, timeout):
    """The request line of the connection's first request, left unread
    (``b""`` when it does not come within ``timeout`` seconds)."""
    with gevent.Timeout(timeout, False):
        while True:
            head = client.recv(MAX_REQUEST_LINE, socket.MSG_PEEK)
            if not head or b"\n" in head or len(head) >= MAX_REQUEST_LINE:
                return head
            gevent.sleep(0.005)  # part of the line has arrived: wait for more
    return b""


def _run_child(tag, channel, app, address, resource, limits):
    """Serve the connections the router hands over ``channel``; never returns."""
    status = 0
    try:
        engine_module.SESSION_PREFIX = tag
        from .._engine.runtime import runtime_of
        from .._upstream.tg import current_app_config

        runtime = runtime_of(current_app_config())
        server = SocketIOServer(
            address, app, resource=resource, runtime=runtime, limits=limits
        )
        server.one_request_per_connection = True
        server.update_environ()
        pool = Pool()
        stopping = Event()
        gevent.signal_handler(signal.SIGTERM, stopping.set)
        gevent.signal_handler(signal.SIGINT, stopping.set)
        receiver = gevent.spawn(_receive_connections, channel, server, pool, stopping)
        stopping.wait()
        receiver.kill()
        server.close()  # every client gets a clean disconnect
        pool.join(timeout=CHILD_STOP_TIMEOUT)
        pool.kill(timeout=1)
    except BaseException:  # a child must never return into gearbox's code
        log.exception("worker %s failed", tag)
        status = 1
    finally:
        logging.shutdown()
        os._exit(status)


def _receive_connections(channel, server, pool, stopping):
    while True:
        try:
            peer, fds, _flags, _address = socket.recv_fds(channel, 256, 1)
        except OSError as error:
            log.error("lost the router: %s", error)
            break
        if not fds:
            break  # the parent has gone
        host, _space, port = peer.decode().partition(" ")
        client = socket.socket(fileno=fds[0])
        pool.spawn(server.handle, client, (host, int(port or 0)))
    stopping.set()


def _watch_children(pids, router):
    """Stop serving when a child dies: its clients are gone, say so loudly."""
    while True:
        for pid in pids:
            if _reaped(pid):
                log.error("worker process %d exited; stopping the server", pid)
                router.lost_worker = pid
                router.close()
                return
        gevent.sleep(0.5)


def _stop_children(pids):
    """SIGTERM (each child disconnects its clients), then SIGKILL the late."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    remaining = set(pids)
    deadline = time.monotonic() + CHILD_STOP_TIMEOUT + 2
    while remaining and time.monotonic() < deadline:
        remaining = {pid for pid in remaining if not _reaped(pid)}
        gevent.sleep(0.05)
    for pid in remaining:
        _signal(pid, signal.SIGKILL)
        _reaped(pid)


def _signal(pid, number):
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass


def _reaped(pid):
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return True
