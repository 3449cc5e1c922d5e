"""The parent's side of ``workers = N``: starts the worker processes, replaces
those that die, restarts them one by one on SIGHUP, stops them, and keeps the
table the router reads (which process serves which session tag).

The worker processes are forked by the zygote (:mod:`.zygote`), which
reports how each ended. A worker writes one byte on its channel once it can
serve; from then on the router hands it clients. Each worker is tagged by a
serial number (``w7.``), never reused, so that a replacement never receives
the requests of the sessions its predecessor still holds (during a rolling
restart) or held (they get the ordinary answer to an unknown session).
"""

import itertools
import logging
import os
import signal
import socket

import gevent
from gevent.event import Event
from gevent.lock import Semaphore

from .._metrics import processes as metrics_processes
from .zygote import CHILD_STOP_TIMEOUT, fork_zygote, kill

log = logging.getLogger("tgext.socketio.workers")

#: seconds a new worker process has to be ready to serve (to build its engines)
WORKER_READY_TIMEOUT = 30
#: worker processes exiting before they were ready, in a row, that stop the server
MAX_BOOT_FAILURES = 5
#: seconds before the next start after a worker exited before it was ready,
#: doubled after each further one in a row
BOOT_BACKOFF = 0.1
#: seconds a retiring worker is left out of the round-robin before it is told
#: to stop, so that a client halfway through its handshake finishes it
RETIRE_GRACE = 0.5
#: seconds the router waits for a serving worker before closing a connection
NO_WORKER_WAIT = 5
#: seconds a worker's channel may stay full before a connection goes elsewhere
HAND_OVER_TIMEOUT = 5


def worker_tag(serial, node_id=None):
    """What starts the session ids of worker ``serial`` (``a-w0.``, ``w7.``)."""
    return "%sw%d." % (node_id + "-" if node_id else "", serial)


class WorkerProcess:
    """One worker process, from its fork to its exit (its replacement is
    another ``WorkerProcess``, with another serial number and tag)."""

    def __init__(self, serial, tag):
        self.serial = serial
        self.tag = tag
        self.pid = None
        self.channel = None
        #: the zygote forked it: ``pid`` and ``channel`` are set
        self.started = Event()
        #: it wrote READY: it can serve
        self.ready = Event()
        #: its channel closed: it exited (known without the zygote)
        self.gone = Event()
        #: the zygote reaped it: ``status`` is set
        self.exited = Event()
        self.status = None
        #: told to stop (rolling restart): out of the round-robin
        self.retiring = False
        self._sending = Semaphore()

    def __str__(self):
        return "worker process %s (%s)" % (self.pid, self.tag)

    def hand_over(self, client, peer):
        """Send the connection ``client`` to the process; ``False`` when it
        cannot take it (it exited, or its channel stayed full)."""
        if self.gone.is_set():
            return False
        try:
            with gevent.Timeout(HAND_OVER_TIMEOUT, _ChannelFull):
                # gevent lets one greenlet at a time wait to write a socket
                with self._sending:
                    socket.send_fds(self.channel, [peer], [client.fileno()])
            return True
        except (OSError, _ChannelFull) as error:
            log.debug("%s did not take a connection: %r", self, error)
            return False


class _ChannelFull(Exception):
    pass


class _Stopping(Exception):
    """The server stops: a greenlet of the arbiter ends."""


class _Slot:
    """One of the N places a serving worker process holds."""

    def __init__(self):
        self.worker = None
        self.lock = Semaphore()


class Arbiter:
    """Keeps ``count`` worker processes serving, forked by a zygote.

    Use: :meth:`start_zygote` (before anything else runs in the process),
    :meth:`start`, :meth:`wait`, then :meth:`close` in a ``finally``;
    :meth:`stop` and :meth:`roll` from signal handlers.
    """

    def __init__(self, count, node_id=None):
        self.node_id = node_id
        #: why the server stopped on its own (``None``: it was told to stop)
        self.failure = None
        self._slots = [_Slot() for _ in range(count)]
        self._serials = itertools.count()
        self._pending = {}  # serial -> WorkerProcess the zygote has not forked yet
        self._workers = {}  # pid -> WorkerProcess not reaped yet
        self._boot_failures = 0
        self._filled = 0
        self._all_ready = Event()
        self._stopped = Event()
        self._closing = False
        self._greenlets = []  # the zygote's listener and the channels' watchers
        self._keepers = []
        self._rolling = None
        # the router's table
        self._by_tag = {}  # tag -> WorkerProcess that may hold sessions
        self._turns = []  # the WorkerProcesses that take new clients
        self._turn = 0
        self._someone_serves = Event()
        self._zygote_pid = None
        self._control = None

    # -- the zygote -----------------------------------------------------------

    def start_zygote(self, start_worker, inherited=()):
        """Fork the zygote (see :func:`.zygote.fork_zygote`)."""
        self._zygote_pid, self._control = fork_zygote(start_worker, inherited)
        self._greenlets.append(gevent.spawn(self._listen_to_zygote))

    def _listen_to_zygote(self):
        while True:
            try:
                message, fds, _flags, _address = socket.recv_fds(self._control, 64, 1)
            except OSError:  # closed by close()
                message, fds = b"", []
            if not message:
                break
            verb, *numbers = message.split()
            if verb == b"spawned":
                self._started(*map(int, numbers), fds[0])
            elif verb == b"exited":
                self._exited(*map(int, numbers))
        if not self._closing:
            self._fail(
                "the process that starts the worker processes (pid %d) exited, "
                "so no worker process could be replaced: the server stopped"
                % self._zygote_pid
            )

    def _started(self, serial, pid, fd):
        channel = socket.socket(fileno=fd)
        worker = self._pending.pop(serial, None)
        if worker is None:
            channel.close()
            return
        worker.pid, worker.channel = pid, channel
        self._workers[pid] = worker
        worker.started.set()
        self._greenlets = [
            greenlet for greenlet in self._greenlets if not greenlet.dead
        ]
        self._greenlets.append(gevent.spawn(self._watch_channel, worker))
        if self._stopped.is_set():
            self._signal(worker, signal.SIGTERM)

    def _watch_channel(self, worker):
        """Admit ``worker`` to the router once it is ready; forget it when its
        channel closes, which it does by exiting, whoever its parent is."""
        try:
            while True:
                data = worker.channel.recv(64)
                if not data:
                    break
                if not worker.ready.is_set():
                    worker.ready.set()
                    if not (self._stopped.is_set() or worker.retiring):
                        self._admit(worker)
                        log.info("%s is ready", worker)
        except OSError:  # closed by close()
            pass
        finally:
            worker.gone.set()
            self._forget(worker)
            worker.channel.close()

    def _exited(self, pid, status):
        metrics_processes.child_exited(pid)  # its live gauges no longer count
        worker = self._workers.pop(pid, None)
        if worker is None:
            return
        worker.status = status
        self._forget(worker)
        ended = _describe(status)
        if worker.retiring or self._stopped.is_set():
            log.info("%s stopped: it %s", worker, ended)
        elif worker.ready.is_set():
            log.error("%s %s; starting another", worker, ended)
        else:
            log.error("%s %s before it was ready", worker, ended)
        worker.exited.set()

    def _signal(self, worker, number):
        """Have the zygote signal ``worker`` (directly if the zygote is gone)."""
        if worker.pid is None or worker.exited.is_set():
            return
        try:
            self._control.send(b"signal %d %d" % (worker.pid, number))
        except OSError:
            # its channel still open, it has not exited: the pid is its own
            if not worker.gone.is_set():
                kill(worker.pid, number)

    # -- keeping N workers --------------------------------------------------------

    def start(self):
        """Start the workers; ``True`` once each is ready, ``False`` if the
        server stopped first."""
        self._keepers = [gevent.spawn(self._keep, slot) for slot in self._slots]
        gevent.wait([self._all_ready, self._stopped], count=1)
        return not self._stopped.is_set()

    def wait(self):
        """Return when the server is told to stop, or stops on its own."""
        self._stopped.wait()

    def pids(self):
        """The pids of the worker processes in their places, in order."""
        return [slot.worker.pid for slot in self._slots if slot.worker is not None]

    def _keep(self, slot):
        """Keep a serving worker process in ``slot``: replace it when it exits."""
        first = True
        try:
            while True:
                with slot.lock:
                    if slot.worker is None or slot.worker.exited.is_set():
                        slot.worker = self._start_worker()
                if first:
                    first = False
                    self._filled += 1
                    if self._filled == len(self._slots):
                        self._all_ready.set()
                slot.worker.exited.wait()
        except _Stopping:
            pass

    def _start_worker(self):
        """A new worker process, once it is ready. One that exits first is
        started again after a growing delay; after MAX_BOOT_FAILURES in a row
        the server stops, as gunicorn's arbiter does: the app cannot start."""
        while True:
            if self._stopped.is_set():
                raise _Stopping
            worker = self._spawn()
            gevent.wait(
                [worker.ready, worker.exited], count=1, timeout=WORKER_READY_TIMEOUT
            )
            if worker.ready.is_set():
                self._boot_failures = 0
                return worker
            if not worker.exited.is_set():
                log.error(
                    "%s was not ready in %d s; killing it", worker, WORKER_READY_TIMEOUT
                )
                self._signal(worker, signal.SIGKILL)
                worker.exited.wait(CHILD_STOP_TIMEOUT)
            self._boot_failures += 1
            if self._boot_failures >= MAX_BOOT_FAILURES:
                self._fail(
                    "%d worker processes in a row exited before they were ready "
                    "(the last, %s, %s), so the server stopped: the log above "
                    "says why; fix it, then start the server again"
                    % (self._boot_failures, worker, _describe(worker.status))
                )
                raise _Stopping
            if self._stopped.wait(BOOT_BACKOFF * 2 ** (self._boot_failures - 1)):
                raise _Stopping

    def _spawn(self):
        serial = next(self._serials)
        worker = WorkerProcess(serial, worker_tag(serial, self.node_id))
        self._pending[serial] = worker
        try:
            self._control.send(b"spawn %d" % serial)
        except OSError:  # the zygote is gone: _listen_to_zygote says so
            self._stopped.wait()
            raise _Stopping from None
        gevent.wait([worker.started, self._stopped], count=1)
        if not worker.started.is_set():
            raise _Stopping
        return worker

    def _fail(self, message):
        # not logged here: raised as WorkerDiedError, gearbox logs it
        if self.failure is None and not self._stopped.is_set():
            self.failure = message
        self._stopped.set()

    # -- rolling restart ------------------------------------------------------------

    def roll(self):
        """Replace the worker processes one by one (on SIGHUP)."""
        if self._stopped.is_set():
            return
        if self._rolling is not None and not self._rolling.dead:
            log.info("a rolling restart is under way: SIGHUP ignored")
            return
        self._rolling = gevent.spawn(self._roll)

    def _roll(self):
        log.info("restarting the %d worker processes one by one", len(self._slots))
        try:
            for slot in self._slots:
                with slot.lock:
                    old = slot.worker
                    slot.worker = self._start_worker()
                    if old is not None:
                        self._retire(old)
        except _Stopping:
            return
        log.info(
            "rolling restart done: worker processes %s",
            " ".join(str(pid) for pid in self.pids()),
        )

    def _retire(self, worker):
        """Take ``worker`` out of the round-robin, then stop it (its clients
        get a clean disconnect and reconnect); the requests of its sessions
        still reach it until it has exited."""
        worker.retiring = True
        self._withdraw(worker)
        if worker.exited.wait(RETIRE_GRACE):
            return
        self._signal(worker, signal.SIGTERM)
        if not worker.exited.wait(CHILD_STOP_TIMEOUT + 2):
            log.warning("%s did not stop in time; killing it", worker)
            self._signal(worker, signal.SIGKILL)
            worker.exited.wait(2)

    # -- stopping -----------------------------------------------------------------

    def stop(self):
        """Have :meth:`wait` return (from a signal handler: never blocks)."""
        self._stopped.set()

    def close(self):
        """Stop every worker process (SIGTERM, then SIGKILL for those still
        there 2 s after CHILD_STOP_TIMEOUT), then the zygote."""
        self._stopped.set()
        busy = [g for g in (*self._keepers, self._rolling) if g is not None]
        gevent.killall(busy, timeout=1)
        workers = list(self._workers.values())
        for worker in workers:
            self._signal(worker, signal.SIGTERM)
        gevent.wait([worker.gone for worker in workers], timeout=CHILD_STOP_TIMEOUT + 2)
        late = [worker for worker in workers if not worker.gone.is_set()]
        for worker in late:
            log.warning("%s did not stop in time; killing it", worker)
            self._signal(worker, signal.SIGKILL)
        gevent.wait([worker.gone for worker in late], timeout=2)
        self._closing = True
        self._control.close()  # the zygote ends its stragglers, then exits
        with gevent.Timeout(CHILD_STOP_TIMEOUT + 4, False):
            os.waitpid(self._zygote_pid, 0)
            self._zygote_pid = None
        if self._zygote_pid is not None:
            kill(self._zygote_pid, signal.SIGKILL)
            os.waitpid(self._zygote_pid, 0)
        gevent.killall(self._greenlets, timeout=1)

    # -- the router's table ---------------------------------------------------------

    def workers_for(self, tag):
        """The worker processes to offer a connection to, best first: the one
        whose sessions start with ``tag``, then the serving ones in turn."""
        owner = self._by_tag.get(tag) if tag else None
        if owner is not None:
            yield owner
        if not self._turns:
            self._someone_serves.wait(NO_WORKER_WAIT)
        for _attempt in range(len(self._turns)):
            if not self._turns:
                return
            self._turn = (self._turn + 1) % len(self._turns)
            yield self._turns[self._turn]

    def _admit(self, worker):
        self._by_tag[worker.tag] = worker
        self._turns.append(worker)
        self._someone_serves.set()

    def _withdraw(self, worker):
        if worker in self._turns:
            self._turns.remove(worker)
        if not self._turns:
            self._someone_serves.clear()

    def _forget(self, worker):
        self._withdraw(worker)
        if self._by_tag.get(worker.tag) is worker:
            del self._by_tag[worker.tag]


def _describe(status):
    """``"was killed by signal 9 (SIGKILL)"``, ``"exited with status 3"``."""
    if status is None or status < 0:
        return "exited (status unknown)"
    try:
        code = os.waitstatus_to_exitcode(status)
    except ValueError:
        return "ended (wait status %d)" % status
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "?"
        return "was killed by signal %d (%s)" % (-code, name)
    return "exited with status %d" % code
