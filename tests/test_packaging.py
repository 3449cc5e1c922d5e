"""Packaging: the entry point, the tgext namespace shared with other tgext.*
distributions, import-time guarantees and refusals, each in a fresh process."""
import subprocess
import sys
from importlib import metadata

import pytest


def run_python(code, env=None):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)


def test_paste_server_runner_entry_point_resolves():
    (entry_point,) = [
        entry for entry in metadata.entry_points(group="paste.server_runner")
        if entry.name == "socketio" and entry.value.startswith("tgext.socketio")
    ]
    assert entry_point.value == "tgext.socketio.server:socketio_server_runner"
    from tgext.socketio.server import socketio_server_runner

    assert entry_point.load() is socketio_server_runner


def test_tgext_namespace_coexists_with_another_tgext_distribution():
    assert metadata.distribution("tgext.pluggable")  # installed by the testing extra
    result = run_python(
        "import tgext.pluggable, tgext.socketio; "
        "print(tgext.socketio.SocketIOController.__name__, tgext.pluggable.plug.__name__)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["SocketIOController", "plug"]


def test_importing_the_package_does_not_import_tg():
    result = run_python("import sys, tgext.socketio; print('tg' in sys.modules)")
    assert result.stdout.strip() == "False", result.stderr


def test_public_names_are_exported():
    import tgext.socketio

    for name in tgext.socketio.__all__:
        assert getattr(tgext.socketio, name) is not None


def test_server_refuses_tg_imported_before_gevent_patched():
    result = run_python(
        "import tg\n"
        "from tgext.socketio.server import check_monkey_patching\n"
        "check_monkey_patching()\n"
    )
    assert result.returncode != 0
    assert "MonkeyPatchError: TurboGears was imported before gevent patched" in (
        result.stderr)
    assert "gearbox serve -c development.ini" in result.stderr


def test_dead_gevent_socketio_installed_is_refused_with_the_fix(tmp_path):
    dist_info = tmp_path / "gevent_socketio-0.3.6.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: gevent-socketio\nVersion: 0.3.6\n")
    import os

    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    result = run_python("import tgext.socketio", env=env)
    assert result.returncode != 0
    assert "ImportError: gevent-socketio is installed" in result.stderr
    assert "pip uninstall gevent-socketio" in result.stderr


def test_version_sorts_after_the_python_2_release():
    from packaging.version import Version

    assert Version(metadata.version("tgext.socketio")) > Version("0.0.3")


def test_gunicorn_worker_module_imports_neither_tg_nor_the_patching_runner():
    # gunicorn imports the worker class in its master process
    result = run_python(
        "import sys, gevent.monkey, tgext.socketio.gunicorn; "
        "print('tg' in sys.modules, gevent.monkey.is_module_patched('socket'))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_version_is_the_distribution_version():
    import tgext.socketio

    # a constant (setup.py reads it), so an out-of-date install shows here
    assert tgext.socketio.__version__ == metadata.version("tgext.socketio")


@pytest.mark.parametrize("missing", ["requests", "websocket"])
def test_testing_helper_without_its_extra_names_the_fix(missing):
    # None in sys.modules makes `import <missing>` fail as if not installed
    result = run_python(
        "import sys; sys.modules[%r] = None\nimport tgext.socketio.testing" % missing
    )
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(
        "ImportError: tgext.socketio.testing needs requests and websocket-client ("
    ), result.stderr
    assert last_line.endswith(
        'install them with the testing extra: pip install "tgext.socketio[testing]"'
    )
