"""Where new Python objects come from (tgext.socketio._memory.allocator), and the
switch to malloc while many sessions are open (tgext.socketio._memory.trimmer), with
a live server and real clients."""

import gc
import logging
import os
import subprocess
import sys
import textwrap
import tracemalloc
import weakref

import gevent
import pytest

from tgext.socketio import BaseNamespace
from tgext.socketio._memory import trimmer as memory
from tgext.socketio._memory.allocator import _CHECKED_VERSIONS, AllocatorSwitch


def small_objects(count):
    return ["%08d" % number for number in range(count)]


def allocator_options():
    """What this test process runs under that the switch must leave alone."""
    return [
        name
        for name, set_ in (
            ("-X dev", sys.flags.dev_mode),
            ("tracemalloc", tracemalloc.is_tracing()),
            ("PYTHONMALLOC", os.environ.get("PYTHONMALLOC")),
        )
        if set_
    ]


#: the CPython versions the switch was checked against (allocator.py), where
#: these tests run; elsewhere the switch is unavailable by design
CHECKED = sys.implementation.name == "cpython" and (
    _CHECKED_VERSIONS[0] <= sys.version_info[:2] <= _CHECKED_VERSIONS[1]
)


@pytest.fixture(autouse=True)
def on_pymalloc():
    """Each test starts on pymalloc: a test with more sessions open than
    ``socketio.malloc_above`` may have switched the process to malloc."""
    if not CHECKED:
        pytest.skip(
            "the allocator switch is for CPython %d.%d-%d.%d only"
            % (*_CHECKED_VERSIONS[0], *_CHECKED_VERSIONS[1])
        )
    if allocator_options():
        pytest.skip("the suite runs under %s" % ", ".join(allocator_options()))
    assert memory.trimmer.allocator.use_pymalloc()


@pytest.fixture
def switch():
    """A switch of the test's own, left on pymalloc."""
    switch = AllocatorSwitch()
    assert switch.available, "CPython 3.10-3.13 with pymalloc: the suite runs on it"
    yield switch
    switch.use_pymalloc()


def test_new_objects_come_from_malloc_until_switched_back(switch):
    """pymalloc counts its blocks (sys.getallocatedblocks); blocks from
    malloc are not counted while they are allocated."""
    gc.collect()
    before = sys.getallocatedblocks()
    assert switch.use_malloc() and switch.using_malloc
    from_malloc = small_objects(100_000)
    assert sys.getallocatedblocks() - before < 1_000
    assert switch.use_pymalloc() and not switch.using_malloc
    before = sys.getallocatedblocks()
    from_pymalloc = small_objects(100_000)
    assert sys.getallocatedblocks() - before > 99_000
    assert from_malloc == from_pymalloc


def test_objects_of_either_allocator_are_freed_and_resized_under_the_other(switch):
    assert switch.use_malloc()
    from_malloc = [small_objects(10), {}, []]
    assert switch.use_pymalloc()
    from_pymalloc = [small_objects(10), {}, []]
    assert switch.use_malloc()
    for held in (from_malloc, from_pymalloc):
        held[1].update(dict.fromkeys(range(1000)))  # resized by the other one
        held[2].extend(range(1000))
    del from_pymalloc
    assert switch.use_pymalloc()
    from_malloc[1].update(dict.fromkeys(range(1000, 5000)))
    assert len(from_malloc[1]) == 5000 and len(from_malloc[2]) == 1000
    del from_malloc
    gc.collect()


@pytest.mark.parametrize("on_malloc", [False, True], ids=["on pymalloc", "on malloc"])
def test_an_allocator_installed_over_it_is_left_alone_while_it_is(
    switch, on_malloc, caplog
):
    """tracemalloc installs its hooks over the allocator: replacing them
    would break it, so nothing is switched until it is gone."""
    assert switch.use_malloc() if on_malloc else True
    tracemalloc.start()
    try:
        assert not (switch.use_pymalloc() if on_malloc else switch.use_malloc())
        assert switch.using_malloc is on_malloc
        assert "an allocator is installed over CPython's" in caplog.text
        traced = tracemalloc.get_traced_memory()[0]
        held = small_objects(10_000)
        assert tracemalloc.get_traced_memory()[0] > traced + 100_000
        del held
    finally:
        tracemalloc.stop()
    assert switch.use_pymalloc() if on_malloc else switch.use_malloc()
    assert switch.using_malloc is not on_malloc


@pytest.mark.parametrize(
    "option", ["-Xdev", "-Xtracemalloc", "-Xutf8"], ids=["dev", "tracemalloc", "plain"]
)
def test_only_plain_pymalloc_is_switched(option):
    """Under debug hooks, tracemalloc or PYTHONMALLOC it does nothing."""
    script = textwrap.dedent(
        """
        from tgext.socketio._memory.allocator import AllocatorSwitch
        switch = AllocatorSwitch()
        print(switch.available, switch.use_malloc(), switch.use_pymalloc())
        """
    )
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("PYTHON")
    }
    result = subprocess.run(
        [sys.executable, option, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
    )
    assert result.returncode == 0, result.stderr
    expected = "True True True" if option == "-Xutf8" else "False False False"
    assert result.stdout.split("\n")[0] == expected


def test_python_malloc_environment_is_left_alone():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tgext.socketio._memory.allocator import AllocatorSwitch; "
            "print(AllocatorSwitch().available)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONMALLOC": "malloc"},
    )
    assert result.stdout.strip() == "False", result.stderr


class Quiet(BaseNamespace):
    def on_add(self, a, b):
        return a + b


@pytest.fixture
def quick_trims(monkeypatch):
    """Trims within a second, counting only the sessions the test opens."""
    trimmer = memory.trimmer
    pending = trimmer._pending  # an earlier test's, waiting its 6 s out
    if pending is not None:
        pending.kill()
    monkeypatch.setattr(trimmer, "_closed_since", 0)
    monkeypatch.setattr(memory, "TRIM_DELAY", 0.2)
    monkeypatch.setattr(memory, "TRIM_INTERVAL", 0.5)
    monkeypatch.setattr(trimmer, "_open", weakref.WeakSet())
    yield trimmer
    trimmer.allocator.use_pymalloc()


def test_past_malloc_above_sessions_objects_come_from_malloc_until_the_wave_left(
    serve, quick_trims, wait_for, caplog, monkeypatch
):
    server = serve({"quiet": Quiet}, config={"socketio.malloc_above": 1000})
    assert quick_trims.malloc_above == 1000  # set by the engine
    quick_trims._open.clear()  # LiveServer's handshake
    above = 3
    monkeypatch.setattr(quick_trims, "malloc_above", above)
    allocator = quick_trims.allocator
    caplog.set_level(logging.INFO, "tgext.socketio.memory")
    clients = [server.connect(namespaces=["/quiet"]) for _ in range(3)]
    assert not allocator.using_malloc
    clients.append(server.connect(namespaces=["/quiet"]))
    assert allocator.using_malloc
    assert (
        "%d sessions open (socketio.malloc_above = %d)" % (above + 1, above)
        in caplog.text
    )
    assert all(
        client.call("add", (1, 2), namespace="/quiet", timeout=5) == 3
        for client in clients
    )
    clients.pop().disconnect()  # 3 left: back once the trims after it ran

    def turnover():  # clients keep coming and going meanwhile, 3 at most
        while True:
            clients.pop().disconnect()
            wait_for(lambda: len(quick_trims._open) < above)
            clients.append(server.connect(namespaces=["/quiet"]))
            gevent.sleep(0.1)

    coming_and_going = gevent.spawn(turnover)
    try:
        wait_for(lambda: not allocator.using_malloc, timeout=5)
    finally:
        coming_and_going.kill()
    assert "sessions open: new objects come from pymalloc" in caplog.text
    assert clients[0].call("add", (2, 2), namespace="/quiet", timeout=5) == 4


def test_malloc_above_off_never_switches(serve, quick_trims):
    server = serve({"quiet": Quiet}, config={"socketio.malloc_above": "off"})
    assert quick_trims.malloc_above is None
    clients = [server.connect(namespaces=["/quiet"]) for _ in range(5)]
    assert clients[-1].call("add", (1, 2), namespace="/quiet", timeout=5) == 3
    assert not quick_trims.allocator.using_malloc
