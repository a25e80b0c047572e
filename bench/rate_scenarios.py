"""The rate-limit scenarios of issue 12: agentos against a provider that enforces limits.

Each scenario runs, as a user would,

    agentos requirements --drafter openai:m --api-base <simulator> -j 8 --credentials-file <keys>

on a copy of examples/demo-repo whose briefs are replaced by N generated ones, against a
`ProviderSim` (bench/provider_sim.py) configured with the scenario's organisations, keys, header
style and quotas. The simulator's answers make every brief take exactly two calls (a draft and an
approving review), so the work is 2 × N successful calls whatever agentos does.

What is reported, per scenario:

* **efficiency** = ideal ÷ elapsed, the issue's "(calls needed ÷ capacity) ÷ time". The ideal
  is the time the organisations' per-minute limits need for the 2 × N calls
  (`ProviderSim.ideal_seconds` without the windows' initial bursts, with the mean tokens of a
  draft and a review) plus one answer's latency (the last call still has to be answered).
  `efficiency_bursts` is the stricter figure whose ideal also spends every window's initial
  burst at once, which a client can only do by knowing the provider's window. Elapsed runs
  from the first request the simulator received to the last answer it sent, so agentos's
  start-up (imports, the worker pool) is left out: at these sizes it would be a fixed second
  that no governor can win back. `wall_seconds` and `efficiency_wall` (ideal ÷
  the whole process's time) are in the record too. A scenario is *limit-bound* when the limits,
  not the `-j N × latency` concurrency, set the ideal; 1.0 means the limits were used fully.
  A run that did not finish every item (it failed some, or was killed) is credited only with
  the calls of the items it finished, over the time it ran: the share of the capacity that
  became finished work. Scenarios whose quotas cannot cover the work have no efficiency.
* **429s per successful call**: rate-limit refusals (RPM, TPM) per answered call; refusals the
  provider makes at random (`noise`) are counted apart, and so are quota refusals, as the most
  times one exhausted key was refused (a key has to be refused once to learn that its quota is
  spent). Also items done of all, the exit code, and
  **wasted calls**: answered calls whose work was thrown away because a later 429 restarted the
  item (the livelock of issue 12).

Targets (issue 12): efficiency ≥ 0.9 when limit-bound; ≤ 0.05 429s per successful call when the
limits are known or learnable from headers; every item done, or where a quota makes that
impossible exit 1 with a message that says so; an exhausted key refused at most twice. The noisy
scenarios (a provider that refuses 10 % or 30 % of calls at random, with `retry-after: 1`):
every item done, efficiency ≥ 0.6 (10 %) or ≥ 0.4 (30 %) of the noise-free ideal; a random
refusal costs its own call the second it is told to wait. They run at `-j 8` like the others, so
that the provider's limit, not agentos's cost per call at a lower concurrency, bounds the ideal.

Every run is bounded (3 × ideal + a pad): past it agentos's process group gets SIGTERM (it stops
with `--grace 2`), then SIGKILL, and the record says `timed_out`.

The scenario table is data: each scenario may add agentos arguments (`extra_args`) and write its
credentials file its own way (`key_file`); the default is today's one key per line.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.harness import REPO, agentos, bench_env
from bench.provider_sim import OK, Call, Org, ProviderSim

DEMO = REPO / "examples" / "demo-repo"
GROUP = "rates"
PARALLEL = 8
LATENCY = 0.3
# a draft or review call of a generated brief costs about this many tokens; only used to size
# the timeout before the run (the ideal afterwards uses what the simulator really charged)
EST_TOKENS_PER_CALL = 470
EFFICIENCY_TARGET = 0.9
# with calls refused at random each refusal costs its own call the second it is told to wait, so
# the noise-free ideal cannot be reached: about 0.7 is the best possible at 10 % noise
NOISY_EFFICIENCY_TARGET = 0.6
VERY_NOISY_EFFICIENCY_TARGET = 0.4
REFUSALS_TARGET = 0.05
PARKED_AFTER = 2
# agentos's own words about a spent quota, not the provider's body echoed in an item's error
QUOTA_MESSAGE = re.compile(r"^(?!.*HTTP 4\d\d).*\bquota\b", re.IGNORECASE)


@dataclass(frozen=True)
class Key:
    secret: str
    org: str


def plain_key_file(scenario: RateScenario) -> str:
    """Today's credentials file: one key per line, nothing else."""
    return "".join(f"{key.secret}\n" for key in scenario.keys)


@dataclass(frozen=True)
class RateScenario:
    name: str  # rates.<name>
    letter: str
    title: str
    orgs: tuple[Org, ...]
    keys: tuple[Key, ...]
    briefs: int
    style: str = "openai"
    retry_after: bool | None = None
    overload: float = 0.0
    # the share of calls the provider refuses at random (429, retry-after 1), whatever the rate
    noise: float = 0.0
    parallel: int = PARALLEL
    efficiency_target: float = EFFICIENCY_TARGET
    # the limits can be known (key file, headers) or learned: the 429 target applies
    learnable: bool = True
    # every item can be done; False when the quotas cannot cover the work (exit 1 expected)
    completable: bool = True
    extra_args: tuple[str, ...] = ()
    key_file: Callable[[RateScenario], str] = plain_key_file
    smoke: Mapping[str, Any] = field(default_factory=dict)  # replacements for --smoke

    @property
    def id(self) -> str:
        return f"{GROUP}.{self.name}"

    @property
    def calls(self) -> int:
        return 2 * self.briefs

    def sized(self, smoke: bool) -> RateScenario:
        return replace(self, **self.smoke) if smoke else self


def _keys(scenario: str, orgs: Sequence[str]) -> tuple[Key, ...]:
    return tuple(
        Key(f"sk-bench-{scenario}-{n:02d}-{n * 7919:06d}", org) for n, org in enumerate(orgs, 1)
    )


def _four(rpm: float) -> tuple[Org, ...]:
    return tuple(Org(f"org-{n}", rpm=rpm) for n in range(1, 5))


SCENARIOS: tuple[RateScenario, ...] = (
    RateScenario(
        "one_key",
        "a",
        "one key, high limit",
        (Org("org-a", rpm=600),),
        _keys("a", ["org-a"]),
        briefs=40,
        smoke={"briefs": 4},
    ),
    RateScenario(
        "four_orgs",
        "b",
        "four keys in four organisations, low limits",
        _four(60),
        _keys("b", ["org-1", "org-2", "org-3", "org-4"]),
        briefs=30,
        smoke={"briefs": 4},
    ),
    RateScenario(
        "one_org",
        "c",
        "four keys sharing one organisation",
        (Org("org-shared", rpm=120),),
        _keys("c", ["org-shared"] * 4),
        briefs=30,
        smoke={"briefs": 4},
    ),
    RateScenario(
        "tpm",
        "d",
        "two organisations, TPM-bound",
        (Org("org-t1", rpm=600, tpm=30_000), Org("org-t2", rpm=600, tpm=30_000)),
        _keys("d", ["org-t1", "org-t2"]),
        briefs=24,
        smoke={"briefs": 4},
    ),
    RateScenario(
        "quota",
        "e",
        "a key whose daily quota runs out mid-run, and a healthy key",
        (Org("org-quota", rpm=120, rpd=16), Org("org-healthy", rpm=120)),
        _keys("e", ["org-quota", "org-healthy"]),
        briefs=24,
        smoke={
            "briefs": 4,
            "orgs": (Org("org-quota", rpm=120, rpd=3), Org("org-healthy", rpm=120)),
        },
    ),
    RateScenario(
        "quota_all",
        "e2",
        "two keys whose daily quotas cannot cover the work",
        (Org("org-q1", rpm=600, rpd=5), Org("org-q2", rpm=600, rpd=5)),
        _keys("e2", ["org-q1", "org-q2"]),
        briefs=8,
        completable=False,
        smoke={
            "briefs": 3,
            "orgs": (Org("org-q1", rpm=600, rpd=2), Org("org-q2", rpm=600, rpd=2)),
        },
    ),
    RateScenario(
        "no_headers",
        "f",
        "no rate-limit headers at all",
        (Org("org-n1", rpm=60), Org("org-n2", rpm=60)),
        _keys("f", ["org-n1", "org-n1", "org-n2", "org-n2"]),
        briefs=20,
        style="none",
        learnable=False,
        smoke={"briefs": 4},
    ),
    RateScenario(
        "anthropic",
        "g",
        "Anthropic-style headers and Retry-After, 3 % overloaded (529)",
        (Org("org-x1", rpm=90), Org("org-x2", rpm=90)),
        _keys("g", ["org-x1", "org-x2"]),
        briefs=24,
        style="anthropic",
        overload=0.03,
        smoke={"briefs": 4},
    ),
    RateScenario(
        "noisy",
        "h",
        "one key, 10 % of calls refused at random (429, retry-after 1), rate-limit headers",
        (Org("org-noisy", rpm=600),),
        _keys("h", ["org-noisy"]),
        briefs=40,
        noise=0.10,
        efficiency_target=NOISY_EFFICIENCY_TARGET,
        smoke={"briefs": 4},
    ),
    RateScenario(
        "noisy_no_headers",
        "i",
        "one key, 10 % of calls refused at random (429, retry-after 1), no rate-limit headers",
        (Org("org-noisy", rpm=600),),
        _keys("i", ["org-noisy"]),
        briefs=40,
        style="none",
        noise=0.10,
        efficiency_target=NOISY_EFFICIENCY_TARGET,
        smoke={"briefs": 4},
    ),
    RateScenario(
        "noisy_30",
        "j",
        "one key, 30 % of calls refused at random (429, retry-after 1), no rate-limit headers",
        (Org("org-noisy", rpm=600),),
        _keys("j", ["org-noisy"]),
        briefs=40,
        style="none",
        noise=0.30,
        efficiency_target=VERY_NOISY_EFFICIENCY_TARGET,
        smoke={"briefs": 4},
    ),
)
NAMES = tuple(s.id for s in SCENARIOS)
BY_ID = {s.id: s for s in SCENARIOS}

_SUBJECTS = (
    ("Bulk archive of old projects", "archive"),
    ("Email notifications for mentions", "notify"),
    ("Two-factor sign-in", "auth"),
    ("Usage quotas per workspace", "quota"),
    ("Saved searches", "search"),
    ("Calendar export", "calendar"),
    ("Comment reactions", "comments"),
    ("Attachment previews", "attachments"),
    ("Audit of API tokens", "tokens"),
    ("Locale-aware dates", "i18n"),
    ("Bulk user import", "users"),
    ("Webhook retries", "webhooks"),
)


def brief_text(n: int) -> tuple[str, str]:
    """The n-th generated brief in the demo's format: (file name, text)."""
    subject, area = _SUBJECTS[n % len(_SUBJECTS)]
    title = f"{subject} ({n + 1})"
    text = (
        f"# {title}\n\n"
        f"Customers asked for this in the last survey; part {n + 1} of the roadmap.\n\n"
        f"- {subject} works for every workspace plan\n"
        "- Admins can turn it off for their workspace\n"
        f"- Changes are recorded in the audit log with who and when\n"
        "- Should it be available in the mobile app too?\n\n"
        f"The logic belongs in `src/{area}/service.py`, wired up in `src/{area}/routes.py`.\n"
    )
    return f"{n + 1:03d}-{area}.md", text


def make_repo(path: Path, briefs: int) -> Path:
    """A copy of the demo repository whose briefs are `briefs` generated ones."""
    shutil.copytree(DEMO, path)
    active = path / "ideas" / "active"
    shutil.rmtree(active)
    active.mkdir(parents=True)
    for n in range(briefs):
        name, text = brief_text(n)
        (active / name).write_text(text)
    return path


@dataclass
class Outcome:
    exit_code: int | None
    wall_seconds: float
    timed_out: bool
    ended_at: float  # time.monotonic(), the simulator's clock


def run_bounded(
    argv: list[str], cwd: Path, env: Mapping[str, str], log: Path, limit: float
) -> Outcome:
    """Run agentos in its own process group; past `limit` seconds stop that group (SIGTERM, then
    SIGKILL) and say so. Nothing outside the group is touched."""
    t0 = time.monotonic()
    with open(log.with_suffix(".out"), "wb") as out, open(log.with_suffix(".err"), "wb") as err:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        timed_out = False
        try:
            code: int | None = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            code = _stop_group(proc)
    ended = time.monotonic()
    return Outcome(code, ended - t0, timed_out, ended)


def _stop_group(proc: subprocess.Popen[bytes]) -> int | None:
    # SIGTERM first, so agentos writes its summary (it was started with --grace 2)
    for signum, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)
        try:
            return proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return None


def _agentos_messages(stderr: str) -> list[str]:
    """agentos's own lines (not the items' output, which is prefixed with the item id)."""
    return [
        line
        for line in stderr.splitlines()
        if line.startswith("[agentos]") or line.startswith("agentos:")
    ]


def _summary(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    errors = Counter(
        re.sub(r"\d+", "N", str(item.get("error")))[:120]
        for item in data.get("items", [])
        if item.get("status") != "done" and item.get("error")
    )
    return {"totals": data.get("totals", {}), "errors": dict(errors.most_common(5))}


def run_scenario(
    scenario: RateScenario,
    work: Path,
    *,
    env: Mapping[str, str] | None = None,
    agentos_src: Path | None = None,
    timeout_pad: float = 30.0,
    latency: float = LATENCY,
) -> dict[str, Any]:
    """Run one scenario end to end and return its result record."""
    # Fresh keys and a private state directory: what one run learns about a key (a parked quota,
    # limits) must not carry over into the next run of the benchmark, nor into the user's state.
    run_token = secrets.token_hex(4)
    scenario = replace(
        scenario, keys=tuple(Key(f"{k.secret}-{run_token}", k.org) for k in scenario.keys)
    )
    base = work / scenario.name
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    repo = make_repo(base / "repo", scenario.briefs)
    keys = base / "keys.txt"
    keys.write_text(scenario.key_file(scenario))
    keys.chmod(0o600)
    run_dir = base / "run"
    run_env = dict(env if env is not None else bench_env())
    run_env["AGENTOS_STATE_DIR"] = str(base / "state")
    if agentos_src is not None:
        run_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(agentos_src), run_env.get("PYTHONPATH", "")) if p
        )
    sim = ProviderSim(
        scenario.orgs,
        {k.secret: k.org for k in scenario.keys},
        latency=latency,
        style=scenario.style,
        retry_after=scenario.retry_after,
        overload=scenario.overload,
        noise=scenario.noise,
        seed=12,
    )
    quota = sum(o.rpd if o.rpd is not None else math.inf for o in _used_orgs(scenario))
    doable = int(min(scenario.calls, quota))
    budget = 3 * (sim.ideal_seconds(doable, EST_TOKENS_PER_CALL) + latency) + timeout_pad
    with sim:
        argv = agentos(
            "requirements",
            "--repo",
            str(repo),
            "--drafter",
            "openai:m",
            "--api-base",
            sim.base_url,
            "-j",
            str(scenario.parallel),
            "--credentials-file",
            str(keys),
            "--run-dir",
            str(run_dir),
            "--grace",
            "2",
            "--no-color",
            *scenario.extra_args,
        )
        outcome = run_bounded(argv, repo, run_env, base / "agentos", budget)
    stderr = (base / "agentos.err").read_text(errors="replace")
    return _record(scenario, sim, outcome, repo, run_dir, stderr, budget, latency)


def describe(scenario: RateScenario) -> str:
    """The limits in a few words: `4 × (1 key, 60 RPM)`, `1 key, 120 RPM, 16 RPD`."""

    def one(org: Org) -> str:
        n = sum(1 for k in scenario.keys if k.org == org.name)
        limits = [
            f"{value:g} {unit}"
            for value, unit in ((org.rpm, "RPM"), (org.tpm, "TPM"), (org.rpd, "RPD"))
            if value is not None
        ]
        return ", ".join([f"{n} key{'s' if n != 1 else ''}", *limits])

    groups = Counter(one(org) for org in _used_orgs(scenario))
    return " + ".join(text if n == 1 else f"{n} × ({text})" for text, n in groups.items())


def _used_orgs(scenario: RateScenario) -> list[Org]:
    used = {k.org for k in scenario.keys}
    return [o for o in scenario.orgs if o.name in used]


def _record(
    scenario: RateScenario,
    sim: ProviderSim,
    outcome: Outcome,
    repo: Path,
    run_dir: Path,
    stderr: str,
    budget: float,
    latency: float,
) -> dict[str, Any]:
    stats = sim.stats()
    total = stats["total"]
    successes = sim.successes()
    first = sim.first_request_at()
    # an approved LLD lands in docs/lld/active, a Draft in docs/lld/drafts; one per brief
    briefs = {p.name for p in (repo / "ideas" / "active").glob("*.md")}
    done = len({p.name for p in (repo / "docs" / "lld").glob("*/*.md")} & briefs)
    all_done = done == scenario.briefs
    tokens_per_call = _tokens_per_call(successes)
    capacity = sim.ideal_seconds(scenario.calls, tokens_per_call, bursts=False)
    ideal = capacity + latency if math.isfinite(capacity) else None
    concurrency = scenario.calls * latency / scenario.parallel
    limit_bound = ideal is not None and capacity > concurrency
    last = max((c.done_at for c in successes if c.done_at is not None), default=None)
    end = last if all_done and last is not None else outcome.ended_at
    elapsed = end - first if first is not None else None
    # credit only finished items: calls of an item that failed or was never finished bought
    # nothing, however well they were paced
    credited = sim.ideal_seconds(2 * done, tokens_per_call, bursts=False) + latency if done else 0.0
    credited_bursts = sim.ideal_seconds(2 * done, tokens_per_call) + latency if done else 0.0
    efficiency = efficiency_wall = efficiency_bursts = None
    if scenario.completable and ideal is not None:
        efficiency = round(credited / elapsed, 3) if elapsed else 0.0
        efficiency_bursts = round(credited_bursts / elapsed, 3) if elapsed else 0.0
        efficiency_wall = round(credited / outcome.wall_seconds, 3)
    per_call = round(total["rate"] / total[OK], 3) if total[OK] else None
    quota_orgs = {o.name for o in scenario.orgs if o.rpd is not None}
    refusals = {
        f"key-{n}": stats["keys"].get(k.secret, {}).get("quota", 0)
        for n, k in enumerate(scenario.keys, 1)
        if k.org in quota_orgs
    }
    messages = _agentos_messages(stderr)
    quota_lines = [m for m in messages if QUOTA_MESSAGE.search(m)]
    expected_exit = 0 if scenario.completable else 1

    checks: list[tuple[str, bool]] = []
    if outcome.timed_out:
        checks.append((f"timed out after {budget:.0f} s", False))
    if scenario.completable:
        checks.append((f"{done}/{scenario.briefs} done", all_done))
    else:
        checks.append(("no quota message", bool(quota_lines)))
    checks.append(
        (f"exit {outcome.exit_code}, expected {expected_exit}", outcome.exit_code == expected_exit)
    )
    if limit_bound and scenario.completable:
        target = scenario.efficiency_target
        checks.append(
            (
                f"efficiency {efficiency} < {target}",
                efficiency is not None and efficiency >= target,
            )
        )
    if scenario.learnable:
        checks.append(
            (
                f"{per_call} rate-limit 429s per call > {REFUSALS_TARGET}",
                per_call is not None and per_call <= REFUSALS_TARGET,
            )
        )
    if refusals:
        worst = max(refusals.values())
        checks.append((f"an exhausted key refused {worst} times", worst <= PARKED_AFTER))
    misses = [what for what, ok in checks if not ok]

    return {
        "title": f"({scenario.letter}) {scenario.title}: {describe(scenario)}; "
        f"{scenario.briefs} briefs",
        "target": _target(scenario, limit_bound),
        "measured": {
            "efficiency": efficiency,
            "429_per_call": per_call,
            "done": f"{done}/{scenario.briefs}",
            "exit": outcome.exit_code,
        },
        "passed": not misses,
        "misses": misses,
        "scenario": {
            "id": scenario.id,
            "orgs": [asdict(o) for o in scenario.orgs],
            "keys": [{"label": f"key-{n}", "org": k.org} for n, k in enumerate(scenario.keys, 1)],
            "style": scenario.style,
            "retry_after": sim.retry_after,
            "overload": scenario.overload,
            "noise": scenario.noise,
            "window_s": sim.window_s,
            "latency": latency,
            "parallel": scenario.parallel,
            "extra_args": list(scenario.extra_args),
            "key_file": getattr(scenario.key_file, "__name__", "custom"),
        },
        "items_total": scenario.briefs,
        "items_done": done,
        "exit_code": outcome.exit_code,
        "timed_out": outcome.timed_out,
        "timeout_seconds": round(budget, 1),
        "calls_needed": scenario.calls,
        "tokens_per_call": round(tokens_per_call, 1),
        "capacity_seconds": round(capacity, 3) if ideal is not None else None,
        "ideal_seconds": round(ideal, 3) if ideal is not None else None,
        "concurrency_seconds": round(concurrency, 3),
        "limit_bound": limit_bound,
        "elapsed_seconds": round(elapsed, 3) if elapsed is not None else None,
        "wall_seconds": round(outcome.wall_seconds, 3),
        "efficiency": efficiency,
        "efficiency_bursts": efficiency_bursts,
        "efficiency_wall": efficiency_wall,
        "successful_calls": total[OK],
        # answered calls whose work was thrown away: a 429 later in the item restarted it
        "wasted_calls": max(0, total[OK] - 2 * done),
        "refused_429": total["refused_429"],
        "rate_429": total["rate"],
        "quota_429": total["quota"],
        "noise_429": total["noise"],
        "overloaded": total["overloaded"],
        "unauthorized": total["unauthorized"],
        "429_per_call": per_call,
        "all_429_per_call": round(total["refused_429"] / total[OK], 3) if total[OK] else None,
        "quota_refusals_by_key": refusals,
        "quota_refusals_worst_key": max(refusals.values()) if refusals else None,
        "per_org": stats["orgs"],
        "summary": _summary(run_dir),
        "quota_messages": quota_lines[-3:],
        "agentos_messages_tail": messages[-8:],
    }


def _tokens_per_call(successes: Sequence[Call]) -> float:
    """The mean tokens of the calls an item needs: one draft and one review. (The mean over all
    answered calls would lean towards drafts when items restart and redraft.)"""
    means = []
    for task in ("draft", "review"):
        tokens = [c.tokens for c in successes if c.task == task]
        if tokens:
            means.append(sum(tokens) / len(tokens))
    return sum(means) / len(means) if means else EST_TOKENS_PER_CALL


def _target(scenario: RateScenario, limit_bound: bool) -> str:
    parts = []
    if scenario.completable:
        parts.append("every item done, exit 0")
    else:
        parts.append("exit 1 saying the quota is out")
    if limit_bound and scenario.completable:
        parts.append(f"efficiency >= {scenario.efficiency_target}")
    if scenario.learnable:
        parts.append(f"<= {REFUSALS_TARGET} rate-limit 429s per call")
    if any(o.rpd is not None for o in scenario.orgs):
        parts.append(f"exhausted key refused <= {PARKED_AFTER} times")
    return "; ".join(parts)


def run_group(
    names: Sequence[str],
    work: Path,
    *,
    smoke: bool = False,
    env: Mapping[str, str] | None = None,
    agentos_src: Path | None = None,
    timeout_pad: float | None = None,
    parallel: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Run the named scenarios (ids from NAMES) one after another; their records by id.
    `parallel`: run agentos with `-j` this instead of each scenario's own."""
    pad = timeout_pad if timeout_pad is not None else (10.0 if smoke else 30.0)
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        scenario = BY_ID[name].sized(smoke)
        if parallel is not None:
            scenario = replace(scenario, parallel=parallel)
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        record = run_scenario(
            scenario, work / "rates", env=env, agentos_src=agentos_src, timeout_pad=pad
        )
        record["bench_seconds"] = round(time.monotonic() - t0, 1)
        results[name] = record
        verdict = "meets targets" if record["passed"] else "MISSES: " + "; ".join(record["misses"])
        print(f"[bench] {name}: {record['measured']} -> {verdict}", file=sys.stderr, flush=True)
    return results


def _cell(value: Any) -> str:
    return "—" if value is None else str(value)


def markdown(results: Mapping[str, Mapping[str, Any]]) -> str:
    """The rate-limit table the README quotes."""
    lines = [
        "Rate limits: `agentos requirements --drafter openai:m -j 8` against the provider "
        "simulator (2 calls per brief, 0.3 s per answer, limits enforced over 2 s windows). "
        "Efficiency = ideal ÷ time from the first request to the last answer, the ideal being "
        "the calls needed ÷ the organisations' per-minute capacity (issue 12's definition: a "
        "client that also spends a provider window's initial burst can pass 1.0); 'with bursts' "
        "is the stricter figure whose ideal spends every window's burst at once. 429s per call "
        "counts refusals a limit caused; random 429s = refusals the provider made at random "
        "(noise); quota refusals are counted for the worst exhausted key; "
        "wasted calls = answered calls whose item restarted and threw them away.",
        "",
        "| scenario | ideal s | elapsed s | efficiency | with bursts | 429s per call | random "
        "429s | quota refusals per key | wasted calls | done | exit | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for record in results.values():
        elapsed = _cell(record["elapsed_seconds"])
        if record["timed_out"]:
            elapsed += " (killed)"
        lines.append(
            f"| {record['title']} | {_cell(record['ideal_seconds'])} | {elapsed} | "
            f"{_cell(record['efficiency'])} | {_cell(record.get('efficiency_bursts'))} | "
            f"{_cell(record['429_per_call'])} | {record.get('noise_429', 0)} | "
            f"{_cell(record['quota_refusals_worst_key'])} | "
            f"{record['wasted_calls']} | {record['measured']['done']} | "
            f"{_cell(record['exit_code'])} | "
            f"{'meets targets' if record['passed'] else 'MISSES'} |"
        )
        if record["misses"]:
            letter = record["title"].split(")")[0] + ")"
            notes.append(f"- {letter}: " + "; ".join(record["misses"]))
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"
