"""What the governor has to tell the user — a key parked or rejected, the provider overloaded, a
group's pace changed — queued as it happens, handed over by `Governor.events` (the parent prints
each once, for the whole run)."""

from __future__ import annotations

from collections.abc import Iterable


class Notices:
    def __init__(self) -> None:
        self._queued: list[str] = []

    def add(self, notice: str) -> None:
        self._queued.append(notice)

    def extend(self, notices: Iterable[str]) -> None:
        self._queued += notices

    def take(self) -> list[str]:
        """The notices queued since the last call."""
        found, self._queued = self._queued, []
        return found
