"""socketio.message_queue takes the URLs python-socketio's RedisManager takes:
a Redis Sentinel URL shares the queue through a real redis-sentinel (from
python-socketio 5.13 on), a Valkey URL needs the valkey package, and one rule
decides for the engines, emit() and participants()."""

import socket
import subprocess
import sys

import gevent
import pytest
import socketio
from gevent.queue import Queue

from tgext.socketio import BaseNamespace, BroadcastMixin
from tgext.socketio._engine.client_manager import client_manager, is_redis_url
from tgext.socketio._upstream import python_socketio
from tgext.socketio.exceptions import ConfigurationError

SCHEMES = python_socketio.redis_url_schemes()
CHANNEL = "tgext-socketio-sentinel-test"


class Chat(BroadcastMixin, BaseNamespace):
    def on_shout(self, text):
        self.broadcast_event("heard", text)

    def on_who(self):
        return sorted(self.participants())


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def sentinel(own_redis, tmp_path):
    """A redis-sentinel watching the test's own redis-server as ``mymaster``."""
    port = _free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        "port %d\nbind 127.0.0.1\ndir %s\n"
        "sentinel monitor mymaster 127.0.0.1 %d 1\n" % (port, tmp_path, own_redis.port)
    )
    process = subprocess.Popen(
        [own_redis.executable, str(config), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        with gevent.Timeout(10, AssertionError("redis-sentinel did not start")):
            while True:
                try:
                    if client.sentinel_get_master_addr_by_name("mymaster"):
                        break
                except redis.ConnectionError:
                    pass
                gevent.sleep(0.05)
        yield "redis+sentinel://127.0.0.1:%d/0/mymaster" % port, client
    finally:
        client.connection_pool.disconnect()  # redis-py 5.0: close() keeps it
        process.terminate()
        process.wait(timeout=10)


def _options(url):
    return {"message_queue": url, "channel": CHANNEL}


def test_the_rule_follows_the_installed_python_socketio():
    for url in ("redis://localhost/0", "rediss://localhost/0", "unix:///tmp/r.sock"):
        assert is_redis_url(url)
    assert not is_redis_url("amqp://guest@localhost//")
    assert is_redis_url("redis+sentinel://h:26379/0/m") == ("redis+sentinel" in SCHEMES)
    assert is_redis_url("valkey://localhost/0") == ("valkey" in SCHEMES)
    assert is_redis_url("VALKEYS://localhost/0") == ("valkeys" in SCHEMES)


def test_a_valkey_url_is_refused_naming_what_it_needs():
    if "valkey" not in SCHEMES:
        # python-socketio 5.12-5.13: Kombu's, which is not installed
        with pytest.raises(ConfigurationError, match="needs kombu"):
            client_manager(_options("valkey://127.0.0.1:1/0"))
        return
    try:
        import valkey  # noqa: F401
    except ImportError:
        with pytest.raises(
            ConfigurationError, match="needs valkey; run 'pip install valkey'"
        ):
            client_manager(_options("valkey://127.0.0.1:1/0"))
    else:  # installed: a manager of python-socketio's RedisManager
        assert isinstance(client_manager(_options("valkey://127.0.0.1:1/0")), socketio.RedisManager)


def test_a_sentinel_url_shares_the_queue_between_processes(serve, sentinel, wait_for):
    sentinel, sentinel_admin = sentinel
    if "redis+sentinel" not in SCHEMES:
        # python-socketio 5.12: Kombu's, which is not installed
        with pytest.raises(ConfigurationError, match="needs kombu"):
            client_manager(_options(sentinel))
        return
    config = {"socketio.message_queue": sentinel, "socketio.channel": CHANNEL}
    first, second = serve({"chat": Chat}, config=config), serve({"chat": Chat}, config=config)
    here = first.connect(namespaces=["/chat"])
    there = second.connect(namespaces=["/chat"])
    heard = Queue()
    there.on("heard", heard.put, namespace="/chat")
    here.emit("shout", "through the sentinel", namespace="/chat")
    assert heard.get(timeout=5) == "through the sentinel"
    # presence goes through the same Redis: both clients, from either server
    expected = sorted([here.get_sid("/chat"), there.get_sid("/chat")])
    with gevent.Timeout(5, AssertionError("presence did not converge")):
        while here.call("who", namespace="/chat", timeout=5) != expected:
            gevent.sleep(0.05)
    # and emit() from a process serving nothing
    script = (
        "from tgext.socketio import emit; "
        "emit('heard', 'from a worker', namespace='/chat', message_queue=%r, "
        "channel=%r)" % (sentinel, CHANNEL)
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert heard.get(timeout=5) == "from a worker"
    # stopped, the servers leave no connection to the Sentinel open
    for client in (here, there):
        client.disconnect()
    first.stop()
    second.stop()
    wait_for(lambda: len(sentinel_admin.client_list()) == 1, timeout=10)
