"""Start-up: what agentos does to its own interpreter before a run (see agentos.__main__)."""

from __future__ import annotations

import gc
import subprocess
import textwrap

import pytest

from agentos.workflows.parallel.pool import _gc_paused
from conftest import PYTHON, REPO, clean_env


def test_the_cli_runs_with_the_garbage_collector_on_and_the_modules_frozen() -> None:
    """Collection is off only while modules load: a run of many hours must collect its
    garbage, and the modules loaded before it must stay out of every pass."""
    script = textwrap.dedent(
        """
        import gc
        import agentos.cli
        agentos.cli.main = lambda: print(gc.isenabled(), gc.get_freeze_count() > 1000)
        from agentos.__main__ import main
        main()
        """
    )
    done = subprocess.run(
        [PYTHON, "-c", script], cwd=REPO, env=clean_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


@pytest.mark.parametrize("enabled", [True, False])
def test_a_paused_collector_comes_back_as_it_was_even_after_an_error(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        with pytest.raises(ImportError), _gc_paused():
            assert not gc.isenabled()
            raise ImportError("no loky")
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()
