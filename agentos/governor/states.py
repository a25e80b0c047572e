"""A key's states, as the governor's snapshot shows them: a module of its own, so that what only
reads a snapshot (the run's plan, `agentos keys`) loads none of the governor."""

from agentos.vocabulary import StrEnum


class KeyState(StrEnum):
    """A key's state in the governor's `snapshot` (the summary's keys, `agentos keys`)."""

    FREE = "free"
    LEASED = "leased"
    COOLING = "cooling"
    PARKED = "parked"
    REVOKED = "revoked"
