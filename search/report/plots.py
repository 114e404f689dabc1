"""Plots of one track's search: Pareto scatters, optimisation history, parallel coordinates.

Figures are drawn from the trials table (search.report.tables) and the references' measurements, so they can
be redrawn from storage at any time. They take the width of the page (no fixed width) and open on the
region that matters: the axes span the feasible trials, the front and the references (pruned and failed
trials are one legend click away, infeasible ones one autoscale away). The HTML files share one plotly.min.js written beside them
(`include_plotlyjs="directory"`): small files that still open offline.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from editions import Constraint
from search.constraints import Limits
from search.tracks import TRACKS, Track

# The x axes of the Pareto panels (y is always the proxy PSNR).
PANELS: dict[str, tuple[str, ...]] = {
    "runtime": ("latency_ratio",),
    "complexity": ("params", "flops_g"),
    "overall": ("latency_ratio", "params"),
}

LABELS: dict[str, str] = {
    **{objective.metric: objective.label for track in TRACKS.values() for objective in track.objectives},
    "psnr_predicted": "predicted full-training PSNR [dB]",
}

# What the hover shows of each trial: column, name, format.
_HOVER_METRICS = (
    ("psnr", "proxy PSNR", "{:.3f} dB"),
    ("psnr_predicted", "predicted PSNR", "{:.2f} dB"),
    ("latency_ratio", "latency / baseline", "{:.3f}"),
    ("latency_ms", "latency", "{:.2f} ms"),
    ("params", "params", "{:,.0f}"),
    ("flops_g", "FLOPs", "{:.2f} G"),
    ("activations_m", "activations", "{:.2f} M"),
    ("convs", "convs", "{:.0f}"),
    ("memory_mb", "memory", "{:.1f} MB"),
    ("c_params", "constraint params (≤ 0 ok)", "{:+,.0f}"),
    ("c_psnr", "constraint PSNR (≤ 0 ok)", "{:+.3f} dB"),
    ("c_latency", "constraint latency (≤ 0 ok)", "{:+.3f}"),
    ("duration_s", "trial time", "{:.0f} s"),
)
_COLUMNS = ("number", "state", "reference", "label", "config", "trained", "feasible", "pareto", "name",
            *(column for column, _, _ in _HOVER_METRICS))

FEASIBLE = "feasible"
FRONT = "Pareto front"
INFEASIBLE = "infeasible"
STOPPED = "pruned / failed"
_STYLE = {
    FRONT: dict(color="#d62728", size=11, symbol="circle", line=dict(color="#222222", width=1)),
    FEASIBLE: dict(color="#1f77b4", size=8, symbol="circle"),
    INFEASIBLE: dict(color="#b8b8b8", size=7, symbol="circle"),
    STOPPED: dict(color="#8c8c8c", size=7, symbol="x"),
}
_REFERENCE_SYMBOLS = ("star", "diamond", "triangle-up", "square", "pentagon", "hexagram")
_GUIDE = dict(color="#555555", width=1, dash="dash")


def write_plots(*, trials: pd.DataFrame, references: pd.DataFrame, track: Track, limits: Limits,
                baseline: str, out_dir: Path, title: str) -> list[Path]:
    """Write pareto_, history_ and parallel_<track>.html (plus a shared plotly.min.js); return the HTML paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {
        "pareto": pareto_figure(trials=trials, references=references, track=track, limits=limits,
                                baseline=baseline, title=title),
        "history": history_figure(trials=trials, track=track, title=title),
        "parallel": parallel_figure(trials=trials, track=track, title=title),
    }
    # plotly keeps an existing plotly.min.js; an older one (from an older plotly) may not draw these figures.
    (out_dir / "plotly.min.js").write_text(get_plotlyjs(), encoding="utf-8")
    paths = []
    for kind, figure in figures.items():
        path = out_dir / f"{kind}_{track.name}.html"
        figure.write_html(path, include_plotlyjs="directory")
        paths.append(path)
    return paths


def pareto_figure(*, trials: pd.DataFrame, references: pd.DataFrame, track: Track, limits: Limits, baseline: str, title: str) -> go.Figure:
    """One panel per objective of `PANELS[track]` against proxy PSNR, with the track's constraint lines.

    In a panel that projects more than two objectives, the step line joins the front's points that stay
    non-dominated in that panel; the other front points are highlighted without the line.
    """
    frame, refs = _complete(trials), _complete(references)
    metrics = PANELS.get(track.name) or tuple(m for m in track.metrics if m != "psnr")[:2]
    figure = make_subplots(rows=1, cols=len(metrics), horizontal_spacing=0.08)
    categories = _categories(frame, drawn_as_reference=set(refs["name"].dropna()))
    for col, metric in enumerate(metrics, start=1):
        legend = col == 1
        for category, rows in categories.items():
            rows = rows[rows[metric].notna()]
            figure.add_trace(_scatter(rows, metric, name=category, showlegend=legend), row=1, col=col)
        axis_type = _axis_type(frame, refs, metric)
        focus = [categories[FRONT], categories[FEASIBLE], refs]
        step = _front_2d(categories[FRONT], metric)
        figure.add_trace(go.Scatter(x=step[metric], y=step["psnr"], mode="lines", line_shape="hv",
                                    line=dict(color=_STYLE[FRONT]["color"], width=1.5), name=f"{FRONT} (step)",
                                    legendgroup=FRONT, showlegend=False, hoverinfo="skip"), row=1, col=col)
        for i, (_, ref) in enumerate(refs.iterrows()):
            if pd.notna(ref[metric]) and pd.notna(ref["psnr"]):
                figure.add_trace(_reference_marker(ref, metric, symbol=_REFERENCE_SYMBOLS[i % len(_REFERENCE_SYMBOLS)],
                                                   showlegend=legend), row=1, col=col)
        _add_guides(figure, metric, col=col, guides=_guides(track, limits, baseline))
        figure.update_xaxes(title_text=LABELS.get(metric, metric), type=axis_type, row=1, col=col,
                            range=_focus_range([f[metric] for f in focus], log=axis_type == "log"))
    figure.update_yaxes(range=_focus_range([f["psnr"] for f in focus], log=False))
    figure.update_yaxes(title_text=LABELS["psnr"], row=1, col=1)
    unplotted = int((~_measured(frame) & frame["state"].ne("RUNNING")).sum())
    note = f"{len(frame)} trials" + (f", {unplotted} without a measured PSNR not shown" if unplotted else "")
    figure.update_layout(title=dict(text=f"{title}: Pareto front", subtitle=dict(text=note)),
                         template="plotly_white", hovermode="closest", legend=dict(orientation="h", y=-0.2),
                         height=560, autosize=True, margin=dict(t=90))
    return figure


def history_figure(*, trials: pd.DataFrame, track: Track, title: str) -> go.Figure:
    """Proxy PSNR per trial and, on the second axis, the best feasible value so far of the track's ranking metric."""
    frame = _complete(trials).sort_values("number")
    primary = track.ranked_by[0]
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    categories = _categories(frame, drawn_as_reference=set())
    for category, rows in categories.items():
        figure.add_trace(_scatter(rows, "number", name=category, showlegend=True), secondary_y=False)
    feasible = frame["state"].eq("COMPLETE") & frame["feasible"].eq(True)
    best = frame[primary].where(feasible).cummin().ffill()  # held to the last trial
    best_label = f"best feasible {LABELS.get(primary, primary)} so far"
    figure.add_trace(go.Scatter(x=frame["number"][best.notna()], y=best[best.notna()], mode="lines+markers",
                                line_shape="hv", name=best_label, marker=dict(size=4, color="#2ca02c"),
                                line=dict(color="#2ca02c", width=2)), secondary_y=True)
    figure.update_xaxes(title_text="trial number")
    figure.update_yaxes(title_text=LABELS["psnr"], secondary_y=False)
    figure.update_yaxes(title_text=best_label, secondary_y=True, showgrid=False)
    focus = [rows["psnr"] for name, rows in categories.items() if name in (FRONT, FEASIBLE)]
    figure.update_yaxes(range=_focus_range([frame.loc[frame["reference"].ne(""), "psnr"], *focus], log=False),
                        secondary_y=False)
    figure.update_layout(title=f"{title}: optimisation history", template="plotly_white",
                         hovermode="closest", legend=dict(orientation="h", y=-0.2), height=520, autosize=True)
    return figure


def parallel_figure(*, trials: pd.DataFrame, track: Track, title: str) -> go.Figure:
    """Parallel coordinates of the completed trials over the track's objectives, predicted PSNR and params."""
    frame = _complete(trials)
    metrics = list(dict.fromkeys([*track.metrics, "psnr_predicted", "params"]))
    rows = frame[frame["state"].eq("COMPLETE") & _measured(frame) & frame[metrics].notna().all(axis=1)]
    feasible = rows["feasible"].eq(True).astype(int)
    grey, blue = _STYLE[INFEASIBLE]["color"], _STYLE[FEASIBLE]["color"]
    figure = go.Figure(go.Parcoords(
        dimensions=[dict(label=LABELS.get(m, m), values=rows[m].astype(float)) for m in metrics],
        line=dict(color=feasible, cmin=0, cmax=1, colorscale=[[0, grey], [0.5, grey], [0.5, blue], [1, blue]],
                  colorbar=dict(tickvals=[0.25, 0.75], ticktext=["infeasible", "feasible"], len=0.4)),
    ))
    note = f"{len(rows)} completed trials ({int(feasible.sum())} feasible)"
    # Parallel coordinates draw their axis titles above the plot area: the top margin keeps the title's
    # subtitle clear of them.
    figure.update_layout(title=dict(text=f"{title}: parallel coordinates", subtitle=dict(text=note), y=0.97),
                         height=560, autosize=True, margin=dict(t=150, l=80, r=80))
    return figure


def _complete(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every column the plots read (NaN where absent), so empty or partial tables draw too."""
    return frame.reindex(columns=list(dict.fromkeys([*frame.columns, *_COLUMNS]))).reset_index(drop=True)


def _categories(frame: pd.DataFrame, *, drawn_as_reference: set[str]) -> dict[str, pd.DataFrame]:
    """Split trials into front / feasible / infeasible / pruned-or-failed.

    Left out: RUNNING trials, trials without a measured PSNR, and enqueued reference trials drawn as
    references (unless they are on the front).
    """
    complete = frame["state"].eq("COMPLETE")
    front = complete & frame["pareto"].eq(True)
    feasible = complete & frame["feasible"].eq(True)
    shown = _measured(frame) & (front | ~frame["reference"].isin(drawn_as_reference))
    return {
        FRONT: frame[front & shown],
        FEASIBLE: frame[feasible & ~front & shown],
        INFEASIBLE: frame[complete & ~feasible & ~front & shown],
        STOPPED: frame[frame["state"].isin(["PRUNED", "FAIL"]) & shown],
    }


def _measured(frame: pd.DataFrame) -> pd.Series:
    """Trials with a PSNR of their own: those cut before training carry a bicubic stand-in, not a measurement."""
    return frame["psnr"].notna() & ~frame["trained"].eq(False)


def _scatter(rows: pd.DataFrame, x: str, *, name: str, showlegend: bool) -> go.Scatter:
    return go.Scatter(x=rows[x], y=rows["psnr"], mode="markers", name=name, legendgroup=name, showlegend=showlegend,
                      marker=_STYLE[name], visible="legendonly" if name == STOPPED else True, hovertext=[_hover(row) for _, row in rows.iterrows()],
                      hovertemplate="%{hovertext}<extra></extra>")


def _reference_marker(ref: pd.Series, metric: str, *, symbol: str, showlegend: bool) -> go.Scatter:
    name = str(ref["name"]).upper()
    return go.Scatter(x=[ref[metric]], y=[ref["psnr"]], mode="markers+text", name=name, legendgroup=f"ref-{name}",
                      showlegend=showlegend, text=[name], textposition="top center",
                      marker=dict(symbol=symbol, size=15, color="#222222", line=dict(color="white", width=1)),
                      hovertext=[_hover(ref)], hovertemplate="%{hovertext}<extra></extra>")


def _front_2d(front: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The front's points not dominated in (min `metric`, max psnr), in increasing `metric`."""
    rows = front[front[metric].notna()].sort_values([metric, "psnr"], ascending=[True, False])
    keep = rows["psnr"] > rows["psnr"].cummax().shift(fill_value=-np.inf)
    return rows[keep]


def _guides(track: Track, limits: Limits, baseline: str) -> dict[str, tuple[float, str]]:
    """Vertical lines by metric: the baseline's latency, the params limit, the FLOPs limit where constrained."""
    guides = {"latency_ratio": (1.0, f"{baseline} latency"), "params": (limits.params, f"params limit ({limits.params:,})")}
    if Constraint.FLOPS in track.constraints:
        guides["flops_g"] = (limits.flops_g, f"FLOPs limit ({limits.flops_g:.2f} G)")
    return guides


def _add_guides(figure: go.Figure, metric: str, *, col: int,
                guides: dict[str, tuple[float, str]]) -> None:
    """The constraint lines of the panel: the baseline's latency, the params (and FLOPs) limit. The PSNR floor is
    no line on the proxy axis: the verdict reads the whole proxy curve, so feasibility is shown by colour."""
    if metric in guides:
        x, text = guides[metric]
        # A shape's label, not add_vline's annotation: annotations take log10 coordinates on log axes. Written
        # above the plot area, ending at the line: clear of the points and of the references' labels.
        figure.add_vline(x=x, line=_GUIDE, row=1, col=col, exclude_empty_subplots=False,
                         label=dict(text=text, textposition="end", textangle=0, xanchor="right", yanchor="bottom",
                                    padding=4, font=dict(size=11)))


def _focus_range(columns: list[pd.Series], *, log: bool, pad: float = 0.08) -> list[float] | None:
    """An axis range over the values of `columns` with `pad` of the span on each side (log10 units on a log
    axis, as plotly wants them); None (autorange) when they hold no finite value."""
    values = pd.concat([pd.Series(c, dtype=float) for c in columns], ignore_index=True)
    values = values[np.isfinite(values) & ((values > 0) if log else True)]
    if values.empty:
        return None
    low, high = (np.log10(values.min()), np.log10(values.max())) if log else (values.min(), values.max())
    margin = pad * (high - low) if high > low else max(abs(high) * 0.01, 0.05)
    return [float(low - margin), float(high + margin)]


def _axis_type(frame: pd.DataFrame, refs: pd.DataFrame, metric: str) -> str:
    """Log for params and FLOPs when the values span a decade or more."""
    if metric not in ("params", "flops_g"):
        return "linear"
    values = pd.concat([frame[metric], refs[metric]]).astype(float)
    values = values[values > 0]
    return "log" if len(values) and values.max() >= 10 * values.min() else "linear"


def _hover(row: pd.Series) -> str:
    """Trial number, label, every measured metric and the (wrapped, shortened) config."""
    if pd.notna(row["name"]):
        head = f"<b>{str(row['name']).upper()}</b> (reference)"
    else:
        head = f"<b>trial #{int(row['number'])}</b> ({row['state']})"
        if isinstance(row["reference"], str) and row["reference"]:
            head += f", reference {row['reference'].upper()}"
    lines = [head]
    if isinstance(row["label"], str) and row["label"]:
        lines.append(row["label"])
    lines += [f"{name}: {fmt.format(row[column])}" for column, name, fmt in _HOVER_METRICS if _is_number(row[column])]
    if isinstance(row["config"], str) and row["config"] not in ("", "null"):
        lines.append("config: " + _short_config(row["config"]))
    return "<br>".join(lines)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)


def _short_config(text: str, *, width: int = 70, limit: int = 500) -> str:
    """The config JSON as `key=value` pairs, wrapped for the hover box; unset fields and the schema left out."""
    try:
        items = json.loads(text).items()
    except (ValueError, AttributeError):
        items = None
    if items is not None:
        text = ", ".join(f"{k}={v}" for k, v in items if v is not None and k != "schema_version")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return "<br>".join(textwrap.wrap(text, width=width))
