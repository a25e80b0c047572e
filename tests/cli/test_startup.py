"""Start-up: what agentos does to its own interpreter before a run (see agentos.__main__)."""

from __future__ import annotations

import gc
import subprocess
import textwrap
from pathlib import Path

import pytest
from support.processes import PYTHON, REPO, clean_env

from agentos.engine.backends.loky import _gc_paused


def test_the_cli_runs_with_the_garbage_collector_on_and_the_modules_frozen() -> None:
    """Collection is off only while modules load: a run of many hours must collect its
    garbage, and the modules loaded before it must stay out of every pass."""
    script = textwrap.dedent(
        """
        import gc
        import agentos.commands.cli
        agentos.commands.cli.main = lambda: print(gc.isenabled(), gc.get_freeze_count() > 1000)
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


# ---- exit: agentos.commands.quick_exit

_QUICK_EXIT_PROGRAM = textwrap.dedent(
    """
    import atexit, os, sys
    from agentos.commands import quick_exit

    quick_exit.install()
    marker = sys.argv[1]
    atexit.register(lambda: open(marker + ".atexit", "w").write("ran"))

    teardown = os.open(marker + ".teardown", os.O_WRONLY | os.O_CREAT)

    class Teardown:  # freed only by the interpreter's teardown
        def __del__(self, write=os.write, fd=teardown):
            write(fd, b"ran")

    kept = Teardown()
    sys.stdout.write("a partial line, still in the buffer")
    code = sys.argv[2]
    quick_exit.exiting_with(int(code) if code.isdigit() else code)
    sys.exit(int(code) if code.isdigit() else code)
    """
)


def _quick_exit(tmp_path: Path, code: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    marker = tmp_path / "marker"
    done = subprocess.run(
        [PYTHON, "-c", _QUICK_EXIT_PROGRAM, str(marker), code],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    return done, marker


def test_quick_exit_keeps_the_code_the_output_and_every_atexit_handler(tmp_path: Path) -> None:
    done, marker = _quick_exit(tmp_path, "3")
    assert done.returncode == 3
    assert done.stdout == "a partial line, still in the buffer"  # flushed through a pipe
    assert (marker.parent / "marker.atexit").read_text() == "ran"  # registered after install
    # what it skips: the teardown that frees every module's objects
    assert (marker.parent / "marker.teardown").read_text() == ""


def test_without_a_numeric_code_the_normal_exit_runs(tmp_path: Path) -> None:
    done, marker = _quick_exit(tmp_path, "stopped")  # sys.exit("message"): Python's own rules
    assert done.returncode == 1
    assert "stopped" in done.stderr
    assert (marker.parent / "marker.atexit").read_text() == "ran"
    assert (marker.parent / "marker.teardown").read_text() == "ran"


def test_a_run_loads_no_module_it_does_not_use(tmp_path: Path) -> None:
    """A small run's start-up is mostly importing: colours (colorama) only on a terminal, no
    OpenSSL (hashlib, hmac: via secrets) for item keys and the listener's token, none of the
    patterns that read a provider's answer (a command run has no provider)."""
    items = tmp_path / "items.txt"
    items.write_text("a\nb\n")
    script = textwrap.dedent(
        """
        import atexit, sys
        from agentos.commands import quick_exit
        quick_exit.install()  # the same as main() does; ours runs before it leaves
        unwanted = ("colorama", "secrets", "hmac", "_hashlib", "agentos.item.refusals")
        atexit.register(lambda: print("loaded:", *[m for m in unwanted if m in sys.modules]))
        from agentos.__main__ import main
        main()
        """
    )
    argv = ["run", "-j2", "-q", "--run-dir", str(tmp_path / "run"), "--items", str(items)]
    done = subprocess.run(
        [PYTHON, "-c", script, *argv, "--", "true"],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loaded:"


def test_every_dataclass_has_its_own_docstring() -> None:
    """Without one, defining the class makes one from `inspect.signature` at every start-up
    (docs/architecture.md, Start-up); with one, a reader learns what the record is."""
    script = textwrap.dedent(
        """
        import dataclasses, importlib, pkgutil
        made = []
        define = dataclasses._process_class
        def noting(cls, *args, **kwargs):
            made.append((cls, cls.__dict__.get("__doc__")))
            return define(cls, *args, **kwargs)
        dataclasses._process_class = noting
        import agentos
        for module in pkgutil.walk_packages(agentos.__path__, "agentos."):
            importlib.import_module(module.name)
        print(len(made))
        for cls, doc in made:
            if cls.__module__.startswith("agentos") and not doc:
                print(f"{cls.__module__}.{cls.__qualname__}")
        """
    )
    done = subprocess.run(
        [PYTHON, "-c", script], cwd=REPO, env=clean_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    count, *undocumented = done.stdout.split()
    assert int(count) > 50  # every module was read
    assert undocumented == []
