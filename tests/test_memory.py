"""The trim pass that follows a wave of closing sessions (tgext.socketio.memory)."""

import gc

import pytest

from tgext.socketio import memory


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
    trimmer.session_closed()
    trimmer._pending.join(timeout=5)
    assert steps == ["free lists", "lookup cache", "trim"] * 2
