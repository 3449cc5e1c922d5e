"""The zygote of ``workers = N``: the process that forks the worker processes.

It is forked at start-up, before the router runs, and never serves: a worker
forked by the router's own process would inherit its greenlets, its
listener and the client sockets in flight. It forks a worker when the
arbiter asks (``spawn <serial>``) and hands back its pid and its channel
(the UNIX socket the router sends it connections on). Being the workers'
parent, it reaps them and reports how each ended (``exited <pid>
<status>``), and it signals them for the arbiter (``signal <pid> <number>``:
a pid it has not reaped yet cannot have been reused). It exits when the
arbiter closes the control socket, or dies.
"""

import logging
import os
import signal
import socket

import gevent

log = logging.getLogger("tgext.socketio.workers")

#: seconds a worker process has to disconnect its clients when told to stop
CHILD_STOP_TIMEOUT = 5
#: seconds between the zygote's looks for its workers that ended
REAP_INTERVAL = 0.1
#: the signals that belong to the parent: blocked in the zygote, which the
#: parent ends by closing its control socket; each worker installs its own
PARENT_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
#: what a worker writes on its channel once it can serve
READY = b"r"


def fork_zygote(start_worker, inherited=()):
    """Fork the zygote; return its pid and the parent's end of its control
    socket (``SOCK_SEQPACKET``: one message per request or report).

    :param start_worker: ``start_worker(serial, channel)``, run in each
        worker process, never returns.
    :param inherited: sockets of the parent the zygote closes.
    """
    parent_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        try:
            parent_end.close()
            for sock in inherited:
                sock.close()
            _run_zygote(zygote_end, start_worker)
        finally:
            os._exit(1)
    zygote_end.close()
    return pid, parent_end


def _run_zygote(control, start_worker):
    """Fork worker processes when the parent asks, signal them for it, reap
    them and report how they ended; exit once the parent closes ``control``."""
    signal.pthread_sigmask(signal.SIG_BLOCK, PARENT_SIGNALS)
    children = set()
    control.settimeout(REAP_INTERVAL)
    status = 0
    try:
        while True:
            _report_ended(control, children)
            try:
                request = control.recv(64)
            except TimeoutError:
                continue
            if not request:
                break  # the parent closed it, or died
            verb, *numbers = request.split()
            numbers = [int(number) for number in numbers]
            if verb == b"spawn":
                _fork_worker(control, numbers[0], start_worker, children)
            elif verb == b"signal" and numbers[0] in children:
                kill(*numbers)
    except Exception:  # the zygote's own failure: logged, then it exits
        log.exception("the process that starts the worker processes failed")
        status = 1
    finally:
        _end_children(children)
        logging.shutdown()
        os._exit(status)


def _fork_worker(control, serial, start_worker, children):
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # the worker: never returns into the zygote's loop
        try:
            control.close()
            parent_end.close()
            start_worker(serial, child_end)
        finally:
            os._exit(1)
    children.add(pid)
    child_end.close()
    try:
        message = b"spawned %d %d" % (serial, pid)
        socket.send_fds(control, [message], [parent_end.fileno()])
    finally:
        parent_end.close()


def _report_ended(control, children):
    for pid in list(children):
        try:
            ended, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere: status unknown
            ended, status = pid, -1
        if ended:
            children.discard(pid)
            try:
                control.send(b"exited %d %d" % (pid, status))
            except OSError:  # the parent is gone
                pass


def _end_children(children):
    """The parent is gone: so are the workers' channels, and they stop by
    themselves; SIGTERM them anyway, SIGKILL the late, reap them all."""
    for pid in children:
        kill(pid, signal.SIGTERM)
    with gevent.Timeout(CHILD_STOP_TIMEOUT + 2, False):
        while children:
            _reap(children)
            gevent.sleep(REAP_INTERVAL)
    for pid in children:
        kill(pid, signal.SIGKILL)
    with gevent.Timeout(2, False):
        while children:
            _reap(children)
            gevent.sleep(REAP_INTERVAL)


def _reap(children):
    for pid in list(children):
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                children.discard(pid)
        except ChildProcessError:
            children.discard(pid)


def kill(pid, number):
    """``os.kill``, for a process that may have exited already."""
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass
