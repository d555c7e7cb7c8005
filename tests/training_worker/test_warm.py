"""The warm spare runner: started in its sandbox, taken once, never handed over under other settings."""

from __future__ import annotations

import time

import pytest

from training_worker import warm


@pytest.fixture
def warm_on(settings, tmp_path):
    settings.WARM_RUNNER = True
    settings.DATA_DIR = tmp_path
    yield
    warm.shutdown()


def test_a_spare_is_taken_once_and_only_under_the_settings_it_was_started_with(settings, warm_on) -> None:
    warm.replenish()
    first = warm.take()
    assert first is not None and first.alive()
    assert first.workdir.parent == settings.DATA_DIR / "sessions" and first.workdir.name.startswith("warm-")
    assert warm.take() is None  # taken: the next one comes after the session (replenish)
    first.discard()
    assert not first.workdir.exists()

    warm.replenish()
    spare = warm._spare
    assert spare is not None
    settings.RUNNER_MEMORY_MB = 1234  # the sandbox settings changed: that spare is not for this session
    assert warm.take() is None
    deadline = time.monotonic() + 10
    while spare.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not spare.alive() and not spare.workdir.exists()


def test_no_spare_when_turned_off(settings, tmp_path) -> None:
    settings.DATA_DIR = tmp_path
    warm.replenish()  # WARM_RUNNER is off in tests unless a test turns it on
    assert warm.take() is None and not (tmp_path / "sessions").exists()


def test_a_spare_asked_for_by_a_thread_that_ends_outlives_it(settings, warm_on) -> None:
    """Django runs a request's sync code on a thread that ends with the request (Validate, predict):
    the spare it asks for must not die with that thread (runners die with their spawning thread)."""
    import threading

    asking = threading.Thread(target=warm.replenish)
    asking.start()
    asking.join()
    time.sleep(1.5)  # a runner tied to the ended thread would be gone by now
    spare = warm.take()
    try:
        assert spare is not None and spare.alive()
    finally:
        if spare is not None:
            spare.discard()
