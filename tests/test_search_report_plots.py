"""The plots carry what a reader needs: points by category, the front, the references and the constraint lines."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs_version

from search.report.plots import (FEASIBLE, FRONT, INFEASIBLE, STOPPED, history_figure, parallel_figure, pareto_figure,
                          write_plots)
from search.constraints import Limits
from search.tracks import TRACKS

IMDN_PARAMS = 893_936
LIMITS = Limits(params=IMDN_PARAMS, flops_g=58.53, floor=29.0)



def _trial(number, *, psnr, latency_ratio, params, flops_g, feasible, pareto=False, state="COMPLETE",
           reference="", trained=True, config=None):
    config = config or {"schema_version": 1, "block": "imdb", "num_blocks": 4, "channels": 32 + number,
                        "esa_channels": None}
    return {
        "number": number, "state": state, "reference": reference, "label": f"imdb x4 c{32 + number}",
        "config": json.dumps(config), "params": params, "flops_g": flops_g, "activations_m": flops_g * 3,
        "convs": 40, "latency_ms": latency_ratio * 800, "latency_ratio": latency_ratio, "memory_mb": flops_g * 2,
        "psnr": psnr, "psnr_predicted": 29.0 + 0.5 * (psnr - 22.4) if not math.isnan(psnr) else np.nan, "trained": trained,
        "c_params": params - IMDN_PARAMS, "c_psnr": np.nan, "c_latency": np.nan, "feasible": feasible,
        "pareto": pareto, "duration_s": 60.0,
    }


def _trials() -> pd.DataFrame:
    nan = np.nan
    return pd.DataFrame([
        _trial(0, reference="imdn", psnr=23.2, latency_ratio=1.0, params=893_936, flops_g=58.5, feasible=True),
        _trial(1, psnr=23.0, latency_ratio=0.5, params=400_000, flops_g=25.0, feasible=True, pareto=True),
        _trial(2, psnr=22.6, latency_ratio=0.3, params=200_000, flops_g=12.0, feasible=True, pareto=True),
        _trial(3, psnr=22.9, latency_ratio=0.8, params=600_000, flops_g=40.0, feasible=True),
        _trial(4, psnr=21.5, latency_ratio=0.2, params=100_000, flops_g=5.0, feasible=False),  # under the floor
        # Cut before training: its PSNR is the bicubic stand-in, not a measurement.
        _trial(5, psnr=20.1, latency_ratio=0.6, params=1_200_000, flops_g=80.0, feasible=False, trained=False),
        _trial(6, state="PRUNED", psnr=21.0, latency_ratio=0.4, params=300_000, flops_g=18.0, feasible=False),
        _trial(7, state="PRUNED", psnr=nan, latency_ratio=0.45, params=320_000, flops_g=19.0, feasible=False),
        _trial(8, state="FAIL", psnr=nan, latency_ratio=nan, params=350_000, flops_g=20.0, feasible=False),
        _trial(9, state="RUNNING", psnr=nan, latency_ratio=nan, params=nan, flops_g=nan, feasible=False),
    ])


def _references() -> pd.DataFrame:
    return pd.DataFrame({
        "name": ["imdn", "rfdn", "rlfn", "span"],
        "psnr": [23.2, 22.7, 22.4, 22.8],
        "psnr_predicted": [29.13, 29.04, 29.0, 29.1],
        "latency_ratio": [1.0, 0.76, 0.34, np.nan],  # SPAN not timed: left out of latency panels
        "params": [893_936, 433_000, 317_000, 151_000],
        "flops_g": [58.5, 27.1, 19.7, 9.0],
    })


def _traces(figure, name, xaxis="x"):
    return [trace for trace in figure.data if trace.name == name and trace.xaxis == xaxis]


def _traces_on(figure, xaxis):
    return [trace for trace in figure.data if trace.xaxis == xaxis]


def _one(figure, name, xaxis="x"):
    (trace,) = _traces(figure, name, xaxis)
    return trace


def _is_grey(color):
    red, green, blue = (color[i:i + 2] for i in (1, 3, 5))
    return red == green == blue


def _lines(figure):
    """(orientation, position, label, axis) of every straight line shape."""
    lines = []
    for shape in figure.layout.shapes:
        text = shape.label.text
        if shape.xref.endswith("domain"):
            lines.append(("h", shape.y0, text, shape.yref))
        else:
            lines.append(("v", shape.x0, text, shape.xref))
    return lines


@pytest.mark.parametrize("track", list(TRACKS))
def test_write_plots_writes_small_offline_files(tmp_path, track):
    paths = write_plots(trials=_trials(), references=_references(), track=TRACKS[track], limits=LIMITS, baseline="imdn",
                        out_dir=tmp_path / "plots", title="study")
    assert [p.name for p in paths] == [f"pareto_{track}.html", f"history_{track}.html", f"parallel_{track}.html"]
    assert (tmp_path / "plots" / "plotly.min.js").stat().st_size > 1_000_000
    for path in paths:
        html = path.read_text()
        assert '<script charset="utf-8" src="plotly.min.js"></script>' in html
        assert path.stat().st_size < 200_000  # the library is not embedded
    assert "RLFN" in paths[0].read_text()


def test_a_stale_plotly_bundle_is_replaced(tmp_path):
    (tmp_path / "plotly.min.js").write_text("/* plotly.js v1.0.0 */")
    write_plots(trials=_trials(), references=_references(), track=TRACKS["runtime"], limits=LIMITS, baseline="imdn", out_dir=tmp_path,
                title="study")
    assert f"plotly.js v{get_plotlyjs_version()}" in (tmp_path / "plotly.min.js").read_text()[:100]


def test_runtime_pareto_points_by_category():
    figure = pareto_figure(trials=_trials(), references=_references(), track=TRACKS["runtime"], limits=LIMITS, baseline="imdn",
                           title="study")
    assert {trace.xaxis for trace in figure.data} == {"x"}
    front = _one(figure, FRONT)
    assert sorted(zip(front.x, front.y)) == [(0.3, 22.6), (0.5, 23.0)]
    # The IMDN trial is drawn as the IMDN reference; the untrained trial 5, trial 7 and 8 have no PSNR.
    assert list(_one(figure, FEASIBLE).x) == [0.8]
    assert list(_one(figure, INFEASIBLE).x) == [0.2]
    assert list(_one(figure, STOPPED).y) == [21.0]
    assert "3 without a measured PSNR" in figure.layout.title.subtitle.text

    styles = {name: _one(figure, name).marker for name in (FRONT, FEASIBLE, INFEASIBLE, STOPPED)}
    grey = [_is_grey(styles[name].color) for name in (FRONT, FEASIBLE, INFEASIBLE, STOPPED)]
    assert grey == [False, False, True, True] and styles[FRONT].color != styles[FEASIBLE].color
    assert styles[STOPPED].symbol != styles[INFEASIBLE].symbol

    step = _one(figure, f"{FRONT} (step)")
    assert (list(step.x), list(step.y), step.line.shape) == ([0.3, 0.5], [22.6, 23.0], "hv")

    references = {name: _one(figure, name) for name in ("IMDN", "RFDN", "RLFN")}
    assert not _traces(figure, "SPAN")
    assert [list(t.text) for t in references.values()] == [["IMDN"], ["RFDN"], ["RLFN"]]
    assert len({t.marker.symbol for t in references.values()}) == 3
    assert (references["RLFN"].x[0], references["RLFN"].y[0]) == (0.34, 22.4)


def test_constraint_lines_follow_the_axes():
    runtime, complexity, overall = (
        pareto_figure(trials=_trials(), references=_references(), track=TRACKS[name], limits=LIMITS, baseline="imdn", title="study")
        for name in ("runtime", "complexity", "overall"))
    # No PSNR line: the verdict reads the whole proxy curve, not a threshold on the plotted proxy PSNR.
    assert _lines(runtime) == [("v", 1.0, "imdn latency", "x")]
    assert _lines(complexity) == [("v", IMDN_PARAMS, "params limit (893,936)", "x")]
    assert _lines(overall) == [("v", 1.0, "imdn latency", "x"), ("v", IMDN_PARAMS, "params limit (893,936)", "x2")]
    assert (complexity.layout.xaxis.title.text, complexity.layout.xaxis2.title.text) == ("parameters", "FLOPs [G]")
    assert complexity.layout.xaxis.type == "log" and runtime.layout.xaxis.type == "linear"
    assert overall.layout.xaxis2.title.text == "parameters"


def test_complexity_panels_and_the_projected_front():
    # Trial 3 joins a three-objective front but is dominated by trial 1 in both two-dimensional panels.
    trials = _trials().assign(pareto=lambda f: f["number"].isin([1, 2, 3]))
    figure = pareto_figure(trials=trials, references=_references(), track=TRACKS["complexity"], limits=LIMITS, baseline="imdn",
                           title="study")
    for xaxis, points in (("x", [200_000, 400_000]), ("x2", [12.0, 25.0])):
        assert len(_one(figure, FRONT, xaxis).x) == 3
        assert list(_one(figure, f"{FRONT} (step)", xaxis).x) == points
        assert list(_one(figure, FEASIBLE, xaxis).x) == []
        assert {"IMDN", "RFDN", "RLFN", "SPAN"} <= {trace.name for trace in _traces_on(figure, xaxis)}
    assert [t.showlegend for t in _traces(figure, FRONT, "x") + _traces(figure, FRONT, "x2")] == [True, False]


def test_hover_names_the_trial_its_metrics_and_config():
    long_config = {"schema_version": 1, **{f"field_{i}": "value" * 4 for i in range(40)}}
    trials = pd.concat([_trials(), pd.DataFrame([
        _trial(10, psnr=22.95, latency_ratio=0.9, params=700_000, flops_g=45.0, feasible=True, config=long_config)])])
    figure = pareto_figure(trials=trials, references=_references(), track=TRACKS["runtime"], limits=LIMITS, baseline="imdn",
                           title="study")
    hover = dict(zip(_one(figure, FEASIBLE).x, _one(figure, FEASIBLE).hovertext))
    assert hover[0.8].startswith("<b>trial #3</b> (COMPLETE)<br>imdb x4 c35<br>proxy PSNR: 22.900 dB")
    for text in ("latency / baseline: 0.800", "params: 600,000", "FLOPs: 40.00 G", "constraint params (≤ 0 ok): -293,936",
                 "config: block=imdb, num_blocks=4, channels=35"):
        assert text in hover[0.8]
    for text in ("schema_version", "esa_channels", "constraint PSNR"):  # unset, or not this track's constraint
        assert text not in hover[0.8]
    config = hover[0.9].split("config: ")[1]
    assert config.endswith("…") and len(config.replace("<br>", " ")) <= 500
    assert max(len(line) for line in config.split("<br>")) <= 70
    assert _one(figure, "IMDN").hovertext[0].startswith("<b>IMDN</b> (reference)")


@pytest.mark.parametrize(("track", "best"), [("runtime", [1.0, 0.5, 0.3, 0.3]),
                                             ("complexity", [893_936, 400_000, 200_000, 200_000])])
def test_history_tracks_the_best_feasible_ranking_metric(track, best):
    figure = history_figure(trials=_trials().sample(frac=1, random_state=0), track=TRACKS[track],
                            title="study")
    (line,) = [trace for trace in figure.data if trace.yaxis == "y2"]
    assert line.name.startswith("best feasible") and line.line.shape == "hv"
    assert list(line.x) == list(range(10))  # held to the last trial
    assert list(line.y) == best + [best[-1]] * 6
    points = {trace.name: sorted(trace.x) for trace in figure.data if trace.yaxis == "y"}
    assert points == {FRONT: [1, 2], FEASIBLE: [0, 3], INFEASIBLE: [4], STOPPED: [6]}
    assert _lines(figure) == []


def test_parallel_coordinates_over_the_track_metrics():
    figure = parallel_figure(trials=_trials(), track=TRACKS["overall"], title="study")
    (parcoords,) = figure.data
    labels = [dimension.label for dimension in parcoords.dimensions]
    assert labels == ["latency / baseline's", "parameters", "FLOPs [G]", "activations [M]", "memory [MB]",
                      "proxy PSNR [dB]", "predicted full-training PSNR [dB]"]
    assert list(parcoords.dimensions[1].values) == [893_936, 400_000, 200_000, 600_000, 100_000]
    assert list(parcoords.line.color) == [1, 1, 1, 1, 0]
    runtime = parallel_figure(trials=_trials(), track=TRACKS["runtime"], title="study")
    assert [d.label for d in runtime.data[0].dimensions] == ["latency / baseline's", "proxy PSNR [dB]",
                                                             "predicted full-training PSNR [dB]", "parameters"]


def _edge_cases():
    trials = _trials()
    return {
        "empty": trials.iloc[:0],
        "no columns": pd.DataFrame(),
        "single": trials.iloc[[2]],
        "all infeasible": trials.assign(feasible=False, pareto=False),
        "no psnr": trials.assign(psnr=np.nan, psnr_predicted=np.nan),
    }


@pytest.mark.parametrize("case", list(_edge_cases()))
def test_degenerate_tables_still_draw(tmp_path, case):
    trials = _edge_cases()[case]
    paths = write_plots(trials=trials, references=_references().iloc[:0], track=TRACKS["overall"], limits=LIMITS, baseline="imdn",
                        out_dir=tmp_path, title="study")
    assert all(path.exists() for path in paths)
    pareto = pareto_figure(trials=trials, references=_references().iloc[:0], track=TRACKS["overall"], limits=LIMITS, baseline="imdn",
                           title="study")
    counts = {name: len(_one(pareto, name).x) for name in (FRONT, FEASIBLE, INFEASIBLE, STOPPED)}
    expected = {"empty": [0, 0, 0, 0], "no columns": [0, 0, 0, 0], "single": [1, 0, 0, 0],
                "all infeasible": [0, 0, 5, 1], "no psnr": [0, 0, 0, 0]}[case]
    assert list(counts.values()) == expected
    history = history_figure(trials=trials, track=TRACKS["overall"], title="study")
    (best,) = [trace for trace in history.data if trace.yaxis == "y2"]
    assert len(best.y) == {"single": 1, "no psnr": 10}.get(case, 0)  # feasibility, not PSNR, drives the line
