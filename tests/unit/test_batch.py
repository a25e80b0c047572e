"""The batch's keys: waiting for a key is said once per stretch, retired keys are not waited for,
and a run whose every key is parked counts down, then stops."""

from __future__ import annotations

import dataclasses
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import cast

import pytest

from agentos.engine.batch import Batch
from agentos.engine.options import RunnerOptions
from agentos.engine.output.terminal import Terminal
from agentos.engine.plan import KeyPlan, RunPlan
from agentos.engine.scheduler import ItemState
from agentos.errors import KeysExhausted
from agentos.governor.credentials import Lease, make_credentials
from agentos.governor.governor import Governor as CredentialCoordinator
from agentos.item.keys import KeyOutcome
from agentos.item.workflow import Item, Workflow
from agentos.rundir.attempts import AttemptResult
from agentos.rundir.journal import Journal
from agentos.rundir.statuses import Status

KEYS = ["sk-alpha-0000000001", "sk-bravo-0000000002", "sk-charlie-000000003"]


class Said:
    """The terminal as far as the batch's key messages go."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.lock = threading.RLock()
        self.err_is_tty = False

    def message(self, text: str, *, force: bool = False) -> None:
        self.lines.append(text)


def keyed_batch(secrets: list[str], workers: int, n_items: int) -> tuple[Batch, Said]:
    said = Said()
    plan = RunPlan(
        Workflow("run", "", lambda config: [], lambda item, ctx: None),
        None,
        RunnerOptions(),
        [Item(id=f"item-{n}", title=str(n)) for n in range(1, n_items + 1)],
        KeyPlan([], make_credentials(secrets), "item"),
        workers,
        Path(tempfile.mkdtemp(prefix="agentos-batch-")),
    )
    batch = Batch(
        plan,
        cast(Journal, None),  # no attempt is recorded here
        cast(Terminal, said),
        CredentialCoordinator(secrets),
    )
    return batch, said


def fill(batch: Batch) -> list[tuple[ItemState, Lease]]:
    """One round of the controller: start items while a worker is free and a key is given."""
    started = []
    while len(batch.scheduler.running) < batch.workers:
        state = batch.scheduler.peek_ready()
        if state is None:
            break
        lease = batch.take_lease(state)
        if lease is None:
            break
        batch.scheduler.start(state)
        started.append((state, lease))
    return started


def end(batch: Batch, run: tuple[ItemState, Lease], status: str, wait: float | None = None) -> None:
    state, lease = run
    result = AttemptResult(state.id, state.attempts, status, time.time(), 0.1, retry_after=wait)
    batch.release(lease, result)
    batch.scheduler.finish(state, result)


def test_a_retired_key_is_not_waited_for_and_the_wait_is_said_once() -> None:
    """With one of three keys retired, every finished item used to print "all 3 keys are busy
    or cooling" again: a key came free, the next item took it, the one after found none."""
    batch, said = keyed_batch(KEYS, workers=3, n_items=8)
    running = fill(batch)
    assert len(running) == 3
    end(batch, running.pop(), Status.REJECTED)  # key-3 is retired for the run
    assert fill(batch) == []
    for _ in range(4):
        end(batch, running.pop(0), Status.DONE)
        running += fill(batch)
        assert len(running) == 2  # the freed key was taken; the next item waits again
    assert said.lines == ["all 2 usable keys are busy or cooling (1 retired)"]


def test_each_stretch_of_cooling_keys_is_said_once() -> None:
    batch, said = keyed_batch(KEYS[:2], workers=2, n_items=8)
    running = fill(batch)
    for run, wait in zip(running, (0.05, 0.3), strict=True):
        end(batch, run, Status.RATE_LIMITED, wait)
    running = []
    while len(running) < 2:  # key-1 comes back first, key-2 later: one stretch of waiting
        running += fill(batch)
        time.sleep(0.01)
    assert [line.split(";")[0] for line in said.lines] == ["all 2 keys are busy or cooling"]
    end(batch, running.pop(0), Status.DONE)  # both keys in use again: the stretch is over
    running += fill(batch)
    for run in running:
        end(batch, run, Status.RATE_LIMITED, 5.0)
    assert fill(batch) == [] and fill(batch) == []
    assert len(said.lines) == 2
    assert re.fullmatch(r"all 2 keys are busy or cooling; next free in [45]\.\d s", said.lines[1])


def test_the_only_key_and_the_only_usable_key() -> None:
    batch, said = keyed_batch(KEYS[:1], workers=1, n_items=2)
    end(batch, fill(batch)[0], Status.RATE_LIMITED, 5.0)
    assert fill(batch) == []
    batch, retired = keyed_batch(KEYS[:2], workers=2, n_items=3)
    end(batch, fill(batch)[1], Status.REJECTED)
    assert fill(batch) == []
    assert [line.split(";")[0] for line in said.lines] == ["the only key is busy or cooling"]
    assert retired.lines == ["the only usable key is busy or cooling (1 retired)"]


def test_while_every_key_is_parked_the_status_counts_down_then_the_run_stops() -> None:
    batch, said = keyed_batch(KEYS[:1], workers=1, n_items=2)
    lease = batch.keys.acquire("item-1")
    batch.keys.release(lease.lease_id, KeyOutcome.RATE_LIMITED, 600.0, "quota")
    batch.check_keys(every=0.0)  # back within --max-key-wait (900 s): wait, and say how long
    assert batch.progress.note in ("keys back in 10m00s", "keys back in 9m59s")
    assert said.lines[0].startswith("key-1: out of quota; group key-1 parked until ")
    short = keyed_batch(KEYS[:1], workers=1, n_items=2)[0]
    short.key_options = dataclasses.replace(short.key_options, max_key_wait=60.0)
    lease = short.keys.acquire("item-1")
    short.keys.release(lease.lease_id, KeyOutcome.RATE_LIMITED, 600.0, "quota")
    with pytest.raises(KeysExhausted, match=r"the only key out of quota until \d\d:\d\d UTC"):
        short.check_keys(every=0.0)
