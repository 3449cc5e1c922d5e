"""What the event path costs, step by step: ``.venv/bin/python bench/paths.py``.

Serves the ping-pong example in this process (``LiveServer``), joins one
WebSocket client to ``/pingpong``, then times, in microseconds per event
(best of five runs of 20,000):

``dispatch``
    the dispatcher's step for one ``ping`` event up to the handler's
    ``emit``: the packet dict, ``process_event``, the ACL and ``@require``
    checks, the ``@validate`` chain, the handler (``emit`` stubbed out), all
    under the connection's TG context, pushed once per run as a worker does
    for a burst;
``send``
    ``emit``'s work for the answer: encoding the event and writing its frame
    to the real socket (the client reads in a greenlet of its own).

No subprocess and no load generator: the figures are the Python the server
runs per event, without the event loop and socket reads ``bench/run.py``
and ``bench/layers.py`` measure.
"""

from gevent import monkey

monkey.patch_all()  # before tg is imported: its request locals must be greenlet-local

import os  # noqa: E402
import sys  # noqa: E402
import timeit  # noqa: E402

import gevent  # noqa: E402
import websocket  # noqa: E402

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_DIR)
sys.path.insert(0, os.path.join(REPO_DIR, "examples", "pingpong"))

from app import make_app  # noqa: E402

from tgext.socketio._upstream.tg import pop_request_locals, push_request_locals  # noqa: E402
from tgext.socketio.testing import LiveServer  # noqa: E402

EVENTS = 20_000
PING = ["ping", {"type": "ping"}]
PONG = ({"sound": "pong"},)


def best_microseconds(run):
    return min(timeit.repeat(run, number=1, repeat=5)) / EVENTS * 1e6


def joined_client(server):
    url = server.url.replace("http", "ws") + "/socketio/?EIO=4&transport=websocket"
    client = websocket.create_connection(url, timeout=5)
    client.recv()  # the open packet
    client.send("40/pingpong,")
    client.recv()  # joined
    return client


def read_until_closed(sock):
    while sock.recv(1 << 20):
        pass


def main():
    with LiveServer(make_app()) as server:
        client = joined_client(server)
        reading = gevent.spawn(read_until_closed, client.sock)
        (runtime,) = server._server._owned
        (engine,) = runtime.engines
        while not engine._instances:  # the join is answered before it is made
            gevent.sleep(0.01)
        (instance,) = engine._instances.values()
        dispatcher, request_locals = engine._dispatcher, instance._tgsio.request_locals

        def dispatch():
            push_request_locals(request_locals)
            try:
                for _ in range(EVENTS):
                    dispatcher._dispatch(instance, None, PING)
            finally:
                pop_request_locals(request_locals)

        def send():
            for _ in range(EVENTS):
                engine.send_event(instance, "pong", PONG)

        send_event = engine.send_event
        engine.send_event = lambda *args: None
        try:
            dispatched = best_microseconds(dispatch)
        finally:
            engine.send_event = send_event
        sent = best_microseconds(send)
        client.close()
        reading.kill()
    print("microseconds per event, the ping-pong example")
    print("  dispatch (to the handler's emit)  %5.2f" % dispatched)
    print("  send (encode, write the frame)    %5.2f" % sent)


if __name__ == "__main__":
    main()
