"""The boundaries with upstream libraries (tgext.socketio._upstream): what
they rely on exists in the installed versions, a release that renames it is
named at start-up, and no other module touches those names."""

import pathlib
import re
import subprocess
import sys

import pytest
import socketio

import tgext.socketio
from tgext.socketio import _upstream
from tgext.socketio._upstream import (  # noqa: F401 (each declares what it relies on)
    gevent_websocket,
    prometheus_client,
    python_engineio,
    python_socketio,
    tg,
)

PACKAGE_DIR = pathlib.Path(tgext.socketio.__file__).parent


def _label(entry):
    library, _checked, owner, name, _parameters = entry
    return "%s:%s.%s" % (library, getattr(owner, "__name__", owner), name)


@pytest.mark.parametrize("entry", _upstream.RELIED_ON, ids=_label)
def test_what_a_boundary_relies_on_is_in_the_installed_version(entry):
    _upstream.check(*entry)


def test_every_boundary_declares_what_it_relies_on():
    libraries = {entry[0] for entry in _upstream.RELIED_ON}
    assert libraries == {
        "python-socketio",
        "python-engineio",
        "gevent-websocket",
        "gevent",
        "TurboGears2",
        "prometheus-client",
    }


def test_a_renamed_upstream_name_is_named_with_the_versions_checked(monkeypatch):
    entry = next(e for e in _upstream.RELIED_ON if e[3] == "_send_packet")
    monkeypatch.delattr(socketio.Server, "_send_packet")
    with pytest.raises(_upstream.UpstreamChanged) as raised:
        _upstream.check(*entry)
    message = str(raised.value)
    assert "socketio.server.Server._send_packet" in message
    assert "python-socketio 5.12.0-5.18.1" in message


def test_a_changed_signature_is_named(monkeypatch):
    entry = next(e for e in _upstream.RELIED_ON if e[3] == "_handle_event")
    monkeypatch.setattr(
        socketio.Server, "_handle_event", lambda self, eio_sid, namespace, data: None
    )
    with pytest.raises(
        _upstream.UpstreamChanged, match="takes \\(self, eio_sid, namespace, data\\)"
    ):
        _upstream.check(*entry)


def test_a_renamed_upstream_name_stops_the_import_of_the_engine():
    # what a release renaming a private name does to a server starting
    script = (
        "import engineio.socket\n"
        "del engineio.socket.Socket._upgrade_websocket\n"
        "import tgext.socketio._engine.engine\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "UpstreamChanged" in result.stderr
    assert "engineio.socket.Socket._upgrade_websocket" in result.stderr


def test_no_private_upstream_name_outside_the_boundary_modules():
    private = {
        name
        for _library, _checked, _owner, name, _parameters in _upstream.RELIED_ON
        if name.startswith("_") and not name.startswith("__")
    }
    assert "_handle_eio_message" in private
    pattern = re.compile(r"\b(%s)\b" % "|".join(sorted(private)))
    found = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if path.parent.name == "_upstream":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                found.append(
                    "%s:%d: %s" % (path.relative_to(PACKAGE_DIR), number, line)
                )
    assert found == []
