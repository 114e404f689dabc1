"""What a study stores beside its trials, read back: shared by the study loop and the packages that read a
finished study (report, export), so that neither reaches into the other.

Promotion rungs (a finished trial cannot take new attributes, so they are the study's): `rung{k}:trial{n}` holds
trial n's run and verdict at rung k >= 1, `rung{k}:reference:{name}` a reference's run at rung k,
`rung{k}:calibration` the predictor fitted at rung k, `promotion_seconds` the time promotion has spent.
Rung 0 is the trial itself (its attributes, and its PSNR curve as intermediate values).
"""

from __future__ import annotations

import re
from typing import Any

import optuna

REFERENCE_PREFIX = "reference:"
PROMOTION_SECONDS = "promotion_seconds"
_RUNG_TRIAL = re.compile(r"rung(\d+):trial(\d+)$")
_RUNG_CALIBRATION = re.compile(r"rung(\d+):calibration$")


def reference_records(study: optuna.Study) -> dict[str, dict[str, Any]]:
    """The references measured so far in this study (name -> record)."""
    return {key[len(REFERENCE_PREFIX):]: value for key, value in study.user_attrs.items()
            if key.startswith(REFERENCE_PREFIX)}


def rung_trial_key(rung: int, number: int) -> str:
    return f"rung{rung}:trial{number}"


def rung_reference_key(rung: int, name: str) -> str:
    return f"rung{rung}:{REFERENCE_PREFIX}{name}"


def rung_calibration_key(rung: int) -> str:
    return "calibration" if rung == 0 else f"rung{rung}:calibration"


def rung_records(study: optuna.Study) -> dict[int, dict[int, dict[str, Any]]]:
    """trial number -> {rung k >= 1: its record at rung k}: the promoted trials."""
    found: dict[int, dict[int, dict[str, Any]]] = {}
    for key, value in study.user_attrs.items():
        match = _RUNG_TRIAL.match(key)
        if match:
            found.setdefault(int(match[2]), {})[int(match[1])] = value
    return found


def rung_calibrations(study: optuna.Study) -> dict[int, dict[str, Any]]:
    """rung -> the predictor fitted there (as stored), for the rungs this study reached."""
    found = {0: study.user_attrs["calibration"]} if "calibration" in study.user_attrs else {}
    for key, value in study.user_attrs.items():
        match = _RUNG_CALIBRATION.match(key)
        if match:
            found[int(match[1])] = value
    return dict(sorted(found.items()))
