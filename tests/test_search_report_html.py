"""report.html: one self-contained page with the leaderboard, the plots, the calibration and the winner.

The browser test renders it in headless Chromium (Debian's `chromium` package). Without it the test is
skipped, except under CI=true, where `.ci/run` installs it and its absence is an error. The screenshot
it takes stays in the test's temporary folder (report.png) for anyone to look at.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState, create_trial

from search.verdict.calibration import CalibrationPoint, ProxyRun, fit_predictor
from search.report.tables import leaderboard, references_frame, trials_frame
from search.report.html import write_report
from search.settings import SearchSettings
from search.verdict.rungs import Ladder
from search.tracks import TRACKS
from spaces import ArchConfig, get_reference
from train_proxy import get_budget

RUNTIME = TRACKS["runtime"]
REFERENCE_POINTS = {"imdn": (23.2, 1.0, 893_936), "rfdn": (22.7, 0.76, 433_448), "rlfn": (22.4, 0.34, 317_218)}
# (label, proxy PSNR, latency ratio, params, state); the first sampled trial wins.
CANDIDATES = [("fast", 22.6, 0.30, 200_000, TrialState.COMPLETE), ("slow", 23.0, 0.80, 600_000, TrialState.COMPLETE),
              ("weak", 21.2, 0.20, 150_000, TrialState.COMPLETE), ("stopped", 20.1, 0.50, 300_000, TrialState.PRUNED)]


def curve(psnr: float) -> list[list[float]]:
    return [[0, 12.0], [6, psnr - 1.0], [12, psnr]]


PUBLISHED = {"imdn": 29.13, "rfdn": 29.04, "rlfn": 29.00}
PREDICTOR = fit_predictor([CalibrationPoint(name, ProxyRun(tuple(map(tuple, curve(psnr))), params), PUBLISHED[name],
                                            published=PUBLISHED[name]) for name, (psnr, _, params) in
                           REFERENCE_POINTS.items()], floor=29.0, features="proxy")


def _study() -> optuna.Study:
    study = optuna.create_study(directions=RUNTIME.directions)
    study.set_user_attr("calibration", PREDICTOR.to_dict())
    for name, (psnr, latency, params) in REFERENCE_POINTS.items():
        config = get_reference(name)
        record = {"config": config.to_dict(), "label": config.describe(), "psnr": psnr, "latency_ratio": latency,
                  "params": params, "flops_g": params / 15_000, "memory_mb": 4.0, "trained": True,
                  "psnr_predicted": PUBLISHED[name], "psnr_low": PUBLISHED[name], "psnr_high": PUBLISHED[name],
                  "verdict": "feasible", "psnr_curve": curve(psnr), "reference": name, "memory_method": "cpu estimate",
                  "latency_settings": {"device_name": "test CPU", "dtype": "fp32", "input_shape": [1, 3, 24, 36],
                                       "repeats": 10, "warmup": 3, "threads": 1, "timer": "perf_counter"}}
        study.set_user_attr(f"reference:{name}", record)
        _add(study, record, state=TrialState.COMPLETE)
    for index, (label, psnr, latency, params, state) in enumerate(CANDIDATES):
        config = ArchConfig(block="rlfb", num_blocks=2 + index, channels=24, mid_channels=16,
                            attention="esa_slim", esa_channels=8)
        attrs = {"config": config.to_dict(), "label": label, "psnr": psnr, "latency_ratio": latency, "params": params,
                 "flops_g": params / 15_000, "memory_mb": 2.0, "trained": True, "psnr_curve": curve(psnr),
                 **PREDICTOR.predict(ProxyRun(tuple(map(tuple, curve(psnr))), params)).to_record()}
        _add(study, attrs, state=state)
    return study


def _add(study: optuna.Study, attrs: dict, *, state: TrialState) -> None:
    system = {"constraints:params": float(attrs["params"] - 893_936),
              "constraints:psnr": float(29.0 - attrs["psnr_high"])}
    values = [attrs["latency_ratio"], attrs["psnr"]] if state == TrialState.COMPLETE else None
    study.add_trial(create_trial(state=state, values=values, user_attrs=attrs, system_attrs=system))


def _report(tmp_path: Path) -> Path:
    study = _study()
    study.set_user_attr("validation", "DIV2K_LSDIR_valid (200 images)")  # what the search's data loader recorded
    settings = SearchSettings(study_name="study", results=str(tmp_path / "results"), trials=7, data="/data/esr")
    frame = trials_frame(study, RUNTIME)
    board = leaderboard(frame, references_frame(study), RUNTIME, edition=settings.rules)
    run_dir = tmp_path / "results" / "study"
    for name in ("trials.csv", "leaderboard_runtime.csv"):
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_text("x\n")
    winner = int(board.loc[board["name"] == "trial", "number"].iloc[0])
    return write_report(study=study, settings=settings, budget=get_budget("smoke"), track=RUNTIME, frame=frame,
                        board=board, predictors={0: PREDICTOR}, winner=winner,
                        ladder=Ladder(get_budget("smoke")), out=run_dir / "report.html")


def test_the_report_is_one_offline_page_with_every_section(tmp_path):
    text = _report(tmp_path).read_text()
    for section in ("leaderboard", "pareto", "history", "parallel", "calibration", "promotion", "winner",
                    "measurement", "files"):
        assert f'<section id="{section}">' in text, section
    assert text.count("plotly.js v") == 1  # plotly's bundle embedded once (its banner)
    assert not re.search(r'<script[^>]+src=|<link[^>]+href="http', text)  # nothing fetched: opens offline
    # Links to what the run folder holds, and only that.
    assert '<a href="trials.csv">' in text and '<a href="pareto_runtime.html">' not in text
    # How the figures were measured: device, dtype, input, repeats, versions.
    for fragment in ("test CPU", "fp32", "1x3x24x36", "10 repeats", "torch ", "toolkit ",
                     "validation on DIV2K_LSDIR_valid (200 images) in /data/esr;"):
        assert fragment in html.unescape(text), fragment
    # The predictor's interval and verdict, where the trials carry them.
    assert "<th>verdict</th>" in text and '<span class="interval">[' in text
    assert '"error_y":{"array":' in text and '"arrayminus":' in text  # the intervals as error bars
    # The winner's architecture as a diagram.
    assert '<svg class="arch"' in text and "RLFB" in text


def test_the_calibration_section_shows_the_known_points_and_how_verdicts_are_reached(tmp_path):
    text = html.unescape(_report(tmp_path).read_text())
    assert '<section id="calibration">' in text and "known: reference" in text
    assert "whole 80% interval clears 29.00 dB" in text and PREDICTOR.describe() in text


# Collects page errors and console.error calls into an element that --dump-dom prints.
_ERROR_PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push("error: " + e.message));
const __consoleError = console.error;
console.error = (...args) => { window.__errors.push("console: " + args.join(" ")); __consoleError(...args); };
window.addEventListener("load", () => setTimeout(() => {
  const out = document.createElement("pre"); out.id = "js-errors";
  out.textContent = JSON.stringify(window.__errors); document.body.appendChild(out);
}, 500));
</script>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "headless Chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    return found


def _chromium(binary: str, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
                          capture_output=True, text=True, timeout=120)


def test_the_report_renders_in_a_browser_without_errors(tmp_path):
    binary = chromium()
    report = _report(tmp_path)
    probed = report.with_name("report_probed.html")
    probed.write_text(report.read_text().replace("<head>", "<head>\n" + _ERROR_PROBE, 1))
    dom = _chromium(binary, "--virtual-time-budget=10000", "--window-size=1400,900", "--dump-dom",
                    probed.as_uri(), tmp_path=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    errors = re.search(r'<pre id="js-errors">(.*?)</pre>', dom.stdout, flags=re.S)
    assert errors is not None, "the page never finished loading"
    assert html.unescape(errors.group(1)) == "[]"
    # Plotly drew every figure (its SVG roots), and the leaderboard's rows are there.
    assert len(re.findall(r'class="plot-container plotly"', dom.stdout)) == 4  # Pareto, history, parallel, calibration
    assert dom.stdout.count('<g class="scatterlayer') >= 3 and "fast" in dom.stdout
    screenshot = tmp_path / "report.png"
    shot = _chromium(binary, "--window-size=1400,900", "--virtual-time-budget=10000", f"--screenshot={screenshot}",
                     report.as_uri(), tmp_path=tmp_path)
    assert shot.returncode == 0 and screenshot.stat().st_size > 20_000, shot.stderr[-2000:]
