"""What malloc costs against CPython's allocator: ``.venv/bin/python bench/allocator.py``.

Past ``socketio.malloc_above`` open sessions, new Python objects come from
the C library's ``malloc`` (``tgext.socketio._memory.allocator``). This times
WebSocket round trips of the ping-pong example with new objects always
from pymalloc (``tgext-pymalloc``) and always from malloc (``tgext-malloc``),
servers fresh and interleaved, server on CPU 0 and load generator on CPU 1,
and prints the rates and their ratio per client count.
"""

import argparse
import statistics

from run import Server, round_trips

KINDS = ("tgext-pymalloc", "tgext-malloc")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    options = parser.parse_args(argv)
    rates = {(kind, clients): [] for kind in KINDS for clients in options.clients}
    for number in range(options.rounds):
        for clients in options.clients:
            for kind in KINDS if number % 2 == 0 else KINDS[::-1]:
                server = Server(kind, 0)
                try:
                    result = round_trips(server, clients, 1, options.seconds, 1)
                finally:
                    server.stop()
                rates[kind, clients].append(result["rate"])
    print("WebSocket round trips/s, median of %d rounds" % options.rounds)
    print("%8s %15s %15s %8s" % ("clients", *KINDS, "ratio"))
    for clients in options.clients:
        pymalloc, malloc = (statistics.median(rates[kind, clients]) for kind in KINDS)
        print(
            "%8d %15.0f %15.0f %8.2f" % (clients, pymalloc, malloc, malloc / pymalloc)
        )


if __name__ == "__main__":
    main()
