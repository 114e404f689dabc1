"""results/<study>/report.html: the one page a person opens after a search.

The leaderboard (the ranking of search.report.tables.leaderboard, references beside the trials), the Pareto
plot, the history, the parallel coordinates, the PSNR predictor's calibration, the re-evaluation, the
winner's architecture, how every figure was measured, and links to the CSV tables and the export.
Self-contained: plotly's JavaScript is embedded once, so the page opens offline and can be mailed.

It reads what a study stores and draws what exists: per-trial prediction intervals (`psnr_low`,
`psnr_high` user attributes) become error bars and a verdict column appears when trials carry a `verdict`.
"""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import plotly
import plotly.graph_objects as go
import torch
from plotly.offline import get_plotlyjs

from search import candidate
from search.report.architecture_svg import architecture_svg
from search.verdict.calibration import PsnrPredictor
from search.report.plots import history_figure, parallel_figure, pareto_figure
from search.export.trials import export_name
from search.records import PROMOTION_SECONDS, rung_records
from search.report.tables import references_frame
from search.settings import SearchSettings
from search.tracks import Track
from search.verdict.rungs import Ladder
from spaces import ArchConfig
from train_proxy import Budget

REPO = Path(__file__).resolve().parents[1]
INTERVAL = ("psnr_low", "psnr_high")  # the predictor's 80% interval, in every trials table
_PLOTLY_CONFIG = {"responsive": True, "displaylogo": False}


def write_report(*, study: optuna.Study, settings: SearchSettings, budget: Budget, track: Track,
                 frame: pd.DataFrame, board: pd.DataFrame, predictors: dict[int, PsnrPredictor], winner: int | None,
                 ladder: Ladder, out: Path) -> Path:
    """Write the report of `study` to `out` (replaced on every run) and return its path; `budget`: the study's
    proxy-training budget; `predictors`: the PSNR predictor of each rung the study reached."""
    predictor = predictors.get(0)
    edition = settings.rules
    title = f"{settings.name}: {track.name} track ({edition.name})"
    references = references_frame(study)
    limits = candidate.edition_limits(edition, floor=settings.floor)
    sections = [
        ("leaderboard", "Leaderboard", _leaderboard_html(board, track=track, baseline=edition.baseline)),
        ("pareto", "Pareto front", _figure_html(pareto_figure(trials=frame, references=references, track=track,
                                                               limits=limits, baseline=edition.baseline, title=title))
         if predictor else _none()),
        ("history", "History", _figure_html(history_figure(trials=frame, track=track, title=title))
         if predictor else _none()),
        ("parallel", "Parallel coordinates", _figure_html(parallel_figure(trials=frame, track=track, title=title))),
        ("calibration", "PSNR predictor", "".join(
            _calibration_html(rung_frame(study, frame, rung=rung), predictor=predictors[rung], rung=rung,
                              steps=ladder.budget(rung).iterations) for rung in predictors) or _none()),
        ("promotion", "Promotion", _promotion_html(study, frame, ladder=ladder)),
        ("winner", "Winner", _winner_html(frame, winner, run_dir=out.parent)),
        ("measurement", "How it was measured", _measurement_html(study, settings, budget)),
        ("files", "Files", _files_html(out.parent, track=track)),
    ]
    done = int(frame["state"].isin(["COMPLETE", "PRUNED"]).sum())
    summary = (f"track <b>{escape(track.name)}</b>, space {escape(settings.space)}, sampler {escape(settings.sampler)}, "
               f"seed {settings.seed}; {done} trials done, "
               f"{int(frame['feasible'].sum())} feasible; winner "
               + (f"<b>trial #{winner}</b>" if winner is not None else "none yet")
               + f"; written {datetime.datetime.now().isoformat(timespec='seconds')}")
    nav = " · ".join(f'<a href="#{key}">{escape(name)}</a>' for key, name, _ in sections)
    body = "\n".join(f'<section id="{key}"><h2>{escape(name)}</h2>\n{html}\n</section>' for key, name, html in sections)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_PAGE.format(title=escape(title), plotly=get_plotlyjs(), summary=summary, nav=nav, body=body),
                   encoding="utf-8")
    return out


def _none(text: str = "nothing to draw yet: the calibration references are not measured") -> str:
    return f'<p class="note">{escape(text)}</p>'


def _figure_html(figure: go.Figure) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, config=_PLOTLY_CONFIG, default_width="100%")


def _leaderboard_html(board: pd.DataFrame, *, track: Track, baseline: str) -> str:
    if board.empty:
        return _none("no feasible trial yet")
    rows = []
    for _, row in board.iterrows():
        predicted = _fmt(row.get("psnr_predicted"), "{:.2f}")
        if all(k in row and pd.notna(row[k]) for k in INTERVAL):
            predicted += f' <span class="interval">[{row["psnr_low"]:.2f}, {row["psnr_high"]:.2f}]</span>'
        cells = [str(row["rank"]), escape(str(row["name"])), "" if row["number"] < 0 else f"#{int(row['number'])}",
                 escape(str(row["label"])), _fmt(row["params"], "{:,.0f}"), _fmt(row["flops_g"], "{:.2f}"),
                 _fmt(row["latency_ratio"], "{:.3f}"), _fmt(row["memory_mb"], "{:.1f}"), _fmt(row["psnr"], "{:.3f}"),
                 predicted]
        cells += [escape(str(row["verdict"])) if isinstance(row["verdict"], str) else "", str(row.get("rung", 0)),
                  _fmt(row["score"], "{:.3g}")]
        css = "ref" if row["name"] != "trial" else ""
        rows.append(f'<tr class="{css}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = ["rank", "name", "trial", "architecture", "params", "FLOPs [G]", f"latency / {baseline}", "memory [MB]",
            "proxy PSNR", "predicted PSNR [80% interval]", "verdict", "rung", "score"]
    ranked = ", ".join(track.ranked_by)
    return (f'<p class="note">The challenge\'s ranking for the {escape(track.name)} track (by {escape(ranked)}) '
            f'of the feasible sampled trials; the references (shaded) are ranked beside them. A verdict is the one of the '
            f'highest promotion rung the trial reached; rows outside the calibration span rank last.</p>'
            + _table(head, rows))


def rung_frame(study: optuna.Study, frame: pd.DataFrame, *, rung: int) -> pd.DataFrame:
    """The trials measured at `rung` with their proxy PSNR and prediction there (rung 0: every trained trial)."""
    columns = ["number", "label", "psnr", "psnr_predicted", "psnr_low", "psnr_high", "verdict"]
    if rung == 0:
        rows = [{c: t.user_attrs.get(c, np.nan) for c in columns[2:]} | {"number": t.number,
                                                                          "label": t.user_attrs.get("label", "")}
                for t in study.get_trials(deepcopy=False)
                if t.user_attrs.get("trained") and not t.user_attrs.get("reference") and "psnr_predicted" in t.user_attrs]
    else:
        labels = frame.set_index("number")["label"].to_dict()
        rows = [{c: record.get(c, np.nan) for c in columns[2:]} | {"number": number, "label": labels.get(number, "")}
                for number, rungs in rung_records(study).items() for k, record in rungs.items() if k == rung]
    return pd.DataFrame(rows, columns=columns).assign(trained=True, reference="")


def _calibration_html(frame: pd.DataFrame, *, predictor: PsnrPredictor, rung: int, steps: int) -> str:
    """Proxy PSNR against predicted full-training PSNR at one rung: the trials with their 80% intervals, the
    calibration points at what full training reached (their official weights, on the published scale), the floor."""
    trials = frame[frame["trained"].eq(True) & frame["psnr"].notna() & frame["psnr_predicted"].notna()
                   & frame["reference"].eq("")]
    figure = go.Figure()
    for name, rows in trials.groupby(trials["verdict"].replace("", "-")):
        error = dict(type="data", symmetric=False, array=rows["psnr_high"] - rows["psnr_predicted"],
                     arrayminus=rows["psnr_predicted"] - rows["psnr_low"], thickness=1, width=3)
        figure.add_trace(go.Scatter(x=rows["psnr"], y=rows["psnr_predicted"], mode="markers", name=f"trials: {name}",
                                    error_y=error, marker=dict(size=8), text=[f"#{n} {lab}" for n, lab in
                                                                               zip(rows["number"], rows["label"])],
                                    hovertemplate="%{text}<br>proxy %{x:.3f} dB<br>predicted %{y:.2f} dB<extra></extra>"))
    points = pd.DataFrame(predictor.points)
    if not points.empty:
        proxy = [features.get("final", np.nan) for features in points["features"]]
        level = predictor.map_intercept + predictor.map_slope * points["target"]
        for source, rows in points.assign(proxy=proxy, level=level).groupby("source"):
            figure.add_trace(go.Scatter(x=rows["proxy"], y=rows["level"], mode="markers", name=f"known: {source}",
                                        text=rows["name"], marker=dict(symbol="star", size=10),
                                        hovertemplate="%{text}<br>proxy %{x:.3f} dB<br>full training %{y:.2f} dB"
                                                      "<extra></extra>"))
    figure.add_hline(y=predictor.floor, line=dict(color="#c0504d", width=1, dash="dash"),
                     label=dict(text=f"floor {predictor.floor:.2f} dB", textposition="start", yanchor="top",
                                font=dict(size=11)))
    figure.update_layout(template="plotly_white", height=480, autosize=True, margin=dict(t=30),
                         xaxis_title=f"proxy PSNR [dB] at rung {rung} ({steps} steps)",
                         yaxis_title="full-training PSNR [dB], published scale", legend=dict(orientation="h", y=-0.2))
    return (f"<h3>Rung {rung} ({steps} steps)</h3>"
            f'<p class="note">The predictor ({escape(predictor.describe())}) was fitted on networks whose full-training '
            f"quality is known; each is drawn at what its official weights reach, carried to the published scale. A "
            f"candidate is feasible when its whole 80% interval clears {predictor.floor:.2f} dB, infeasible when it "
            "is all under, uncertain otherwise, and outside calibration when its run lies beyond the points' span. How right these verdicts are: BENCHMARKS.md, python3 -m "
            "bench.zoo_fidelity.</p>" + _figure_html(figure))


def _promotion_html(study: optuna.Study, frame: pd.DataFrame, *, ladder: Ladder) -> str:
    """Each promoted trial's verdict and interval at every rung it reached."""
    promoted = rung_records(study)
    if not promoted:
        return _none("no trial was promoted (--confirm-minutes 0, the winner was decided at rung 0, or no trial is on "
                     "the leaderboard)")
    head = ["trial", "architecture", *(f"rung {k} ({ladder.budget(k).iterations} steps)" for k in ladder.rungs)]
    rows = []
    for number in sorted(promoted):
        attrs = study.trials[number].user_attrs
        runs = {0: attrs, **promoted[number]}
        cells = [f"#{number}", escape(str(attrs.get("label", "")))]
        for k in ladder.rungs:
            run = runs.get(k)
            cells.append("" if run is None else
                         f"{escape(str(run.get('verdict', '')))} {_fmt(run.get('psnr_predicted'), '{:.2f}')} "
                         f'<span class="interval">[{_fmt(run.get("psnr_low"), "{:.2f}")}, '
                         f'{_fmt(run.get("psnr_high"), "{:.2f}")}]</span>')
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    spent = float(study.user_attrs.get(PROMOTION_SECONDS, 0.0)) / 60.0
    return (f'<p class="note">The leading undecided candidate is trained again from scratch at '
            f"{ladder.reduction_factor}x the steps per rung; its verdict is the one of its highest rung (the lower "
            f"rungs' stay below). Promotion time spent in this study: {spent:.1f} min.</p>" + _table(head, rows))


def _winner_html(frame: pd.DataFrame, winner: int | None, *, run_dir: Path) -> str:
    if winner is None:
        return _none("no sampled architecture is feasible yet")
    row = frame.loc[frame["number"] == winner].iloc[0]
    config = ArchConfig.from_json(row["config"])
    name = export_name(winner, config=config, rung=int(row.get("rung", 0)))
    exported = [path for path in [run_dir / "export" / "models" / f"{name}.py"] if path.is_file()]
    link = (f' Exported: <a href="{exported[0].relative_to(run_dir).as_posix()}">'
            f"{escape(exported[0].relative_to(run_dir).as_posix())}</a>." if exported else "")
    return (f'<p class="note">Trial #{winner}: {escape(config.describe())}.{link}</p>'
            f'<div class="arch-box">{architecture_svg(config)}</div>'
            f"<details><summary>config JSON</summary><pre>{escape(json.dumps(config.to_dict(), indent=2))}</pre>"
            "</details>")


def _measurement_html(study: optuna.Study, settings: SearchSettings, budget: Budget) -> str:
    imdn = study.user_attrs.get(f"reference:{settings.rules.baseline}", {})
    latency = imdn.get("latency_settings", {})
    # e.g. "DIV2K_LSDIR_valid (200 images) in /data/esr"; a study older than the attribute names its folder only
    validation = (" in ".join(filter(None, (study.user_attrs.get("validation"), settings.data)))
                  or "the embedded photographs")
    complexity = candidate.Measurement.of_edition(settings.rules, device=settings.device,
                                                  latency_input=settings.latency_input).complexity_input
    rows = [
        ("latency", f"device {latency.get('device_name', settings.device)}, dtype {latency.get('dtype', settings.dtype)}, "
                    f"input 1x{'x'.join(map(str, latency.get('input_shape', settings.latency_input or ())[-3:]))}, "
                    f"{latency.get('repeats', '?')} repeats after {latency.get('warmup', '?')} warm-up, "
                    f"{latency.get('threads', '?')} thread(s), timer {latency.get('timer', '?')}; median, as a ratio "
                    f"to {settings.rules.baseline} timed side by side"),
        ("memory", f"{imdn.get('memory_method', '?')} at the latency input"),
        ("params, FLOPs, activations", f"the toolkit's counter ({settings.rules.counter.value} rules, equal to the "
                                       f"official kits' on their entries), input 1x{'x'.join(map(str, complexity))}"),
        ("proxy PSNR", f"budget {budget.name}: {budget.iterations} steps, batch {budget.batch_size}, LR patch "
                       f"{budget.lr_patch}, lr {budget.lr:g}; seed {settings.seed}; validation on {validation}; "
                       f"RGB, 4-pixel border cut, uint8 rounding"),
        ("predicted PSNR", f"ridge on the proxy run's features ({settings.predictor}), 80% interval from leave-one-out "
                           f"residuals, floor {settings.floor:.2f} dB on the {settings.rules.name} published scale"),
        ("versions", f"toolkit {toolkit_version()}, torch {torch.__version__}, optuna {optuna.__version__}, "
                     f"plotly {plotly.__version__}, Python {platform.python_version()}"),
    ]
    return _table(["figure", "how"], [f"<tr><td>{escape(a)}</td><td>{escape(b)}</td></tr>" for a, b in rows],
                  css="text")


def _files_html(run_dir: Path, *, track: Track) -> str:
    names = ["trials.csv", f"leaderboard_{track.name}.csv", f"pareto_{track.name}.csv",
             f"pareto_{track.name}.html", f"history_{track.name}.html", f"parallel_{track.name}.html", "export/",
             "study.db", "study.journal"]
    items = [f'<li><a href="{name}">{name}</a></li>' for name in names if (run_dir / name).exists()]
    return f"<ul>{''.join(items)}</ul>" if items else _none("no files yet")


def toolkit_version() -> str:
    """The git commit of the toolkit's checkout (with `-dirty` when it has local changes), else `unknown`."""
    try:
        result = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True,
                                timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else "unknown"


def _table(head: list[str], rows: list[str], *, css: str = "") -> str:
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f'<div class="table"><table class="{css}"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _fmt(value: Any, pattern: str) -> str:
    return pattern.format(value) if isinstance(value, (int, float, np.number)) and pd.notna(value) else ""


def _cell(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return "" if pd.isna(value) else f"{value:.3f}"
    return escape(str(value))


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 24px 40px; color: #222; }}
header {{ position: sticky; top: 0; background: #fff; padding: 10px 0 6px; border-bottom: 1px solid #ddd; z-index: 10; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }}
h2 {{ font-size: 17px; margin: 28px 0 8px; }}
nav a {{ color: #1f5fa8; text-decoration: none; }}
.summary, .note {{ color: #444; font-size: 14px; margin: 4px 0 8px; }}
.table {{ overflow-x: auto; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ padding: 3px 10px; border-bottom: 1px solid #e4e4e4; text-align: right; white-space: nowrap; }}
th {{ background: #f5f5f5; }}
td:nth-child(2), td:nth-child(4) {{ text-align: left; }}
tr.ref td {{ background: #f7f4ea; }}
table.text td, table.text th {{ white-space: normal; text-align: left; }}
.interval {{ color: #777; }}
.arch-box {{ max-width: 100%; overflow-x: auto; }}
svg.arch {{ width: 100%; min-width: 900px; height: auto; }}
pre {{ font-size: 12px; background: #f7f7f7; padding: 8px; }}
</style>
<script>{plotly}</script>
</head>
<body>
<header><h1>{title}</h1><div class="summary">{summary}</div><nav>{nav}</nav></header>
{body}
</body>
</html>
"""
