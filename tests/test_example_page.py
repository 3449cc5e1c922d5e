"""The ping-pong example as a user runs it: ``examples/pingpong/run``, then
its page in headless Chromium, clicked through the DevTools protocol.

The page must work offline: socket.io-client is the bundle tgext.socketio
serves under the resource (``/socketio/socket.io.min.js``), loaded by a browser
that can reach nothing but 127.0.0.1.
"""
import base64
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess

import gevent
import pytest
import websocket
from gevent.event import AsyncResult

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
EXAMPLE = os.path.join(TOP, "examples", "pingpong")

#: flags for a quiet, offline, throw-away headless Chromium
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--remote-debugging-port=0",
    # offline even where there is a network: only 127.0.0.1 is reachable (no
    # name resolves; an address goes to a proxy that refuses, but loopback)
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
]
#: seconds for the run command to serve: it may have to `make venv` first
START_TIMEOUT = 120
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Process:
    """A subprocess in its own process group, its output read line by line.

    ``wait_for_line(pattern)`` returns the first match of ``pattern`` in a line
    of output, waiting for it; ``stop()`` ends the whole process group.
    """

    def __init__(self, args, stream="stdout", **popen_options):
        popen_options[stream] = subprocess.PIPE
        if stream == "stdout":
            popen_options.setdefault("stderr", subprocess.STDOUT)
        self.popen = subprocess.Popen(args, start_new_session=True, **popen_options)
        self.lines = []
        self._waiting = []  # (compiled pattern, AsyncResult)
        self._pipe = getattr(self.popen, stream)
        self._reader = gevent.spawn(self._read, self._pipe)

    def _read(self, pipe):
        for raw in pipe:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            for pattern, result in list(self._waiting):
                match = pattern.search(line)
                if match:
                    self._waiting.remove((pattern, result))
                    result.set(match)
        for _pattern, result in self._waiting:
            result.set(None)  # the process closed its output

    def wait_for_line(self, pattern, timeout):
        pattern = re.compile(pattern)
        for line in self.lines:
            if pattern.search(line):
                return pattern.search(line)
        result = AsyncResult()
        self._waiting.append((pattern, result))
        try:
            match = None if self._reader.dead else result.get(timeout=timeout)
        except gevent.Timeout:
            match = None
        if match is None:
            raise AssertionError(
                "%s did not write %r within %ss (exit status %s); it wrote:\n%s"
                % (self.popen.args[0], pattern.pattern, timeout, self.popen.poll(),
                   self.output())
            )
        return match

    def output(self):
        return "\n".join(self.lines)

    def stop(self, timeout=10):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(timeout=timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        self._reader.join(timeout=timeout)
        self._pipe.close()


@pytest.fixture
def example_url():
    """``PORT=<free port> examples/pingpong/run``; yields the server's URL."""
    port = free_port()
    server = Process(
        [os.path.join(EXAMPLE, "run")], cwd=TOP, env=dict(os.environ, PORT=str(port))
    )
    try:
        server.wait_for_line(
            r"serving Socket\.IO at http://127\.0\.0\.1:%d/socketio" % port, START_TIMEOUT
        )
        yield "http://127.0.0.1:%d" % port
    finally:
        server.stop()


class DevTools:
    """A DevTools protocol connection to a browser (websocket-client).

    ``send`` returns the result of one command; the events received meanwhile
    are kept in ``events``, in order, and ``wait_for_event`` reads on until
    one matches.
    """

    def __init__(self, url, timeout=10):
        self.timeout = timeout
        self.connection = websocket.create_connection(
            url, timeout=timeout, suppress_origin=True
        )
        self.events = []
        self._ids = itertools.count(1)

    def _receive(self):
        message = json.loads(self.connection.recv())
        if "method" in message:
            self.events.append(message)
        return message

    def send(self, method, session_id=None, **params):
        message_id = next(self._ids)
        command = {"id": message_id, "method": method, "params": params}
        if session_id is not None:
            command["sessionId"] = session_id
        self.connection.send(json.dumps(command))
        with gevent.Timeout(self.timeout, AssertionError("no reply to %s" % method)):
            while True:
                message = self._receive()
                if message.get("id") == message_id:
                    break
        if "error" in message:
            raise AssertionError("%s failed: %s" % (method, message["error"]))
        return message["result"]

    def wait_for_event(self, predicate, timeout=10):
        for event in self.events:
            if predicate(event):
                return event
        error = AssertionError("no such DevTools event in %ss; got %s" % (
            timeout, [event["method"] for event in self.events]))
        with gevent.Timeout(timeout, error):
            while True:
                event = self._receive()
                if "method" in event and predicate(event):
                    return event

    def close(self):
        self.connection.close()


class Page:
    """A browser tab, driven through a flattened DevTools session."""

    def __init__(self, devtools, url):
        self.devtools = devtools
        target = devtools.send("Target.createTarget", url="about:blank")
        self.session_id = devtools.send(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            self.send(domain + ".enable")
        self.send("Page.navigate", url=url)
        self.wait_for_event("Page.loadEventFired")

    def send(self, method, **params):
        return self.devtools.send(method, self.session_id, **params)

    def events(self, method):
        return [
            event["params"] for event in self.devtools.events
            if event["method"] == method and event.get("sessionId") == self.session_id
        ]

    def wait_for_event(self, method, predicate=lambda params: True, timeout=10):
        return self.devtools.wait_for_event(
            lambda event: event["method"] == method
            and event.get("sessionId") == self.session_id
            and predicate(event["params"]),
            timeout,
        )["params"]

    def evaluate(self, expression):
        """The value of ``expression`` in the page (awaited if a promise)."""
        reply = self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True,
            returnByValue=True,
        )
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            raise AssertionError(details.get("exception", {}).get("description", details))
        return reply["result"].get("value")

    def wait_until(self, condition, timeout=5):
        """Wait in the page until the JavaScript ``condition`` holds."""
        return self.evaluate(
            """new Promise((resolve, reject) => {
                 const deadline = Date.now() + %d;
                 (function check() {
                   const value = (%s);
                   if (value) return resolve(value);
                   if (Date.now() > deadline) {
                     return reject(new Error("timed out waiting for %s; page: "
                                             + document.body.innerText));
                   }
                   setTimeout(check, 20);
                 })();
               })""" % (timeout * 1000, condition, json.dumps(condition)[1:-1])
        )

    def click(self, selector):
        """Click the middle of the element with the mouse, as a user would."""
        box = self.evaluate(
            """(() => { const box = document.querySelector(%s).getBoundingClientRect();
                        return {x: box.x + box.width / 2, y: box.y + box.height / 2}; })()"""
            % json.dumps(selector)
        )
        for event_type in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent", type=event_type, x=box["x"], y=box["y"],
                button="left", clickCount=1,
            )

    def screenshot(self):
        return base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium; yields ``open(url)`` -> a loaded Page."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed; 'make services' installs it")
    process = Process(
        [chromium, *CHROMIUM_FLAGS, "--user-data-dir=%s" % (tmp_path / "chromium"),
         "about:blank"],
        stream="stderr", stdout=subprocess.DEVNULL,
    )
    devtools = None
    try:
        url = process.wait_for_line(r"DevTools listening on (ws://\S+)", 30).group(1)
        devtools = DevTools(url)
        yield lambda page_url: Page(devtools, page_url)
    finally:
        if devtools is not None:
            devtools.close()
        process.stop()


RESULT_LINES = "Array.from(document.querySelectorAll('#result div'), row => row.textContent)"


def test_example_page_pings_and_fireballs_in_chromium(example_url, browser, tmp_path):
    page = browser(example_url + "/socketio/page")
    page.wait_until("document.getElementById('status').textContent === 'connected'")

    page.click('a[data-attack="ping"]')
    assert page.wait_until("%s.length >= 1 && %s" % (RESULT_LINES, RESULT_LINES)) == ["pong"]
    page.click('a[data-attack="fireball"]')
    page.wait_until("%s.length >= 11" % RESULT_LINES)
    # The server handles a client's events in order: once the next ping's pong
    # shows, no 11th bang! can follow.
    page.click('a[data-attack="ping"]')
    page.wait_until("%s.length >= 12" % RESULT_LINES)
    assert page.evaluate(RESULT_LINES) == ["pong"] + ["bang!"] * 10 + ["pong"]

    # polling first, then the upgrade to WebSocket (the client's "5" packet)
    page.wait_for_event("Network.webSocketFrameSent",
                        lambda params: params["response"]["payloadData"] == "5")
    requested = [event["request"]["url"] for event in page.events("Network.requestWillBeSent")]
    requested += [event["url"] for event in page.events("Network.webSocketCreated")]
    assert example_url + "/socketio/socket.io.min.js" in requested
    assert [url for url in requested if not url.startswith(
        (example_url + "/", example_url.replace("http", "ws", 1) + "/"))] == []
    assert page.events("Runtime.exceptionThrown") == []

    screenshot = tmp_path / "pingpong.png"
    screenshot.write_bytes(page.screenshot())
    assert screenshot.stat().st_size > len(PNG_SIGNATURE)
    assert screenshot.read_bytes().startswith(PNG_SIGNATURE)
