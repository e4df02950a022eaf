"""A load run as one self-contained HTML page: figures, thresholds and charts drawn by Plotly.

Plotly's JavaScript bundle is inlined (some 4.6 MB), so the page opens offline and
fetches nothing. The charts are built from the very figures ``--json`` writes, and
the page keeps what it plotted in an element (``#plotted``) once drawn, so that a
test in a browser can compare the two.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any, cast

SENT, ACKED, DRAIN = "#1f77b4", "#2ca02c", "rgba(160, 160, 160, 0.25)"
PERCENTILE_LINES = ("p50", "p90", "p99", "max")


def render(figures: dict[str, Any]) -> str:
    """The page for the figures of ``nbwss-emu load`` (what ``--json`` writes)."""
    import plotly.graph_objects as go  # type: ignore[import-untyped]  # noqa: PLC0415 - only a page needs it (a second to import)
    from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]  # noqa: PLC0415

    charts = [
        ("throughput", _throughput(go, figures)),
        ("latency-over-time", _latency_over_time(go, figures)),
        ("latency-percentiles", _hdr(go, figures)),
        ("generator", _generator(go, figures)),
    ]
    divs = "\n".join(
        figure.to_html(full_html=False, include_plotlyjs=False, div_id=name, config={"displaylogo": False, "responsive": True})
        for name, figure in charts
        if figure is not None
    )
    title = f"nbwss-emulator load: {figures['scenario']}, {figures['masters']} masters"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 960px; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: left; }}
.met {{ color: #2ca02c; font-weight: bold; }} .unmet {{ color: #d62728; font-weight: bold; }}
#plotted {{ display: none; }}
</style>
<script>{get_plotlyjs()}</script>
</head><body>
<h1>{escape(title)}</h1>
{_verdict(figures)}
<table>{"".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in _summary(figures))}</table>
<h2>Thresholds</h2>{_thresholds(figures)}
<h2>Findings</h2>{_findings(figures)}
<h2>Charts</h2>
{divs}
<pre id="plotted"></pre>
<script>
// What was drawn, as the browser holds it: a test compares it with the run's JSON.
const plotted = {{}};
for (const div of document.querySelectorAll(".js-plotly-plot")) {{
  plotted[div.id] = div.data.map(t => ({{name: t.name, x: Array.from(t.x), y: Array.from(t.y)}}));
}}
document.getElementById("plotted").textContent = JSON.stringify(plotted);
</script>
</body></html>
"""


def _verdict(figures: dict[str, Any]) -> str:
    parts = []
    if figures.get("interrupted"):
        parts.append("<p class=unmet>Interrupted: the figures cover what happened until then.</p>")
    findings = sum(figures["findings"].values())
    unmet = [t for t in figures.get("thresholds", []) if not t["met"]]
    if findings or figures["lost"] or unmet:
        parts.append(f"<p class=unmet>FAILED: {findings} findings, {figures['lost']} lost, {len(unmet)} thresholds not met.</p>")
    else:
        parts.append("<p class=met>PASSED: no findings, nothing lost, every threshold met.</p>")
    return "".join(parts)


def _summary(figures: dict[str, Any]) -> list[tuple[str, str]]:
    generation = figures.get("generation", {})
    memory = figures.get("generator_memory") or {}
    rows = [
        ("scenario", str(figures["scenario"])),
        (
            "masters",
            f"{figures['masters']} ({figures.get('masters_connected', '-')} connected, {figures.get('masters_refused', 0)} refused)",
        ),
        ("model", str(figures["model"])),
        ("endpoint", str(figures["endpoint"])),
        ("duration / elapsed", f"{figures.get('duration_s', 0):g} s / {figures['elapsed_s']:.1f} s (the rest is the drain)"),
        ("sent / acknowledged", f"{figures['sent']:,} / {figures['acknowledged']:,} ({figures['rate']:,.0f} acknowledged/s)"),
        ("retried / lost / late", f"{figures['retried']:,} / {figures['lost']:,} / {figures.get('late', 0):,}"),
        ("connections opened / dropped", f"{figures['connections_opened']} / {figures['connections_dropped']}"),
        ("COMMAND requests answered", str(figures.get("commands", {}).get("answered", 0))),
    ]
    rows += [
        (f"ack latency {name}", f"{value:,.2f} ms" if value is not None else "not measured")
        for name, value in figures["ack_latency_ms"].items()
    ]
    if generation:
        first = generation.get("first_sent_s")
        rows += [
            ("first notification", f"{first:.2f} s after start" if first is not None else "none sent"),
            (
                f"generator processes ({generation.get('processes', 1)})",
                f"{generation.get('cpu', 0):.2f} of a CPU, {generation.get('rss_peak_mib') or '-'} MiB peak resident",
            ),
            (
                "masters waited for the generator",
                f"{generation.get('starved', 0)} times, {generation.get('starved_share', 0):.1%} of their time",
            ),
        ]
    if memory:
        per_master = memory.get("per_master_connection_kib")
        rows.append(
            (
                "senders' process",
                f"{figures.get('generator_cpu', 0):.2f} of a CPU, {memory['rss_peak_mib']} MiB peak resident"
                + (f", +{per_master} KiB per master connection" if per_master is not None else ""),
            )
        )
    return rows


def _thresholds(figures: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{escape(t['threshold'])}</td><td>{escape(t.get('limit', ''))}</td><td>{escape(t.get('measured', str(t['actual'])))}</td>"
        f"<td class={'met' if t['met'] else 'unmet'}>{'met' if t['met'] else 'NOT MET'}</td></tr>"
        for t in figures.get("thresholds", [])
    )
    return (
        f"<table><tr><th>threshold</th><th>limit</th><th>measured</th><th>result</th></tr>{rows}</table>" if rows else "<p>none given</p>"
    )


def _findings(figures: dict[str, Any]) -> str:
    evidence = figures.get("evidence", {})
    rows = "".join(
        f"<tr><td>{escape(rule)}</td><td>{count:,}</td><td>{escape((evidence.get(rule) or [''])[0])}</td></tr>"
        for rule, count in sorted(figures["findings"].items())
    )
    return f"<table><tr><th>rule</th><th>findings</th><th>first example</th></tr>{rows}</table>" if rows else "<p>no findings</p>"


def _drain(go: Any, figure: Any, seconds: list[dict[str, Any]]) -> None:
    """Shade the drain: seconds after the duration, when only acknowledgements of earlier notifications come."""
    drain = [s["second"] for s in seconds if s.get("phase") == "drain"]
    if drain:
        figure.add_vrect(
            x0=drain[0] - 0.5, x1=drain[-1] + 0.5, fillcolor=DRAIN, line_width=0, annotation_text="drain", annotation_position="top left"
        )


def _layout(title: str, x: str, y: str) -> dict[str, Any]:
    return {
        "title": {"text": title},
        "xaxis": {"title": {"text": x}},
        "yaxis": {"title": {"text": y}, "rangemode": "tozero"},
        "height": 360,
        "margin": {"l": 70, "r": 20, "t": 50, "b": 50},
        "legend": {"orientation": "h", "y": -0.2},
    }


def _throughput(go: Any, figures: dict[str, Any]) -> Any:
    seconds = figures["per_second"]
    xs = [s["second"] for s in seconds]
    figure = go.Figure(
        [
            go.Bar(name="sent", x=xs, y=[s["sent"] for s in seconds], marker_color=SENT),
            go.Bar(name="acknowledged", x=xs, y=[s["acknowledged"] for s in seconds], marker_color=ACKED),
        ],
        layout=_layout(
            "Throughput per second (idle seconds are zeros)", "second of the run (s since the clock started)", "notifications/s"
        ),
    )
    figure.update_layout(barmode="group")
    figure.update_xaxes(dtick=1 if len(xs) <= 30 else None)
    _drain(go, figure, seconds)
    return figure


def _latency_over_time(go: Any, figures: dict[str, Any]) -> Any:
    seconds = figures["per_second"]
    xs = [s["second"] for s in seconds]
    # a second without acknowledgements has no latency: a gap in the line, not a zero
    traces = [
        go.Scatter(name=name, x=xs, y=[s["ack_latency_ms"][name] for s in seconds], mode="lines+markers") for name in PERCENTILE_LINES
    ]
    figure = go.Figure(traces, layout=_layout("Ack latency percentiles per second", "second of the run (s since the clock started)", "ms"))
    figure.update_xaxes(dtick=1 if len(xs) <= 30 else None)
    _drain(go, figure, seconds)
    return figure


def _hdr(go: Any, figures: dict[str, Any]) -> Any:
    points = figures.get("latency_percentiles_ms", [])
    if not points:
        return None
    ticks = [p["ticks"] for p in points]
    labels = {2: "50%", 10: "90%", 100: "99%", 1000: "99.9%", 10_000: "99.99%", 100_000: "99.999%", 1_000_000: "99.9999%"}
    shown = {k: v for k, v in labels.items() if k <= max(ticks)}
    figure = go.Figure(
        [
            go.Scatter(
                name="ack latency", x=ticks, y=[p["ms"] for p in points], mode="lines+markers", customdata=[p["percentile"] for p in points]
            )
        ],
        layout=_layout("Ack latency by percentile (HDR percentile plot)", "percentile (log scale of 1/(1 - percentile))", "ms"),
    )
    figure.update_traces(hovertemplate="%{customdata:.4f}%: %{y:.2f} ms<extra></extra>")
    figure.update_xaxes(type="log", tickvals=list(shown), ticktext=list(shown.values()))
    return figure


def _generator(go: Any, figures: dict[str, Any]) -> Any:
    generation = figures.get("generation")
    memory = figures.get("generator_memory")
    if not generation:
        return None
    names = ["senders' process", "generator processes"]
    cpu = [figures.get("generator_cpu", 0.0), generation.get("cpu", 0.0)]
    rss = [memory["rss_peak_mib"] if memory else None, generation.get("rss_peak_mib")]
    figure = go.Figure(
        [
            go.Bar(name="CPU (fraction of a core)", x=names, y=cpu, yaxis="y", offsetgroup="cpu"),
            go.Bar(name="peak resident memory (MiB)", x=names, y=rss, yaxis="y2", offsetgroup="rss"),
        ],
        layout=_layout("The load generator's own use", "process", "CPU (fraction of a core)"),
    )
    figure.update_layout(yaxis2={"title": {"text": "MiB"}, "overlaying": "y", "side": "right", "rangemode": "tozero"}, barmode="group")
    return figure


def series(figures: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """What each chart should plot, from the figures: name, x and y of each trace (what ``#plotted`` holds)."""
    seconds = figures["per_second"]
    xs = [s["second"] for s in seconds]
    expected: dict[str, list[dict[str, Any]]] = {
        "throughput": [
            {"name": "sent", "x": xs, "y": [s["sent"] for s in seconds]},
            {"name": "acknowledged", "x": xs, "y": [s["acknowledged"] for s in seconds]},
        ],
        "latency-over-time": [{"name": n, "x": xs, "y": [s["ack_latency_ms"][n] for s in seconds]} for n in PERCENTILE_LINES],
    }
    points = figures.get("latency_percentiles_ms", [])
    if points:
        expected["latency-percentiles"] = [{"name": "ack latency", "x": [p["ticks"] for p in points], "y": [p["ms"] for p in points]}]
    return cast(dict[str, list[dict[str, Any]]], json.loads(json.dumps(expected)))  # as JSON has it: tuples as lists
