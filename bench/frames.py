"""What reading one WebSocket message costs: ``.venv/bin/python bench/frames.py``.

gevent-websocket unmasks a client's frame byte by byte in Python and checks
a text message's UTF-8 in Python too (twice: per frame, then whole) unless
``wsaccel`` is importable for the check. ``tgext.socketio._serving.websocket`` unmasks
with ``wsaccel`` (its fallback: one big-integer XOR) and checks UTF-8 with
``bytes.decode``. This times each step for message sizes from a ping-pong
event (40 bytes) to the default size limit (1 MB), in microseconds per
message, best of five runs.
"""

import importlib.util
import os
import sys
import timeit

from geventwebsocket.websocket import Header

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tgext.socketio._serving import websocket as bounded  # noqa: E402

SIZES = (40, 1_000, 100_000, 1_000_000)


def best_microseconds(function, budget=0.2):
    """Best of five runs of ``function``, each repeated to fill ``budget`` s."""
    number = max(1, int(budget / max(1e-7, timeit.timeit(function, number=1))))
    return min(timeit.repeat(function, number=number, repeat=5)) / number * 1e6


def pure_python_validator():
    """gevent-websocket's own validator, the one it uses without wsaccel."""
    saved = sys.modules.get("wsaccel.utf8validator")
    sys.modules["wsaccel.utf8validator"] = None  # its import fails: the fallback
    try:
        spec = importlib.util.find_spec("geventwebsocket.utf8validator")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.Utf8Validator
    finally:
        if saved is None:
            del sys.modules["wsaccel.utf8validator"]
        else:
            sys.modules["wsaccel.utf8validator"] = saved


def big_integer_unmask(payload, mask):
    saved, bounded.XorMaskerSimple = bounded.XorMaskerSimple, None
    try:
        return bounded.unmask(payload, mask)
    finally:
        bounded.XorMaskerSimple = saved


def main():
    mask = os.urandom(4)
    print("microseconds per message, best of 5 (lower is better)")
    print(
        "%10s  %14s  %12s  %12s  %14s  %12s"
        % ("bytes", "unmask: g-ws", "big integer", "wsaccel", "UTF-8: g-ws", "decode")
    )
    python_validator = pure_python_validator()
    for size in SIZES:
        payload = b"a" * size
        header = Header(length=len(payload))
        header.mask = mask
        expected = bytes(header.unmask_payload(payload))
        assert big_integer_unmask(payload, mask) == expected
        wsaccel = "%12s" % "n/a"
        if bounded.XorMaskerSimple is not None:
            assert bounded.unmask(payload, mask) == expected
            wsaccel = "%12.2f" % best_microseconds(lambda: bounded.unmask(payload, mask))
        print(
            "%10d  %14.1f  %12.2f  %s  %14.1f  %12.2f"
            % (
                len(payload),
                best_microseconds(lambda: header.unmask_payload(payload)),
                best_microseconds(lambda: big_integer_unmask(payload, mask)),
                wsaccel,
                # what gevent-websocket does for a one-frame text message
                best_microseconds(lambda: (python_validator().validate(payload),) * 2),
                best_microseconds(lambda: payload.decode("utf-8")),
            )
        )
    print("UTF-8: g-ws is gevent-websocket's pure-Python validator, run twice as it does")


if __name__ == "__main__":
    main()
