"""Event dispatch: each namespace instance's events in arrival order, run on a
pool of reusable greenlets.

gevent-socketio handled one client's events to one namespace one after the
other; python-socketio would start a greenlet per event, so two events of a
client could overlap and finish out of order. Here every instance has an inbox;
the first event of a burst hands the instance to a worker greenlet, which runs
the whole inbox with the connection's TG context pushed once.

Workers are reused: a new greenlet would start with empty greenlet-local
storage, and TG's context push would rebuild it on every burst (measured: this
alone made the event path ~40% more expensive per round trip than raw
python-socketio). A worker is started only when no idle one is waiting, at
most ``max_idle_workers`` wait once a burst is over, and a worker idle for
``IDLE_WORKER_SECONDS`` retires: after any burst, the greenlets return to
what they were before it.
"""

import logging
import time

import gevent
from gevent.queue import Empty, Queue
from socketio import packet as sio_packet

from .._serving.clientlog import printable
from .._serving.session_events import session_events
from .._upstream.tg import pop_request_locals, push_request_locals
from ..namespace import DENIED, is_refusal
from . import client_errors

log = logging.getLogger("tgext.socketio.dispatch")

#: seconds an idle worker waits for work before it retires
IDLE_WORKER_SECONDS = 5


class EventDispatcher:
    """Runs namespace instances' queued events on reusable worker greenlets.

    :param engine: the ``SocketIOEngine`` whose acknowledgements it sends.
    """

    #: what times the handlers (``socketio.metrics``): an EngineMetrics, or None
    metrics = None

    def __init__(self, engine, max_idle_workers=64, max_queued_events=None):
        self._engine = engine
        self.max_idle_workers = max_idle_workers
        #: events one instance may have waiting; past it its client is dropped
        self.max_queued_events = max_queued_events
        self._ready = Queue()  # instances with events waiting for a worker
        self._idle_workers = 0  # workers blocked on _ready.get()
        # fewest workers idle at once since _trim_at: that many were not
        # needed, and retire (a FIFO queue hands work to every idle worker
        # in turn, so under light load none would ever wait long enough)
        self._idle_low = 0
        self._trim_at = time.monotonic() + IDLE_WORKER_SECONDS
        self._workers = set()
        session_events.table(self, "_workers")

    def submit(self, instance, id, data):
        """Queue one event (``data`` is ``[name, *args]``) for ``instance``."""
        inbox = instance._tgsio.inbox
        limit = self.max_queued_events
        if limit is not None and len(inbox) >= limit:
            self._overflow(instance, limit)
            return
        metrics = self.metrics
        if metrics is None:
            inbox.append((id, data, None))
        else:
            # its event name's tally (metrics), looked up once
            event_metrics = metrics.event(instance.ns_name, data[0])
            event_metrics.received += 1
            inbox.append((id, data, event_metrics))
        if instance._tgsio.draining:
            # its worker will get to it, in order (or, before its connect
            # was accepted, start() will)
            return
        instance._tgsio.draining = True
        self._schedule(instance)

    def start(self, instance):
        """Run ``instance``'s events from now on: its connect was accepted.

        An instance is made holding its events (its state is "draining"), so
        that none runs before ``recv_connect`` decided.
        """
        if instance._tgsio.inbox:
            self._schedule(instance)
        else:
            instance._tgsio.draining = False

    def _schedule(self, instance):
        ready = self._ready
        ready.put(instance)
        # Workers woken by earlier puts of this loop iteration are still
        # counted as idle until they run: start one more only when the
        # instances waiting outnumber the workers that will take them.
        if ready.qsize() > self._idle_workers:
            worker = gevent.spawn(self._work)
            self._workers.add(worker)
            worker.rawlink(self._workers.discard)

    def _overflow(self, instance, limit):
        """Drop a client that sends faster than its handlers run: tell it why.

        Refusing events one by one would leave a client (and its acks)
        guessing which got through; it is disconnected from the namespace
        instead, with the error ``too_many_events``. What was queued is
        dropped with it.
        """
        if instance._tgsio.closed or instance._tgsio.leaving:
            return  # being dropped already
        if self.metrics is not None:
            self.metrics.refuse("too_many_events")
        self._engine.warn_about_client(
            instance._tgsio.eio_sid,
            log,
            "too many events",
            "%s sent more than %d events waiting for %s (socketio.max_queued_events): "
            "disconnecting it",
            instance._tgsio.sid,
            limit,
            instance.ns_name,
        )
        instance.emit(
            "error",
            client_errors.TOO_MANY_EVENTS,
            client_errors.too_many_events_message(limit),
        )
        # dropped by the server, not leaving by itself: recv_disconnect runs
        self._engine.disconnect(
            instance._tgsio.sid, namespace=instance.ns_name, ignore_queue=True
        )

    def close(self):
        """End every worker (the engine is closing: its clients are gone)."""
        workers, self._workers = list(self._workers), set()
        gevent.killall(workers, block=False)

    def _work(self):
        ready = self._ready
        while True:
            self._idle_workers += 1
            try:
                instance = ready.get(timeout=IDLE_WORKER_SECONDS)
            except Empty:
                instance = None
            finally:
                self._idle_workers -= 1
            if instance is None:
                if ready.qsize() > self._idle_workers:
                    # put in the loop iteration this worker timed out in:
                    # counted as idle, it started no worker, and no other
                    # idle worker was woken for it (it would wait for the
                    # next event of any client)
                    continue
                return  # idle for a while, or trimmed: a later burst starts another
            if self._idle_workers < self._idle_low:
                self._idle_low = self._idle_workers
            self._drain(instance)
            instance = None  # do not keep a client's namespace alive while idle
            if self._idle_workers >= self.max_idle_workers and not ready.qsize():
                return
            if time.monotonic() >= self._trim_at:
                self._trim()

    def _trim(self):
        """Retire the workers that stayed idle through the last period."""
        for _ in range(self._idle_low):
            self._ready.put(None)
        self._idle_low = self._idle_workers
        self._trim_at = time.monotonic() + IDLE_WORKER_SECONDS

    def _drain(self, instance):
        request_locals = instance._tgsio.request_locals
        inbox = instance._tgsio.inbox
        if request_locals is not None:
            push_request_locals(request_locals)
        try:
            while inbox:
                id, data, event_metrics = inbox.pop(0)
                self._dispatch(instance, id, data, event_metrics)
        finally:
            instance._tgsio.draining = False
            if request_locals is not None:
                pop_request_locals(request_locals)

    def _dispatch(self, instance, id, data, event_metrics=None):
        event_packet = {
            "type": "event",
            "name": data[0],
            "args": data[1:],
            "endpoint": instance.ns_name,
        }
        if id is not None:
            event_packet["id"] = id
            event_packet["ack"] = "data"
        if event_metrics is not None:
            started = time.perf_counter()
        try:
            result = instance.process_packet(event_packet)
            if id is not None:
                self._acknowledge(instance, id, result)
            if event_metrics is not None:
                event_metrics.handled(started, id is not None)
        except Exception as error:  # the boundary where user handler code runs
            # (encoding the ack is in it: a handler may return a set)
            method_name = _method_name_of(data[0])
            # data nested deeper than Python recurses is most likely the
            # client's: a traceback would be a thousand frames long
            deep = isinstance(error, RecursionError)
            self._engine.warn_about_client(
                instance._tgsio.eio_sid,
                log,
                "data nested too deeply" if deep else "handler failed",
                "%s %s failed: RecursionError (data nested too deeply)"
                if deep
                else "Unhandled exception in %s %s",
                instance.ns_name,
                printable(method_name),
                exc_info=not deep,
            )
            instance.error(
                client_errors.INTERNAL_SERVER_ERROR,
                client_errors.internal_error_message(method_name),
            )
            if id is not None:
                self._acknowledge(instance, id, DENIED)
            if event_metrics is not None:
                event_metrics.handled(started, id is not None, failed=True)

    def _acknowledge(self, instance, id, result):
        """Send the ACK: ``None`` or a refusal is empty, a tuple spreads."""
        if result is None or is_refusal(result):
            ack_args = []
        elif isinstance(result, tuple):
            ack_args = list(result)
        else:
            ack_args = [result]
        self._engine.send_socketio_packet(
            instance._tgsio.eio_sid, sio_packet.ACK, instance.ns_name, ack_args, id
        )


def _method_name_of(event_name):
    if isinstance(event_name, str):
        return client_errors.method_name_for_event(event_name)
    return repr(event_name)
