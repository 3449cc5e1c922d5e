"""A release installs (SPEC §8): the sdist and the wheel, built as a release
is built, hold what they must, pass ``twine check --strict``, install in a
fresh virtualenv, and the example and the test command run from the
unpacked sdist.

What is built is the developer's working tree as git sees it: the files
``git ls-files --cached --others --exclude-standard`` lists (edits not yet
committed count; git-ignored leftovers do not), copied to a temporary folder
beside a few such leftovers that MANIFEST.in must keep out.

One virtualenv per run of this module (its fixtures are module-scoped): the
wheel is installed there alone and imported; then ``make venv`` from the
unpacked sdist installs the test extras into it, for the example and the
test command. From the sdist the test command runs one small module, not the
whole suite, which would double the suite's time.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest
import socketio

from .test_example_page import Process, free_port

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: the built-in timeout (60 s) is per test; the first test here pays for the
#: builds (~10 s), the virtualenv (~20 s) and ``make venv`` (~30 s)
#: one process of a parallel run (pytest-xdist, --dist loadgroup) runs every
#: test here: the module-scoped builds and venv are made once, not per process
#: the release installs PyPI's newest versions whatever venv runs this:
#: make test runs it in the newest versions' run only (marker "release")
pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.xdist_group("release"),
    pytest.mark.release,
]

#: socket.io-client's browser bundle, fetched by setup_client.py into the
#: package (git-ignored): in the sdist and, as package data, in the wheel
CLIENT_BUNDLE = {
    "socket.io.js",
    "socket.io.js.map",
    "socket.io.min.js",
    "socket.io.min.js.map",
    "socket.io.LICENSE",
    "socket.io-client.json",
}
#: files of the build's own that the sdist adds to the source
SDIST_METADATA = re.compile(r"^(PKG-INFO|setup\.cfg|tgext\.socketio\.egg-info/.*)$")
#: what builds, runs and tools leave in a checkout; never in the sdist
JUNK = re.compile(
    r"(^|/)(\.gitignore|__pycache__/.*|.*\.py[cod]|node_modules/.*|\.venv[^/]*/.*"
    r"|\.hypothesis/.*|\.pytest_cache/.*)$"
    r"|^(docs/_build|bench/results)/"
)
#: leftovers put into the copy that is built (a developer's tree has them)
LEFTOVERS = [
    "tests/__pycache__/conftest.cpython-311.pyc",
    "tests/.hypothesis/examples/0123",
    "docs/_build/html/index.html",
    "bench/results/run.json",
    "bench/node_modules/socket.io-client/package.json",
    "node_modules/socket.io-client/package.json",
    ".venv/pyvenv.cfg",
]
#: the public names of SPEC §3 and the paste entry point, from a fresh process
IMPORT_PROBE = """
import json
from importlib import metadata, resources

from tgext.socketio.server import socketio_server_runner
from tgext.socketio import (SocketIOController, SocketIOTGNamespace, BaseNamespace,
    BroadcastMixin, RoomsMixin, emit, participants, plugme, __version__)
from tgext.socketio.pubsub import PubSubTGNamespace
import tgext.socketio

(entry_point,) = [entry for entry in metadata.entry_points(group="paste.server_runner")
                  if entry.name == "socketio"]
static = resources.files("tgext.socketio") / "static"
print(json.dumps({
    "version": __version__,
    "distribution_version": metadata.version("tgext.socketio"),
    "entry_point": entry_point.value,
    "entry_point_loads_the_runner": entry_point.load() is socketio_server_runner,
    "package_file": tgext.socketio.__file__,
    "static": sorted(item.name for item in static.iterdir()),
}))
"""


def run(args, timeout=300, **options):
    """Run a command; fail with its output unless it exits with 0."""
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, **options
    )
    assert result.returncode == 0, "%s exited with %s:\n%s\n%s" % (
        " ".join(map(str, args)), result.returncode, result.stdout, result.stderr)
    return result


def git_files():
    """The working tree's files as git lists them (tracked or not ignored)."""
    listed = run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=TOP,
    ).stdout.split("\0")
    return sorted({path for path in listed if os.path.isfile(os.path.join(TOP, path))})


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A copy of the working tree's git files, plus LEFTOVERS; its file list."""
    copy = tmp_path_factory.mktemp("release") / "src"
    files = git_files()
    for path in files + LEFTOVERS:
        target = copy / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if path in files:
            shutil.copy2(os.path.join(TOP, path), target)
        else:
            target.write_text("left over\n")
    return copy, files


@pytest.fixture(scope="module")
def dists(source):
    """``python -m build``: the sdist, then the wheel built from that sdist."""
    copy, _files = source
    outdir = copy.parent / "dist"
    run([sys.executable, "-m", "build", "--outdir", str(outdir), str(copy)])
    (sdist,) = outdir.glob("*.tar.gz")
    (wheel,) = outdir.glob("*.whl")
    return sdist, wheel


@pytest.fixture(scope="module")
def sdist_members(dists):
    """{path inside the sdist's top folder: tarfile member}."""
    sdist, _wheel = dists
    with tarfile.open(sdist) as archive:
        members = [member for member in archive.getmembers() if member.isfile()]
    top = sdist.name[: -len(".tar.gz")] + "/"
    assert all(member.name.startswith(top) for member in members)
    return {member.name[len(top):]: member for member in members}


@pytest.fixture(scope="module")
def venv(dists, tmp_path_factory):
    """A fresh virtualenv with the wheel alone installed, and what
    IMPORT_PROBE found there (before anything else is installed into it)."""
    _sdist, wheel = dists
    path = tmp_path_factory.mktemp("venv") / "venv"
    run([sys.executable, "-m", "venv", str(path)])
    python = str(path / "bin" / "python")
    run([python, "-m", "pip", "install", "--quiet", str(wheel)], timeout=600)
    # outside the checkout, so only the installed package can be imported
    probe = run([python, "-c", IMPORT_PROBE], cwd=str(path), timeout=60)
    return path, json.loads(probe.stdout)


@pytest.fixture(scope="module")
def unpacked(dists, venv):
    """The sdist unpacked, with ``make venv`` run there into the fresh
    virtualenv (as the README's commands do in a checkout)."""
    sdist, _wheel = dists
    folder = sdist.parent.parent / "unpacked"
    with tarfile.open(sdist) as archive:
        archive.extractall(folder, filter="tar")
    (tree,) = folder.iterdir()
    run(["make", "-s", "venv", "VENV=%s" % venv[0], "PYTHON=%s" % sys.executable],
        cwd=str(tree), timeout=600)
    return tree


def test_sdist_holds_every_file_git_lists_and_no_leftovers(source, sdist_members):
    _copy, files = source
    shipped = set(sdist_members)
    missing = {path for path in files if not JUNK.search(path)} - shipped
    assert not missing, "MANIFEST.in leaves out: %s" % sorted(missing)
    assert not [path for path in LEFTOVERS if path in shipped]
    extra = {path for path in shipped - set(files) if not SDIST_METADATA.match(path)}
    assert extra == {"tgext/socketio/static/" + name for name in CLIENT_BUNDLE}


def test_sdist_holds_what_the_example_and_the_test_command_need(sdist_members):
    for path in [
        "examples/pingpong/run", "examples/pingpong/app.py",
        "examples/pingpong/development.ini", "examples/pingpong/templates/index.xhtml",
        "examples/pingpong/public/pingpong.js", "Makefile", "package.json",
        "package-lock.json", "constraints/lowest.txt", "pytest.ini", "setup_client.py",
        "tests/conftest.py", "tests/test_release.py", "tests/js/client.js",
        "docs/conf.py", "docs/index.rst",
    ]:
        assert path in sdist_members, path
    for script in ["examples/pingpong/run", "examples/chat/run", ".ci/run"]:
        assert sdist_members[script].mode & 0o111, "%s is not executable" % script


def test_wheel_holds_the_package_and_the_client_bundle(source, dists):
    _copy, files = source
    _sdist, wheel = dists
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (dist_info,) = {name.split("/")[0] for name in names if ".dist-info/" in name}
        entry_points = archive.read(dist_info + "/entry_points.txt").decode()
        metadata = archive.read(dist_info + "/METADATA").decode().splitlines()
    modules = {path for path in files if re.match(r"tgext/socketio/.*\.py$", path)}
    assert modules <= names
    assert {"tgext/socketio/static/" + name for name in CLIENT_BUNDLE} <= names
    # tgext is a namespace shared with the other tgext.* distributions
    assert "tgext/__init__.py" not in names
    assert not [name for name in names if name.startswith(("tests/", "examples/"))]
    assert "socketio = tgext.socketio.server:socketio_server_runner" in entry_points
    assert "Requires-Python: >=3.10" in metadata
    assert "Classifier: Programming Language :: Python :: 3.13" in metadata
    project_urls = [line.split(": ", 1)[1].split(",")[0] for line in metadata
                    if line.startswith("Project-URL: ")]
    assert project_urls == ["Documentation", "Changes", "Source", "Issue tracker"]


def test_twine_check_passes_strict(dists):
    result = run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dists)])
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_wheel_installs_and_imports_every_public_name(dists, venv):
    _sdist, wheel = dists
    path, found = venv
    wheel_version = wheel.name.split("-")[1]
    assert found["version"] == found["distribution_version"] == wheel_version
    assert found["entry_point"] == "tgext.socketio.server:socketio_server_runner"
    assert found["entry_point_loads_the_runner"]
    assert found["package_file"].startswith(str(path))
    assert CLIENT_BUNDLE <= set(found["static"])


def test_example_from_the_sdist_answers_ping(unpacked, venv):
    example = unpacked / "examples" / "pingpong"
    port = free_port()
    # what examples/pingpong/run starts, with the fresh virtualenv's gearbox
    server = Process(
        [str(venv[0] / "bin" / "gearbox"), "serve", "-c", "development.ini",
         "http_port=%d" % port],
        cwd=str(example), env=dict(os.environ, PYTHONPATH=str(example)),
    )
    client = socketio.SimpleClient()
    try:
        server.wait_for_line(r"serving Socket\.IO at http://127\.0\.0\.1:%d/" % port, 60)
        client.connect("http://127.0.0.1:%d" % port, namespace="/pingpong",
                       socketio_path="socketio", wait_timeout=10)
        client.emit("ping", {"type": "ping"})
        assert client.receive(timeout=10) == ["pong", {"sound": "pong"}]
    finally:
        client.disconnect()
        server.stop()


def test_test_command_runs_from_the_sdist(unpacked, venv):
    # one small module: the whole suite from the sdist would double CI's time
    result = run(
        ["make", "-s", "test-latest", "VENV=%s" % venv[0], "PYTHON=%s" % sys.executable,
         "PYTEST_ARGS=-q -p no:cacheprovider tests/test_config.py",
         "PYTEST_PARALLEL="],
        cwd=str(unpacked), timeout=600,
    )
    assert re.search(r"\b\d+ passed\b", result.stdout), result.stdout


def test_the_version_is_the_release(venv):
    # 0.0.3 is the Python 2 release; CHANGES.rst names the version
    version = venv[1]["version"]
    with open(os.path.join(TOP, "CHANGES.rst"), encoding="utf-8") as changes:
        assert re.search(r"(?m)^%s \(" % re.escape(version), changes.read())
