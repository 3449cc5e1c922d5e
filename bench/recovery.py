"""What connection state recovery costs: ``.venv/bin/python bench/recovery.py``.

With ``socketio.connection_state_recovery`` on, every event a server sends is
logged (once, however many clients it goes to) and carries its offset. This
measures, in one run and interleaved, the same figures as ``bench/versus.py``
with recovery on (120 s) against off, on this checkout:

* WebSocket round trips per second of the ping-pong example (its ``pong`` is
  sent to one client: logged, offset appended) with 50 and 500 clients;
* the time for one message to reach 500 WebSocket clients, by
  ``broadcast_event`` (the client manager's emit) and by ``publish`` (the
  pub/sub hub's fan-out), each logged once.

It prints each figure for both and their ratio (on / off): above 1 is faster
for round trips, slower for the server's CPU time per round trip and for
fan-out times. On a noisy machine, read the CPU time per round trip: the
rates move with the scheduler.
"""

import argparse

from versus import Variant, add_measure_arguments, compare_on_off

VARIANTS = {
    "on": Variant("tgext-recovery", fanout_args=["--recovery", "120"]),
    "off": Variant("tgext"),
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_measure_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    compare_on_off(
        parse_args(argv),
        VARIANTS,
        "connection state recovery on against off (medians; ratio on/off)",
    )


if __name__ == "__main__":
    main()
