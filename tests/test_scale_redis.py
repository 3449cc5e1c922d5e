"""Several processes sharing a Redis message queue (socketio.message_queue):
emits, broadcasts and rooms reach the clients of every server, and emit()
reaches them from a process that serves nothing. Two servers with their own
apps stand for two processes; the Redis server is the suite's own."""
import subprocess
import sys

import pytest
from gevent.queue import Queue

from tgext.socketio import BaseNamespace, BroadcastMixin, RoomsMixin


class Chat(BroadcastMixin, RoomsMixin, BaseNamespace):
    def on_shout(self, text):
        self.broadcast_event("heard", text)

    def on_join(self, room):
        self.join(room)
        return "joined"

    def on_to_room(self, room, text):
        self.emit_to_room(room, "heard", text)


@pytest.fixture
def two_servers(serve, redis_server):
    config = {"socketio.message_queue": redis_server,
              "socketio.channel": "tgext-socketio-test"}
    return serve({"chat": Chat}, config=config), serve({"chat": Chat}, config=config)


def listen(client):
    queue = Queue()
    client.on("heard", lambda text: queue.put(text), namespace="/chat")
    return queue


def test_broadcast_reaches_clients_of_the_other_server(two_servers):
    first, second = two_servers
    here, there = first.connect(namespaces=["/chat"]), second.connect(namespaces=["/chat"])
    heard_here, heard_there = listen(here), listen(there)
    here.emit("shout", "hello everyone", namespace="/chat")
    assert heard_here.get(timeout=5) == "hello everyone"
    assert heard_there.get(timeout=5) == "hello everyone"


def test_rooms_span_servers(two_servers):
    first, second = two_servers
    alice, bob = first.connect(namespaces=["/chat"]), second.connect(namespaces=["/chat"])
    assert bob.call("join", "lobby", namespace="/chat", timeout=5) == "joined"
    heard_by_bob = listen(bob)
    alice.emit("to_room", ("lobby", "hi lobby"), namespace="/chat")
    assert heard_by_bob.get(timeout=5) == "hi lobby"


def test_emit_from_a_process_serving_nothing(two_servers, redis_server):
    first, second = two_servers
    clients = [first.connect(namespaces=["/chat"]), second.connect(namespaces=["/chat"])]
    queues = [listen(client) for client in clients]
    script = (
        "from tgext.socketio import emit; "
        "emit('heard', 'from a worker', namespace='/chat', message_queue=%r, "
        "channel='tgext-socketio-test')" % redis_server
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for queue in queues:
        assert queue.get(timeout=5) == "from a worker"
