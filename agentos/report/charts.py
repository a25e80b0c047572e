"""The report's charts, as plotly figures.

- The timeline draws one bar per attempt, in one lane per worker (a switch moves them to one lane
  per key), coloured by outcome, with the item, attempt, key and duration on hover. An attempt of
  a few milliseconds in an overnight run would be a bar too thin to see, so bars have a minimum
  drawn width; the hover text has the true duration.
- "Calls and refusals" bins the per-group counters of `metrics.jsonl` (cumulative, sampled when
  they change) into calls per minute, with the group's requests-per-minute limit when known: the
  picture of whether the governor kept the keys busy, and how often a provider said no.
- Spend is the running total of the attempts' recorded cost, against the budget when one was set.
"""

from __future__ import annotations

import bisect
import html
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import plotly.colors
import plotly.graph_objects as go

from agentos.report.data import AttemptRow, RunRecord
from agentos.rundir.statuses import Status

#: outcome -> colour (colour-blind-safe where it matters: done and failed differ in lightness too)
COLOURS: dict[str, str] = {
    Status.DONE: "#2e8b57",
    Status.FAILED: "#c0392b",
    Status.TIMEOUT: "#e67e22",
    Status.RATE_LIMITED: "#8e44ad",
    Status.REJECTED: "#6d4c41",
    Status.INTERRUPTED: "#7f8c8d",
}
_OTHER = "#34495e"
#: the thinnest bar drawn, as a share of the run's span
MIN_BAR_SHARE = 0.002
TIMELINE_ID = "timeline"


def _when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 120:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def lanes(attempts: Sequence[AttemptRow]) -> tuple[list[str], list[str]]:
    """Each attempt's worker lane and key lane. Workers are numbered in order of first use (pids
    mean nothing to a reader, and a replaced worker gets a lane of its own)."""
    numbers: dict[int | None, int] = {}
    by_worker: list[str] = []
    for a in sorted(attempts, key=lambda a: a.started):
        numbers.setdefault(a.worker_pid, len(numbers) + 1)
    for a in attempts:
        by_worker.append(f"worker {numbers[a.worker_pid]}")
    by_key = [a.key_label or "no key" for a in attempts]
    return by_worker, by_key


def timeline(record: RunRecord) -> go.Figure:
    attempts = record.attempts
    by_worker, by_key = lanes(attempts)
    span = max(record.last_seen - record.started, 1e-3)
    least = span * MIN_BAR_SHARE
    statuses: list[str] = [s for s in COLOURS if any(a.status == s for a in attempts)]
    statuses += sorted({a.status for a in attempts} - set(COLOURS))
    fig = go.Figure()
    worker_ys: list[list[str]] = []
    key_ys: list[list[str]] = []
    for status in statuses:
        picked = [i for i, a in enumerate(attempts) if a.status == status]
        worker_ys.append([by_worker[i] for i in picked])
        key_ys.append([_h(by_key[i]) for i in picked])
        # plotly draws hover text, names and labels as HTML (<a href> included): every value
        # from the run's files is escaped, only our own <b> and <br> are markup
        hover = [
            f"<b>{_h(attempts[i].item)}</b> attempt {attempts[i].attempt}<br>{_h(status)}"
            f"{' (' + _h(attempts[i].refusal) + ')' if attempts[i].refusal else ''}"
            f"<br>key: {_h(attempts[i].key_label or '-')}<br>{by_worker[i]}"
            f"<br>duration: {_duration(attempts[i].runtime)}"
            + (f"<br>{_h(_short(attempts[i].error))}" if attempts[i].error else "")
            for i in picked
        ]
        fig.add_trace(
            go.Bar(
                name=_h(status),
                orientation="h",
                y=worker_ys[-1],
                base=[_when(attempts[i].started) for i in picked],
                x=[max(attempts[i].runtime, least) * 1000 for i in picked],  # ms on a date axis
                # a white edge, so that back-to-back attempts in a lane stay apart
                marker={
                    "color": COLOURS.get(status, _OTHER),
                    "line": {"width": 1, "color": "#fff"},
                },
                hovertext=hover,
                hoverinfo="text",
                customdata=[[attempts[i].item, attempts[i].attempt] for i in picked],
            )
        )
    lanes_count = max(len(set(by_worker)), len(set(by_key)), 1)
    fig.update_layout(
        title="Attempts over time",
        barmode="overlay",
        xaxis={"type": "date", "title": "time (UTC)"},
        yaxis={"autorange": "reversed", "type": "category", "categoryorder": "category ascending"},
        height=min(900, 160 + 28 * lanes_count),
        legend={"title": "outcome"},
        margin={"l": 90, "r": 20, "t": 80, "b": 50},
        updatemenus=[
            {
                "type": "buttons",
                "direction": "right",
                # above the plotting area, beside the title: over the bars it hid their ends
                "x": 1.0,
                "xanchor": "right",
                "y": 1.02,
                "yanchor": "bottom",
                "pad": {"b": 4},
                "buttons": [
                    {"label": "lane per worker", "method": "restyle", "args": [{"y": worker_ys}]},
                    {"label": "lane per key", "method": "restyle", "args": [{"y": key_ys}]},
                ],
            }
        ],
    )
    return fig


def _h(text: object) -> str:
    """Text from the run's files as plotly text: its HTML-like markup escaped."""
    return html.escape(str(text))


def _short(text: str, limit: int = 120) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bin_width(span: float, bins: int = 40) -> float:
    """A round bin width (5 s, 10 s, ... 1 h) giving at most about `bins` bins. Not less than
    5 s: a provider's limit is per minute, and narrower bins show mostly the bursts a limit's
    window allows, not the rate."""
    for width in (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if span / width <= bins:
            return float(width)
    return 3600.0 * math.ceil(span / 3600 / bins)


def _step(times: list[float], values: list[float], at: float) -> float:
    """A cumulative counter's value at `at`: its last sample at or before it."""
    i = bisect.bisect_right(times, at) - 1
    return values[i] if i >= 0 else 0.0


def per_bin(
    times: list[float], cumulative: list[float], start: float, end: float, width: float
) -> tuple[list[float], list[float]]:
    """(bin starts, amount in each bin) of a cumulative counter sampled at `times`."""
    edges: list[float] = []
    amounts: list[float] = []
    t = start
    while t < end or not edges:
        edges.append(t)
        amounts.append(_step(times, cumulative, t + width) - _step(times, cumulative, t))
        t += width
    return edges, amounts


def call_series(record: RunRecord) -> dict[str, dict[str, Any]]:
    """Per key group: sample times, cumulative calls, cumulative refusals (all kinds), limit."""
    series: dict[str, dict[str, Any]] = {}
    # a run with keys counts calls per group; one without counts only the run's reported calls.
    # (The last sample of a keyed run has no groups: the key server is gone by then.)
    keyed = any(sample.get("groups") for sample in record.samples)
    for sample in record.samples:
        groups = sample.get("groups") or {}
        if not keyed and isinstance(sample.get("calls"), int):
            groups = {"all calls": {"calls": sample["calls"], "refusals": {}}}
        for name, group in groups.items():
            if not isinstance(group, dict):
                continue
            s = series.setdefault(name, {"t": [], "calls": [], "refusals": [], "rpm": None})
            refusals = group.get("refusals") or {}
            s["t"].append(float(sample["t"]))
            s["calls"].append(float(group.get("calls") or 0))
            s["refusals"].append(float(sum(v for v in refusals.values() if isinstance(v, int))))
            if isinstance(group.get("rpm"), (int, float)):
                s["rpm"] = float(group["rpm"])
    return {name: s for name, s in series.items() if s["calls"] and s["calls"][-1] > 0}


def calls(record: RunRecord) -> go.Figure | None:
    series = call_series(record)
    if not series:
        return None
    start, end = record.started, record.last_seen
    width = bin_width(end - start)
    fig = go.Figure()
    palette = plotly.colors.qualitative.Plotly
    for n, (name, s) in enumerate(series.items()):
        colour = palette[n % len(palette)]  # a group's calls, refusals and limit share one
        edges, amounts = per_bin(s["t"], s["calls"], start, end, width)
        _, refused = per_bin(s["t"], s["refusals"], start, end, width)
        # per minute of what each bin covers: the last one ends with the run
        covered = [max(min(width, end - e), 1e-3) for e in edges]
        fig.add_trace(
            go.Scatter(
                name=f"{_h(name)}: calls/min",
                x=[_when(e) for e in edges],  # a step from each bin's start
                y=[a * 60 / c for a, c in zip(amounts, covered, strict=True)],
                mode="lines+markers",
                line={"shape": "hv", "color": colour},
            )
        )
        if any(refused):
            fig.add_trace(
                go.Bar(
                    name=f"{_h(name)}: refusals/min (429, overloaded, quota)",
                    x=[_when(e + c / 2) for e, c in zip(edges, covered, strict=True)],
                    y=[r * 60 / c for r, c in zip(refused, covered, strict=True)],
                    marker={"color": colour, "pattern": {"shape": "x"}},
                    opacity=0.6,
                )
            )
        if s["rpm"]:
            fig.add_trace(
                go.Scatter(
                    name=f"{_h(name)}: limit {s['rpm']:g}/min",
                    x=[_when(start), _when(end)],
                    y=[s["rpm"], s["rpm"]],
                    mode="lines",
                    line={"dash": "dash", "color": colour},
                )
            )
    fig.update_layout(
        title=f"Model calls and refusals per key group (per minute, {bin_width_text(width)} bins)",
        showlegend=True,  # with one group too: the legend names the lines
        xaxis={"type": "date", "title": "time (UTC)"},
        yaxis={"title": "per minute", "rangemode": "tozero"},
        height=360,
        margin={"l": 70, "r": 20, "t": 60, "b": 50},
    )
    return fig


def bin_width_text(width: float) -> str:
    return f"{width:g} s" if width < 60 else f"{width / 60:g} min"


def spend(record: RunRecord) -> go.Figure | None:
    priced = sorted((a for a in record.attempts if a.cost_usd), key=lambda a: a.ended)
    if not priced:
        return None
    total = 0.0
    xs = [_when(record.started)]
    ys = [0.0]
    for a in priced:
        total += a.cost_usd or 0.0
        xs.append(_when(a.ended))
        ys.append(total)
    fig = go.Figure(
        go.Scatter(name="spent", x=xs, y=ys, mode="lines", line={"shape": "hv"}, fill="tozeroy")
    )
    title = "Spend over time (USD, as attempts ended)"
    budget = record.budget
    if budget and total >= budget * 0.1:
        fig.add_trace(
            go.Scatter(
                name=f"budget ${budget:g}",
                x=[xs[0], _when(record.last_seen)],
                y=[budget, budget],
                mode="lines",
                line={"dash": "dash", "color": "#c0392b"},
            )
        )
    elif budget:  # a line far above the spend would flatten it to nothing
        title += f"; {total / budget:.1%} of the ${budget:g} budget"
    fig.update_layout(
        title=title,
        xaxis={"type": "date", "title": "time (UTC)"},
        yaxis={"title": "USD", "rangemode": "tozero", "tickprefix": "$"},
        height=320,
        margin={"l": 70, "r": 20, "t": 60, "b": 50},
    )
    return fig
