"""What a greenlet switch costs with many greenlets: ``.venv/bin/python bench/switches.py``.

A greenlet that is switched out keeps the part of the C stack it used, and
gets it copied back when switched in again. This asks whether that copying
is what makes a round trip dearer with 500 clients than with 50: 50, 500
and 2,000 greenlets take turns (the main greenlet switches to each, which
switches straight back), each parked under 0, 1 or 2 levels of calls made
through C (``sorted``'s key function: about 5 KB of C stack a level; a
server's WebSocket reader parks about 5.3 KB). Microseconds per switch
pair, best of three runs of 200,000 switches.
"""

import time

import greenlet

COUNTS = (50, 500, 2000)
DEPTHS = (0, 1, 2)
SWITCHES = 200_000


def parked(depth, main):
    """Switch back to ``main`` forever, ``depth`` C-level calls deep."""
    if depth == 0:
        while True:
            main.switch()
    sorted([0], key=lambda _: parked(depth - 1, main))


def microseconds_per_switch_pair(count, depth):
    main = greenlet.getcurrent()
    others = [greenlet.greenlet(parked) for _ in range(count)]
    for other in others:
        other.switch(depth, main)
    rounds = max(1, SWITCHES // count)
    started = time.perf_counter()
    for _ in range(rounds):
        for other in others:
            other.switch()
    return (time.perf_counter() - started) / (rounds * count) * 1e6


def saved_stack_bytes(depth):
    main = greenlet.getcurrent()
    measured, other = greenlet.greenlet(parked), greenlet.greenlet(parked)
    measured.switch(depth, main)
    other.switch(0, main)  # switching to another saves all of measured's stack
    return measured._stack_saved


def main():
    print("microseconds per switch pair (to a greenlet and back)")
    print("%-28s" % "" + "".join("%10d" % count for count in COUNTS) + "  greenlets")
    for depth in DEPTHS:
        label = "parked %d deep (%d B saved)" % (depth, saved_stack_bytes(depth))
        cells = [
            min(microseconds_per_switch_pair(count, depth) for _ in range(3))
            for count in COUNTS
        ]
        print("%-28s" % label + "".join("%10.3f" % cell for cell in cells))


if __name__ == "__main__":
    main()
