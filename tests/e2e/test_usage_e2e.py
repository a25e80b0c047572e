"""Usage, cost and budgets end to end: `agentos requirements --drafter openai:<model>` against the
loopback provider simulator (which reports `usage` as OpenAI does), `cmd:` agents and
`agentos run` commands that report through $AGENTOS_USAGE_FILE. Each run is a real process."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from support.fake_openai import FakeOpenAI
from support.keys import keys_file
from support.processes import Finished, agentos_argv, clean_env, items_file, run
from support.rundir import summary as summary_of
from support.sim import repo_with_briefs, requirements_argv

from bench.provider_sim import Org, ProviderSim

pytest.importorskip("httpx")
genai_prices = pytest.importorskip("genai_prices")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

MODEL = "gpt-4o-mini"  # in the genai-prices database
KEYS = {"sk-usage-key-a-0000000": "acme", "sk-usage-key-b-0000000": "side"}


def requirements(
    repo: Path, api_base: str, keys: Path, *extra: str, model: str = MODEL
) -> list[str]:
    return requirements_argv(repo, api_base, keys, *extra, model=model)


def journal_of(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]


def price_per_token(model: str) -> tuple[float, float]:
    """USD per input and per output token, as the genai-prices database says."""
    price = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=0, output_tokens=0), model
    ).model_price
    return float(price.input_mtok) / 1e6, float(price.output_mtok) / 1e6


def no_key_anywhere(tmp_path: Path, *outputs: str) -> None:
    texts = [*outputs]
    texts += [
        p.read_text(errors="replace")
        for p in tmp_path.rglob("*")
        if p.is_file() and p.name != "keys.txt"
    ]
    for key in KEYS:
        assert not any(key in text for text in texts), f"{key} leaked"


def last_line(done: Finished) -> str:
    return done.stderr.strip().splitlines()[-1]


def test_totals_equal_the_servers_count_and_cost_is_tokens_times_the_database_price(
    tmp_path: Path,
) -> None:
    repo = repo_with_briefs(tmp_path, 6)
    run_dir = tmp_path / "run"
    # the provider answers with the dated name, as OpenAI does: that is the model recorded
    answered = "gpt-4o-mini-2024-07-18"
    with ProviderSim([Org("acme"), Org("side")], KEYS, latency=0.02, answer_model=answered) as sim:
        done = run(
            requirements(repo, sim.base_url, keys_file(tmp_path, KEYS), "-j", "3", "--run-dir",
                         str(run_dir)),
            cwd=repo,
            env=clean_env(AGENTOS_STATUS_INTERVAL="0.05"),
        )  # fmt: skip
        server = sim.usage_totals()
    assert done.returncode == 0, done.stderr[-3000:]
    usage = summary_of(run_dir)["usage"]
    assert server["calls"] == 12  # a draft and a review per brief
    assert usage["calls"] == server["calls"]
    assert usage["input_tokens"] == server["prompt_tokens"]
    assert usage["output_tokens"] == server["completion_tokens"]
    assert list(usage["by_model"]) == [answered]
    per_in, per_out = price_per_token(answered)
    expected = server["prompt_tokens"] * per_in + server["completion_tokens"] * per_out
    assert usage["cost_usd"] == pytest.approx(expected, rel=1e-9)
    assert usage["unpriced_models"] == [] and usage["unpriced_calls"] == 0
    # per group and per key, and per item: the parts add up to the whole
    assert sum(g["cost_usd"] for g in usage["by_group"].values()) == pytest.approx(expected)
    assert set(usage["by_group"]) <= {"acme", "side"}
    rows = summary_of(run_dir)["items"]
    assert sum(r["usage"]["input_tokens"] for r in rows) == server["prompt_tokens"]
    assert all(r["usage"]["calls"] == 2 for r in rows)
    keys = summary_of(run_dir)["keys"]
    assert sum(k["usage"]["calls"] for k in keys if k["usage"]) == 12
    # each attempt's journal record: its calls, tokens and cost
    records = journal_of(run_dir)
    assert sum(r["usage"]["calls"] for r in records) == 12
    assert sum(r["usage"]["cost_usd"] for r in records) == pytest.approx(expected)
    # the joblog keeps GNU parallel's nine columns
    joblog = (run_dir / "joblog.tsv").read_text().splitlines()
    assert joblog[0].split("\t") == [
        "Seq", "Host", "Starttime", "JobRuntime", "Send", "Receive", "Exitval", "Signal",
        "Command",
    ]  # fmt: skip
    assert all(len(row.split("\t")) == 9 for row in joblog)
    # the table and the status line say what was spent
    assert f"usage: 12 calls, {server['prompt_tokens']:,} in + " in done.stderr
    assert " spent" in done.stderr  # the status line off a terminal: "..., $0.0014 spent"
    no_key_anywhere(tmp_path, done.stdout, done.stderr)


def test_a_budget_smaller_than_the_batch_stops_it_at_the_right_point(tmp_path: Path) -> None:
    repo = repo_with_briefs(tmp_path, 10)
    keys = keys_file(tmp_path, KEYS)
    # what one brief costs here: measured by a run without a budget on a copy of the repo
    probe = tmp_path / "probe"
    shutil.copytree(repo, probe)
    with ProviderSim([Org("acme"), Org("side")], KEYS, latency=0.02) as sim:
        measured = run(requirements(probe, sim.base_url, keys, "--run-dir", str(tmp_path / "p")),
                       cwd=probe)  # fmt: skip
    assert measured.returncode == 0, measured.stderr[-2000:]
    costs = sorted(r["usage"]["cost_usd"] for r in summary_of(tmp_path / "p")["items"])
    budget = sum(costs) * 0.45  # room for four or five briefs of ten

    run_dir = tmp_path / "run"
    with ProviderSim([Org("acme"), Org("side")], KEYS, latency=0.02) as sim:
        done = run(
            requirements(repo, sim.base_url, keys, "-j", "4", "--budget", f"{budget:.9f}",
                         "--run-dir", str(run_dir)),
            cwd=repo,
        )  # fmt: skip
        calls = sim.usage_totals()["calls"]
    assert done.returncode == 1, done.stderr[-3000:]
    data = summary_of(run_dir)
    finished = data["totals"]["done"]
    not_run = data["totals"]["not run"]
    assert finished + not_run == 10 and calls == 2 * finished
    spent = data["usage"]["cost_usd"]
    mean = spent / finished
    # it stopped where the next brief, at the mean cost so far, would have passed the budget;
    # items already running when it was reached may go over it by at most their own cost
    assert spent + mean > budget
    assert spent <= budget + 4 * max(costs)
    assert data["usage"]["budget"]["reached"] is True
    assert last_line(done) == (
        f"agentos: error: budget reached: {money(spent)} of {money(budget)} spent; {not_run} "
        f"items not started; rerun with a higher budget to continue: agentos requirements "
        f"--resume {run_dir} --budget USD"
    )
    # nothing half-written: a whole LLD for each brief done, none for the others
    drafts = sorted((repo / "docs" / "lld").glob("*/idea-*.md"))
    assert len(drafts) == finished
    assert all(d.read_text().rstrip().endswith("both scenarios pass") for d in drafts)
    assert not list((repo / "docs" / "lld").glob("*/.*"))  # no temp file left

    # --resume counts what was spent: with the same budget, nothing more starts
    with ProviderSim([Org("acme"), Org("side")], KEYS, latency=0.02) as sim:
        same = run(requirements(repo, sim.base_url, keys, "--budget", f"{budget:.9f}",
                                "--resume", str(run_dir)), cwd=repo)  # fmt: skip
        assert sim.usage_totals()["calls"] == 0
    assert same.returncode == 1
    assert last_line(same).startswith(f"agentos: error: budget reached: {money(spent)} of ")
    # and with a higher one, the rest is done, the whole run's spend in its summary
    with ProviderSim([Org("acme"), Org("side")], KEYS, latency=0.02) as sim:
        more = run(requirements(repo, sim.base_url, keys, "--budget", f"{budget * 4:.9f}",
                                "--resume", str(run_dir), "-j", "4"), cwd=repo)  # fmt: skip
        added = sim.usage_totals()
    assert more.returncode == 0, more.stderr[-3000:]
    final = summary_of(run_dir)
    assert final["totals"] == {"done": 10}
    assert final["usage"]["calls"] == calls + added["calls"] == 20
    assert final["usage"]["budget"]["spent_usd"] == pytest.approx(final["usage"]["cost_usd"])
    no_key_anywhere(tmp_path, done.stderr, same.stderr, more.stderr)


def money(usd: float) -> str:
    from agentos.usage.record import money as shown

    return shown(usd)


def test_a_model_without_a_price_records_tokens_and_says_so_once(tmp_path: Path) -> None:
    repo = repo_with_briefs(tmp_path, 3)
    keys = keys_file(tmp_path, KEYS)
    run_dir = tmp_path / "run"
    with ProviderSim([Org("acme"), Org("side")], KEYS, latency=0.02) as sim:
        done = run(
            requirements(repo, sim.base_url, keys, "-j", "3", "--run-dir", str(run_dir),
                         model="house-model-7"),
            cwd=repo,
        )  # fmt: skip
        server = sim.usage_totals()
    assert done.returncode == 0, done.stderr[-3000:]
    notice = "no price known for model 'house-model-7'"
    assert done.stderr.count(notice) == 1
    usage = summary_of(run_dir)["usage"]
    assert usage["input_tokens"] == server["prompt_tokens"]
    assert usage["cost_usd"] is None and usage["unpriced_models"] == ["house-model-7"]
    assert all(r["usage"]["cost_usd"] is None for r in summary_of(run_dir)["items"])
    assert "house-model-7 (their cost is unknown" in done.stderr

    # a budget needs its price: a usage error before anything starts...
    with ProviderSim([Org("acme"), Org("side")], KEYS) as sim:
        refused = run(requirements(repo, sim.base_url, keys, "--budget", "1", "--force",
                                   model="house-model-7"), cwd=repo)  # fmt: skip
        assert sim.usage_totals()["calls"] == 0
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "agentos: error: --budget needs prices, and none is known for model 'house-model-7'; "
        "give it with --prices FILE (TOML, USD per million tokens)"
    )
    assert not (repo / ".agentos" / "runs").exists()
    # ...unless the user gives it
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."house-model-*"]\ninput = 2.0\noutput = 8.0\n')
    priced_dir = tmp_path / "priced"
    with ProviderSim([Org("acme"), Org("side")], KEYS, latency=0.02) as sim:
        priced = run(
            requirements(repo, sim.base_url, keys, "--budget", "1", "--prices", str(prices),
                         "--force", "--run-dir", str(priced_dir), model="house-model-7"),
            cwd=repo,
        )  # fmt: skip
        server = sim.usage_totals()
    assert priced.returncode == 0, priced.stderr[-3000:]
    expected = (server["prompt_tokens"] * 2.0 + server["completion_tokens"] * 8.0) / 1e6
    assert summary_of(priced_dir)["usage"]["cost_usd"] == pytest.approx(expected)


def test_item_caps_fail_an_item_at_its_next_call_without_retrying_it(tmp_path: Path) -> None:
    repo = repo_with_briefs(tmp_path, 3)
    run_dir = tmp_path / "run"
    with ProviderSim([Org("acme"), Org("side")], KEYS, latency=0.02) as sim:
        # a draft costs about 500 tokens: the review call finds the item over 300
        done = run(
            requirements(repo, sim.base_url, keys_file(tmp_path, KEYS), "--item-tokens", "300",
                         "--retries", "3", "--run-dir", str(run_dir)),
            cwd=repo,
        )  # fmt: skip
        server = sim.usage_totals()
    assert done.returncode == 1
    assert server["calls"] == 3  # the drafts; no review, no retry
    rows = summary_of(run_dir)["items"]
    for row in rows:
        tokens = row["usage"]["input_tokens"] + row["usage"]["output_tokens"]
        assert (row["status"], row["attempts"]) == ("failed", 1)
        assert row["error"] == f"over budget: {tokens:,} of 300 tokens"
    assert "over budget:" in done.stderr  # the table says so

    # in dollars: the same, with the amounts
    cap = 400 * price_per_token(MODEL)[0]  # less than any draft costs
    dollars = tmp_path / "dollars"
    with ProviderSim([Org("acme"), Org("side")], KEYS, latency=0.02) as sim:
        capped = run(
            requirements(repo, sim.base_url, keys_file(tmp_path, KEYS), "--item-budget",
                         f"{cap:.9f}", "--force", "--run-dir", str(dollars), "-j", "2"),
            cwd=repo,
        )  # fmt: skip
    assert capped.returncode == 1
    for row in summary_of(dollars)["items"]:
        assert row["error"] == f"over budget: {money(row['usage']['cost_usd'])} of {money(cap)}"


def test_a_server_that_reports_no_usage_still_works_with_usage_unknown(tmp_path: Path) -> None:
    repo = repo_with_briefs(tmp_path, 2)
    key = "sk-usage-key-a-0000000"
    run_dir = tmp_path / "run"
    with FakeOpenAI({key: "ok"}) as server:
        done = run(
            requirements(repo, server.url, keys_file(tmp_path, {key: "acme"}), "--run-dir",
                         str(run_dir)),
            cwd=repo,
        )  # fmt: skip
        with_budget = run(
            requirements(repo, server.url, keys_file(tmp_path, {key: "acme"}), "--force",
                         "--budget", "5", "-j", "2"),
            cwd=repo,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    usage = summary_of(run_dir)["usage"]
    assert (usage["calls"], usage["unmetered_calls"], usage["cost_usd"]) == (4, 4, None)
    assert done.stderr.count(f"calls of model '{MODEL}' reported no token counts") == 1
    # a budget cannot be kept on calls of unknown cost: the run stops after the first item
    assert with_budget.returncode == 1
    assert last_line(with_budget).startswith(
        f"agentos: error: cannot keep to --budget $5.00: calls of model '{MODEL}' reported "
        "no token counts; $0.00 of $5.00 spent; 1 item not started"
    )


WRAPPER = """#!{python}
import json, os, sys
prompt = sys.stdin.read()
with open(os.environ["AGENTOS_USAGE_FILE"], "a") as f:
    f.write(json.dumps({{"model": "claude-sonnet-4-5", "input_tokens": 1000,
                        "cached_tokens": 400, "output_tokens": 250}}) + "\\n")
    f.write("this line is broken\\n")
print({answer!r} if "review" not in prompt.lower()[:400] else "APPROVED\\n\\nFine.")
"""


def test_a_cmd_agent_reports_through_its_usage_file(tmp_path: Path) -> None:
    from bench.provider_sim import LLD_ANSWER

    repo = repo_with_briefs(tmp_path, 2)
    agent = tmp_path / "agent.py"
    agent.write_text(
        WRAPPER.format(python=sys.executable, answer=LLD_ANSWER.format(title="the change"))
    )
    agent.chmod(0o755)
    run_dir = tmp_path / "run"
    done = run(
        agentos_argv("requirements", "--repo", str(repo), "--drafter", f"cmd:{agent}",
                     "--reviewer", f"cmd:{agent}", "-j", "2", "--run-dir", str(run_dir),
                     "--budget", "10"),
        cwd=repo,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # a CLI's models are known only from its calls: the budget is kept as they come
    assert "--budget counts the model calls that commands report in $AGENTOS_USAGE_FILE" in (
        done.stderr
    )
    usage = summary_of(run_dir)["usage"]
    calls = usage["calls"]
    assert calls >= 4 and usage["skipped_lines"] == calls
    assert usage["cached_tokens"] == 400 * calls
    price = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1000, cache_read_tokens=400, output_tokens=250),
        "claude-sonnet-4-5",
    )
    assert usage["cost_usd"] == pytest.approx(float(price.total_price) * calls)
    assert "AGENTOS_USAGE_FILE line 2 skipped: not JSON" in done.stderr
    assert len(list((run_dir / "usage").glob("brief-*.attempt-1.jsonl"))) == 2


def test_agentos_run_commands_report_usage_and_a_failed_attempt_counts_toward_the_cap(
    tmp_path: Path,
) -> None:
    script = tmp_path / "work.sh"
    script.write_text(
        "#!/bin/sh\n"
        'echo \'{"model": "gpt-4o-mini", "input_tokens": 600, "output_tokens": 100}\' '
        '>> "$AGENTOS_USAGE_FILE"\n'
        'test "$1" != bad\n'
    )
    script.chmod(0o755)
    items = items_file(tmp_path / "items.txt", ["good", "bad"])
    done = run(
        agentos_argv("run", "--items", str(items), "--retries", "3", "--retry-backoff", "0",
                     "--item-tokens", "1000", "--", str(script), "{}"),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1
    run_dir = next((tmp_path / ".agentos" / "runs").iterdir())
    rows = {r["id"]: r for r in summary_of(run_dir)["items"]}
    assert rows["item-1"]["status"] == "done" and rows["item-1"]["usage"]["calls"] == 1
    # the bad item failed once (700 tokens, under 1000), again (1400: over), then stopped
    assert rows["item-2"]["attempts"] == 3
    assert rows["item-2"]["error"] == "over budget: 1,400 of 1,000 tokens"
    assert rows["item-2"]["usage"]["calls"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "0"], "Invalid value for '--budget'"),
        (["--budget", "lots"], "Invalid value for '--budget'"),
        (["--item-tokens", "-5"], "Invalid value for '--item-tokens'"),
        (["--prices", "."], "Invalid value for '--prices'"),
    ],
)
def test_bad_budget_options_are_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    items = items_file(tmp_path / "items.txt", ["x"])
    done = run(agentos_argv("run", "--items", str(items), *args, "--", "true"), cwd=tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def stated_cost_script(tmp_path: Path) -> Path:
    """A command that reports one call whose provider stated its cost: $0.30."""
    script = tmp_path / "paid.sh"
    script.write_text(
        "#!/bin/sh\n"
        'echo \'{"model": "some-cli-model", "input_tokens": 10, "output_tokens": 10, '
        '"cost_usd": 0.3}\' >> "$AGENTOS_USAGE_FILE"\n'
        "echo did $1\n"
    )
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("backend", ["sequential", "dask"])
def test_a_run_budget_on_commands_that_state_their_cost(tmp_path: Path, backend: str) -> None:
    if backend == "dask":
        pytest.importorskip("distributed")
        extra = ["--backend", "dask", "-j", "1"]
    else:
        extra = []
    items = items_file(tmp_path / "items.txt", ["a", "b", "c", "d", "e"])
    done = run(
        agentos_argv("run", "--items", str(items), "--budget", "1", *extra, "--",
                     str(stated_cost_script(tmp_path)), "{}"),
        cwd=tmp_path,
        timeout=150,
    )  # fmt: skip
    # $0.30 each: a, b, c fit in $1.00 (0.90); d would make it 1.20
    run_dir = next((tmp_path / ".agentos" / "runs").iterdir())
    assert done.returncode == 1, done.stderr[-3000:]
    assert last_line(done) == (
        f"agentos: error: budget reached: $0.90 of $1.00 spent; 2 items not started; rerun "
        f"with a higher budget to continue: agentos run --resume {run_dir.resolve()} --budget USD"
    )
    said = [line.rpartition("] ")[2] for line in done.stdout.splitlines() if "did" in line]
    assert said == [
        "did a",
        "did b",
        "did c",
    ]
    usage = summary_of(run_dir)["usage"]
    assert usage["cost_usd"] == pytest.approx(0.9) and usage["unpriced_models"] == []


def test_a_key_a_command_writes_into_its_usage_file_does_not_stay_there(tmp_path: Path) -> None:
    """The usage file lies in the run directory; a wrapper that writes its key into it (here
    as the model's name) left the key in a file of the run."""
    items = items_file(tmp_path / "items.txt", ["a"])
    script = 'echo "{\\"model\\": \\"$AGENTOS_API_KEY\\"}" >> "$AGENTOS_USAGE_FILE"'
    done = run(
        agentos_argv("run", "--items", str(items), "--", "sh", "-c", script),
        cwd=tmp_path,
        env=clean_env(AGENTOS_CREDENTIALS="sk-usage-file-secret-0001"),
    )
    assert done.returncode == 0, done.stderr
    run_dir = next((tmp_path / ".agentos" / "runs").iterdir())
    (usage,) = (run_dir / "usage").glob("*.jsonl")
    assert "[key-1]" in usage.read_text()
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert "sk-usage-file-secret-0001" not in path.read_text(errors="replace"), path
