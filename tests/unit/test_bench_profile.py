"""bench.profile's sorting of py-spy samples into phases (the figure the README shows)."""

from __future__ import annotations

from pathlib import Path

from bench.profile import DISPLAY, PHASES, START, main_thread_phases


def test_every_phase_is_drawn_once() -> None:
    assert sorted(DISPLAY) == sorted([START, *(name for name, _ in PHASES)])


def test_samples_go_to_the_phase_a_run_was_in(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    main = "<module> (agentos:6);main (agentos/__main__.py:33)"
    raw.write_text(
        "\n".join(
            [
                f"{main};_find_and_load (<frozen importlib._bootstrap>:1176) 50",
                # loky is imported inside the pool: the pool's time, not "loading modules"
                f"{main};WorkerPool._ensure (agentos/engine/backends/loky.py:123);"
                "_find_and_load (<frozen importlib._bootstrap>:1176) 9",
                f"{main};Controller._wait_for_events (controller.py:1) 20",
                "Thread._bootstrap (threading.py:1002);OutputListener._run (x.py:1) 99",
                "_shutdown (threading.py:1560) 2",
                " 7",
                f"{main};run_workflow (agentos/run/runner.py:1) 3",
            ]
        )
        + "\n"
    )
    phases = main_thread_phases(raw)
    assert phases == {
        "loading modules": 50,
        "worker pool: import loky, fork, shut down": 9,
        "waiting for the items to run": 20,
        "exit: thread joins, atexit": 2,
        "interpreter start and exit (no Python frame)": 7,
        "other agentos code": 3,
    }  # the listener thread's 99 samples run beside the main thread: not counted
