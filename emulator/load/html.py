"""A load run as one self-contained HTML page: figures, thresholds and SVG charts (no scripts, no fetches)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

WIDTH, HEIGHT, MARGIN = 720, 220, 44
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e")


def render(figures: dict[str, Any]) -> str:
    """The page for the figures of ``nbwss-emu load`` (what ``--json`` writes)."""
    seconds = figures["per_second"]
    xs = [s["second"] + 1 for s in seconds]
    latency = figures["ack_latency_ms"]
    summary = [
        ("scenario", figures["scenario"]),
        ("masters", figures["masters"]),
        ("model", figures["model"]),
        ("endpoint", figures["endpoint"]),
        ("elapsed", f"{figures['elapsed_s']:.1f} s"),
        ("sent / acknowledged", f"{figures['sent']} / {figures['acknowledged']} ({figures['rate']:.0f}/s)"),
        ("retried / lost", f"{figures['retried']} / {figures['lost']}"),
        ("connections opened / dropped", f"{figures['connections_opened']} / {figures['connections_dropped']}"),
    ]
    summary += [(f"ack latency {name}", f"{value:.2f} ms" if value is not None else "-") for name, value in latency.items()]
    thresholds = "".join(
        f"<tr><td>{escape(t['threshold'])}</td><td class={'met' if t['met'] else 'unmet'}>{'met' if t['met'] else 'NOT MET'}</td><td>{t['actual']}</td></tr>"
        for t in figures.get("thresholds", [])
    )
    errors = "".join(f"<tr><td>{escape(rule)}</td><td>{count}</td></tr>" for rule, count in sorted(figures["findings"].items()))
    throughput = _lines(
        "throughput (per second)",
        xs,
        [("sent", [s["sent"] for s in seconds]), ("acknowledged", [s["acknowledged"] for s in seconds])],
        "notifications/s",
    )
    percentile_lines = [(name, [s["ack_latency_ms"][name] for s in seconds]) for name in ("p50", "p90", "p99", "max")]
    latencies = _lines("ack latency percentiles (per second)", xs, percentile_lines, "ms")
    distribution = _bars("ack latency distribution", figures.get("latency_distribution_ms", []))
    title = f"nbwss-emulator load: {figures['scenario']}, {figures['masters']} masters"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 800px; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: left; }}
.met {{ color: #2ca02c; font-weight: bold; }} .unmet {{ color: #d62728; font-weight: bold; }}
svg {{ display: block; margin: 1.5em 0; background: #fafafa; }} text {{ font-size: 11px; fill: #444; }}
</style></head><body>
<h1>{escape(title)}</h1>
{"<p class=unmet>Interrupted: the figures cover what happened until then.</p>" if figures.get("interrupted") else ""}
<table>{"".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in summary)}</table>
<h2>Thresholds</h2>{f"<table><tr><th>threshold</th><th>result</th><th>actual</th></tr>{thresholds}</table>" if thresholds else "<p>none given</p>"}
{throughput}{latencies}{distribution}
<h2>Errors</h2>{f"<table><tr><th>rule</th><th>findings</th></tr>{errors}</table>" if errors else "<p>no findings</p>"}
<p>lost: {figures["lost"]}; connections dropped: {figures["connections_dropped"]}</p>
</body></html>
"""


def _frame(title: str, unit: str, top: float) -> list[str]:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT + 40}" role="img" aria-label="{escape(title)}">']
    parts.append(f'<text x="{MARGIN}" y="16" style="font-size:13px;font-weight:bold">{escape(title)}</text>')
    for tick in range(5):
        value = top * tick / 4
        y = HEIGHT - (HEIGHT - 30) * tick / 4
        parts.append(f'<line x1="{MARGIN}" x2="{WIDTH - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        label = f"{value:,.0f}" if top >= 100 else f"{value:.3g}"
        parts.append(f'<text x="2" y="{y + 4:.1f}">{label}</text>')
    parts.append(f'<text x="{WIDTH - 80}" y="{HEIGHT + 30}">{escape(unit)}</text>')
    return parts


def _lines(title: str, xs: Sequence[int], series: Sequence[tuple[str, Sequence[float | None]]], unit: str) -> str:
    values = [v for _, ys in series for v in ys if v is not None]
    top = max(values, default=1.0) or 1.0
    parts = _frame(title, unit, top)
    span = max(xs[-1] - xs[0], 1) if xs else 1
    for index, (name, ys) in enumerate(series):
        points = [
            f"{MARGIN + (WIDTH - MARGIN - 10) * (x - xs[0]) / span:.1f},{HEIGHT - (HEIGHT - 30) * y / top:.1f}"
            for x, y in zip(xs, ys, strict=True)
            if y is not None
        ]
        colour = COLOURS[index % len(COLOURS)]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(points)}"/>')
        parts.append(f'<text x="{MARGIN + 90 * index}" y="{HEIGHT + 16}" style="fill:{colour}">{escape(name)}</text>')
    if xs:
        parts.append(
            f'<text x="{MARGIN}" y="{HEIGHT + 30}">second {xs[0]}</text><text x="{WIDTH - 150}" y="{HEIGHT + 30}">second {xs[-1]}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _bars(title: str, buckets: Sequence[dict[str, float]]) -> str:
    top = max((b["count"] for b in buckets), default=1) or 1
    parts = _frame(title, "acknowledgements per latency bucket (ms, upper bound)", top)
    width = (WIDTH - MARGIN - 10) / max(len(buckets), 1)
    for index, bucket in enumerate(buckets):
        height = (HEIGHT - 30) * bucket["count"] / top
        x = MARGIN + index * width
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{HEIGHT - height:.1f}" width="{max(width - 2, 1):.1f}" height="{height:.1f}" fill="{COLOURS[0]}"/>'
        )
        parts.append(f'<text x="{x + 2:.1f}" y="{HEIGHT + 14}">{bucket["le"]:g}</text>')
    parts.append("</svg>")
    return "".join(parts)
