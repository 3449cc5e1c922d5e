"""Fixtures: real TG apps on real gevent servers, real clients.

gevent must patch the standard library before anything imports ``tg``, so
that TurboGears' request locals are greenlet-local: keep this first.
"""

from gevent import monkey

monkey.patch_all()


def _native_primitives_for_xdist():
    """In a pytest-xdist worker, execnet's primitives stay native threads'.

    The worker receives its tests on a thread that execnet started before
    this file patched ``threading``: the queue, locks and event it shares
    with the main thread (made after the patch, from ``threading`` and
    ``queue``) would be gevent's, which one OS thread cannot wake in
    another (the main thread's hub, with nothing else to run, raised
    LoopExit waiting for its next test). So they are made from the
    originals gevent keeps. The main thread blocks natively between tests.
    """
    import types

    from execnet import gateway_base

    allocate_lock, rlock = monkey.get_original("_thread", ["allocate_lock", "RLock"])
    simple_queue = monkey.get_original("queue", "SimpleQueue")
    import queue as queue_module

    class NativeEvent:
        """threading.Event on one native lock, held while the flag is clear."""

        def __init__(self):
            self._guard, self._gate = allocate_lock(), allocate_lock()
            self._gate.acquire()

        def is_set(self):
            return not self._gate.locked()

        def set(self):
            with self._guard:
                if self._gate.locked():
                    self._gate.release()

        def clear(self):
            with self._guard:
                self._gate.acquire(False)

        def wait(self, timeout=None):
            if self._gate.acquire(True, -1 if timeout is None else timeout):
                self._gate.release()
                return True
            return False

    native_queue = types.SimpleNamespace(
        Queue=lambda maxsize=0: simple_queue(), Empty=queue_module.Empty
    )
    model = gateway_base.ThreadExecModel
    model.queue = property(lambda self: native_queue)
    model.Lock = model.RLock = lambda self: rlock()
    model.Event = lambda self: NativeEvent()


if __import__("os").environ.get("PYTEST_XDIST_WORKER"):
    _native_primitives_for_xdist()

import contextlib  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402

import gevent  # noqa: E402
import pytest  # noqa: E402
import tg  # noqa: E402
from tg import MinimalApplicationConfigurator, TGController  # noqa: E402

from tgext.socketio import SocketIOController  # noqa: E402
from tgext.socketio.testing import LiveServer, disconnect_client  # noqa: E402


def build_app(controller=None, mount="socketio", config=None, root=None):
    """A minimal TG app with ``controller`` mounted at ``mount`` (a/b/c)."""
    if root is None:
        root = TGController()
        parent = root
        steps = mount.split("/")
        for step in steps[:-1]:
            child = TGController()
            parent.__dict__[step] = child
            parent = child
        parent.__dict__[steps[-1].replace(".", "_")] = controller
    configurator = MinimalApplicationConfigurator()
    configurator.update_blueprint(
        {"root_controller": root, "helpers": {}, "app_globals": type("Globals", (), {})}
    )
    if config:
        configurator.update_blueprint(config)
    return with_config(configurator.make_wsgi_app())


def with_config(app, wrapped=None):
    """Keep the app's own config dict on ``app.app_config`` for assertions.

    Right after ``make_wsgi_app`` TG's process config is the new app's.
    """
    app.app_config = (
        wrapped.app_config if wrapped is not None else tg.config._current_obj()
    )
    return app


def controller_for(namespaces, default_namespace=None, **attributes):
    """A SocketIOController instance serving ``{"name": NamespaceClass}``."""
    body = dict(namespaces)
    body.update(attributes)
    if default_namespace is not None:
        body["default_namespace"] = default_namespace
    return type("TestSocketIO", (SocketIOController,), body)()


@pytest.fixture(autouse=True)
def fresh_log_budgets(monkeypatch):
    """Each test starts with the process-wide budgets of client-caused log
    lines whole: an earlier test (the fuzz) must not make a test's own
    warnings (why a connect was refused, say) vanish from its report."""
    from tgext.socketio._serving import clientlog
    from tgext.socketio._serving import engineio_session as transport

    monkeypatch.setattr(
        clientlog,
        "client_lines",
        clientlog.BurstLog(
            clientlog.log,
            clientlog.PROCESS_LINES,
            clientlog.WINDOW,
            "client-caused warnings: %d more in the last %g s, not logged (%s)",
        ),
    )
    from tgext.socketio._serving import http

    monkeypatch.setattr(transport, "rejections", transport.RejectionLog(transport.log))
    monkeypatch.setattr(
        http,
        "_bad_requests",
        clientlog.BurstLog(
            http.log,
            http._bad_requests.burst,
            http._bad_requests.window,
            http._bad_requests._summary_format,
        ),
    )
    yield
    # a summary of this test's held lines is not written in a later test's
    for budget in (clientlog.client_lines, transport.rejections._lines, http._bad_requests):
        if budget._summary is not None:
            budget._summary.kill()


@pytest.fixture
def live_server():
    """Factory: ``live_server(app, resource="socketio")`` -> started LiveServer."""
    servers = []

    def start(app, resource="socketio"):
        server = LiveServer(app, resource=resource).start()
        server.app_config = getattr(app, "app_config", None)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def serve(live_server):
    """Factory: serve namespaces on a fresh app; returns the LiveServer.

    ``serve({"pingpong": PingPong}, config={"socketio.ping_interval": 5})``
    """

    def start(
        namespaces, default_namespace=None, mount="socketio", config=None, **attributes
    ):
        controller = controller_for(namespaces, default_namespace, **attributes)
        app = build_app(controller, mount=mount, config=config)
        server = live_server(app, resource=mount)
        server.controller = controller
        return server

    return start


@pytest.fixture
def wait_for():
    """``wait_for(predicate, timeout=5)``: poll cooperatively until true."""

    def wait(predicate, timeout=5, interval=0.01):
        with gevent.Timeout(
            timeout, AssertionError("condition not met in %ss" % timeout)
        ):
            while not predicate():
                gevent.sleep(interval)
        return True

    return wait


@pytest.fixture
def client_factory():
    """Clients made outside a LiveServer (e.g. against gearbox), closed after."""
    clients = []

    def track(client):
        clients.append(client)
        return client

    yield track
    for client in clients:
        with contextlib.suppress(Exception):
            disconnect_client(client)


def memory_mb(pid, field="VmRSS"):
    """A process's ``field`` of /proc/PID/status (``VmHWM``: its peak RSS), in MB."""
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no %s for process %d" % (field, pid))


class RedisProcess:
    """A redis-server of the suite's own on a free loopback port."""

    def __init__(self, workdir):
        import shutil

        self.executable = shutil.which("redis-server")
        assert self.executable, "redis-server is missing: run `make services` (docs/development.rst)"
        self.workdir = workdir
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = "redis://127.0.0.1:%d/0" % self.port
        self.process = None

    def start(self):
        import redis

        self.process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        try:
            with gevent.Timeout(10, AssertionError("redis-server did not start")):
                while True:
                    try:
                        if client.ping():
                            return self
                    except redis.ConnectionError:
                        gevent.sleep(0.05)
        finally:
            client.connection_pool.disconnect()  # redis-py 5.0: close() keeps it

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """The URL of a redis-server of our own (never a shared instance)."""
    server = RedisProcess(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server for one test, which may stop and restart it."""
    server = RedisProcess(tmp_path).start()
    yield server
    server.stop()


# -- sockets left unclosed ------------------------------------------------------
#
# A socket the collector finalizes unclosed raises a ResourceWarning that pytest
# fails the run with, naming neither the socket's owner nor, when it happens
# after the last test, any test. Seen intermittently at the very end of
# whole-suite runs on the lowest versions. So each gevent socket's creation
# is remembered (dropped at close), and the warning names where the socket
# was made. Within a test it still fails that test; after the last one (no
# test running: it leaked earlier and no test's collection found it) it is
# reported in the run's output instead of failing the run.

_socket_origins = {}  # id of an open socket's _socket.socket -> (test, stack)


def _remember_sockets():
    import os
    import traceback

    from gevent import _socket3

    made, closed = _socket3.socket.__init__, _socket3.socket.close

    def init(self, *args, **kwargs):
        made(self, *args, **kwargs)
        _socket_origins[id(self._sock)] = (
            os.environ.get("PYTEST_CURRENT_TEST", "outside any test"),
            "".join(traceback.format_stack(limit=16)[:-1]),
        )

    def close(self, *args, **kwargs):
        _socket_origins.pop(id(getattr(self, "_sock", None)), None)
        return closed(self, *args, **kwargs)

    _socket3.socket.__init__, _socket3.socket.close = init, close


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """The tests that swap CPython's allocator at run time (test_allocator.py,
    the opt-in ``socketio.malloc_above``) run last in their process: what
    runs after them runs on an allocator switched and back."""
    items.sort(key=lambda item: item.path.name == "test_allocator.py")


def pytest_configure(config):
    import os
    import sys

    _remember_sockets()
    forward = sys.unraisablehook  # pytest's: fails the test, or the run
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def hook(unraisable):
        if not isinstance(unraisable.exc_value, ResourceWarning):
            return forward(unraisable)
        test, stack = _socket_origins.pop(
            id(unraisable.object), ("unknown", "(not made as a gevent socket)\n")
        )
        where = "%r, made during %s at:\n%s" % (unraisable.object, test, stack)
        if os.environ.get("PYTEST_CURRENT_TEST"):
            unraisable.exc_value.args = ("%s; %s" % (unraisable.exc_value, where),)
            return forward(unraisable)
        if reporter is not None:
            reporter.write_line(
                "socket left unclosed until the end of the run: " + where
            )

    sys.unraisablehook = hook


# -- a watchdog for hangs ---------------------------------------------------------
#
# With TGEXT_SOCKETIO_WATCHDOG=<seconds>, a native thread writes every
# greenlet's stack to stderr when one test has run that long: pytest-timeout
# shows only the threads', and a test stuck in the hub shows nothing else.


def _start_watchdog(seconds):
    import sys
    import time

    from gevent import util

    start_new_thread = monkey.get_original("_thread", "start_new_thread")
    native_sleep = monkey.get_original("time", "sleep")
    current = {}

    def watch():
        while True:
            native_sleep(1)
            name, started = current.get("test", (None, 0))
            if name is not None and time.monotonic() - started > seconds:
                current.pop("test", None)
                sys.stderr.write("\n=== watchdog: %s ran over %ss ===\n" % (name, seconds))
                sys.stderr.write("\n".join(util.format_run_info()) + "\n")
                sys.stderr.flush()

    start_new_thread(watch, ())
    return current


_watched = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    global _watched
    import os
    import time

    seconds = os.environ.get("TGEXT_SOCKETIO_WATCHDOG")
    if seconds and _watched is None:
        _watched = _start_watchdog(float(seconds))
    if _watched is not None:
        _watched["test"] = (item.nodeid, time.monotonic())
    yield
    if _watched is not None:
        _watched.pop("test", None)
