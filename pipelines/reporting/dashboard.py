"""A one-file HTML dashboard of one UTC day, rendered offline: Vega-Lite specs built with altair, and the vega,
vega-lite and vega-embed JavaScript inlined from the bundle that ``vl-convert-python`` ships (no CDN, so the file
opens on a machine without network and can be archived beside the data it shows).

``python -m pipelines.reporting.dashboard SOURCE YYYY-MM-DD OUT.html`` writes one from a warehouse URL or a
Parquet root.
"""

from __future__ import annotations

import argparse
import html
import json
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import altair as alt
import vl_convert

from pipelines.reporting import daily

UNOBSERVED = "unobserved"
STATE_ORDER = ["Online", "Occupied", "Away", "Offline", UNOBSERVED]
STATE_COLORS = ["#2ca02c", "#ff7f0e", "#9467bd", "#7f7f7f", "#e0e0e0"]
TOP_AGENTS = 40  # per-agent charts show the agents with the most time in a state other than Offline

_STATE_COLOR = alt.Color("state:N", title="chat state",
                         scale=alt.Scale(domain=STATE_ORDER, range=STATE_COLORS), sort=STATE_ORDER)


def write_dashboard(source: daily.Source, out_path: str | Path, day: date) -> Path:
    """Render ``day`` from ``source`` (warehouse URL or Parquet root) into the HTML file ``out_path``."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(out.name + ".tmp")
    temporary.write_text(dashboard_html(source, day), encoding="utf-8")
    temporary.replace(out)
    return out


def dashboard_html(source: daily.Source, day: date) -> str:
    """The dashboard page of ``day``: every chart as a Vega-Lite spec, embedded with the inlined runtime."""
    sections = [(title, note, chart.to_dict()) for title, note, chart in charts(source, day)]
    bodies, calls = [], []
    for i, (title, note, spec) in enumerate(sections):
        bodies.append(f'<section><h2>{html.escape(title)}</h2><p>{html.escape(note)}</p>'
                      f'<div class="chart" id="chart-{i}"></div></section>')
        calls.append(f"vegaEmbed('#chart-{i}', {_script_json(spec)}, {{renderer: 'svg', actions: false}})"
                     ".catch(console.error);")
    return _PAGE.format(
        title=html.escape(f"Agent activity, {day.isoformat()} (UTC)"),
        runtime=vl_convert.javascript_bundle(),
        sections="\n".join(bodies),
        calls="\n".join(calls),
    )


def charts(source: daily.Source, day: date) -> list[tuple[str, str, alt.TopLevelMixin]]:
    """(title, note, chart) for each section of the page, in order."""
    names = {row["agent_id"]: row for row in daily.agents(source).to_pylist()}
    states = daily.daily_time_in_state(source, day).to_pylist()
    hourly_states = daily.hourly_time_in_state(source, day).to_pylist()
    hourly_use = daily.hourly_utilization(source, day).to_pylist()
    capacity = daily.capacity(source, day).to_pylist()

    def label(agent_id: str) -> str:
        return (names.get(agent_id) or {}).get("user_name") or agent_id

    def group(agent_id: str) -> str:
        row = names.get(agent_id) or {}
        return row.get("agent_group_name") or row.get("agent_group_id") or "(no group)"

    busy: dict[str, float] = defaultdict(float)
    for row in states:
        if row["observed"] and row["chat_state"] != "Offline":
            busy[row["agent_id"]] += row["seconds"]
    top = set(sorted(busy, key=lambda agent: (-busy[agent], agent))[:TOP_AGENTS])

    per_agent = [{"agent": label(r["agent_id"]), "state": _state(r), "hours": r["seconds"] / 3600}
                 for r in states if r["agent_id"] in top]
    per_group: dict[tuple[str, str], float] = defaultdict(float)
    for r in states:
        per_group[(group(r["agent_id"]), _state(r))] += r["seconds"] / 3600
    coverage: dict[tuple[int, str], float] = defaultdict(float)
    for r in hourly_states:
        coverage[(r["hour"], "observed" if r["observed"] else UNOBSERVED)] += r["seconds"] / 3600
    heat = [{"agent": label(r["agent_id"]), "hour": r["hour"], "utilization": r["utilization"],
             "avg_active_chats": r["avg_active_chats"], "max_chats": r["max_chats"]}
            for r in hourly_use if r["agent_id"] in top and r["utilization"] is not None]
    lines = [{"at": r["snapshot_at"].isoformat(), "series": series, "value": value}
             for r in capacity
             for series, value in (("available slots", r["available_slots"]),
                                   ("active chats of monitored agents", r["monitored_active_chats"]))
             if value is not None and value >= 0]
    return [
        ("Time in state per group", "Agent-hours per chat state, summed over each group's agents (grey: "
         "time no snapshot saw).", _stacked_bars([{"group": g, "state": s, "hours": h}
                                                 for (g, s), h in per_group.items()], "group")),
        ("Time in state per agent", f"The {TOP_AGENTS} agents with the most time in a state other than Offline.",
         _stacked_bars(per_agent, "agent")),
        ("Utilization by hour", "Active chats ÷ max chats while Online or Occupied, averaged over the hour's "
         "snapshots (blank: not available, unlimited or unknown).", _heatmap(heat)),
        ("Available slots and active chats", "Account-wide available chat slots (unlimited not drawn) beside "
         "the chats the monitored agents are in, per snapshot.", _capacity_lines(lines)),
        ("Coverage", "Agent-hours seen by the snapshots versus not seen (outages longer than two intervals).",
         _coverage_bars([{"hour": h, "kind": k, "hours": v} for (h, k), v in coverage.items()])),
    ]


def _state(row: dict[str, Any]) -> str:
    return row["chat_state"] if row["observed"] else UNOBSERVED


def _stacked_bars(rows: list[dict[str, Any]], by: str) -> alt.Chart:
    return alt.Chart(alt.Data(values=rows)).mark_bar().encode(
        x=alt.X("sum(hours):Q", title="hours"),
        y=alt.Y(f"{by}:N", title=by, sort="-x"),
        color=_STATE_COLOR,
        order=alt.Order("state_rank:Q"),
        tooltip=[f"{by}:N", "state:N", alt.Tooltip("sum(hours):Q", format=".2f", title="hours")],
    ).transform_calculate(
        state_rank=f"indexof({json.dumps(STATE_ORDER)}, datum.state)"
    ).properties(width=720)


def _heatmap(rows: list[dict[str, Any]]) -> alt.Chart:
    return alt.Chart(alt.Data(values=rows)).mark_rect().encode(
        x=alt.X("hour:O", title="hour (UTC)", scale=alt.Scale(domain=list(range(24)))),
        y=alt.Y("agent:N", title="agent"),
        color=alt.Color("utilization:Q", scale=alt.Scale(domain=[0, 1], scheme="blues"), title="utilization"),
        tooltip=["agent:N", "hour:O", alt.Tooltip("utilization:Q", format=".0%"),
                 alt.Tooltip("avg_active_chats:Q", format=".2f"), "max_chats:Q"],
    ).properties(width=720)


def _capacity_lines(rows: list[dict[str, Any]]) -> alt.Chart:
    return alt.Chart(alt.Data(values=rows)).mark_line(interpolate="step-after").encode(
        x=alt.X("at:T", title="time (UTC)", axis=alt.Axis(format="%H:%M")),
        y=alt.Y("value:Q", title="chats / slots"),
        color=alt.Color("series:N", title=None),
        tooltip=[alt.Tooltip("at:T", format="%H:%M:%S"), "series:N", "value:Q"],
    ).properties(width=720, height=240)


def _coverage_bars(rows: list[dict[str, Any]]) -> alt.Chart:
    return alt.Chart(alt.Data(values=rows)).mark_bar().encode(
        x=alt.X("hour:O", title="hour (UTC)", scale=alt.Scale(domain=list(range(24)))),
        y=alt.Y("sum(hours):Q", title="agent-hours"),
        color=alt.Color("kind:N", title=None,
                        scale=alt.Scale(domain=["observed", UNOBSERVED], range=["#1f77b4", "#e0e0e0"])),
        tooltip=["hour:O", "kind:N", alt.Tooltip("sum(hours):Q", format=".1f")],
    ).properties(width=720, height=200)


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element (agent names are data: they must not close it)."""
    return json.dumps(value, default=str).replace("<", "\\u003c")


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
section {{ margin-bottom: 32px; }}
h2 {{ margin-bottom: 4px; font-size: 18px; }}
p {{ margin-top: 0; color: #555; font-size: 13px; }}
</style>
<script>{runtime}</script>
</head>
<body>
<h1>{title}</h1>
{sections}
<script>
{calls}
</script>
</body>
</html>
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the reporting dashboard of one UTC day.")
    parser.add_argument("source", help="warehouse URL or Parquet root")
    parser.add_argument("day", type=date.fromisoformat, help="UTC day, YYYY-MM-DD")
    parser.add_argument("out", type=Path, help="HTML file to write")
    args = parser.parse_args(argv)
    print(write_dashboard(args.source, args.out, args.day))


if __name__ == "__main__":
    main()
