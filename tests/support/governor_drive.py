"""Drive a Governor with a fake clock against a modelled provider: N workers each ask for a call,
wait the grant's delay, send, and report the answer after the call's latency (a refusal comes
back at once). No threads, no sleeping: a few hundred calls take milliseconds.

    provider = noisy(0.1, seed=3)          # 10 % refused at random, retry-after 1
    provider = bucket(60)                  # a limit of 60/min, enforced over 2 s, no headers
    result = drive(provider, workers=4, answers=300)
    result.per_minute, result.refused, result.notices, result.governor
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentos.governor.governor import Governor
from agentos.item.keys import KeyOutcome
from agentos.item.refusal_kinds import RefusalKind

Provider = Callable[[float], tuple[bool, dict[str, Any]]]
START = 1000.0


class Clock:
    def __init__(self, t: float = START) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def noisy(share: float, *, seed: int = 1, headers: bool = False, wait: float = 1.0) -> Provider:
    """Refuses `share` of the calls at random (retry-after `wait`), whatever the rate; with
    `headers`, every answer states a limit of 600/min with plenty left."""
    rng = random.Random(seed)
    stated = {"limit_requests": 600, "remaining_requests": 450} if headers else {}

    def provider(t: float) -> tuple[bool, dict[str, Any]]:
        if rng.random() < share:
            return False, {"wait": wait, **stated}
        return True, dict(stated)

    return provider


def bucket(
    per_minute: float, *, window: float = 2.0, noise: float = 0.0, seed: int = 1
) -> Provider:
    """A limit enforced as providers do (a bucket of `window` seconds' worth, refilled
    continuously), stated nowhere: the refusal says only when the call would pass."""
    rng = random.Random(seed)
    rate = per_minute / 60.0
    capacity = max(1.0, per_minute * window / 60.0)
    state = {"level": capacity, "t": None}

    def provider(t: float) -> tuple[bool, dict[str, Any]]:
        if state["t"] is not None:
            state["level"] = min(capacity, state["level"] + (t - state["t"]) * rate)
        state["t"] = t
        if noise and rng.random() < noise:
            return False, {"wait": 1.0}
        if state["level"] >= 1:
            state["level"] -= 1
            return True, {}
        return False, {"wait": round((1 - state["level"]) / rate, 3)}

    return provider


@dataclass
class Result:
    seconds: float
    answers: int
    refused: int
    governor: Governor
    notices: list[tuple[float, str]] = field(default_factory=list)
    #: (time, requests/min the group is paced at, None: not paced), after every call
    paces: list[tuple[float, float | None]] = field(default_factory=list)
    #: (time, refused) of every call, as it came back
    outcomes: list[tuple[float, bool]] = field(default_factory=list)

    def refused_share(self, after: float = 0.0) -> float:
        """The share of the calls that came back after `after` seconds that were refused."""
        late = [refused for t, refused in self.outcomes if t > after]
        return sum(late) / len(late) if late else 0.0

    @property
    def per_minute(self) -> float:
        return self.answers * 60.0 / self.seconds


def drive(
    provider: Provider,
    *,
    workers: int = 4,
    answers: int = 300,
    latency: float = 0.3,
    keys: tuple[str, ...] = ("sk-drive-a",),
) -> Result:
    clock = Clock()
    gov = Governor(list(keys), seed=1, clock=clock, wall=lambda: 1.8e9)
    events: list[tuple[float, int, int, str, Any]] = []
    order = 0

    def push(t: float, worker: int, what: str, data: Any = None) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (t, order, worker, what, data))

    for worker in range(workers):
        push(START, worker, "ask")
    result = Result(0.0, 0, 0, gov)
    while result.answers < answers:
        t, _, worker, what, data = heapq.heappop(events)
        clock.t = t
        if what == "ask":
            grant = gov.acquire_call(f"item-{worker}", 10, wait=0.0)
            if not grant.call_id:  # a window, or this item's retry-after: ask again later
                push(t + max(0.05, min(grant.delay, 5.0)), worker, "ask")
            else:
                push(t + grant.delay, worker, "send", grant)
        elif what == "send":
            ok, info = provider(t)
            push(t + (latency if ok else 0.02), worker, "end", (data, ok, info))
        else:
            grant, ok, info = data
            gov.end_call(grant.call_id, KeyOutcome.OK if ok else RefusalKind.RATE, info)
            result.answers += ok
            result.refused += not ok
            result.outcomes.append((t - START, not ok))
            result.notices += [(t - START, notice) for notice in gov.events()]
            row = gov.snapshot()[0]
            result.paces.append((t - START, row["rpm"] if row["rpm_source"] == "learned" else None))
            push(t, worker, "ask")
    result.seconds = clock.t - START
    return result


def best_per_minute(
    share: float, *, workers: int = 4, latency: float = 0.3, wait: float = 1.0
) -> float:
    """Answers per minute N workers can get when `share` of the calls are refused at random and
    each refusal costs its call `wait` seconds: the most any governor can do."""
    per_answer = latency + share / (1 - share) * (wait + 0.02)
    return workers * 60.0 / per_answer
