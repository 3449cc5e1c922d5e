"""The trim pass that follows a wave of closing sessions (tgext.socketio._memory.trimmer)."""

import gc
import sys
import time

import gevent
import pytest

from tgext.socketio._memory import trimmer as memory
from tgext.socketio._serving.session_events import session_events


@pytest.fixture(autouse=True)
def process_trimmer_aside(monkeypatch):
    """The process's trimmer hears no session close during a test here, and
    a trim it had pending (an earlier test's wave) is dropped: its steps
    would mix with those of the trimmer a test makes."""
    monkeypatch.setattr(session_events, "_listeners", ())
    pending = memory.trimmer._pending
    if pending is not None:
        pending.kill()
    monkeypatch.setattr(memory.trimmer, "_pending", None)
    monkeypatch.setattr(memory.trimmer, "_closed_since", 0)


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_free_lists_are_cleared_without_hiding_objects_from_the_collector(unfrozen):
    cycle = []
    cycle.append(cycle)
    memory._clear_free_lists()
    assert gc.get_freeze_count() == 0
    assert gc.is_tracked(cycle)
    del cycle
    assert gc.collect() >= 1  # still the collector's to find


def test_an_application_that_froze_its_objects_keeps_them_frozen(unfrozen):
    gc.freeze()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    memory._clear_free_lists()
    assert gc.get_freeze_count() == frozen


def test_a_trim_pass_runs_every_step(monkeypatch):
    steps = []
    monkeypatch.setattr(memory, "_clear_free_lists", lambda: steps.append("free lists"))
    monkeypatch.setattr(
        memory, "_clear_lookup_cache", lambda: steps.append("lookup cache")
    )
    monkeypatch.setattr(memory, "TRIM_DELAY", 0)
    monkeypatch.setattr(memory, "TRIM_INTERVAL", 0.01)
    trimmer = memory.MemoryTrimmer()
    if trimmer._trim is None:
        pytest.fail("no malloc_trim in this C library: the suite runs on glibc")
    trimmer._trim = lambda pad: steps.append("trim") or 1
    trimmer.session_closed(_Owner())
    trimmer._pending.join(timeout=5)
    assert steps == ["free lists", "lookup cache", "trim"] * 2


def test_the_first_trim_waits_for_the_last_close_of_a_wave(monkeypatch):
    """A wave's greenlets end a few seconds after its last close: trimming
    earlier (and not again) left the process 50% above its start."""
    passes = []
    monkeypatch.setattr(memory, "TRIM_DELAY", 0.3)
    monkeypatch.setattr(memory, "TRIM_INTERVAL", 5)
    trimmer = memory.MemoryTrimmer()
    trimmer._trim = lambda pad: passes.append(time.monotonic()) or 1
    trimmer.session_closed(_Owner())
    gevent.sleep(0.2)
    trimmer.session_closed(_Owner())  # the wave goes on
    deadline = time.monotonic() + 3
    while not passes and time.monotonic() < deadline:
        gevent.sleep(0.05)
    assert passes, "no trim within 3 s"
    # 0.3 s after the second close, not after the first
    assert passes[0] - trimmer._last_close >= 0.3
    trimmer._pending.kill()


class _Owner:
    pass


def test_watched_tables_are_rebuilt_at_their_present_size():
    """A dict or set keeps the table of its largest size when entries go:
    after a wave of clients the sessions' tables held 100-500 KiB each."""
    owner = _Owner()
    owner.sessions = {"sid%d" % number: number for number in range(5000)}
    owner.handlers = set(range(5000))
    sessions, handlers = owner.sessions, owner.handlers
    for number in range(2, 5000):
        del sessions["sid%d" % number]
        handlers.discard(number)
    peak = sys.getsizeof(sessions), sys.getsizeof(handlers)
    trimmer = memory.MemoryTrimmer()
    trimmer._trim = lambda pad: 1
    for name in ("sessions", "handlers", "not_there"):
        trimmer.watch_table(owner, name)
    trimmer._trim_now(0)
    assert owner.sessions is sessions and owner.handlers is handlers  # in place
    assert sessions == {"sid0": 0, "sid1": 1} and list(sessions) == ["sid0", "sid1"]
    assert handlers == {0, 1}
    assert sys.getsizeof(sessions) < peak[0] / 50
    assert sys.getsizeof(handlers) < peak[1] / 50


def test_a_table_owner_that_ends_is_no_longer_watched():
    trimmer = memory.MemoryTrimmer()
    watched = len(trimmer._tables)
    owner = _Owner()
    owner.table = {}
    trimmer.watch_table(owner, "table")
    del owner
    gc.collect()
    trimmer.watch_table(_Owner(), "table")  # the next registration sweeps
    assert len(trimmer._tables) == watched + 1
