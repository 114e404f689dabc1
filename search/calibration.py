"""The PSNR floor: from a short proxy's PSNR to the full-training PSNR the challenge's floor refers to.

A short proxy keeps the references' order but stretches their gaps several times, so a literal
"IMDN's proxy PSNR - 0.13 dB" floor would reject RLFN, which met the real floor. The calibrated floor
fits a monotone map on the references' (proxy PSNR, published DIV2K-valid PSNR) points, measured in
the same study with the same budget, data and seed; a candidate is feasible when its predicted PSNR
reaches the floor (29.00 dB by default).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

CALIBRATED = "calibrated"
IMDN_MARGIN = "imdn-margin"


@dataclass(frozen=True)
class PsnrFloor:
    """Feasible when `predict(proxy_psnr) >= floor`.

    calibrated: isotonic (pool-adjacent-violators) fit through the reference points, linear in
    between, extrapolated with the least-squares slope (clipped at 0 so the map stays monotone).
    imdn-margin: the literal rule; predicted = IMDN's published PSNR + (proxy - IMDN's proxy), and the
    floor is IMDN's published PSNR - margin, i.e. proxy >= IMDN's proxy - margin.
    """

    mode: str
    floor: float
    names: tuple[str, ...]
    proxy: tuple[float, ...]
    published: tuple[float, ...]
    knots_x: tuple[float, ...]
    knots_y: tuple[float, ...]
    slope: float

    def predict(self, proxy_psnr: float) -> float:
        x = float(proxy_psnr)
        if x < self.knots_x[0]:
            return float(self.knots_y[0] + self.slope * (x - self.knots_x[0]))
        if x > self.knots_x[-1]:
            return float(self.knots_y[-1] + self.slope * (x - self.knots_x[-1]))
        return float(np.interp(x, self.knots_x, self.knots_y))

    def violation(self, proxy_psnr: float) -> float:
        """Optuna's constraint value: <= 0 when feasible."""
        return self.floor - self.predict(proxy_psnr)

    @property
    def proxy_floor(self) -> float:
        """The proxy PSNR at which the prediction reaches the floor (inf when none does)."""
        if self.knots_y[0] >= self.floor:
            return self.knots_x[0] - (self.knots_y[0] - self.floor) / self.slope if self.slope > 0 else -np.inf
        if self.knots_y[-1] < self.floor:
            return self.knots_x[-1] + (self.floor - self.knots_y[-1]) / self.slope if self.slope > 0 else np.inf
        for x0, x1, y0, y1 in zip(self.knots_x, self.knots_x[1:], self.knots_y, self.knots_y[1:]):
            if y0 < self.floor <= y1:
                return x0 + (self.floor - y0) * (x1 - x0) / (y1 - y0)
        return self.knots_x[-1]

    @property
    def degenerate(self) -> bool:
        """True when the proxy does not order the references as full training does."""
        return len(self.knots_x) < len(self.proxy) or self.slope <= 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "proxy_floor": float(self.proxy_floor), "degenerate": self.degenerate}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PsnrFloor:
        fields = {k: data[k] for k in cls.__dataclass_fields__}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def fit_psnr_floor(*, points: dict[str, tuple[float, float]], mode: str = CALIBRATED, floor: float = 29.00,
                   margin: float = 0.13, baseline: str = "imdn") -> PsnrFloor:
    """Fit the floor on `points`: reference name -> (proxy PSNR, published full-training PSNR)."""
    names = tuple(points)
    proxy = tuple(float(points[n][0]) for n in names)
    published = tuple(float(points[n][1]) for n in names)
    if mode == IMDN_MARGIN:
        if baseline not in points:
            raise ValueError(f"the imdn-margin floor needs the {baseline!r} reference")
        x0, y0 = points[baseline]
        return PsnrFloor(mode, y0 - margin, names, proxy, published, (float(x0),), (float(y0),), 1.0)
    if mode != CALIBRATED:
        raise ValueError(f"unknown PSNR floor mode {mode!r}; choose {CALIBRATED} or {IMDN_MARGIN}")
    if len(points) < 2:
        raise ValueError("the calibrated PSNR floor needs at least two reference points")
    knots_x, knots_y = _isotonic(np.array(proxy), np.array(published))
    slope = max(float(np.polyfit(proxy, published, 1)[0]), 0.0) if len(set(proxy)) > 1 else 0.0
    return PsnrFloor(mode, float(floor), names, proxy, published, knots_x, knots_y, slope)


def _isotonic(x: np.ndarray, y: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Pool-adjacent-violators: non-decreasing y over increasing x; pooled blocks collapse to their means."""
    order = np.argsort(x, kind="stable")
    blocks: list[list[float]] = []  # [sum_x, sum_y, count]
    for i in order:
        blocks.append([x[i], y[i], 1.0])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] > blocks[-1][1] / blocks[-1][2]:
            sx, sy, n = blocks.pop()
            blocks[-1] = [blocks[-1][0] + sx, blocks[-1][1] + sy, blocks[-1][2] + n]
    return tuple(float(b[0] / b[2]) for b in blocks), tuple(float(b[1] / b[2]) for b in blocks)
