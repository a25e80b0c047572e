"""The keys of one attempt, as the item sees them.

An attempt may hold a *lease*: one key for its whole length (CLI agents, `agentos run`), which
every command it runs finds in its environment, never on its command line. An agent that calls
a model itself (HTTP agents) asks the governor for a key *per call* instead (`call_key`): the
governor answers with a `CallGrant` (the key, and how long to wait before the call), and hears
how the call went (`end_call`). Every key the attempt was given, either way, is replaced by its
label wherever `redact` is asked: an agent's answer may quote its environment.

Whoever hosts the run's governor (this process for a sequential run, the key server for loky, a
Dask actor: agentos.governor.service, agentos.engine.backends), the attempt reaches it through
something that answers `AttemptKeyService`: the Governor itself, its Manager proxy, or the relay
of a Dask attempt process. Every call may cross a process boundary: arguments and answers are
plain values. How a call or a lease ended is a `KeyOutcome`, or the provider's `RefusalKind`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from agentos.errors import RateLimited
from agentos.vocabulary import StrEnum

if TYPE_CHECKING:
    from agentos.item.refusal_kinds import RefusalKind

#: the variable that may hold every key of the run (comma or newline separated): the runner reads
#: it once; a command an item runs gets its own lease, never this
CREDENTIALS_ENV = "AGENTOS_CREDENTIALS"
#: the variable a leased key is put in, unless an agent names its own (ANTHROPIC_API_KEY, ...)
DEFAULT_CREDENTIAL_ENV = "AGENTOS_API_KEY"
DEFAULT_MAX_KEY_WAIT = 900.0


class KeyOutcome(StrEnum):
    """How a lease or a call ended, as the governor is told.

    A lease (`KeyService.release`) ends ok, failed (the item failed: not the key's fault),
    rate_limited (the provider refused: the refusal kind says how the key's group waits),
    revoked (the key itself was refused: retired for the run) or reclaimed (the attempt did not
    run to its end, or its worker died). A call ends ok, with an error that is not a refusal, or
    with the refusal's kind."""

    OK = "ok"
    FAILED = "failed"
    RATE_LIMITED = "rate_limited"
    REVOKED = "revoked"
    RECLAIMED = "reclaimed"
    ERROR = "error"


@dataclass(frozen=True, eq=False)
class CallGrant:
    """The answer to `acquire_call`. With a key: start the call after `delay` seconds. Without
    (`call_id` 0): no key can serve now; ask again after `delay` (inf: none will this run)."""

    call_id: int
    secret: str = field(repr=False)  # an agent that logs its grant must not log the key
    label: str
    delay: float
    reason: str = ""


class AttemptKeyService(Protocol):
    """What an attempt asks of the governor."""

    def claim(self, lease_id: int, holder_pid: int) -> tuple[str, str]:
        """The leased key and its label; `holder_pid` holds the lease from now on."""
        ...

    def acquire_call(
        self, item_id: str, tokens: float | None = None, pinned: str | None = None
    ) -> CallGrant: ...

    def confirm_call(self, call_id: int) -> bool: ...

    def end_call(
        self, call_id: int, outcome: KeyOutcome | RefusalKind, info: dict[str, Any] | None = None
    ) -> str: ...


@dataclass(eq=False)
class AttemptKeys:
    """The attempt's lease (`secret`, shown as `label`; None without keys), the variable it is
    put in (`env_name`), and the governor (or its proxy) that hands out keys per call, with how
    long a call may wait for one (--max-key-wait)."""

    #: not in repr: an item that prints or logs its context (f"{ctx}") must not print the key
    secret: str | None = field(default=None, repr=False)
    label: str | None = None
    env_name: str = DEFAULT_CREDENTIAL_ENV
    governor: AttemptKeyService | None = None
    max_key_wait: float = DEFAULT_MAX_KEY_WAIT
    #: seconds this attempt's calls waited for a key, by reason (journaled)
    waits: dict[str, float] = field(default_factory=dict, init=False)
    #: every key `call_key` handed this attempt, with its label: an agent's answer may quote
    #: any of them, and `redact` must find them after the calls are over
    _seen: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def place(self, env: dict[str, str], key_env: str | None, *, with_key: bool) -> None:
        """Put the lease into `env`, a command's environment, under `key_env` (a CLI agent's
        own variable) or `env_name`, and nowhere else; `with_key=False`: nowhere at all."""
        env.pop(self.env_name, None)
        env.pop(CREDENTIALS_ENV, None)  # every key of the run: an item gets its lease, no more
        if self.secret is not None and with_key:
            env[key_env or self.env_name] = self.secret

    # -- keys per call (HTTP agents)
    @property
    def per_call(self) -> bool:
        return self.governor is not None

    def call_key(self, item_id: str, tokens: float | None) -> CallGrant:
        """See `ItemContext.call_key`."""
        if self.governor is None:
            raise RuntimeError("call_key needs keys: check ctx.keys_per_call first")
        pinned = self.label if self.secret else None
        waited = 0.0
        while True:
            grant: CallGrant = self.governor.acquire_call(item_id, tokens, pinned)
            if grant.call_id:
                self._seen[grant.secret] = grant.label
                if grant.delay > 0:
                    self._note_wait(grant.reason or "pacing", grant.delay)
                    time.sleep(grant.delay)
                    # its key may have been parked while this call waited its turn
                    if grant.delay > 0.05 and not self.governor.confirm_call(grant.call_id):
                        continue
                return grant
            if grant.delay > self.max_key_wait or waited + grant.delay > self.max_key_wait:
                from agentos.item.refusal_kinds import RefusalKind

                raise RateLimited(
                    f"no key can serve: {grant.reason}", grant.delay, kind=RefusalKind.QUOTA
                )
            step = max(0.05, min(grant.delay, 5.0))
            self._note_wait(grant.reason, step)
            time.sleep(step)
            waited += step

    def end_call(
        self,
        grant: CallGrant,
        outcome: KeyOutcome | RefusalKind,
        info: dict[str, Any] | None = None,
    ) -> None:
        if self.governor is None:
            raise RuntimeError("end_call needs keys: check ctx.keys_per_call first")
        self.governor.end_call(grant.call_id, outcome, info or {})

    def _note_wait(self, reason: str, seconds: float) -> None:
        self.waits[reason] = round(self.waits.get(reason, 0.0) + seconds, 3)

    # -- redaction
    def redact(self, text: str) -> str:
        """`text` with every key this attempt has seen (its lease, its per-call keys) replaced
        by `[label]`."""
        keys = dict(self._seen)
        if self.secret:
            keys[self.secret] = self.label or "key"
        for secret in sorted(keys, key=len, reverse=True):  # a key inside a longer one
            if secret and secret in text:
                text = text.replace(secret, f"[{keys[secret]}]")
        return text
