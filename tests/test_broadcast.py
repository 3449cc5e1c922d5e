"""BroadcastMixin, RoomsMixin and emit() from a controller action."""
import subprocess
import sys

import pytest
import requests
from gevent.queue import Empty, Queue
from tg import expose

from tgext.socketio import BaseNamespace, BroadcastMixin, RoomsMixin, emit


class Chat(BroadcastMixin, RoomsMixin, BaseNamespace):
    def on_say(self, text):
        self.broadcast_event("said", text)

    def on_whisper(self, text):
        self.broadcast_event_not_me("said", text)

    def on_join(self, room):
        self.join(room)
        return sorted(self.session["rooms"])

    def on_leave(self, room):
        self.leave(room)
        return sorted(self.session["rooms"])

    def on_to_room(self, room, text):
        self.emit_to_room(room, "room said", room, text)

    def on_sid(self):
        return self._tgsio.sid


def notify(self, text, to=None):
    emit("notice", text, namespace="/chat", to=to)
    return "sent"


@pytest.fixture
def server(serve):
    return serve({"chat": Chat}, notify=expose()(notify))


def listen(client, event):
    queue = Queue()
    client.on(event, lambda *args: queue.put(args), namespace="/chat")
    return queue


def nothing_more(queue):
    with pytest.raises(Empty):
        queue.get(timeout=0.2)
    return True


def test_broadcast_event_reaches_every_client_including_the_sender(server):
    clients = [server.connect(namespaces=["/chat"]) for _ in range(3)]
    queues = [listen(client, "said") for client in clients]
    clients[0].emit("say", "hi all", namespace="/chat")
    for queue in queues:
        assert queue.get(timeout=5) == ("hi all",)


def test_broadcast_event_not_me_skips_the_sender(server):
    sender, other = server.connect(namespaces=["/chat"]), server.connect(namespaces=["/chat"])
    sender_queue, other_queue = listen(sender, "said"), listen(other, "said")
    sender.emit("whisper", "psst", namespace="/chat")
    assert other_queue.get(timeout=5) == ("psst",)
    assert nothing_more(sender_queue)


def test_rooms_reach_members_but_the_sender(server):
    alice, bob, carol = (server.connect(namespaces=["/chat"]) for _ in range(3))
    assert alice.call("join", "kitchen", namespace="/chat", timeout=5) == ["/chat_kitchen"]
    assert bob.call("join", "kitchen", namespace="/chat", timeout=5) == ["/chat_kitchen"]
    alice_queue, bob_queue, carol_queue = (
        listen(client, "room said") for client in (alice, bob, carol))
    alice.emit("to_room", ("kitchen", "dinner!"), namespace="/chat")
    assert bob_queue.get(timeout=5) == ("kitchen", "dinner!")
    assert nothing_more(alice_queue) and nothing_more(carol_queue)
    assert bob.call("leave", "kitchen", namespace="/chat", timeout=5) == []
    alice.emit("to_room", ("kitchen", "anyone?"), namespace="/chat")
    assert nothing_more(bob_queue)


def test_emit_from_a_controller_action_reaches_the_namespace(server):
    clients = [server.connect(namespaces=["/chat"]) for _ in range(2)]
    queues = [listen(client, "notice") for client in clients]
    response = requests.get(server.url + "/socketio/notify", params={"text": "deploy"},
                            timeout=5)
    assert response.text == "sent"
    for queue in queues:
        assert queue.get(timeout=5) == ("deploy",)


def test_emit_from_an_action_to_one_client(server):
    first, second = server.connect(namespaces=["/chat"]), server.connect(namespaces=["/chat"])
    first_queue, second_queue = listen(first, "notice"), listen(second, "notice")
    sid = second.call("sid", namespace="/chat", timeout=5)
    requests.get(server.url + "/socketio/notify", params={"text": "you", "to": sid},
                 timeout=5)
    assert second_queue.get(timeout=5) == ("you",)
    assert nothing_more(first_queue)


def test_emit_without_app_or_queue_says_how_to_fix_it():
    # A process with no TG app loaded (a bare worker script).
    script = "from tgext.socketio import emit; emit('x', namespace='/chat')"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert "RuntimeError: emit('x') found no Socket.IO server for namespace /chat" in result.stderr
    assert "pass message_queue=" in result.stderr


def test_a_client_is_kept_out_of_rooms_past_max_rooms(serve):
    server = serve({"chat": Chat}, config={"socketio.max_rooms": 3})
    client = server.connect(namespaces=["/chat"])
    errors = listen(client, "error")
    for room in ("a", "b", "c"):
        assert client.call("join", room, namespace="/chat", timeout=5)
    rooms = client.call("join", "d", namespace="/chat", timeout=5)
    assert "/chat_d" not in rooms and len(rooms) == 3
    assert errors.get(timeout=5) == (
        "too_many_rooms",
        "You may be in 3 rooms at most in this namespace (socketio.max_rooms)",
    )
    assert "/chat_a" in client.call("join", "a", namespace="/chat", timeout=5)  # in it already
    assert nothing_more(errors)
