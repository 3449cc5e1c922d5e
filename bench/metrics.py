"""What Prometheus metrics cost: ``.venv/bin/python bench/metrics.py``.

With ``socketio.metrics`` on, every event received is counted, its handler
timed (a histogram) and its ack counted; sessions and namespace joins move
gauges, and a publication counts its deliveries. This measures, in one run
and interleaved, the same figures as ``bench/versus.py`` with metrics on
against off, on this checkout:

* WebSocket round trips per second of the ping-pong example (each ``ping``
  counted, timed, and answered with a ``pong``) with 50 and 500 clients,
  and the server's CPU time per round trip;
* the time for one message to reach 500 WebSocket clients, by
  ``broadcast_event`` (counted once: one event) and by ``publish`` (its 500
  deliveries counted).

It prints each figure for both and their ratio (on / off): above 1 is faster
for round trips, slower for the server's CPU time per round trip and for
fan-out times. On a noisy machine, read the CPU time per round trip: the
rates move with the scheduler.

Then what the metrics add to one event's path, timed in this process (what
the dispatcher does with metrics on: find the event's tally, count it,
time its handler, count its ack), as a share of the server's CPU time per
round trip with metrics off measured above: a figure the scheduler's noise
does not move.
"""

import argparse
import statistics
import time
import timeit

from versus import Variant, add_measure_arguments, compare_on_off

VARIANTS = {
    "on": Variant("tgext-metrics", fanout_args=["--metrics"]),
    "off": Variant("tgext"),
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_measure_arguments(parser)
    parser.add_argument(
        "--no-fanouts", action="store_true", help="measure round trips only"
    )
    return parser.parse_args(argv)


def hot_path_cost(rounds=7, number=200_000):
    """Microseconds the metrics add to one event (the median of ``rounds``)."""
    from tgext.socketio import BaseNamespace
    from tgext.socketio._metrics.instruments import AppMetrics, EngineMetrics

    class Bench(BaseNamespace):
        def on_ping(self, attack):
            return attack

    app_metrics = AppMetrics()
    engine_metrics = EngineMetrics(app_metrics, {"/bench": Bench})

    def one_event():
        tally = engine_metrics.event("/bench", "ping")
        tally.received += 1
        started = time.perf_counter()
        tally.handled(started, True)

    costs = []
    for _ in range(rounds):
        costs.append(timeit.timeit(one_event, number=number) / number * 1e6)
        app_metrics.flush()
    return statistics.median(costs)


def main(argv=None):
    options = parse_args(argv)
    cpu = compare_on_off(
        options,
        VARIANTS,
        "socketio.metrics on against off (medians; ratio on/off)",
        fanouts=not options.no_fanouts,
    )
    per_event = hot_path_cost()
    print("metrics' work per event, in this process: %.2f us" % per_event)
    for clients in options.clients:
        samples = cpu.get(("off", clients))
        if samples:
            off = statistics.median(samples)
            print(
                "  %.1f%% of the server's CPU per round trip with metrics off "
                "(%.1f us, %d clients)" % (100 * per_event / off, off, clients)
            )


if __name__ == "__main__":
    main()
