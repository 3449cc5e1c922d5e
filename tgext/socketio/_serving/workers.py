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

The worker processes come and go (:mod:`.arbiter` replaces those that die
and restarts them one by one on SIGHUP): the router hands new clients only
to those ready to serve.
"""

import logging
import os
import signal
import socket
from urllib.parse import parse_qs, urlsplit

import gevent
from gevent.event import Event
from gevent.pool import Pool
from gevent.server import StreamServer

from .._engine import engine as engine_module
from ..exceptions import ConfigurationError, WorkerDiedError
from .admission import parse_server_options
from .arbiter import Arbiter, worker_tag
from .http import SocketIOServer
from .zygote import CHILD_STOP_TIMEOUT, PARENT_SIGNALS, READY

log = logging.getLogger("tgext.socketio.workers")

#: the most bytes read (peeked) to find a request line
MAX_REQUEST_LINE = 8192
#: seconds a new worker waits to hear the cluster operations before serving
CLUSTER_WAIT_SECONDS = 5


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
    """Serve ``app`` from ``count`` worker processes on ``(host, port)``, until
    SIGTERM or SIGINT; SIGHUP restarts the workers one by one.

    A worker process that dies is replaced (see :mod:`.arbiter`).

    :param node_id: ``socketio.node_id``, which starts the workers' tags.
    :param limits: the timeouts and caps of ``[server:main]`` (each worker
        applies them; the router gives a request line ``header_timeout``).
    :raises WorkerDiedError: when worker processes keep exiting before they
        are ready, or the process that forks them died: a failure for
        whoever supervises the server (systemd's ``Restart=on-failure``).
    """
    limits = limits or parse_server_options({})
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1024)

    def start_worker(serial, channel):  # in a worker process: never returns
        tag = worker_tag(serial, node_id)
        _run_child(tag, channel, app, (host, port), resource, limits)

    arbiter = Arbiter(count, node_id)
    # Blocked until the handlers are in place: the zygote is born with them
    # blocked (and keeps them so), and none is lost in between.
    signal.pthread_sigmask(signal.SIG_BLOCK, PARENT_SIGNALS)
    try:
        arbiter.start_zygote(start_worker, inherited=[listener])
        handlers = [
            gevent.signal_handler(signal.SIGTERM, arbiter.stop),
            gevent.signal_handler(signal.SIGINT, arbiter.stop),
            gevent.signal_handler(signal.SIGHUP, arbiter.roll),
        ]
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, PARENT_SIGNALS)
    router = _Router(listener, arbiter, limits["header_timeout"])
    try:
        if arbiter.start():
            router.start()
            log.info(
                "serving Socket.IO at http://%s:%s%s with %d worker processes "
                "(pids %s)",
                host,
                listener.getsockname()[1],
                resource,
                count,
                " ".join(str(pid) for pid in arbiter.pids()),
            )
            arbiter.wait()
    finally:
        router.close()
        listener.close()
        arbiter.close()
        for handler in handlers:
            handler.cancel()
    if arbiter.failure is not None:
        raise WorkerDiedError(arbiter.failure)


class _Router(StreamServer):
    """Hands each accepted connection to the worker that holds its session,
    else to the next serving one."""

    def __init__(self, listener, arbiter, header_timeout=10.0):
        super().__init__(listener, self._route)
        self._arbiter = arbiter
        self._header_timeout = header_timeout

    def _route(self, client, address):
        try:
            request_line = _peek_request_line(client, self._header_timeout)
            if not request_line:
                # nothing came in time (or the client left): the worker would
                # only wait for it again, holding a descriptor meanwhile
                return
            peer = ("%s %s" % address[:2]).encode()
            for worker in self._arbiter.workers_for(_session_tag(request_line)):
                if worker.hand_over(client, peer):
                    return
            log.warning("no worker process took a connection from %s", address[0])
        except OSError as error:  # the client went away
            log.debug("routing a connection from %s failed: %s", address, error)
        finally:
            client.close()


def _session_tag(request_line):
    """The worker tag starting the ``sid`` of ``request_line``, if any
    (a session of a worker that exited is nobody's: it goes in turn, and
    gets the ordinary answer to an unknown session)."""
    try:
        target = request_line.split(b" ", 2)[1].decode("latin-1")
        sid = parse_qs(urlsplit(target).query).get("sid", [""])[0]
    except (IndexError, ValueError):
        return None
    tag, dot, _rest = sid.partition(".")
    return tag + dot if dot else None


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
    """Serve the connections the router hands over ``channel``, once ready
    say so on it; never returns."""
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
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the parent's: a restart
        # blocked since the zygote forked this process: one sent meanwhile
        # (to stop a worker not ready yet) is delivered now
        signal.pthread_sigmask(signal.SIG_UNBLOCK, PARENT_SIGNALS)
        receiver = gevent.spawn(_receive_connections, channel, server, pool, stopping)
        _wait_for_cluster_listener(runtime, tag)
        channel.sendall(READY)
        stopping.wait()
        server.close()  # every client gets a clean disconnect
        # Still receiving: the router hands this process the requests of its
        # sessions until it has exited, and the closed server ends them at
        # once, where left in the channel they would wait for the exit.
        pool.join(timeout=CHILD_STOP_TIMEOUT)
        receiver.kill()
        pool.kill(timeout=1)
    except BaseException:  # a child must never return into gearbox's code
        log.exception("worker %s failed", tag)
        status = 1
    finally:
        logging.shutdown()
        os._exit(status)


def _wait_for_cluster_listener(runtime, tag):
    """Until this process hears the cluster operations (a fetch_clients
    right after it is ready must count it), for a few seconds at most: a
    Redis that is away is retried in the background, and said so. Its
    engines are built at its first request, too late to start listening."""
    cluster = runtime.listen_for_cluster_operations()
    if cluster is not None and not cluster.listening.wait(timeout=CLUSTER_WAIT_SECONDS):
        log.warning(
            "worker %s: not listening for cluster operations yet (Redis slow or "
            "away); serving anyway",
            tag,
        )


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
