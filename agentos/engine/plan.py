"""What the engine is given for a run: `RunPlan`, made once, before anything starts.

    RunPlan   the workflow and its config, the items still to do, the options (by group), the
              keys (KeyPlan), how many items at once, the run directory, the run's account and
              prices, and what earlier passes left (attempt and requeue counts)

Nothing in it is copied from the options: the engine, the attempts in the workers and the
governor read the option groups themselves (`agentos.engine.options`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from agentos.engine.attempt import AttemptSpec
from agentos.engine.options import KeyOptions, RunnerOptions
from agentos.governor.credentials import (
    Credential,
    KeyConfig,
    Redactor,
    load_keys,
    make_credentials,
)
from agentos.item.workflow import Item, Workflow
from agentos.usage.account import RunAccount
from agentos.usage.prices import PriceBook

if TYPE_CHECKING:
    from agentos.governor.protocol import KeyService

log = logging.getLogger("agentos")

#: what `agentos keys` shows of a key's last run (never the key)
_REMEMBERED = (
    "label",
    "group",
    "group_source",
    "rpm",
    "rpm_source",
    "pace_reason",
    "tpm",
    "rpd",
    "calls",
    "leases",
)


class KeyPlan(NamedTuple):
    """The run's keys and how they are used: per call (HTTP agents ask the governor for each
    call; --parallel is the number of items in flight, whatever the number of keys) or per
    item (a subprocess reads its key once: each attempt leases one, `slots` items per key)."""

    configs: list[KeyConfig]
    credentials: list[Credential]
    mode: str  # "call" | "item"

    @classmethod
    def load(cls, options: KeyOptions, mode: str, environ: dict[str, str] | None) -> KeyPlan:
        """The keys of `--credentials-file` (or AGENTOS_CREDENTIALS in `environ`), with the
        options' limits for every key that states none."""
        defaults = KeyConfig(
            "",
            options.key_group,
            options.key_rpm,
            options.key_tpm,
            options.key_rpd,
            options.key_slots,
        )
        configs = load_keys(options.credentials_file, environ, warn=log.warning, defaults=defaults)
        return cls(configs, make_credentials(c.secret for c in configs), mode)

    @property
    def item_slots(self) -> int:
        """How many items the keys allow at once (0: no cap, keys are taken per call)."""
        if self.mode == "call" or not self.configs:
            return 0
        return sum(c.slots for c in self.configs)

    @property
    def per_call(self) -> bool:
        return self.mode == "call" and bool(self.configs)

    def remember(self, governor: KeyService) -> None:
        """What the run learned about its keys (parked ones, groups, limits, calls), for the next
        run and `agentos keys`; never the keys themselves."""
        from agentos.governor import parked as parked_keys
        from agentos.governor.states import KeyState

        with contextlib.suppress(Exception):  # a dead key server has nothing more to say
            by_label = {c.label: c.full_fingerprint for c in self.credentials}
            notes = {
                by_label[row["label"]]: {
                    **{k: row.get(k) for k in _REMEMBERED},
                    "rejected": row.get("state") == KeyState.REVOKED,
                }
                for row in governor.snapshot()
                if row["label"] in by_label
            }
            parked_keys.save(governor.parked_keys(), set(by_label.values()), notes=notes)


@dataclass(frozen=True, eq=False)
class RunPlan:
    """A run, decided: see the module docstring."""

    workflow: Workflow
    config: Any
    options: RunnerOptions
    items: list[Item]
    keys: KeyPlan
    workers: int  # items at once in worker processes; 0: one after another, in this process
    run_path: Path
    account: RunAccount = field(default_factory=RunAccount)
    prices: PriceBook = field(default_factory=PriceBook)
    #: id -> attempts (that counted) and requeues of the items' earlier passes (--resume)
    attempts_before: dict[str, int] = field(default_factory=dict)
    requeues_before: dict[str, int] = field(default_factory=dict)
    #: tags every process the run starts (process_tree.RUN_TAG_ENV)
    run_id: str = field(default_factory=lambda: os.urandom(6).hex())

    @property
    def parallel(self) -> bool:
        return self.workers > 0

    @property
    def name(self) -> str:
        return self.workflow.name

    @property
    def workspace(self) -> Path | None:
        """The directory the workflow writes into (its repository), if it has one."""
        return self.workflow.workspace(self.config) if self.workflow.workspace else None

    def redactor(self) -> Redactor:
        """What replaces the run's secrets in output and files: every key, and the notification
        URLs (they carry tokens), should an item come by one."""
        urls = [(url, "notify-url") for url in self.options.output.notify]
        return Redactor(self.keys.credentials, urls)

    def attempt_spec(self) -> AttemptSpec:
        """What every attempt of this run needs, sent to each worker once."""
        return AttemptSpec(
            run_dir=str(self.run_path.resolve()),
            execute_item=self.workflow.execute_item,
            config=self.config,
            attempts=self.options.attempts,
            keys=self.options.keys,
            parallel=self.parallel,
            run_id=self.run_id,
            call_keys=self.keys.per_call,
            prices=self.prices,
            limits=self.account.limits if self.account.limits else None,
        )
