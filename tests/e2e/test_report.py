"""`agentos report`: the page made of a real run, and the pieces it is made of."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from support.processes import (
    PYTHON,
    REPO,
    Live,
    agentos_argv,
    clean_env,
    items_file,
    only_run_dir,
    run,
)

from agentos.report import charts
from agentos.report.data import RunRecord, log_tail
from agentos.run.about import masked_argv
from agentos.rundir.state import metrics_sample, read_state

pytest.importorskip("plotly")

#: item "bad" fails twice (one retry); the others report a priced call each through the usage file
ITEM = (
    'echo "{\\"model\\": \\"m\\", \\"input_tokens\\": 10, \\"output_tokens\\": 5, '
    '\\"cost_usd\\": 0.25}" >> "$AGENTOS_USAGE_FILE"; echo working on $0; '
    'for n in $(seq 30); do echo line $n of $0; done; [ "$0" != bad ]'
)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("report")
    items = items_file(work / "items.txt", ["one", "bad", "three", "four"])
    done = run(
        agentos_argv(
            "run",
            "-j",
            "2",
            "--retries",
            "1",
            "--retry-backoff",
            "0",
            "--budget",
            "2",
            "--notify",
            "json://127.0.0.1:9/secret-token",
            "--items",
            str(items),
            "--",
            "sh",
            "-c",
            ITEM,
        ),
        cwd=work,
    )
    assert done.returncode == 1, done.stderr
    run_dir = only_run_dir(work)
    report = run(agentos_argv("report", str(run_dir)), cwd=work)
    assert report.returncode == 0, report.stderr
    assert report.stdout.strip() == str(run_dir / "report.html")
    return run_dir


def test_the_report_shows_every_attempt_and_each_failures_last_lines(finished_run: Path) -> None:
    page = (finished_run / "report.html").read_text()
    journal = [json.loads(line) for line in (finished_run / "journal.jsonl").open()]
    assert len(journal) == 5  # bad twice

    record = RunRecord.load(finished_run)
    timeline = charts.timeline(record)
    bars = [(item, attempt) for trace in timeline.data for item, attempt in trace.customdata]
    assert sorted(bars) == sorted((r["item"], r["attempt"]) for r in journal)
    assert {trace.name for trace in timeline.data} == {"done", "failed"}
    # the failed item's last 20 lines, of its last attempt only, folded under its error
    (bad,) = [r["item"] for r in journal if r["status"] == "failed" and r["final"]]
    tail = record.tails[bad]
    assert tail == [f"line {n} of bad" for n in range(11, 31)]
    folded = re.search(r"<details><summary>(.*?)</summary><pre>(.*?)</pre>", page, re.S)
    assert folded is not None and "exit 1" in folded.group(1)
    assert folded.group(2).splitlines() == tail
    # spend over time: four priced attempts (with the budget's line: $1.25 of $2 is no speck)
    spend = charts.spend(record)
    assert spend is not None and spend.data[0].y[-1] == pytest.approx(1.25)
    assert [t.name for t in spend.data] == ["spent", "budget $2"]
    # the run's facts, and plotly's script inside the page: nothing to fetch
    assert "<code>agentos run -j 2" in page and "machine: cpus" in page
    assert not re.search(r"<script[^>]+src=", page)
    assert (
        "secret-token" not in page and "secret-token" not in (finished_run / "run.json").read_text()
    )


def test_the_items_table_has_a_sortable_row_per_item(finished_run: Path) -> None:
    page = (finished_run / "report.html").read_text()
    table = page[page.index('<table class="sortable" id="items">') :]
    table = table[: table.index("</table>")]
    assert table.count("<tr>") == 5  # the header and four items
    # numeric columns sort by number: 10 attempts must not sort before 9
    assert re.search(r'<td class="num" data-v="2">2</td>', table)


def test_a_run_whose_parent_was_killed_is_reported_from_its_journal(tmp_path: Path) -> None:
    items = items_file(tmp_path / "items.txt", ["quick", "slow"])
    live = Live(
        agentos_argv(
            "run",
            "-j",
            "2",
            "--items",
            str(items),
            "--",
            "sh",
            "-c",
            'echo go $0; [ "$0" = quick ] || sleep 60',
        ),
        tmp_path,
    )
    live.wait_for("go slow")
    run_dir = only_run_dir(tmp_path)
    # the parent's last word (state.json, rewritten at most 10 times a second) must show the
    # slow item running, and the journal the quick one done, before the parent dies
    for _ in range(400):
        state = read_state(run_dir) or {}
        running = [r.get("id") for r in state.get("running") or [] if isinstance(r, dict)]
        journal = run_dir / "journal.jsonl"
        if journal.exists() and journal.stat().st_size and "item-2" in running:
            break
        live._pump(0.05)
    else:
        raise AssertionError(f"state.json never showed item-2 running: {state}")
    os.kill(live.pid, signal.SIGKILL)
    live.finish(timeout=10)
    done = run(agentos_argv("report", str(run_dir), "-o", str(tmp_path / "r.html")), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "r.html").read_text()
    assert "ended without a summary (parent gone)" in page
    assert "last seen" in page
    record = RunRecord.load(run_dir)
    # the one that ended, and the one the parent's death cut off
    assert [(row["id"], row["status"]) for row in record.items()] == [
        ("item-1", "done"),
        ("item-2", "interrupted"),
    ]
    assert "the parent ended without a summary" in page


def test_the_output_is_a_file_a_folder_that_exists_or_stdout(
    finished_run: Path, tmp_path: Path
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target, said in (
        (fifo, "not a regular file"),  # as /dev/null would be: renamed over, it was replaced
        (tmp_path, "not a regular file"),
        (tmp_path / "missing" / "r.html", "does not exist"),
    ):
        done = run(agentos_argv("report", str(finished_run), "-o", str(target)), cwd=tmp_path)
        assert done.returncode == 2 and said in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert fifo.is_fifo() and not (tmp_path / "missing").exists()
    out = run(agentos_argv("report", str(finished_run), "-o", "-"), cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("<!DOCTYPE html>")
    assert out.stdout.rstrip().endswith("</html>")


def test_log_tail_keeps_only_the_last_attempt(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.log").write_text(
        "==> a attempt 1, started x <==\nold\n==> a attempt 2, started y <==\nnew 1\nnew 2\n"
    )
    assert log_tail(tmp_path, "a") == ["new 1", "new 2"]
    assert log_tail(tmp_path, "../a") == []
    assert log_tail(tmp_path, "missing") == []


def test_calls_are_binned_per_group_from_cumulative_samples() -> None:
    # 10 calls by t=4, 40 by t=9: in 2 s bins from t=0
    edges, amounts = charts.per_bin([1.0, 4.0, 9.0], [0.0, 10.0, 40.0], 0.0, 10.0, 2.0)
    assert edges == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert amounts == [0.0, 10.0, 0.0, 0.0, 30.0]
    assert charts.bin_width(20) == 5 and charts.bin_width(8 * 3600) == 900


def test_a_metrics_sample_sums_calls_per_group() -> None:
    state = {
        "phase": "running",
        "running": [{"id": "a"}],
        "counts": {"done": 2},
        "usage": {"calls": 7, "cost_usd": 0.1},
        "keys": [
            {"label": "key-1", "group": "org", "calls": 3, "refusals": {"rate": 1}, "rpm": 60},
            {"label": "key-2", "group": "org", "calls": 4, "refusals": {"rate": 1}, "rpm": 60},
            {"label": "key-3", "group": None, "calls": 1},
        ],
    }
    sample = metrics_sample(state)
    assert sample["groups"] == {
        "org": {"calls": 7, "refusals": {"rate": 1}, "rpm": 60},
        "key-3": {"calls": 1, "refusals": {}, "rpm": None},
    }
    assert sample["running"] == 1 and sample["cost_usd"] == 0.1


def test_notification_urls_are_masked_in_the_recorded_command_line() -> None:
    argv = ["agentos", "run", "--notify", "ntfy://tok@host/t", "--notify=slack://a/b/c", "-j", "2"]
    assert masked_argv(argv) == [
        "agentos",
        "run",
        "--notify",
        "<hidden>",
        "--notify=<hidden>",
        "-j",
        "2",
    ]


def test_without_plotly_the_error_names_the_extra(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['plotly'] = None; "
        "from agentos.__main__ import main; sys.argv = ['agentos', 'report', '.']; main()"
    )
    done = subprocess.run(
        [PYTHON, "-c", code], cwd=REPO, env=clean_env(), capture_output=True, text=True
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == "agentos: error: agentos report needs plotly: pip install 'agentos-batch[report]'"
    )


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: what the machine's closed network needs (no background fetches), in a throwaway profile
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
)


def render_in_chromium(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The page's DOM after its scripts ran, and the script errors Chromium logged."""
    assert CHROMIUM is not None
    proc = subprocess.Popen(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        start_new_session=True,
    )
    try:
        dom, log = proc.communicate(timeout=90)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    errors = [line for line in log.splitlines() if ":CONSOLE" in line and "Uncaught" in line]
    return dom, errors


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (make test-tools installs it)")
def test_the_report_renders_in_chromium_with_one_mark_per_attempt(
    finished_run: Path, tmp_path: Path
) -> None:
    # the check itself: a page with a script error is caught
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>noSuchFunction();</script></body></html>")
    assert render_in_chromium(broken, tmp_path / "profile-0")[1], "script errors go unseen"

    dom, errors = render_in_chromium(finished_run / "report.html", tmp_path / "profile")
    assert errors == []
    timeline = dom[dom.index(f'id="{charts.TIMELINE_ID}"') : dom.index('id="calls"')]
    attempts = len((finished_run / "journal.jsonl").read_text().splitlines())
    assert timeline.count('class="point"') == attempts == 5
    assert dom.count('class="point"') > attempts  # and the calls chart drew its marks


# -- a tampered run directory: every value is data, never markup or script

#: each sets a mark on <body> if the page ever runs it; %s names the field it came from
HOSTILE = (
    "<img src=x onerror=\"document.body.setAttribute('data-pwned-%s', 1)\">",
    "</script><script>document.body.setAttribute('data-pwned-%s', 2)</script>",
    "\"'><svg onload=\"document.body.setAttribute('data-pwned-%s', 3)\">",
    "<a href=\"javascript:document.body.setAttribute('data-pwned-%s', 4)\">link-%s</a>",
)


def hostile(field: str) -> str:
    return " ".join(h.replace("%s", field) for h in HOSTILE)


def tamper(run_dir: Path) -> None:
    """Hostile strings in every field the report reads."""
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["command"] = hostile("command")
    summary["totals"] = {hostile("total"): 1, **summary["totals"]}
    for n, row in enumerate(summary["items"]):
        row.update(
            id=row["id"] if n else hostile("id"),
            title=hostile("title"),
            status=hostile("status") if n == 2 else row["status"],
            detail=hostile("detail"),
            error=hostile("error"),
            key=hostile("key"),
            seq="1><img src=x onerror=\"document.body.setAttribute('data-pwned-seq', 5)\">",
            attempts=hostile("attempts"),
            seconds=hostile("seconds"),
            usage={"calls": hostile("calls"), "cost_usd": hostile("cost")},
        )
    summary["keys"] = [
        {
            "label": hostile("label"),
            "group": hostile("group"),
            "state": hostile("state"),
            "leases": hostile("leases"),
            "calls": hostile("kcalls"),
            "refusals": {hostile("r"): 1},
        }
    ]
    (run_dir / "summary.json").write_text(json.dumps(summary))
    journal = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    for record in journal:
        record.update(
            item=hostile("jitem"),
            status=hostile("jstatus"),
            key_label=hostile("jkey"),
            error=hostile("jerror"),
            refusal=hostile("jrefusal"),
        )
    (run_dir / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in journal))
    manifest = json.loads((run_dir / "run.json").read_text())
    manifest.update(
        argv=[hostile("argv")],
        workflow=hostile("workflow"),
        options={"retries": hostile("option"), "budget": 1.0},
        machine={hostile("mkey"): hostile("machine")},
        **{hostile("identity-name"): hostile("identity")},
    )
    (run_dir / "run.json").write_text(json.dumps(manifest))
    with (run_dir / "metrics.jsonl").open("a") as f:
        for t in (0.0, 30.0):
            sample = {
                "t": summary["started"] + t,
                "groups": {
                    hostile("metric-group"): {
                        "calls": 3 + int(t),
                        "refusals": {"rate": 1},
                        "rpm": 5,
                    }
                },
            }
            f.write(json.dumps(sample) + "\n")
    for log in (run_dir / "logs").glob("*.log"):
        with log.open("a") as f:
            f.write(hostile("log") + "\n")


def test_a_tampered_run_directory_cannot_put_markup_in_the_page(
    finished_run: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "tampered"
    shutil.copytree(finished_run, run_dir)
    tamper(run_dir)
    report = run(agentos_argv("report", str(run_dir)), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    page = (run_dir / "report.html").read_text()
    for field in (
        "command",
        "id",
        "title",
        "detail",
        "error",
        "key",
        "label",
        "argv",
        "log",
        "workflow",
        "identity",
        "machine",
        "option",
        "total",
        "status",
        "attempts",
    ):
        assert f"data-pwned-{field}', 1)\">" not in page, field  # never raw in the page
        assert f"link-{field}" in page, f"{field} is not shown at all"
    # what plotly draws as HTML (hover text, names, labels): escaped as well
    record = RunRecord.load(run_dir)
    figures = [charts.timeline(record), charts.calls(record)]
    texts = [
        text
        for fig in figures
        if fig is not None
        for trace in fig.data
        for text in [trace.name, *(getattr(trace, "hovertext", None) or ())]
    ]
    texts += [
        str(label)
        for ys in (charts.timeline(record).layout.updatemenus[0].buttons[1].args[0]["y"])
        for label in ys
    ]
    assert texts and not [t for t in texts if "<img" in t or "<a " in t or "<svg" in t]
    if CHROMIUM is None:
        pytest.skip("needs chromium (make test-tools installs it) for the rendering half")
    dom, errors = render_in_chromium(run_dir / "report.html", tmp_path / "profile")
    assert "data-pwned" not in dom.split("<body", 1)[1].split(">", 1)[0], "a script ran"
    # as elements or attributes (a text node serialises its "<" as &lt;)
    assert re.search(r"<a\s[^<>]*javascript:", dom) is None  # a link, in HTML or plotly's SVG
    assert re.search(r"<(img|svg)[^<>]*on(error|load)", dom) is None
    assert errors == []
