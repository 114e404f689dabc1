"""The PSNR verdict: from a short proxy training to the full-training PSNR, with an interval.

A 150-step proxy measures early trainability, not final quality: networks with an image-level skip start
near bicubic and look good early, skip-less and re-parameterised networks start slowly. So the verdict is a
prediction, fitted on networks whose full-training quality is known (the references and a kit's entries,
proxy-trained with the study's own budget, data and seed) and validated leave-one-out by
`bench.zoo_fidelity`.

Two stages:
1. On the validation images: ridge regression of the official weights' PSNR (what full training reached on the
   images the proxy scores) on features of the proxy curve and the size of the network. The 80% interval is
   the 80th percentile of the leave-one-out residuals, widened by the point's leverage (an architecture
   unlike the calibration points gets a wider interval).
2. On the edition's published scale: a linear map fitted on the points with a published figure; its scatter
   widens the interval. A candidate is feasible when the whole interval clears the floor, infeasible when the
   whole interval is under it, uncertain otherwise.

Two guards keep a prediction from claiming more than its points support: a run whose features lie outside what
the calibration points span (by RANGE_MARGIN_SD of each feature's spread) is "outside calibration", never
feasible; a predictor fitted on too few points for its features says so and decides nothing (uncertain at best).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

COVERAGE = 0.8
Z_COVERAGE = 1.2815515655446004  # two-sided 80% of a normal distribution
RIDGE_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
MIN_POINTS_PER_FEATURE = 4
DEFAULT_MAP_SIGMA = 0.1  # dB: scatter of the published map when too few points give it
# How far beyond the calibration points' span (in standard deviations of each feature over the points) a run may
# lie and still be predicted: bench.zoo_fidelity's "extrapolation" figures measure the error beyond each margin.
RANGE_MARGIN_SD = 0.5


class Verdict(str, enum.Enum):
    FEASIBLE = "feasible"
    UNCERTAIN = "uncertain"
    INFEASIBLE = "infeasible"
    OUTSIDE = "outside calibration"  # its features lie beyond the calibration points': a guess, never feasible

    @property
    def decided(self) -> bool:
        return self in (Verdict.FEASIBLE, Verdict.INFEASIBLE)


class Feature(str, enum.Enum):
    """What the predictor may read of one proxy run."""

    FINAL = "final"          # proxy PSNR at the last checkpoint
    LATE_GAIN = "late_gain"  # PSNR gained over the last quarter of the run: a slow starter is still climbing
    START = "start"          # PSNR before training: an image-level (bicubic) skip starts near bicubic
    LOG_PARAMS = "log_params"  # capacity
    LOG_ACTIVATIONS = "log_activations"  # feature-map volume (conv outputs at 256x256): width times depth


FEATURE_SETS: dict[str, tuple[Feature, ...]] = {
    "proxy": (Feature.FINAL,),
    "curve": (Feature.FINAL, Feature.LATE_GAIN, Feature.START),
    "curve+size": (Feature.FINAL, Feature.LATE_GAIN, Feature.START, Feature.LOG_PARAMS),
    "proxy+size": (Feature.FINAL, Feature.LOG_PARAMS),
    "size": (Feature.LOG_PARAMS,),
    "proxy+size+acts": (Feature.FINAL, Feature.LOG_PARAMS, Feature.LOG_ACTIVATIONS),
}
DEFAULT_FEATURES = "proxy+size"


@dataclass(frozen=True)
class ProxyRun:
    """What the predictor reads of one architecture: its proxy PSNR curve, its parameter count and its
    activations (millions of conv output elements at 1x3x256x256, as every edition's kit counts them)."""

    curve: tuple[tuple[int, float], ...]
    params: int
    activations_m: float | None = None

    def feature(self, name: Feature) -> float:
        psnrs = [psnr for _, psnr in self.curve]
        if name is Feature.FINAL:
            return psnrs[-1]
        if name is Feature.LATE_GAIN:
            return psnrs[-1] - psnrs[-2] if len(psnrs) > 1 else 0.0
        if name is Feature.START:
            return psnrs[0]
        if name is Feature.LOG_ACTIVATIONS:
            if self.activations_m is None:
                raise ValueError("this proxy run has no activation count; measure it again with this toolkit, "
                                 "or choose a --predictor without acts")
            return math.log10(self.activations_m)
        return math.log10(self.params)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ProxyRun:
        """From a trial's or a cache's record (`psnr_curve` or `curve`, `params`, and `activations_m` when known)."""
        curve = record.get("psnr_curve") or record.get("curve")
        activations = record.get("activations_m")
        return cls(curve=tuple((int(step), float(psnr)) for step, psnr in curve), params=int(record["params"]),
                   activations_m=None if activations is None else float(activations))


@dataclass(frozen=True)
class CalibrationPoint:
    """A network whose full-training quality is known. target: its trained weights' PSNR on the validation
    images; published: the challenge's figure on the edition's scale (None when not published)."""

    name: str
    run: ProxyRun
    target: float
    published: float | None = None
    source: str = "reference"
    edition: int | None = None  # the edition whose validation set `published` is on


@dataclass(frozen=True)
class Prediction:
    """Predicted full-training PSNR with its 80% interval, on the validation images and on the published scale."""

    on_valid: float
    on_valid_low: float
    on_valid_high: float
    psnr: float
    low: float
    high: float
    verdict: Verdict
    outside: tuple[str, ...] = ()  # the features that lie beyond the calibration points' span

    def to_record(self) -> dict[str, Any]:
        """The trial attributes of a prediction."""
        return {"psnr_predicted": self.psnr, "psnr_low": self.low, "psnr_high": self.high,
                "psnr_predicted_valid": self.on_valid, "verdict": self.verdict.value,
                "outside_calibration": list(self.outside)}


@dataclass(frozen=True)
class PsnrPredictor:
    """A fitted predictor; `predict` gives a `Prediction` for any proxy run of the same budget, data and seed."""

    floor: float
    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    ridge: float
    gram_inverse: tuple[tuple[float, ...], ...]  # (Z'Z + ridge I)^-1 of the standardised features
    residual_quantile: float  # 80th percentile of |leave-one-out residual| / sqrt(1 + leverage)
    map_intercept: float
    map_slope: float
    map_sigma: float
    points: tuple[dict[str, Any], ...] = field(default=())  # name, source, target, published, features, loo
    # The span of the calibration points over the requested feature set (even where the fit shrank it):
    # feature -> (low, high) already widened by RANGE_MARGIN_SD.
    span: dict[str, tuple[float, float]] = field(default_factory=dict)
    too_few: str = ""  # why this predictor decides nothing (too few points for its features), else ""

    def predict(self, run: ProxyRun) -> Prediction:
        z = self._standardise(run)
        on_valid = self.intercept + float(z @ np.array(self.coef))
        leverage = float(z @ np.array(self.gram_inverse) @ z)
        half = self.residual_quantile * math.sqrt(1.0 + leverage)
        psnr = self.map_intercept + self.map_slope * on_valid
        half_published = math.hypot(self.map_slope * half, Z_COVERAGE * self.map_sigma)
        low, high = psnr - half_published, psnr + half_published
        outside = self.outside(run)
        verdict = (Verdict.OUTSIDE if outside else Verdict.UNCERTAIN if self.too_few else
                   Verdict.FEASIBLE if low >= self.floor else
                   Verdict.INFEASIBLE if high < self.floor else Verdict.UNCERTAIN)
        return Prediction(on_valid, on_valid - half, on_valid + half, psnr, low, high, verdict, outside)

    def outside(self, run: ProxyRun) -> tuple[str, ...]:
        """The features of `run` beyond the calibration points' span (widened by RANGE_MARGIN_SD)."""
        found = []
        for name, (low, high) in self.span.items():
            feature = Feature(name)
            if feature is Feature.LOG_ACTIVATIONS and run.activations_m is None:
                continue
            if not low <= run.feature(feature) <= high:
                found.append(name)
        return tuple(found)

    def _standardise(self, run: ProxyRun) -> np.ndarray:
        raw = np.array([run.feature(Feature(name)) for name in self.features])
        return (raw - np.array(self.mean)) / np.array(self.scale)

    def describe(self) -> str:
        terms = " ".join(f"{c:+.3f}*z({n})" for n, c in zip(self.features, self.coef))
        spans = ", ".join(f"{name} {low:.2f}..{high:.2f}" for name, (low, high) in self.span.items())
        return (f"on validation images: {self.intercept:.3f} {terms} (ridge {self.ridge:g}, 80% half-width "
                f"{self.residual_quantile:.3f} dB x sqrt(1 + leverage)); published = {self.map_intercept:.3f} + "
                f"{self.map_slope:.3f} x that (scatter {self.map_sigma:.3f} dB); {len(self.points)} calibration points"
                + (f"; calibrated span {spans}" if spans else "")
                + (f"; {self.too_few}" if self.too_few else ""))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PsnrPredictor:
        values = {k: data[k] for k in cls.__dataclass_fields__ if k not in ("span", "too_few")}
        values["features"] = tuple(values["features"])
        values["mean"], values["scale"], values["coef"] = (tuple(values[k]) for k in ("mean", "scale", "coef"))
        values["gram_inverse"] = tuple(tuple(row) for row in values["gram_inverse"])
        values["points"] = tuple(values["points"])
        values["span"] = {name: tuple(bounds) for name, bounds in data.get("span", {}).items()}
        values["too_few"] = data.get("too_few", "")
        return cls(**values)


def fit_predictor(points: Sequence[CalibrationPoint], *, floor: float, features: str = DEFAULT_FEATURES,
                  published_points: Sequence[tuple[float, float]] | None = None) -> PsnrPredictor:
    """Fit on `points` (at least 2). With fewer than MIN_POINTS_PER_FEATURE points per feature, the feature set
    shrinks to the proxy PSNR alone. `published_points`: (on validation images, published) pairs for the map
    (default: the points that have a published figure)."""
    if len(points) < 2:
        raise ValueError("the PSNR predictor needs at least two calibration points")
    requested = FEATURE_SETS[features] if features in FEATURE_SETS else _unknown_features(features)
    names, too_few = requested, ""
    if len(points) < MIN_POINTS_PER_FEATURE * len(requested):
        names = FEATURE_SETS["proxy"]
        too_few = (f"fitted on {len(points)} calibration points, too few for {features} "
                   f"({MIN_POINTS_PER_FEATURE * len(requested)} needed): it decides nothing (uncertain at best)")
    raw = np.array([[p.run.feature(n) for n in names] for p in points])
    y = np.array([p.target for p in points])
    mean, scale = raw.mean(axis=0), raw.std(axis=0)
    scale[scale == 0] = 1.0
    z = (raw - mean) / scale
    ridge, loo = min(((lam, _loo_residuals(z, y, lam)) for lam in RIDGE_GRID), key=lambda item: np.mean(item[1] ** 2))
    coef, intercept, gram_inverse = _ridge(z, y, ridge)
    leverage = np.einsum("ij,jk,ik->i", z, gram_inverse, z)
    quantile = float(np.quantile(np.abs(loo) / np.sqrt(1.0 + leverage), COVERAGE))
    pairs = published_points if published_points is not None else [
        (p.target, p.published) for p in points if p.published is not None]
    map_intercept, map_slope, map_sigma = fit_published_map(pairs)
    rows = tuple({"name": p.name, "source": p.source, "target": p.target, "published": p.published,
                  "features": dict(zip((n.value for n in names), map(float, raw[i]))), "loo_residual": float(loo[i])}
                 for i, p in enumerate(points))
    return PsnrPredictor(
        floor=float(floor), features=tuple(n.value for n in names), mean=tuple(map(float, mean)),
        scale=tuple(map(float, scale)), coef=tuple(map(float, coef)), intercept=float(intercept), ridge=float(ridge),
        gram_inverse=tuple(tuple(map(float, row)) for row in gram_inverse), residual_quantile=quantile,
        map_intercept=map_intercept, map_slope=map_slope, map_sigma=map_sigma, points=rows,
        span=calibrated_span(points, requested), too_few=too_few)


def calibrated_span(points: Sequence[CalibrationPoint], features: Sequence[Feature], *,
                    margin_sd: float = RANGE_MARGIN_SD) -> dict[str, tuple[float, float]]:
    """feature -> (low, high): the points' span widened by `margin_sd` of the feature's spread over them."""
    span = {}
    for feature in features:
        if feature is Feature.LOG_ACTIVATIONS and any(p.run.activations_m is None for p in points):
            continue
        values = np.array([p.run.feature(feature) for p in points])
        margin = margin_sd * float(values.std())
        span[feature.value] = (float(values.min()) - margin, float(values.max()) + margin)
    return span


def fit_published_map(pairs: Sequence[tuple[float, float]]) -> tuple[float, float, float]:
    """(intercept, slope, residual sigma) of published = intercept + slope * on_valid. With fewer than 4 pairs
    the slope is 1 (an offset) and the scatter DEFAULT_MAP_SIGMA; the slope is kept in [0.5, 2]."""
    if not pairs:
        return 0.0, 1.0, DEFAULT_MAP_SIGMA
    x, y = np.array(pairs, dtype=float).T
    if len(pairs) < 4 or np.ptp(x) == 0:
        return float(np.mean(y - x)), 1.0, DEFAULT_MAP_SIGMA
    slope = float(np.clip(np.polyfit(x, y, 1)[0], 0.5, 2.0))
    intercept = float(np.mean(y - slope * x))
    sigma = float(np.sqrt(np.sum((y - intercept - slope * x) ** 2) / (len(x) - 2)))
    return intercept, slope, sigma


def _ridge(z: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, float, np.ndarray]:
    """Ridge on standardised features, intercept unpenalised (y centred)."""
    gram_inverse = np.linalg.inv(z.T @ z + ridge * np.eye(z.shape[1]))
    intercept = float(y.mean())
    coef = gram_inverse @ z.T @ (y - intercept)
    return coef, intercept, gram_inverse


def _loo_residuals(z: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    """Leave-one-out residuals (target - prediction), each from a fit without that point."""
    residuals = np.empty(len(y))
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        zk = z[keep]
        mean, scale = zk.mean(axis=0), zk.std(axis=0)
        scale[scale == 0] = 1.0
        coef, intercept, _ = _ridge((zk - mean) / scale, y[keep], ridge)
        residuals[i] = y[i] - (intercept + ((z[i] - mean) / scale) @ coef)
    return residuals


def _unknown_features(name: str) -> tuple[Feature, ...]:
    raise ValueError(f"unknown feature set {name!r}; choose one of {', '.join(FEATURE_SETS)}")
