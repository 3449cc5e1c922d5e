"""The chat example as a user runs it: ``examples/chat/run``, twice on one
Redis (two processes), its page in headless Chromium; and its memory
backend, and the redis-server it starts when none answers."""
import os

import pytest
import redis
import socketio

from tgext.socketio.testing import disconnect_client

from .test_example_page import (  # noqa: F401 (browser is a fixture)
    START_TIMEOUT,
    TOP,
    Process,
    browser,
    free_port,
)

RUN = os.path.join(TOP, "examples", "chat", "run")
MESSAGES = "Array.from(document.querySelectorAll('#messages div'), row => row.textContent)"


@pytest.fixture
def chat():
    """``chat(**env)`` runs examples/chat/run on a free port; returns (url, process)."""
    processes = []

    def start(**env):
        port = free_port()
        process = Process([RUN], cwd=TOP, env=dict(os.environ, PORT=str(port), **env))
        processes.append(process)
        process.wait_for_line(
            r"serving Socket\.IO at http://127\.0\.0\.1:%d/socketio" % port, START_TIMEOUT
        )
        return "http://127.0.0.1:%d" % port, process

    yield start
    for process in processes:
        process.stop()


def enter(page, nickname, room):
    page.send("Page.bringToFront")  # mouse events go to the tab in front
    page.wait_until("document.getElementById('status').textContent === 'connected'")
    page.evaluate("document.getElementById('nickname').value = %r" % nickname)
    page.click("#nickname-form button")
    page.wait_until("%s.includes('you are %s')" % (MESSAGES, nickname))
    page.click('button[data-room="%s"]' % room)
    page.wait_until("%s.includes('joined %s')" % (MESSAGES, room))


def say(page, text):
    page.send("Page.bringToFront")
    page.evaluate("document.getElementById('text').value = %r" % text)
    page.evaluate("document.getElementById('say-form').requestSubmit()")  # Enter


def test_two_processes_on_one_redis_keep_each_room_to_itself(chat, own_redis, browser):  # noqa: F811
    first_url, first = chat(REDIS_PORT=str(own_redis.port))
    second_url, _ = chat(REDIS_PORT=str(own_redis.port))
    first.wait_for_line(r"chat: reusing the redis-server at 127\.0\.0\.1:%d" % own_redis.port, 5)

    alice = browser(first_url + "/")
    enter(alice, "alice", "lobby")
    bob = browser(second_url + "/")
    enter(bob, "bob", "games")
    carol = browser(second_url + "/")
    enter(carol, "carol", "lobby")

    say(alice, "hello lobby")  # from the first process to the second
    carol.wait_until("%s.includes('[lobby] alice: hello lobby')" % MESSAGES)
    alice.wait_until("%s.includes('[lobby] alice: hello lobby')" % MESSAGES)
    say(bob, "anyone for games?")
    bob.wait_until("%s.includes('[games] bob: anyone for games?')" % MESSAGES)
    say(carol, "hi alice")  # and back
    alice.wait_until("%s.includes('[lobby] carol: hi alice')" % MESSAGES)

    assert "[games] bob: anyone for games?" not in alice.evaluate(MESSAGES)
    assert "[games] bob: anyone for games?" not in carol.evaluate(MESSAGES)
    assert not [line for line in bob.evaluate(MESSAGES) if line.startswith("[lobby]")]
    for page in (alice, bob, carol):
        assert page.events("Runtime.exceptionThrown") == []


def test_a_page_whose_connection_drops_gets_what_was_said_meanwhile(chat, browser):  # noqa: F811
    """Connection state recovery, on in the example: the page's transport
    closes as a lost network does; it comes back in the same room, and what
    was said meanwhile shows, once, in order."""
    url, _process = chat(BACKEND="memory", REDIS_PORT=str(free_port()))
    alice = browser(url + "/")
    enter(alice, "alice", "lobby")
    bob = browser(url + "/")
    enter(bob, "bob", "lobby")
    first_id = alice.evaluate("window.chatSocket.id")
    alice.evaluate("void window.chatSocket.io.engine.close()")
    alice.wait_until("document.getElementById('status').textContent === 'disconnected'")
    for number in range(3):
        say(bob, "missed %d" % number)
    alice.wait_until(
        "document.getElementById('status').textContent === 'connected (recovered)'",
        timeout=10,
    )
    alice.wait_until("%s.includes('[lobby] bob: missed 2')" % MESSAGES)
    said = [line for line in alice.evaluate(MESSAGES) if line.startswith("[lobby] bob:")]
    assert said == ["[lobby] bob: missed %d" % number for number in range(3)]
    assert alice.evaluate("window.chatSocket.id") == first_id
    assert alice.evaluate("document.getElementById('room').textContent") == "lobby"
    say(alice, "back")
    bob.wait_until("%s.includes('[lobby] alice: back')" % MESSAGES)
    for page in (alice, bob):
        assert page.events("Runtime.exceptionThrown") == []


def connect(url):
    client = socketio.Client()
    client.connect(url, namespaces=["/chat"], socketio_path="socketio",
                   transports=["websocket"], wait_timeout=10)
    return client


def test_memory_backend_needs_no_redis(chat):
    url, process = chat(BACKEND="memory", REDIS_PORT=str(free_port()))
    process.wait_for_line(r"chat: pub/sub backend memory", 5)
    alice, bob = connect(url), connect(url)
    try:
        heard = []
        bob.on("pubblication", lambda *args: heard.append(args), namespace="/chat")
        for client in (alice, bob):
            assert client.call("subscribe", ("room", "lobby"), namespace="/chat",
                               timeout=5) == "room-lobby"
        assert alice.call("say", ("lobby", "no redis here"), namespace="/chat", timeout=5)
        for _ in range(250):  # bob's copy comes in its own time: up to 5 s
            if heard:
                break
            bob.sleep(0.02)
        bob.sleep(0.3)  # a second copy would come now
        # the example turns connection state recovery on: each event's last
        # argument is its offset
        ((message, channel, offset),) = heard
        assert (message, channel) == (
            {"room": "lobby", "nickname": "anonymous", "text": "no redis here"},
            "room-lobby",
        )
        assert offset.isdigit()
        assert alice.call("subscribe", ("room", "not a room!"), namespace="/chat",
                          timeout=5) is False
    finally:
        disconnect_client(alice)
        disconnect_client(bob)


def test_run_starts_a_redis_server_when_none_answers_and_stops_it(chat):
    redis_port = free_port()
    url, process = chat(REDIS_PORT=str(redis_port))
    process.wait_for_line(r"chat: started redis-server at 127\.0\.0\.1:%d" % redis_port, 5)
    client = redis.Redis(port=redis_port, socket_connect_timeout=1)
    try:
        assert client.ping()
        process.stop()
        with pytest.raises(redis.ConnectionError):
            client.ping()
    finally:
        client.connection_pool.disconnect()  # redis-py 5.0: close() keeps it


def test_a_refused_room_leaves_the_page_showing_no_room(chat, browser):  # noqa: F811
    url, _ = chat(BACKEND="memory")
    page = browser(url + "/")
    enter(page, "alice", "lobby")
    assert page.evaluate("document.getElementById('room').textContent") == "lobby"
    page.evaluate("document.getElementById('room-name').value = 'not a room!'")
    page.evaluate("document.getElementById('room-form').requestSubmit()")
    page.wait_until("%s.includes('not in any room: pick another one')" % MESSAGES)
    # the client left lobby before asking for the refused room: the page says so
    assert page.evaluate("document.getElementById('room').textContent") == "none"
    assert page.evaluate("document.querySelectorAll('.room.current').length") == 0
    assert page.events("Runtime.exceptionThrown") == []


ROWS = ("Array.from(document.querySelectorAll('#messages div'), "
        "row => [row.className, row.textContent])")
MEMBERS = "document.getElementById('members').textContent"


def test_a_late_joiner_sees_the_last_messages_and_who_is_here(chat, own_redis, browser):  # noqa: F811
    first_url, _ = chat(REDIS_PORT=str(own_redis.port))
    second_url, _ = chat(REDIS_PORT=str(own_redis.port))
    alice = browser(first_url + "/")
    enter(alice, "alice", "lobby")
    alice.wait_until("%s === 'alice'" % MEMBERS)
    say(alice, "first words")
    alice.wait_until("%s.includes('[lobby] alice: first words')" % MESSAGES)

    dave = browser(second_url + "/")  # the other process
    enter(dave, "dave", "lobby")
    # what was said before dave came, shown as history, and who is here
    dave.wait_until("%s.some(([cls, text]) => cls === 'history' && "
                    "text === '[lobby] alice: first words')" % ROWS)
    dave.wait_until("%s === 'alice, dave'" % MEMBERS)
    alice.wait_until("%s.includes('dave joined')" % MESSAGES)
    alice.wait_until("%s === 'alice, dave'" % MEMBERS)

    dave.click('button[data-room="games"]')  # dave goes to another room
    alice.wait_until("%s.includes('dave left')" % MESSAGES)
    alice.wait_until("%s === 'alice'" % MEMBERS)
    assert alice.events("Runtime.exceptionThrown") == []
