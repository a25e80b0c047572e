"""The report page: one HTML file with plotly's JavaScript, its charts and its tables inside.

Text from the run (item titles, errors, log lines) is escaped; the page loads nothing from the
network. The table sorts on a click of its header: a few lines of script, because a table
library would be the heaviest thing on the page.
"""

from __future__ import annotations

import html
import shlex
import time
from typing import Any

import plotly
from plotly.offline import get_plotlyjs

from agentos.report import charts
from agentos.report.data import RunRecord
from agentos.rundir.status import counts_text, details_of, duration, status_data
from agentos.usage.record import money
from agentos.version import __version__

_PLOT_CONFIG = {"displaylogo": False, "responsive": True}

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1280px;
       padding: 0 16px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.sub { color: #666; } .note { color: #666; font-style: italic; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; }
.facts dt { color: #666; } .facts dd { margin: 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e3e3e3;
         vertical-align: top; }
th { background: #f4f4f4; position: sticky; top: 0; }
table.sortable th { cursor: pointer; user-select: none; }
th.asc::after { content: " \\25B2"; } th.desc::after { content: " \\25BC"; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.st { font-weight: 600; }
.st-done { color: #2e8b57; } .st-failed, .st-timeout { color: #c0392b; }
.st-interrupted, .st-not-run { color: #7f8c8d; } .st-rate_limited { color: #8e44ad; }
details pre { background: #1e1e1e; color: #ddd; padding: 8px; overflow-x: auto;
              font-size: 12px; margin: 4px 0; }
code { background: #f4f4f4; padding: 1px 4px; }
"""

#: click a header to sort by it; numeric columns carry data-v with the number
_SORT_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var asc = !th.classList.contains('asc');
      table.querySelectorAll('th').forEach(function (h) { h.classList.remove('asc', 'desc'); });
      th.classList.add(asc ? 'asc' : 'desc');
      var key = function (row) {
        var cell = row.cells[col];
        var v = cell.getAttribute('data-v');
        return v !== null ? parseFloat(v) : cell.textContent.trim().toLowerCase();
      };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Any, default: float = 0) -> float:
    """A number from the run's files for a data-v attribute or a cell; `default` for anything
    else (the files may have been edited: a value is data, never markup)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return value


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def _figure(fig: Any, div_id: str) -> str:
    return str(
        fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=_PLOT_CONFIG)
    )


def _facts(rows: list[tuple[str, str]]) -> str:
    return (
        '<dl class="facts">' + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"
    )


def _counts(record: RunRecord) -> str:
    """The totals as the summary line says them: "12 done (5 Draft, 7 Approved), 1 failed"."""
    return _e(counts_text(record.totals(), details_of(record.items())))


def _usage_cell(usage: Any) -> tuple[str, str]:
    if not isinstance(usage, dict):
        return "", ""
    cost = usage.get("cost_usd")
    calls = usage.get("calls")
    cost_text = money(cost) if isinstance(cost, (int, float)) else ("unknown" if calls else "")
    return _e(calls or ""), _e(cost_text)


def _result(row: dict[str, Any]) -> str:
    outputs = row.get("outputs")
    return str(outputs.get("summary") or "") if isinstance(outputs, dict) else ""


def _items_table(record: RunRecord) -> str:
    # what items produced (a branch, its commit and diffstat), when the workflow says
    produced = any(_result(row) for row in record.items())
    head = (
        "<tr><th>item</th><th>title</th><th>status</th><th class=num>attempts</th>"
        "<th class=num>seconds</th><th>key</th><th class=num>calls</th><th class=num>cost</th>"
        + ("<th>result</th>" if produced else "")
        + "<th>error</th></tr>"
    )
    rows = []
    for n, row in enumerate(record.items()):
        status = str(row.get("status") or "")
        calls, cost = _usage_cell(row.get("usage"))
        usage = row.get("usage") if isinstance(row.get("usage"), dict) else {}
        cost_value = usage.get("cost_usd") if usage else None
        error = _e(row.get("error"))
        tail = record.tails.get(str(row.get("id")))
        if tail is not None:
            body = "\n".join(tail) if tail else "(the log is empty)"
            error = f"<details><summary>{error or 'log'}</summary><pre>{_e(body)}</pre></details>"
        seconds = float(_num(row.get("seconds")))
        # a workflow's word on a done item ("done (Draft)": not an approved LLD)
        detail = f" ({_e(row['detail'])})" if row.get("detail") else ""
        # every attribute quoted and every value a number or escaped: summary.json is a file
        # anyone who can write the run directory can edit
        rows.append(
            f'<tr><td data-v="{_num(row.get("seq"), n)}">{_e(row.get("id"))}</td>'
            f"<td>{_e(row.get('title'))}</td>"
            f'<td class="st st-{_e(status.replace(" ", "-"))}">{_e(status)}{detail}</td>'
            f'<td class="num" data-v="{_num(row.get("attempts"))}">{_e(row.get("attempts"))}</td>'
            f'<td class="num" data-v="{seconds}">{seconds:.1f}</td>'
            f"<td>{_e(row.get('key') or '-')}</td>"
            f'<td class="num" data-v="{_num(usage.get("calls")) if usage else 0}">'
            f"{calls or '-'}</td>"
            f'<td class="num" data-v="{_num(cost_value, -1)}">{cost or "-"}</td>'
            + (f"<td>{_e(_result(row))}</td>" if produced else "")
            + f"<td>{error}</td></tr>"
        )
    return (
        f'<table class="sortable" id="items"><thead>{head}</thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _keys_table(record: RunRecord) -> str:
    keys = record.keys
    if not keys:
        return '<p class="note">The run used no keys.</p>'
    head = (
        "<tr><th>key</th><th>group</th><th>state at the end</th><th class=num>leases</th>"
        "<th class=num>calls</th><th>refusals</th><th>limits</th></tr>"
    )
    rows = []
    for k in keys:
        refusals = k.get("refusals") or {}
        limits = ", ".join(
            f"{k[name]:g} {name}"
            for name in ("rpm", "tpm", "rpd")
            if isinstance(k.get(name), (int, float))
        )
        rows.append(
            f"<tr><td>{_e(k.get('label'))}</td><td>{_e(k.get('group'))}</td>"
            f"<td>{_e(k.get('state'))}</td><td class=num>{_e(k.get('leases'))}</td>"
            f"<td class=num>{_e(k.get('calls'))}</td>"
            f"<td>{_e(', '.join(f'{n} {kind}' for kind, n in refusals.items()) or '-')}</td>"
            f"<td>{_e(limits or 'learned from answers')}</td></tr>"
        )
    return f'<table class="sortable"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _about(record: RunRecord) -> str:
    m = record.manifest
    argv = m.get("argv")
    options: dict[str, Any] = m["options"] if isinstance(m.get("options"), dict) else {}
    machine: dict[str, Any] = m["machine"] if isinstance(m.get("machine"), dict) else {}
    rows: list[tuple[str, str]] = []
    if isinstance(argv, list):
        rows.append(("command line", f"<code>{_e(shlex.join(map(str, argv)))}</code>"))
    for name, value in m.items():
        if name not in ("argv", "options", "machine", "created", "agentos"):
            # `agentos run`'s identity names the items' command "command line"
            rows.append(("item command" if name == "command line" else name, _e(value)))
    rows.append(("agentos", _e(m.get("agentos") or "unknown")))
    rows += [(f"machine: {k}", _e(v)) for k, v in machine.items()]
    set_options = {
        k: v for k, v in options.items() if v not in (None, False, [], (), 0) or k == "retries"
    }
    # the runner's options, as set (the workflow's own, --drafter and the like, are in the
    # command line above)
    rows += [
        (f"--{name.replace('_', '-')}", f"<code>{_e(_option_text(value))}</code>")
        for name, value in sorted(set_options.items())
    ]
    return _facts(rows)


def _option_text(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(map(str, value))
    return "yes" if value is True else str(value)


def render(record: RunRecord) -> str:
    status = status_data(record.path)
    usage = record.usage or status.get("usage") or {}
    cost = usage.get("cost_usd") if isinstance(usage, dict) else None
    facts = [
        ("run directory", _e(record.path)),
        (
            "state",
            _e(status.get("state", "unknown"))
            + (f", exit {_e(status['exit_code'])}" if status.get("exit_code") is not None else ""),
        ),
        ("started", _e(_utc(record.started))),
        ("ended" if record.ended is not None else "last seen", _e(_utc(record.last_seen))),
        ("duration", _e(duration(record.last_seen - record.started))),
        ("items", _counts(record)),
        ("attempts", _e(len(record.attempts))),
    ]
    if isinstance(usage, dict) and usage.get("calls"):
        facts.append(("model calls", _e(usage.get("calls"))))
        facts.append(("spend", _e(money(cost) if isinstance(cost, (int, float)) else "unknown")))
    if record.corrupt_lines:
        facts.append(("journal", _e(f"{record.corrupt_lines} unreadable lines skipped")))
    sections = [
        _figure(charts.timeline(record), charts.TIMELINE_ID)
        if record.attempts
        else '<p class="note">No attempt has ended yet.</p>'
    ]
    calls = charts.calls(record)
    sections.append(
        _figure(calls, "calls")
        if calls is not None
        else '<p class="note">No model calls were recorded (the items made none, or their '
        "agent does not report them).</p>"
    )
    spend = charts.spend(record)
    sections.append(
        _figure(spend, "spend")
        if spend is not None
        else '<p class="note">No cost was recorded.</p>'
    )
    failed = len(record.tails)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="generator" content="agentos {_e(__version__)}, plotly {_e(plotly.__version__)}">
<title>agentos report: {_e(record.command)} {_e(record.path.name)}</title>
<style>{_STYLE}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>agentos {_e(record.command)}: {_counts(record)}</h1>
{_facts(facts)}
<h2>Timeline</h2>
{sections[0]}
<h2>Calls and refusals</h2>
{sections[1]}
<h2>Spend</h2>
{sections[2]}
<h2>Items</h2>
<p class="sub">Click a column to sort.{
        f" Open a failed item's error for the last lines of its log ({failed} failed)."
        if failed
        else ""
    }</p>
{_items_table(record)}
<h2>Keys</h2>
{_keys_table(record)}
<h2>Run</h2>
{_about(record)}
<p class="sub">Made by agentos {_e(__version__)} at {_e(_utc(time.time()))}.</p>
<script>{_SORT_SCRIPT}</script>
</body></html>
"""
