"""The governor's time and chance, in one object so that tests can drive them: the monotonic
clock every wait is measured on, the wall clock of resets and parks (providers state them as
dates, and parks are remembered across runs), and the random source of the jitter."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Clocks:
    """The governor's time and chance, replaced in tests."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    random: random.Random = field(default_factory=random.Random)
