"""setup_client.py, which fetches the served socket.io-client bundle at
build time: a tarball the lockfile does not pin is refused and nothing is
extracted (small tarballs made here, no network); a wheel built from the
sdist carries the bundle without fetching it."""

import base64
import hashlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

from tgext.socketio._serving import client_bundle

from .test_client_bundle import FILES, TOP, bundle_file


def load_setup_client():
    spec = importlib.util.spec_from_file_location(
        "setup_client", os.path.join(TOP, "setup_client.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


setup_client = load_setup_client()


def make_tarball(members):
    """A gzipped npm-style tarball holding ``{path: bytes}``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, body in members.items():
            info = tarfile.TarInfo(path)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def sri(data):
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fake_package(version="4.8.4"):
    members = {
        member: ("/* %s */\n" % member).encode() for member in setup_client.MEMBERS
    }
    members["package/dist/socket.io.min.js"] = (
        b"/*!\n * Socket.IO v%s\n */\n" % version.encode()
    )
    return make_tarball(members)


def write_lockfile(path, version, integrity):
    entry = {"version": version, "integrity": integrity}
    path.write_text(json.dumps({"packages": {"node_modules/socket.io-client": entry}}))
    return str(path)


@pytest.fixture
def registry(monkeypatch):
    """The tarball setup_client.download returns (no network); counts calls."""
    served = {"tarball": fake_package(), "calls": 0}

    def download(version, workdir):
        served["calls"] += 1
        return served["tarball"]

    monkeypatch.setattr(setup_client, "download", download)
    return served


def test_fetch_refuses_a_tarball_the_lockfile_does_not_pin(registry, tmp_path):
    lockfile = write_lockfile(tmp_path / "lock.json", "4.8.4", sri(b"another tarball"))
    static = tmp_path / "static"
    with pytest.raises(setup_client.ClientFetchError) as refused:
        setup_client.ensure_client(str(static), lockfile)
    message = str(refused.value)
    assert message.startswith(
        "the socket.io-client 4.8.4 tarball does not match package-lock.json: "
        "expected %s, got %s; nothing was extracted"
        % (sri(b"another tarball"), sri(registry["tarball"]))
    )
    assert "python setup_client.py --force" in message
    assert not static.exists()
    assert [path.name for path in tmp_path.iterdir()] == ["lock.json"]


def test_fetch_refuses_integrity_other_than_sha512(registry, tmp_path):
    lockfile = write_lockfile(tmp_path / "lock.json", "4.8.4", "sha1-AAAA")
    with pytest.raises(setup_client.ClientFetchError, match="only sha512 integrity"):
        setup_client.ensure_client(str(tmp_path / "static"), lockfile)
    assert not (tmp_path / "static").exists()


def test_fetch_extracts_a_matching_tarball_and_records_it(registry, tmp_path):
    lockfile = write_lockfile(tmp_path / "lock.json", "4.8.4", sri(registry["tarball"]))
    static = tmp_path / "static"
    record = setup_client.ensure_client(str(static), lockfile)
    assert sorted(os.listdir(static)) == sorted(
        list(setup_client.MEMBERS.values()) + ["socket.io-client.json"]
    )
    assert (static / "socket.io.LICENSE").read_bytes() == b"/* package/LICENSE */\n"
    assert record["version"] == "4.8.4"
    assert json.loads((static / "socket.io-client.json").read_text()) == record
    # up to date: nothing fetched again
    assert setup_client.ensure_client(str(static), lockfile) == record
    assert registry["calls"] == 1


def test_fetch_again_when_the_lockfile_pins_another_version(registry, tmp_path):
    static = str(tmp_path / "static")
    lockfile = write_lockfile(tmp_path / "lock.json", "4.8.4", sri(registry["tarball"]))
    setup_client.ensure_client(static, lockfile)
    registry["tarball"] = fake_package("4.8.5")
    lockfile = write_lockfile(tmp_path / "lock.json", "4.8.5", sri(registry["tarball"]))
    assert setup_client.ensure_client(static, lockfile)["version"] == "4.8.5"
    assert registry["calls"] == 2
    with open(os.path.join(static, "socket.io.min.js"), "rb") as min_js:
        assert b"Socket.IO v4.8.5" in min_js.read()


def test_fetch_again_when_a_file_was_altered(registry, tmp_path):
    static = tmp_path / "static"
    lockfile = write_lockfile(tmp_path / "lock.json", "4.8.4", sri(registry["tarball"]))
    setup_client.ensure_client(str(static), lockfile)
    (static / "socket.io.js").write_bytes(b"alert('altered')")
    setup_client.ensure_client(str(static), lockfile)
    assert (
        static / "socket.io.js"
    ).read_bytes() == b"/* package/dist/socket.io.js */\n"
    assert registry["calls"] == 2


def test_fetch_refuses_a_tarball_without_the_browser_bundle(registry, tmp_path):
    registry["tarball"] = make_tarball({"package/package.json": b"{}"})
    lockfile = write_lockfile(tmp_path / "lock.json", "4.8.4", sri(registry["tarball"]))
    with pytest.raises(setup_client.ClientFetchError, match="tarball lacks"):
        setup_client.ensure_client(str(tmp_path / "static"), lockfile)
    assert not (tmp_path / "static").exists()


def test_unreadable_lockfile_names_the_fix(tmp_path):
    with pytest.raises(setup_client.ClientFetchError, match="npm install"):
        setup_client.locked_version(str(tmp_path / "missing.json"))


def test_wheel_build_from_the_sdist_carries_the_bundle_offline(tmp_path):
    """sdist, then build_py in the unpacked sdist with no npm and no network."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=TOP,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    source = tmp_path / "source"
    for name in [path for path in listed if path] + [
        "tgext/socketio/static/" + name for name in os.listdir(client_bundle.STATIC_DIR)
    ]:
        if os.path.isfile(os.path.join(TOP, name)):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            with open(os.path.join(TOP, name), "rb") as original:
                (source / name).write_bytes(original.read())
    offline = dict(
        os.environ,
        PATH=os.path.dirname(sys.executable),  # no npm
        https_proxy="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
    )

    def setup_py(*args, cwd):
        result = subprocess.run(
            [sys.executable, "setup.py", "-q", *args],
            cwd=cwd,
            env=offline,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result

    setup_py("sdist", "--dist-dir", str(tmp_path / "dist"), cwd=source)
    (sdist,) = (tmp_path / "dist").iterdir()
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        names = {name.split("/", 1)[-1] for name in tar.getnames()}
        # the "data" filter where Python has it (3.12+ warns without one)
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(tmp_path / "unpacked", **safe)
    expected = {
        "tgext/socketio/static/" + name for name in [*FILES, "socket.io-client.json"]
    }
    assert expected <= names
    assert {"setup_client.py", "package-lock.json"} <= names
    unpacked = tmp_path / "unpacked" / top
    built = tmp_path / "lib"
    result = setup_py("build_py", "--build-lib", str(built), cwd=unpacked)
    assert "fetching" not in result.stdout + result.stderr
    for name in [*FILES, "socket.io-client.json"]:
        assert (built / "tgext/socketio/static" / name).read_bytes() == bundle_file(
            name
        )
