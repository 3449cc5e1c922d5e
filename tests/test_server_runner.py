"""``gearbox serve`` with ``use = egg:tgext.socketio#socketio``, in a subprocess:
what only the real command proves (entry point, monkey-patch order, start-up
line, ``debug = true``, start-up errors naming the key)."""
import os
import signal
import socket
import subprocess
import sys
import time

import gevent
import pytest
import requests

from tgext.socketio.testing import TRANSPORTS

HERE = os.path.dirname(os.path.abspath(__file__))
GEARBOX = os.path.join(os.path.dirname(sys.executable), "gearbox")

INI = """\
[server:main]
use = egg:tgext.socketio#socketio
host = 127.0.0.1
port = {port}
socketio_resource = {resource}
{server_extra}

[app:main]
use = call:{app}
debug = {debug}
{extra}

[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = INFO
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)s [%(name)s] %(message)s
"""


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class GearboxServer:
    """``gearbox serve -c <ini>`` in a subprocess, its log in a file.

    ``command(ini, port)`` gives another command line for the same ini
    (gunicorn's, say); ``options`` are added to gearbox's (``--reload``).
    """

    def __init__(self, tmp_path, debug=False, extra="", pythonpath=(),
                 resource="socketio", command=None, options=(),
                 app="tests.apps.runner_app:make_app", server_extra=""):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.ini = tmp_path / "test.ini"
        self.ini.write_text(INI.format(port=self.port, debug=str(debug).lower(),
                                       extra=extra, resource=resource, app=app,
                                       server_extra=server_extra))
        self.log_path = tmp_path / "server.log"
        self._log = open(self.log_path, "w")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [*map(str, pythonpath), os.path.dirname(HERE)]))
        args = (command(self.ini, self.port) if command is not None
                else [GEARBOX, "serve", *options, "-c", str(self.ini)])
        self.process = subprocess.Popen(
            args, cwd=str(tmp_path), env=env,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def log(self):
        return self.log_path.read_text()

    def wait_for_log(self, text, timeout=20):
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("%r not in the server log:\n%s" % (text, self.log()))
            gevent.sleep(0.05)

    def wait_for_log_match(self, pattern, after=None, timeout=30):
        """The first match of ``pattern`` in the log (past the match ``after``)."""
        import re

        start = after.end() if after is not None else 0
        deadline = time.monotonic() + timeout
        while True:
            match = re.compile(pattern).search(self.log(), start)
            if match:
                return match
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("%r not in the server log:\n%s" % (pattern, self.log()))
            gevent.sleep(0.05)

    def wait_for_exit(self, timeout=20):
        with gevent.Timeout(timeout, AssertionError("server still running:\n" + self.log())):
            while self.process.poll() is None:
                gevent.sleep(0.05)
        return self.process.returncode

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


@pytest.fixture
def gearbox(tmp_path):
    servers = []

    def start(**kwargs):
        server = GearboxServer(tmp_path, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def connect(client_factory, server, transport):
    import socketio

    client = client_factory(socketio.Client())
    client.connect(server.url, namespaces=["/probe"], socketio_path="socketio",
                   transports=TRANSPORTS[transport], wait_timeout=10)
    return client


@pytest.mark.parametrize("transport", ["websocket", "polling", "upgrade"])
def test_gearbox_serve_serves_pages_and_socketio_on_one_port(
    gearbox, client_factory, transport
):
    server = gearbox()
    server.wait_for_log(
        "serving Socket.IO at http://127.0.0.1:%d/socketio (gevent, websocket via "
        "gevent-websocket)" % server.port
    )
    assert requests.get(server.url + "/socketio/page", timeout=5).text == "page served"
    client = connect(client_factory, server, transport)
    assert client.call("ping", {"type": "ping"}, namespace="/probe", timeout=5) == "ack"
    if transport != "polling":
        gevent.sleep(0.2)
        assert client.transport() == "websocket"


def test_gearbox_patches_early_enough_for_greenlet_local_tg_context(
    gearbox, client_factory
):
    server = gearbox()
    server.wait_for_log("serving Socket.IO at")
    clients = [connect(client_factory, server, "websocket") for _ in range(5)]
    calls = [
        gevent.spawn(client.call, "inspect", "client-%d" % number,
                     namespace="/probe", timeout=10)
        for number, client in enumerate(clients)
    ]
    gevent.joinall(calls, raise_error=True)
    for number, call in enumerate(calls):
        assert call.value["greenlet_local"] is True
        assert call.value["label"] == "client-%d" % number
        assert call.value["path"] == "/socketio/"


def test_debug_true_keeps_the_page_debugger_and_socketio_working(
    gearbox, client_factory
):
    server = gearbox(debug=True)
    server.wait_for_log("serving Socket.IO at")
    broken = requests.get(server.url + "/socketio/broken", timeout=10)
    assert broken.status_code == 500
    assert "a page error for the debugger" in broken.text  # backlash's page
    for transport in ("polling", "websocket", "upgrade"):
        client = connect(client_factory, server, transport)
        answer = client.call("inspect", transport, namespace="/probe", timeout=5)
        assert answer["debug"] is True
    # an Engine.IO error is Engine.IO's answer, never a debugger page
    bad = requests.get(server.url + "/socketio/?EIO=4&transport=polling&sid=nope",
                       timeout=5)
    assert bad.status_code == 400
    assert "Traceback" not in bad.text and "<html" not in bad.text.lower()


def test_bad_socketio_option_stops_start_up_naming_the_key(gearbox):
    server = gearbox(extra="socketio.ping_interval = soon")
    assert server.wait_for_exit() != 0
    assert (
        "socketio.ping_interval = 'soon' is not a positive number of seconds; "
        "set it to a positive number of seconds in [app:main] of your .ini file."
    ) in server.log()


@pytest.mark.parametrize("extra, message", [
    ("anypubsub.backend = carrier-pigeon",
     "anypubsub.backend = 'carrier-pigeon' is not an anypubsub backend; set it to "
     "memory (one process) or redis (several processes)."),
    ("anypubsub.backend = redis\nanypubsub.port = sixty",
     "anypubsub.port = 'sixty' is not a whole number; set it in [app:main] of your "
     ".ini file (anypubsub.port = 6379, say)."),
    ("anypubsub.host = localhost",
     "the memory backend does not take the settings anypubsub.host"),
])
def test_bad_anypubsub_setting_stops_start_up_naming_the_key(gearbox, extra, message):
    server = gearbox(extra=extra)
    assert server.wait_for_exit() != 0
    assert message in server.log()


def test_redis_backend_without_redis_py_stops_start_up(gearbox, tmp_path):
    # a "redis" package that is not there, as on a machine without redis-py
    shadow = tmp_path / "no-redis-py"
    (shadow / "redis").mkdir(parents=True)
    (shadow / "redis" / "__init__.py").write_text(
        "raise ImportError('No module named redis')\n")
    server = gearbox(extra="anypubsub.backend = redis", pythonpath=[shadow])
    assert server.wait_for_exit() != 0
    assert ("anypubsub.backend = redis needs redis-py; run 'pip install "
            "tgext.socketio[redis]'.") in server.log()


def test_message_queue_without_redis_py_stops_start_up(gearbox, tmp_path):
    shadow = tmp_path / "no-redis-py"
    (shadow / "redis").mkdir(parents=True)
    (shadow / "redis" / "__init__.py").write_text(
        "raise ImportError('No module named redis')\n")
    server = gearbox(extra="socketio.message_queue = redis://127.0.0.1:1/0",
                     pythonpath=[shadow])
    assert server.wait_for_exit() != 0
    assert ("socketio.message_queue = redis://127.0.0.1:1/0 needs redis-py; run "
            "'pip install tgext.socketio[redis]'.") in server.log()


def test_gearbox_serve_reload_restarts_on_a_change_and_clients_reconnect(
    gearbox, client_factory, tmp_path
):
    import socketio

    # the app module is a copy, so that touching it restarts only this server
    package = tmp_path / "reloadable"
    package.mkdir()
    (package / "__init__.py").write_text("")
    app_module = package / "runner_app.py"
    with open(os.path.join(HERE, "apps", "runner_app.py")) as source:
        app_module.write_text(source.read())
    server = gearbox(options=["--reload"], pythonpath=[tmp_path],
                     app="reloadable.runner_app:make_app")
    first = server.wait_for_log_match(r"Starting server in PID (\d+)")
    server.wait_for_log("serving Socket.IO at")
    client = client_factory(socketio.Client(reconnection_delay=0.1,
                                            reconnection_delay_max=0.5))
    client.connect(server.url, namespaces=["/probe"], socketio_path="socketio",
                   transports=["websocket"], wait_timeout=10)
    assert client.call("ping", {"type": "ping"}, namespace="/probe", timeout=5) == "ack"
    connects = []
    client.on("connect", lambda: connects.append(True), namespace="/probe")
    first_websocket = client.eio.ws

    # hupper polls every second for the modules loaded and their mtimes; on
    # a busy machine its first look may come after a first change: change
    # the module again until the restart shows
    second = None
    for attempt in range(6):
        gevent.sleep(1.5)
        app_module.write_text(app_module.read_text() + "\n# changed %d\n" % attempt)
        try:
            second = server.wait_for_log_match(
                r"Starting server in PID (\d+)", after=first, timeout=5
            )
            break
        except AssertionError:
            if server.process.poll() is not None:
                raise
    assert second is not None, server.log()
    assert second.group(1) != first.group(1)
    with gevent.Timeout(20, AssertionError("no reconnect:\n" + server.log())):
        while not connects:
            gevent.sleep(0.1)
    assert client.call("ping", {"type": "ping"}, namespace="/probe", timeout=5) == "ack"
    assert "cannot release un-acquired lock" not in server.log()
    first_websocket.shutdown()  # the client leaves the one the server closed open


def test_cross_origin_websocket_gets_no_101_even_as_the_first_request(gearbox):
    import websocket

    server = gearbox()
    server.wait_for_log("serving Socket.IO at")
    url = server.url.replace("http", "ws") + "/socketio/?EIO=4&transport=websocket"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, timeout=5, origin="http://evil.example")
    assert refused.value.status_code == 403


def test_sigterm_closes_every_client_and_exits_cleanly(gearbox, client_factory):
    server = gearbox()
    server.wait_for_log("serving Socket.IO at")
    client = connect(client_factory, server, "websocket")
    left = []
    client.on("disconnect", lambda *reason: left.append(reason), namespace="/probe")
    os.kill(server.process.pid, signal.SIGTERM)  # gearbox itself, as systemd does
    assert server.wait_for_exit(timeout=10) == 0
    with gevent.Timeout(5, AssertionError("the client was not disconnected")):
        while not left:
            gevent.sleep(0.05)
    assert "Traceback" not in server.log()
