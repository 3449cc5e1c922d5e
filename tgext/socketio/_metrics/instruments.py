"""The metric set of an app, and the calls its engines make on the hot path.

An app with ``socketio.metrics = true`` has one :class:`AppMetrics` (in its
runtime) and, for each engine it serves, one :class:`EngineMetrics` that the
engine, its Engine.IO server, its dispatcher and its presence hold as
``metrics`` (``None`` when metrics are off: the only cost then is that
check). Every label value comes from a set the server bounds: namespaces
served, event names the namespace class handles (``on_<event>``) else
``_other``, the first :data:`MAX_ERROR_NAMES` error names else ``_other``,
and fixed lists of reasons. Label children are looked up once and kept, so
an event costs dictionary lookups and increments, no ``labels()`` call.

This module (and so prometheus_client) is imported only when an app turns
metrics on (:mod:`.hooks`).
"""

import inspect
import logging
import time
from bisect import bisect_left

import gevent
from gevent.event import Event
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .._upstream.prometheus_client import (
    histogram_adder,
    incrementer,
    use_native_locks,
)
from .labels import (
    DISCONNECT_REASONS,
    MAX_ERROR_NAMES,
    OFFENCE_KINDS,
    OTHER,
    REFUSAL_REASONS,
    refusal_label,
)

log = logging.getLogger("tgext.socketio.metrics")

#: seconds between two updates of the metric values from the events'
#: tallies (a scrape sees another process's events at most this late)
FLUSH_SECONDS = 1.0

#: seconds: the handler duration histogram's buckets
DURATION_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Instruments:
    """The prometheus_client metrics of one app, in a registry of their own.

    Two apps in one process (tests, or two apps behind one server) keep
    their counts apart; under several processes the values go to
    ``PROMETHEUS_MULTIPROC_DIR`` and a scrape reads the files of all of
    them (:mod:`.processes`).
    """

    def __init__(self):
        self.registry = registry = CollectorRegistry()

        def counter(name, documentation, labels=()):
            return Counter(name, documentation, labels, registry=registry)

        def gauge(name, documentation, labels=(), mode="livesum"):
            return Gauge(
                name, documentation, labels, registry=registry, multiprocess_mode=mode
            )

        self.sessions_open = gauge(
            "socketio_sessions_open",
            "Engine.IO sessions open, by transport (polling, websocket).",
            ("transport",),
        )
        self.namespace_connections = gauge(
            "socketio_namespace_connections",
            "Clients connected to a namespace (connect accepted).",
            ("namespace",),
        )
        self.events_received = counter(
            "socketio_events_received",
            "Events received from clients, by namespace and event name "
            "(names the namespace handles, else _other).",
            ("namespace", "event"),
        )
        self.event_duration = Histogram(
            "socketio_event_duration_seconds",
            "Seconds an event's handler ran (its acknowledgement sent); its "
            "_count is the number of events handled.",
            ("namespace", "event"),
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.event_failures = counter(
            "socketio_event_failures",
            "Events whose handler raised (the client got internal_server_error).",
            ("namespace", "event"),
        )
        self.acks_sent = counter(
            "socketio_acks_sent",
            "Acknowledgements sent to clients for their events.",
            ("namespace",),
        )
        self.errors_sent = counter(
            "socketio_errors_sent",
            "error events sent to clients (BaseNamespace.error), by error name "
            "(the first %d names, then _other)." % MAX_ERROR_NAMES,
            ("error",),
        )
        self.refused = counter(
            "socketio_refused",
            "Input refused, by reason (sessions cut, connects and requests refused).",
            ("reason",),
        )
        self.disconnects = counter(
            "socketio_disconnects",
            "Engine.IO sessions ended, by reason.",
            ("reason",),
        )
        self.queued_packets_max = gauge(
            "socketio_queued_packets_max",
            "The most packets seen waiting to be sent to one client.",
            mode="max",
        )
        self.queued_bytes_max = gauge(
            "socketio_queued_bytes_max",
            "The most bytes seen waiting to be sent to one client.",
            mode="max",
        )
        self.publications = counter(
            "socketio_pubsub_publications",
            "PubSub messages published by this app.",
        )
        self.deliveries = counter(
            "socketio_pubsub_deliveries",
            "PubSub messages handed to a local subscriber.",
        )
        self.backend_up = gauge(
            "socketio_backend_up",
            "1 while a Redis backend answers, 0 while it fails (the lowest "
            "over the processes).",
            ("backend",),
            mode="livemin",
        )
        self.recovery_attempts = counter(
            "socketio_recovery_attempts",
            "Connects asking to recover a dropped connection's state.",
        )
        self.recovery_successes = counter(
            "socketio_recovery_successes",
            "Connects that recovered a dropped connection's state.",
        )


class AppMetrics:
    """The metrics of one app; its instruments are made on first use.

    Made lazily so that a server forking workers from a process where the
    app was made can switch prometheus_client to shared files first
    (:meth:`reset` then drops what was made before).
    """

    def __init__(self):
        self._instruments = None
        self._refused = {}
        self._disconnects = {}
        self._errors = {}
        self._backends = {}
        #: {backend: whether up}, set again in instruments made after reset()
        self._backend_states = getattr(self, "_backend_states", {})
        self._most_packets = 0
        self._most_bytes = 0
        #: the events' tallies, brought to the metric values every
        #: FLUSH_SECONDS (and before this process answers a scrape)
        self._tallies = []
        self._flusher = None
        self._stop_flushing = Event()

    @property
    def instruments(self):
        instruments = self._instruments
        if instruments is None:
            instruments = self._instruments = Instruments()
            for name, up in self._backend_states.items():
                instruments.backend_up.labels(name).set(1 if up else 0)
        return instruments

    @property
    def registry(self):
        """The registry a scrape of this process alone reads."""
        return self.instruments.registry

    def reset(self):
        """Forget the instruments made so far (before a fork: see :mod:`.processes`)."""
        self.close()
        self.__init__()

    def for_engine(self, engine):
        """The :class:`EngineMetrics` of ``engine`` (a SocketIOEngine)."""
        engine_metrics = EngineMetrics(self, engine.namespace_classes)
        if self._flusher is None:
            self._flusher = gevent.spawn(self._flush_every_while)
        return engine_metrics

    def add_tally(self, tally):
        self._tallies.append(tally)
        return tally

    def flush(self):
        """Bring the metric values up to date with what the events' tallies
        counted (each process every FLUSH_SECONDS; the one answering a
        scrape, first)."""
        for tally in self._tallies:
            tally.flush()

    def _flush_every_while(self):
        while not self._stop_flushing.wait(FLUSH_SECONDS):
            try:
                self.flush()
            except Exception:  # a file of the shared directory gone, say
                log.exception("bringing the Socket.IO metrics up to date failed")

    def close(self):
        """Stop the flushing greenlet, after a last flush (the app's runtime
        closes: the server stops, or forks its workers)."""
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            self._stop_flushing.set()
            flusher.join(1)
            flusher.kill(block=True, timeout=1)
        try:
            self.flush()
        except Exception:  # the values' files removed already
            log.debug("the last flush of the Socket.IO metrics failed", exc_info=True)

    # -- cold paths: rare, or once per connection -------------------------------

    def refuse(self, reason):
        """Count refused input; ``reason`` is one of :data:`REFUSAL_REASONS`."""
        child = self._refused.get(reason)
        if child is None:
            if reason not in REFUSAL_REASONS:
                reason = "other"
            child = self._refused[reason] = self.instruments.refused.labels(reason)
        child.inc()

    def refuse_session(self, reason_text):
        """Count a session cut for ``reason_text`` (the line it logged)."""
        self.refuse(refusal_label(reason_text))

    def offence(self, kind):
        """Count a client's offence the engine warned about (its ``kind``)."""
        reason = OFFENCE_KINDS.get(kind)
        if reason is not None:
            self.refuse(reason)

    def disconnected(self, reason):
        label = DISCONNECT_REASONS.get(reason, "other")
        child = self._disconnects.get(label)
        if child is None:
            child = self._disconnects[label] = self.instruments.disconnects.labels(
                label
            )
        child.inc()

    def error_sent(self, name):
        child = self._errors.get(name)
        if child is None:
            errors = self._errors
            label = (
                name if type(name) is str and len(errors) < MAX_ERROR_NAMES else None
            )
            if label is None:
                child = errors.get(OTHER)
                if child is None:
                    child = errors[OTHER] = self.instruments.errors_sent.labels(OTHER)
            else:
                child = errors[name] = self.instruments.errors_sent.labels(name[:100])
        child.inc()

    def queued(self, packets, size):
        """One client has ``packets`` (``size`` bytes) waiting: keep the peaks."""
        if packets > self._most_packets:
            self._most_packets = packets
            self.instruments.queued_packets_max.set(packets)
        if size > self._most_bytes:
            self._most_bytes = size
            self.instruments.queued_bytes_max.set(size)

    def published(self):
        self.instruments.publications.inc()

    def delivered(self, count):
        if count:
            self.instruments.deliveries.inc(count)

    def backend(self, name, up):
        """Backend ``name`` (one of :data:`BACKENDS`) answers (or not)."""
        self._backend_states[name] = up
        child = self._backends.get(name)
        if child is None:
            child = self._backends[name] = self.instruments.backend_up.labels(name)
        child.set(1 if up else 0)

    def recovery_attempted(self):
        self.instruments.recovery_attempts.inc()

    def recovery_succeeded(self):
        self.instruments.recovery_successes.inc()


class _EventTally:
    """What one (namespace, event) pair counted since its values were last
    brought up to date (:meth:`AppMetrics.flush`): plain numbers, so that an
    event costs attribute increments on the hot path. prometheus_client
    would take a lock per value, and with several processes write each
    value to its file (7 us an event, measured, against a 75 us round trip).
    """

    __slots__ = ("received", "acks", "failures", "seconds", "buckets", "_adders")

    def __init__(self, instruments, namespace, event, acks_child):
        self.received = self.acks = self.failures = 0
        self.seconds = 0.0
        self.buckets = [0] * len(_BOUNDS)
        self._adders = (
            incrementer(_child(instruments.events_received, namespace, event)),
            incrementer(acks_child),
            incrementer(_child(instruments.event_failures, namespace, event)),
            histogram_adder(
                _child(instruments.event_duration, namespace, event), _BOUNDS
            ),
        )

    def handled(self, started, acked, failed=False):
        """The handler that started at ``started`` (perf_counter) returned."""
        seconds = time.perf_counter() - started
        self.seconds += seconds
        self.buckets[bisect_left(_BOUNDS, seconds)] += 1
        if acked:
            self.acks += 1
        if failed:
            self.failures += 1

    def flush(self):
        """Add what was counted to the metric values, and start again."""
        add_received, add_acks, add_failures, add_durations = self._adders
        if self.received:
            received, self.received = self.received, 0
            add_received(received)
        if self.acks:
            acks, self.acks = self.acks, 0
            add_acks(acks)
        if self.failures:
            failures, self.failures = self.failures, 0
            add_failures(failures)
        if any(self.buckets):
            seconds, self.seconds = self.seconds, 0.0
            buckets, self.buckets = self.buckets, [0] * len(_BOUNDS)
            add_durations(seconds, buckets)


#: the histogram's bucket bounds, ``+Inf`` last (prometheus_client's)
_BOUNDS = (*DURATION_BUCKETS, float("inf"))


def _child(metric, *labels):
    """``metric.labels(*labels)``, its in-memory values on native locks."""
    return use_native_locks(metric.labels(*labels))


class EngineMetrics:
    """What one engine's hot path calls, its label children made in advance.

    :param app_metrics: the app's :class:`AppMetrics`.
    :param namespace_classes: ``{"/name": namespace class}`` the engine serves.
    """

    def __init__(self, app_metrics, namespace_classes):
        self.app = app_metrics
        instruments = app_metrics.instruments
        self._sessions = {
            transport: _child(instruments.sessions_open, transport)
            for transport in ("polling", "websocket")
        }
        self._events = {}  # namespace -> {event name: _EventTally}
        self._other = {}  # namespace -> _EventTally of _other
        self._connections = {}
        for namespace, namespace_class in namespace_classes.items():
            self._add_namespace(namespace, namespace_class)
        self.refuse = app_metrics.refuse
        self.refuse_session = app_metrics.refuse_session
        self.offence = app_metrics.offence
        self.disconnected = app_metrics.disconnected
        self.error_sent = app_metrics.error_sent
        self.queued = app_metrics.queued
        self.backend = app_metrics.backend
        self.recovery_attempted = app_metrics.recovery_attempted
        self.recovery_succeeded = app_metrics.recovery_succeeded

    def _add_namespace(self, namespace, namespace_class):
        instruments = self.app.instruments
        acks = _child(instruments.acks_sent, namespace)
        names = {"message"}  # socket.send(): recv_message / recv_json
        names.update(
            name[3:]
            for name, _value in inspect.getmembers(namespace_class, callable)
            if name.startswith("on_") and len(name) > 3
        )
        self._events[namespace] = {
            name: self.app.add_tally(_EventTally(instruments, namespace, name, acks))
            for name in sorted(names)
        }
        self._other[namespace] = self.app.add_tally(
            _EventTally(instruments, namespace, OTHER, acks)
        )
        self._connections[namespace] = _child(
            instruments.namespace_connections, namespace
        )

    def event(self, namespace, name):
        """The instruments of event ``name`` sent to ``namespace`` (served)."""
        events = self._events.get(namespace)
        if events is None:  # "/" of an engine serving no namespace
            from ..namespace import BaseNamespace

            self._add_namespace(namespace, BaseNamespace)
            events = self._events[namespace]
        if type(name) is str:
            found = events.get(name)
            if found is not None:
                return found
            if " " in name:
                found = events.get(name.replace(" ", "_"))
                if found is not None:
                    return found
        return self._other[namespace]

    def session_opened(self, session):
        session._tgsio_metered = True
        self._sessions["polling"].inc()

    def session_upgraded(self):
        self._sessions["polling"].dec()
        self._sessions["websocket"].inc()

    def session_closed(self, websocket):
        self._sessions["websocket" if websocket else "polling"].dec()

    def connected(self, namespace):
        self._connection(namespace).inc()

    def left(self, namespace):
        self._connection(namespace).dec()

    def _connection(self, namespace):
        child = self._connections.get(namespace)
        if child is None:
            self.event(namespace, None)  # makes the namespace's children
            child = self._connections[namespace]
        return child
