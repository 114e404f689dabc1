"""Promotion: settle the verdict of the candidates that could win by training them longer, rung by rung.

After the trials (and, with several workers, as soon as one has no trial left to start while the others' run),
the undecided candidates ranked ahead of the best feasible one (every candidate that keeps the
floor while none is feasible) climb the ladder (`search.verdict.rungs`), best-ranked first: one is trained from
scratch at reduction_factor times the steps, the references and the calibration points of that rung are measured
(read from the study, the shipped points or the machine's cache when they were measured before), the rung's
predictor is fitted, and the candidate gets that rung's verdict, which replaces the lower rungs' (they stay
recorded). It goes on until the best-ranked candidate that keeps the floor is feasible, or none ahead of it can
climb: the top rung, the rung's share (the top 1/reduction_factor of those that reached the rung below:
successive halving), or `confirm_minutes` of promotion in this study (`promotion_seconds`, summed over runs:
rerunning with a larger budget continues the ladder, and nothing stored is trained again). One process of a study
climbs at a time (the study's "promote" lock), so no rung is trained twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import optuna
import pandas as pd

from search import candidate
from search.objective import TrialObjective, known_points, store_weights
from search.report.tables import read_study
from search.records import (PROMOTION_SECONDS, reference_records, rung_calibration_key, rung_records,
                            rung_reference_key, rung_trial_key)
from search.trial_gate import StudyLock
from search.tracks import Track
from search.verdict import known_quality
from search.verdict.calibration import ProxyRun, PsnrPredictor, Verdict
from search.verdict.measurement_cache import MeasurementCache, measurement_key
from search.verdict.rungs import Ladder
from spaces import ArchConfig, get_reference

logger = logging.getLogger(__name__)
Printer = Callable[[str], None]


@dataclass(frozen=True)
class NextStep:
    """The training that would come next: trial `number` at `rung`, about `minutes` on this machine."""

    number: int
    rung: int
    minutes: float


@dataclass
class Outcome:
    """What promotion did in this run and why it stopped; the records themselves are in the study."""

    ladder: Ladder
    stopped: str = ""
    trained: list[tuple[int, int]] = field(default_factory=list)  # (trial, rung) trained in this run
    next_step: NextStep | None = None
    spent_s: float = 0.0  # in this study, over all runs


def ladder_of(objective: TrialObjective) -> Ladder:
    settings = objective.settings
    return Ladder(objective.budget, reduction_factor=settings.reduction_factor, max_rung=settings.max_rung)


def promote(study: optuna.Study, *, objective: TrialObjective, board: pd.DataFrame, say: Printer) -> Outcome:
    """Climb the ladder with the undecided candidates ranked ahead of the best feasible one (all of them while none
    is feasible), the best-ranked first, until the best-ranked candidate that keeps the floor is decided, or none
    of those ahead of it can climb: top rung, the rung's share, or the time budget."""
    ladder = ladder_of(objective)
    outcome = Outcome(ladder)
    order = ranked_trials(board)
    lock = promotion_lock(objective)
    while True:
        with lock.held():  # another process of the study (one still running trials) may be promoting too
            step = next_climb(study, objective=objective, ladder=ladder, order=order)
            if step.stopped:
                outcome.stopped, outcome.next_step = step.stopped, step.next_step
                outcome.spent_s = spent_seconds(study)
                return outcome
            climb_and_count(study, objective=objective, ladder=ladder, step=step, say=say)
        outcome.trained.append((step.number, step.rung))


def promote_while_waiting(study: optuna.Study, *, objective: TrialObjective, track: Track, say: Printer) -> bool:
    """One climb of the candidates ranked so far, by a worker that has no trial to start while others' run
    (asynchronous successive halving, as ASHA promotes as soon as a rung holds enough runs): True when it trained.
    Another worker promoting already, or nothing to promote yet: False at once."""
    if objective.settings.confirm_minutes <= 0:
        return False
    with promotion_lock(objective).try_held() as held:
        if not held:
            return False
        _, _, board = read_study(study, track=track, edition=objective.edition)
        ladder = ladder_of(objective)
        step = next_climb(study, objective=objective, ladder=ladder, order=ranked_trials(board))
        if step.stopped:
            return False
        say(f"promotion while the last trials run: #{step.number} climbs to rung {step.rung}")
        climb_and_count(study, objective=objective, ladder=ladder, step=step, say=say)
        return True


@dataclass(frozen=True)
class Step:
    """The ladder's next move: trial `number` climbs to `rung`, or it stops (`stopped` says why; `next_step` the
    training that would come next, when the time budget is what stops it)."""

    number: int = -1
    rung: int = -1
    stopped: str = ""
    next_step: NextStep | None = None


def next_climb(study: optuna.Study, *, objective: TrialObjective, ladder: Ladder, order: list[int]) -> Step:
    """Which of the ranked trials (`order`, best first) climbs next, from what the study holds now."""
    room_s = objective.settings.confirm_minutes * 60.0 - spent_seconds(study)
    verdicts = current_verdicts(study, order)
    kept = [n for n in promotion_order(order, verdicts) if verdicts[n]["verdict"] != Verdict.INFEASIBLE.value]
    if not kept:
        return Step(stopped="no candidate keeps the floor at its highest rung")
    best = next((i for i, n in enumerate(kept) if verdicts[n]["verdict"] == Verdict.FEASIBLE.value), len(kept))
    if best == 0:
        return Step(stopped=f"the winner #{kept[0]} is decided: feasible at rung {verdicts[kept[0]]['rung']}")
    blocked = []
    for number in kept[:best]:  # undecided, and ranked ahead of every feasible candidate
        rung = verdicts[number]["rung"]
        why, estimate_s = why_not_climb(study, objective=objective, ladder=ladder, order=order, number=number,
                                        rung=rung, room_s=room_s)
        if why is None:
            return Step(number=number, rung=rung + 1)
        blocked.append((number, rung, why, estimate_s))
    leader, rung, why, estimate_s = blocked[0]
    return Step(stopped=(f"#{leader} stays {verdicts[leader]['verdict']} at rung {rung}: {why}"
                         + (f"; the best-ranked decided one is #{kept[best]}, feasible" if best < len(kept) else "")),
                next_step=None if estimate_s is None else NextStep(leader, rung + 1, estimate_s / 60.0))


def climb_and_count(study: optuna.Study, *, objective: TrialObjective, ladder: Ladder, step: Step,
                    say: Printer) -> None:
    """climb(), its time added to the study's promotion time (read again: other processes add theirs)."""
    started = time.monotonic()
    climb(study, objective=objective, ladder=ladder, number=step.number, rung=step.rung, say=say)
    study.set_user_attr(PROMOTION_SECONDS, spent_seconds(study) + time.monotonic() - started)


def spent_seconds(study: optuna.Study) -> float:
    """Promotion time spent in this study, over all its runs and processes."""
    return float(study.user_attrs.get(PROMOTION_SECONDS, 0.0))


def ranked_trials(board: pd.DataFrame) -> list[int]:
    """The leaderboard's trial numbers, best-ranked first (references left out)."""
    return [int(n) for n in board.loc[board["name"] == "trial", "number"]]


def promotion_lock(objective: TrialObjective) -> StudyLock:
    settings = objective.settings
    return StudyLock(settings.storage_url, settings.name, purpose="promote")


def why_not_climb(study: optuna.Study, *, objective: TrialObjective, ladder: Ladder, order: list[int], number: int,
                  rung: int, room_s: float) -> tuple[str | None, float | None]:
    """(why trial `number` cannot climb from `rung` now, or None; the next rung's estimated seconds, when known)."""
    if rung >= ladder.max_rung:
        return f"the top rung ({rung})", None
    share = ladder.promoted(reached(study, order, rung))
    climbed = sum(rung + 1 in runs for runs in rung_records(study).values())
    if climbed >= share:
        return (f"rung {rung + 1} holds its share of rung {rung} (the top {share} of "
                f"{reached(study, order, rung)})"), None
    estimate_s = training_estimate(study, objective=objective, ladder=ladder, number=number, rung=rung + 1)
    if estimate_s > room_s:
        return (f"the promotion budget ({objective.settings.confirm_minutes:g} min) leaves "
                f"{max(room_s, 0.0) / 60:.1f} min, rung {rung + 1} would take about {estimate_s / 60:.1f} min"), estimate_s
    return None, estimate_s


def current_verdicts(study: optuna.Study, numbers: list[int]) -> dict[int, dict[str, Any]]:
    """trial -> its record at the highest rung it reached, with `rung` (rung 0: the trial's own attributes)."""
    promoted = rung_records(study)
    found = {}
    for number in numbers:
        rungs = promoted.get(number, {})
        if rungs:
            top = max(rungs)
            found[number] = {**rungs[top], "rung": top}
        else:
            found[number] = {**study.trials[number].user_attrs, "rung": 0}
    return found


def promotion_order(order: list[int], verdicts: dict[int, dict[str, Any]]) -> list[int]:
    """The leaderboard's order, candidates outside the calibration span after those inside (never ahead of them)."""
    return sorted(order, key=lambda n: verdicts[n]["verdict"] == Verdict.OUTSIDE.value)


def reached(study: optuna.Study, order: list[int], rung: int) -> int:
    """How many of the ranked candidates reached `rung` (rung 0: all of them)."""
    if rung == 0:
        return len(order)
    promoted = rung_records(study)
    return sum(rung in promoted.get(n, {}) for n in order)


def training_estimate(study: optuna.Study, *, objective: TrialObjective, ladder: Ladder, number: int,
                      rung: int) -> float:
    """Seconds to train trial `number` at `rung` on this machine, and the calibration references there that are
    not measured yet: each run's time at the rung below (timed here), times the reduction factor."""
    below = current_verdicts(study, [number])[number]
    seconds = _wall_seconds(below) * ladder.reduction_factor ** (rung - below["rung"])
    for name in objective.edition.calibration_references:
        if reference_run(study, objective=objective, ladder=ladder, name=name, rung=rung, train=False) is None:
            timed = max(k for k in range(rung) if k == 0 or rung_reference_key(k, name) in study.user_attrs)
            stored = study.user_attrs.get(rung_reference_key(timed, name)) or reference_records(study).get(name, {})
            seconds += _wall_seconds(stored) * ladder.reduction_factor ** (rung - timed)
    return seconds


def _wall_seconds(record: dict[str, Any]) -> float:
    return float(record.get("train_wall_seconds") or record.get("train_seconds") or 0.0)


def climb(study: optuna.Study, *, objective: TrialObjective, ladder: Ladder, number: int, rung: int,
          say: Printer) -> dict[str, Any]:
    """Train trial `number` at `rung` and judge it with the rung's predictor; stored as `rung{k}:trial{n}`."""
    predictor = rung_predictor(study, objective=objective, ladder=ladder, rung=rung, say=say)
    trial = study.trials[number]
    config = ArchConfig.from_dict(trial.user_attrs["config"])
    budget = ladder.budget(rung)
    result = candidate.train(config, data=objective.data, budget=budget, seed=objective.settings.seed,
                             device=objective.settings.device)
    record: dict[str, Any] = {"rung": rung, "budget": budget.to_dict(), "params": trial.user_attrs["params"],
                              "activations_m": trial.user_attrs.get("activations_m"),
                              **candidate.training_record(result)}
    if result.status != "ok":  # diverged or out of memory at the longer budget: it cannot be the winner
        record.update(verdict=Verdict.INFEASIBLE.value, fail_reason=result.reason)
        say(f"  #{number:<4} rung {rung} ({budget.iterations} steps): training failed ({result.reason}): infeasible")
    else:
        record["weights_artifact"] = store_weights(objective.artifacts, study, result.state_dict,
                                                   name=f"trial-{number}-rung{rung}")
        record.update(predictor.predict(ProxyRun.from_record(record)).to_record())
        say(f"  #{number:<4} rung {rung} ({budget.iterations} steps): proxy {record['psnr']:.2f} dB, predicted "
            f"{record['psnr_predicted']:.2f} [{record['psnr_low']:.2f}, {record['psnr_high']:.2f}] "
            f"{record['verdict']} ({result.wall_seconds:.0f} s)")
    study.set_user_attr(rung_trial_key(rung, number), record)
    return record


def rung_predictor(study: optuna.Study, *, objective: TrialObjective, ladder: Ladder, rung: int,
                   say: Printer) -> PsnrPredictor:
    """The predictor of `rung`: the calibration references and known points measured at that rung's budget."""
    stored = study.user_attrs.get(rung_calibration_key(rung))
    if stored is not None:
        return PsnrPredictor.from_dict(stored)
    records = {name: reference_run(study, objective=objective, ladder=ladder, name=name, rung=rung, say=say)
               for name in objective.edition.calibration_references}
    points = known_points(objective.settings, data=objective.data, budget=ladder.budget(rung),
                          bicubic_psnr=objective.bicubic_psnr)
    predictor = objective.fit(records, points=points)
    study.set_user_attr(rung_calibration_key(rung), predictor.to_dict())
    known = len(predictor.points) - len(records)
    say(f"  rung {rung} predictor: {len(predictor.points)} calibration points ({known} known, {len(records)} "
        f"references); {predictor.describe()}")
    return predictor


def reference_run(study: optuna.Study, *, objective: TrialObjective, ladder: Ladder, name: str, rung: int,
                  say: Printer = logger.info, train: bool = True) -> dict[str, Any] | None:
    """A calibration reference's proxy run at `rung`: stored in the study, else shipped for this exact setting,
    else in this machine's measurement cache, else trained (and cached). None when `train` is off and it is
    nowhere yet."""
    key = rung_reference_key(rung, name)
    if key in study.user_attrs:
        return study.user_attrs[key]
    settings = objective.settings
    budget = ladder.budget(rung)
    setting = known_quality.setting_key(data=objective.data, budget=budget, seed=settings.seed, device=settings.device)
    run = known_quality.shipped_reference_run(key=setting, name=name)
    source = "shipped"
    if run is None:
        cache = MeasurementCache.default()
        cache_key = measurement_key(get_reference(name), data=objective.data, budget=budget, seed=settings.seed,
                                    device=settings.device, what="reference training")
        run, source = cache.get(cache_key), "measurement cache"
        if run is None and not train:
            return None
        if run is None:
            result = candidate.train(get_reference(name), data=objective.data, budget=budget, seed=settings.seed,
                                     device=settings.device)
            if result.status != "ok":
                raise RuntimeError(f"reference {name} could not be trained at rung {rung}: {result.reason}")
            run, source = candidate.training_record(result), "trained"
            cache.put(cache_key, run)
    stored = reference_records(study).get(name, {})
    record = {**run, "params": stored.get("params"), "activations_m": stored.get("activations_m"), "rung": rung,
              "budget": budget.to_dict(), "source": source}
    if not train:  # a look, as when the report estimates the next rung: the study is not written
        return record
    study.set_user_attr(key, record)
    say(f"  reference {name:<5} rung {rung} ({budget.iterations} steps): proxy {record['psnr']:.2f} dB ({source}"
        + (f", {_wall_seconds(record):.0f} s" if source == "trained" else "") + ")")
    return record


def next_rung_minutes(study: optuna.Study, *, objective: TrialObjective, number: int) -> NextStep | None:
    """The training that would take trial `number` one rung higher, with its time on this machine (None at the
    top rung)."""
    ladder = ladder_of(objective)
    rung = current_verdicts(study, [number])[number]["rung"] + 1
    if rung > ladder.max_rung:
        return None
    seconds = training_estimate(study, objective=objective, ladder=ladder, number=number, rung=rung)
    return NextStep(number, rung, seconds / 60.0)
