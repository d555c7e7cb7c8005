"""The shared contract smoke (../shared/contract/smoke.py) against `make run`, as a new user starts it."""

from __future__ import annotations

import subprocess

import pytest

from tests.live import PYTHON, REPO

SMOKE = REPO.parent / "shared" / "contract" / "smoke.py"


@pytest.mark.skipif(not SMOKE.exists(), reason="../shared/contract/smoke.py is not beside this checkout")
def test_contract_smoke_holds_on_make_run():
    done = subprocess.run(
        [PYTHON, str(SMOKE), "--start"], cwd=REPO, capture_output=True, text=True, timeout=900
    )
    print(done.stdout, done.stderr)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skeleton holds" in done.stdout
