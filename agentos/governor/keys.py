"""The keys a governor holds, and the groups they are in.

A `Key` carries what is true of it alone: its slots for items and the leases on them, its
cooldown after a rate limit, whether the provider rejected it, its calls in flight. A
`KeyGroup` (group.py) carries what the keys of one organisation share. The `KeyRing` owns both
lists: it adds keys (a credentials file, or the Dask backend's direct call), puts each in its
group, and moves a key to the group of the organisation the provider says it spends.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from agentos.governor.credentials import (
    BASE_COOLDOWN,
    MAX_COOLDOWN,
    Credential,
    KeyConfig,
    make_credentials,
)
from agentos.governor.group import KeyGroup


@dataclass(eq=False)
class Key:
    """One key of the ring: its group, its leases, and whether it cools, is parked or revoked."""

    credential: Credential
    group: KeyGroup
    slots: int = 1
    leases: set[int] = field(default_factory=set)
    cooling_until: float = 0.0  # monotonic
    strikes: int = 0
    revoked: bool = False
    last_used: float = 0.0
    lease_count: int = 0
    calls: int = 0
    in_flight: int = 0  # calls granted and not yet reported
    avoid_until: float = 0.0  # monotonic: refused as noise; other keys first until then

    @property
    def label(self) -> str:
        return self.credential.label


@dataclass(frozen=True)
class Cooldown:
    """How long a key rests after a rate limit: the provider's retry-after when it gave one,
    else exponential from `base` per strike, with jitter; never more than `most`."""

    base: float = BASE_COOLDOWN
    most: float = MAX_COOLDOWN

    def seconds(self, strikes: int, retry_after: float | None, chance: random.Random) -> float:
        if retry_after is not None and retry_after >= 0:
            return min(float(retry_after), self.most)  # the provider's word is the minimum wait
        exponential = min(self.base * 2 ** (strikes - 1), self.most)
        return exponential * chance.uniform(0.9, 1.1)


class KeyRing:
    """The keys, in the order they were given (labels key-1, key-2, ...), and their groups."""

    def __init__(self) -> None:
        self.keys: list[Key] = []
        self.groups: dict[str, KeyGroup] = {}
        self._configs: list[KeyConfig] = []

    def __iter__(self) -> Iterator[Key]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, keys: list[str | KeyConfig]) -> list[Key]:
        """Add keys not held yet (the first occurrence of a key wins); returns the new ones."""
        configs = [k if isinstance(k, KeyConfig) else KeyConfig(k) for k in keys]
        known = {c.secret for c in self._configs}
        self._configs += [c for c in configs if c.secret and c.secret not in known]
        self._configs = list({c.secret: c for c in self._configs}.values())
        credentials = make_credentials(c.secret for c in self._configs)
        have = {k.credential.secret for k in self.keys}
        by_secret = {c.secret: c for c in self._configs}
        added = []
        for credential in credentials:
            if credential.secret in have:
                continue
            config = by_secret[credential.secret]
            group = self._group(config.group or credential.label, config)
            group.named = group.named or config.group is not None
            key = Key(credential, group, slots=max(1, config.slots))
            self.keys.append(key)
            added.append(key)
        return added

    def _group(self, name: str, config: KeyConfig) -> KeyGroup:
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = KeyGroup(name)
        group.configure(config)
        return group

    def labels(self) -> list[str]:
        return [k.label for k in self.keys]

    def find(self, label: str) -> Key | None:
        return next((k for k in self.keys if k.label == label), None)

    def all_revoked(self) -> bool:
        """Every key was rejected by the provider (true of no keys at all)."""
        return all(k.revoked for k in self.keys)

    def join_organization(self, key: Key, organization: str) -> None:
        """The provider says which organisation the key spends: keys of one organisation share
        one budget, so they go into one group (unless the user named the key's group). The
        first key of an organisation brings its group's learned state along; the calls a later
        one has out were reserved in its old group, and end there."""
        if key.group.named or key.group.name == organization:
            return
        old = key.group
        target = self.groups.get(organization)
        if target is None:
            self.groups.pop(old.name, None)
            old.name, old.from_provider = organization, True
            self.groups[organization] = old
            return
        key.group = target
        old.in_flight -= key.in_flight  # its calls out end in the group it is in now
        target.in_flight += key.in_flight
        if not any(k.group is old for k in self.keys):
            self.groups.pop(old.name, None)

    def next_cooldown_end(self, now: float) -> float | None:
        """Seconds until a cooling key (not leased, not retired) comes back; None if none
        cools."""
        ends = [
            k.cooling_until - now
            for k in self.keys
            if not k.revoked and not k.leases and k.cooling_until > now
        ]
        return min(ends) if ends else None
