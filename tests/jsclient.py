"""A socket.io-client 4.x client under node (``tests/js/client.js``), driven
by a test: commands as JSON lines on its stdin, what it saw as JSON lines on
its stdout (see the script's header for both)."""

import itertools
import json
import os
import shutil
import subprocess

import gevent
from gevent.queue import Empty, Queue

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
CLIENT_JS = os.path.join(HERE, "js", "client.js")


class JsClient:
    """A running ``tests/js/client.js``: send commands, read what it saw.

    Every line the client writes is kept, in order, in ``messages``; the
    ``wait*`` methods read lines until the one they wait for has arrived.
    """

    def __init__(self, url, transports, path="/socketio", reconnection=False):
        options = {
            "url": url,
            "path": path,
            "transports": transports,
            "reconnection": reconnection,
        }
        self.process = subprocess.Popen(
            [shutil.which("node") or "node", CLIENT_JS, json.dumps(options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=TOP,
        )
        self.messages = []
        self._lines = Queue()
        self._stderr = []
        self._ids = itertools.count(1)
        self._readers = [
            gevent.spawn(self._read_stdout),
            gevent.spawn(self._read_stderr),
        ]

    def _read_stdout(self):
        for line in self.process.stdout:
            self._lines.put(json.loads(line))
        self._lines.put(None)

    def _read_stderr(self):
        for line in self.process.stderr:
            self._stderr.append(line.decode("utf-8", "replace"))

    def send(self, op, **command):
        self.process.stdin.write((json.dumps(dict(command, op=op)) + "\n").encode())
        self.process.stdin.flush()

    def wait(self, predicate, timeout=5, seen=False):
        """Read lines until one satisfies ``predicate``; return it.

        :param seen: look first among the lines already read.
        """
        for message in self.messages if seen else ():
            if predicate(message):
                return message
        with gevent.Timeout(timeout, False):
            while True:
                message = self._lines.get()
                if message is None:
                    break
                self.messages.append(message)
                if predicate(message):
                    return message
        raise AssertionError(
            "client.js did not report what was awaited within %ss; it reported "
            "%s; stderr: %s" % (timeout, self.messages, "".join(self._stderr))
        )

    def wait_for_type(self, type, timeout=5, seen=False):
        return self.wait(lambda message: message["type"] == type, timeout, seen)

    def emit(self, event, *args):
        self.send("emit", event=event, args=list(args))

    def emit_with_ack(self, event, *args):
        """Emit asking for an acknowledgement; return the ack's id."""
        ack_id = next(self._ids)
        self.send("emit", event=event, args=list(args), id=ack_id)
        return ack_id

    def wait_for_ack(self, ack_id, timeout=5):
        message = self.wait(
            lambda message: message["type"] == "ack" and message["id"] == ack_id,
            timeout,
        )
        return message["args"]

    def call(self, event, *args, timeout=5):
        """Emit with an ack callback; return the callback's arguments."""
        return self.wait_for_ack(self.emit_with_ack(event, *args), timeout)

    def events(self, name):
        """The arguments of every ``name`` event read so far, in order."""
        return [
            message["args"]
            for message in self.messages
            if message["type"] == "event" and message["event"] == name
        ]

    def transport(self):
        self.send("status")
        return self.wait_for_type("status")["transport"]

    def pending_lines(self):
        """Lines written but not read yet (without waiting)."""
        lines = []
        while True:
            try:
                message = self._lines.get_nowait()
            except Empty:
                return lines
            if message is not None:
                self.messages.append(message)
                lines.append(message)

    def close(self, timeout=5):
        """Disconnect the client and wait for node to exit (kill it if not)."""
        if self.process.poll() is None:
            try:
                self.send("close")
                self.process.stdin.close()
                self.process.wait(timeout=timeout)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        gevent.joinall(self._readers, timeout=timeout)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            pipe.close()
