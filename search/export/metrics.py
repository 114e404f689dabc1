"""The metrics an export records, under the rules of the edition it is exported for (`export --edition`).

A study measures its trials by its own edition's rules. Exported for another edition, a trial's FLOPs
are counted again by that edition's counter, its latency ratio is re-based on that edition's baseline
when the study timed it (both are ratios to the study's baseline, timed side by side, so they divide),
and what the study judged by its own rules (constraint values, feasibility, Pareto membership, PSNR
verdict) is left out rather than passed off as the other edition's. Where an edition scores one network
by itself (the weighted score, 2024 on), the score is added; a rank rule (2022) needs a whole board.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from editions import Edition, WeightedScore
from search.candidate import Measurement, edition_limits, measure_complexity
from search.report.tables import CONSTRAINTS
from spaces import ArchConfig

logger = logging.getLogger(__name__)

# Columns of the trials table that hold the study's judgement by its own edition's rules.
JUDGED = ("feasible", "pareto", "verdict", *(f"c_{c}" for c in CONSTRAINTS))


def edition_metrics(metrics: dict[str, Any], *, config: ArchConfig, edition: Edition, study_edition: Edition,
                    references: pd.DataFrame) -> dict[str, Any]:
    """`metrics` (a trial's row of the study's trials table) under `edition`'s rules, with `edition` recorded.

    `references`: the study's references table, whose latency ratios re-base the trial's on `edition`'s baseline.
    """
    metrics = {**metrics, "edition": edition.year, "flops_counter": edition.counter.value,
               "latency_ratio_to": edition.baseline}
    if edition.year != study_edition.year:
        metrics = {key: value for key, value in metrics.items() if key not in JUDGED}
        measurement = Measurement.of_edition(edition, device="cpu", latency_input=None)
        metrics.update(measure_complexity(config, measurement=measurement), study_edition=study_edition.year,
                       latency_ratio=_rebased_latency_ratio(metrics.get("latency_ratio"), edition=edition,
                                                            study_edition=study_edition, references=references))
    if isinstance(edition.ranking, WeightedScore):
        metrics["score"] = _weighted_score(metrics, edition=edition)
    return metrics


def _rebased_latency_ratio(ratio: float | None, *, edition: Edition, study_edition: Edition,
                           references: pd.DataFrame) -> float | None:
    """`ratio` (to the study's baseline) as a ratio to `edition`'s baseline; None where the study did not time it."""
    timed = references.loc[references["name"] == edition.baseline, "latency_ratio"].dropna()
    if timed.empty:
        logger.warning("%s's baseline %s was not timed in this %s study: the export records no latency ratio "
                       "or score for %s", edition.name, edition.baseline, study_edition.name, edition.name)
        return None
    return None if ratio is None else ratio / float(timed.iloc[0])


def _weighted_score(metrics: dict[str, Any], *, edition: Edition) -> float | None:
    """The edition's weighted score of one network (the baseline scores e^2); None without a latency ratio."""
    weights = edition.ranking.weights
    if any(metrics.get(metric) is None for metric, _ in weights):
        return None
    limits = edition_limits(edition, floor=edition.floor.valid)
    board = pd.DataFrame([{metric: metrics[metric] for metric, _ in weights}])
    # A weighted score reads its own weights, not a track's ranked metrics.
    score = edition.ranking.score(board, ranked_by=(), baseline={"params": limits.params, "flops_g": limits.flops_g})
    return float(score.iloc[0])
