"""What every benchmark shares: where its figures go, and the machine and versions they came from."""

from __future__ import annotations

import datetime
import json
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from scipy import stats

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent


def machine() -> dict[str, Any]:
    """The machine, library versions, commit and date a figure was measured with."""
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "cpu": _cpu_model(),
        "cpu_cores_usable": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "numpy": np.__version__,
        "commit": _git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    return info


def result_path(name: str) -> Path:
    return RESULTS / f"{name}.json"


def load_result(name: str) -> dict[str, Any] | None:
    path = result_path(name)
    return json.loads(path.read_text()) if path.is_file() else None


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write bench/results/<name>.json atomically (a killed benchmark leaves the previous file whole)."""
    return write_json(result_path(name), payload)


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    """Write `payload`, with the machine it was measured on, to `path` (where the user asked), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.part")
    partial.write_text(json.dumps({"machine": machine(), **payload}, indent=1, default=_plain) + "\n")
    partial.replace(path)
    return path


def rank_agreement(first: list[float], second: list[float]) -> dict[str, float]:
    """Kendall tau (tau-b) and Spearman rho between two scorings of the same items."""
    tau = stats.kendalltau(first, second)
    rho = stats.spearmanr(first, second)
    return {"kendall_tau": float(tau.statistic), "kendall_p": float(tau.pvalue),
            "spearman_rho": float(rho.statistic), "spearman_p": float(rho.pvalue)}


def median_and_spread(values: list[float]) -> dict[str, float]:
    """Median, min, max and the interquartile range: what a noisy figure is quoted with."""
    array = np.asarray(values, dtype=float)
    q1, median, q3 = np.percentile(array, [25, 50, 75])
    return {"median": float(median), "min": float(array.min()), "max": float(array.max()), "iqr": float(q3 - q1),
            "n": int(array.size)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
