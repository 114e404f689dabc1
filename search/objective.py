"""The objective of a study: one trial = one architecture, measured cheap-first.

Order: complexity -> latency and memory -> the constraints known before training (params, latency)
-> proxy training with early stop -> PSNR constraint. A candidate that breaks a pre-training
constraint is recorded as an infeasible trial without training (so the sampler learns), its PSNR
objective standing in at bicubic interpolation's PSNR (what a network that learnt nothing reaches),
flagged `trained=False`. So is a candidate that runs out of device memory while its speed is measured
(`out_of_memory` holds the reason; its latency and memory are infinite and it meets no constraint).
"""

from __future__ import annotations

import math
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.trial import TrialState

import train_proxy
from data import load_dataset
from search import candidate
from search.constraints import constraint_values, violated_before_training
from search.records import reference_records
from search.settings import SearchSettings
from search.study import reap_dead_workers, study_space, worker_id
from search.tracks import get_track
from search.verdict import known_quality
from search.verdict.calibration import CalibrationPoint, ProxyRun, PsnrPredictor, Verdict, fit_predictor
from search.verdict.measurement_cache import MeasurementCache, measurement_key
from spaces import Architecture, ArchConfig, SearchSpace, get_reference
from spaces.official_weights import OFFICIAL

POLL_S = 5.0
NOT_INHERITED = ("worker", "config", "reference", "duplicate_of", "fail_reason")


class TrialObjective:
    """Callable for `study.optimize`; holds what every trial of a worker shares (data, baseline model, limits)."""

    def __init__(self, *, settings: SearchSettings, space: SearchSpace, data: Any, budget: Any,
                 measurement: candidate.Measurement, artifacts: FileSystemArtifactStore, bicubic_psnr: float) -> None:
        self.settings = settings
        self.edition = settings.rules
        self.track = get_track(settings.track, self.edition)
        self.space = space
        self.data, self.budget, self.measurement = data, budget, measurement
        self.artifacts = artifacts
        self.bicubic_psnr = bicubic_psnr
        self.baseline = measurement.baseline()
        self.limits = candidate.edition_limits(self.edition, floor=settings.floor)
        self.known_points = known_points(settings, data=data, budget=budget, bicubic_psnr=bicubic_psnr)

    def claim(self, trial: optuna.Trial) -> None:
        """Name the trial's worker and choose a candidate's architecture, as soon as the trial exists (the study's
        lock is held: a trial asked later sees this architecture, see search.trial_gate)."""
        trial.set_user_attr("worker", worker_id())
        if "reference" not in trial.user_attrs:
            trial.set_user_attr("config", self.space.suggest(trial).to_dict())

    def __call__(self, trial: optuna.Trial) -> list[float]:
        if "worker" not in trial.user_attrs:  # not claimed (a trial asked without search.trial_gate)
            trial.set_user_attr("worker", worker_id())
        reference = trial.user_attrs.get("reference")
        try:
            record = self.reference_record(trial, reference) if reference else self.candidate_record(trial)
        except (CandidateFailed, CandidatePruned) as stopped:
            _store(trial, stopped.record)
            raise
        except Exception as error:  # recorded as a failed trial with its reason; the study goes on
            trial.set_user_attr("fail_reason", f"{type(error).__name__}: {error}")
            trial.set_user_attr("fail_traceback", traceback.format_exc()[-4000:])  # the log shows none
            raise
        _store(trial, record)
        if record.get("trained") and record.get("psnr_curve"):
            record_curve(trial, record["psnr_curve"])
        return self.finish(trial, record)

    def reference_record(self, trial: optuna.Trial, name: str) -> dict[str, Any]:
        config = get_reference(name)
        if self.space.contains(config):
            self.space.suggest(trial)  # takes the enqueued parameters, so samplers learn from the reference
        trial.set_user_attr("config", config.to_dict())
        stored = reference_records(trial.study).get(name)
        return stored if stored is not None else measure_reference(trial.study, name, objective=self, trial=trial)

    # Candidates --------------------------------------------------------------------------------
    def candidate_record(self, trial: optuna.Trial) -> dict[str, Any]:
        config = self.space.suggest(trial)
        if "config" not in trial.user_attrs:
            trial.set_user_attr("config", config.to_dict())
        twin = measured_twin(trial.study, config, number=trial.number)
        if twin is not None:
            copied = {**{k: v for k, v in twin.user_attrs.items() if k not in NOT_INHERITED}, "duplicate_of": twin.number}
            if twin.state == TrialState.PRUNED:
                raise CandidatePruned(copied)
            return copied
        predictor, curve = self.calibration(trial.study)
        record = {"label": config.describe(), **candidate.measure_complexity(config, measurement=self.measurement)}
        try:
            record.update(candidate.measure_speed(config, measurement=self.measurement, baseline=self.baseline))
        except candidate.SpeedOutOfMemory as error:
            record.update(out_of_memory=str(error), latency_ratio=math.inf, latency_ms=math.inf, memory_mb=math.inf)
        violations = self.pretraining_violations(record)
        if violations:
            return {**record, "trained": False, "psnr": self.bicubic_psnr, "psnr_source": "bicubic stand-in",
                    "psnr_predicted": self.bicubic_psnr, "psnr_low": self.bicubic_psnr,
                    "psnr_high": self.bicubic_psnr, "verdict": Verdict.INFEASIBLE.value,
                    "cut_before_training": violations}
        result = candidate.train(config, data=self.data, budget=self.budget, seed=self.settings.seed,
                                 device=self.settings.device, checkpoint_callback=self.early_stop_rule(curve))
        record.update(trained=True, psnr_source="proxy training", **candidate.training_record(result))
        if result.status == "failed":
            raise CandidateFailed(result.reason, {**record, "fail_reason": result.reason})
        self.store_weights(trial, result.state_dict)
        if result.status == "stopped":
            raise CandidatePruned(record)
        record.update(predictor.predict(ProxyRun.from_record(record)).to_record())
        return record

    def pretraining_violations(self, record: dict[str, Any]) -> list[str]:
        if "out_of_memory" in record:
            return ["out of memory"]
        return violated_before_training(self.track.constraints, record, limits=self.limits)

    def calibration(self, study: optuna.Study) -> tuple[PsnrPredictor, list[list[float]] | None]:
        """The PSNR predictor and the early-stop curve, once the calibration references are measured."""
        records = wait_for_references(study, objective=self)
        predictor = self.fit(records)
        if "calibration" not in study.user_attrs:
            study.set_user_attr("calibration", predictor.to_dict())
        meeting = [n for n in self.edition.calibration_references
                   if self.edition.published_psnr(n) >= self.settings.floor]
        weakest = min(meeting, key=lambda n: records[n]["psnr"]) if meeting else None
        return predictor, records[weakest]["psnr_curve"] if weakest else None

    def fit(self, records: dict[str, dict[str, Any]], *, points: list[CalibrationPoint] | None = None) -> PsnrPredictor:
        """The predictor on the references measured in this study (their proxy runs as `records` hold them) and
        the known points of the same budget (`points`; default: those of the search's own budget)."""
        published = {n: self.edition.published_psnr(n) for n in self.edition.calibration_references}
        targets, source = known_quality.reference_targets(data=self.data, published=published,
                                                          validation=self.edition.validation)
        calibrating = {n: records[n] for n in self.edition.calibration_references if n in records}
        # A known point of the same network as a reference measured here (IMDN is the 2022 kit's entry -1) would
        # count it twice and narrow the intervals: the study's own run stands for it.
        twins = {OFFICIAL[n].entry for n in calibrating if n in OFFICIAL}
        known = [p for p in (self.known_points if points is None else points) if p.name not in twins]
        fitted = known_quality.reference_points(calibrating, targets, published, source=source) + known
        # The published map relates trained weights' PSNR to the published figure, whatever the proxy's budget:
        # every known network with both figures gives it (a rung's fewer points would give a noisier map).
        pairs = {p.name: (p.target, p.published) for p in [*self.known_points, *fitted]
                 if p.published is not None and p.name not in twins}
        return fit_predictor(fitted, floor=self.settings.floor, features=self.settings.predictor,
                             published_points=list(pairs.values()))

    def early_stop_rule(self, curve: list[list[float]] | None):
        """Stop a candidate whose PSNR at a checkpoint falls `early_stop_margin` dB under the curve of the
        weakest reference that meets the floor, at the same step (the first and last checkpoints excepted)."""
        if not self.settings.early_stop or not curve:
            return None
        steps = [step for step, _ in curve]
        margin = self.settings.early_stop_margin

        def stop(step: int, psnr: float) -> bool:
            if step <= steps[0] or step >= steps[-1]:
                return False
            return not math.isfinite(psnr) or psnr < float(np.interp(step, steps, [p for _, p in curve])) - margin

        return stop

    def store_weights(self, trial: optuna.Trial, state_dict: dict[str, torch.Tensor]) -> None:
        trial.set_user_attr("weights_artifact", store_weights(self.artifacts, trial, state_dict,
                                                              name=f"trial-{trial.number}"))

    # Values and constraints --------------------------------------------------------------------
    def finish(self, trial: optuna.Trial, record: dict[str, Any]) -> list[float]:
        for name, value in constraint_values(self.track.constraints, record, limits=self.limits).items():
            trial.set_constraint(name, value)
        return [float(record[metric]) for metric in self.track.metrics]


def record_curve(trial: optuna.Trial, checkpoints: list[list[float]]) -> None:
    """The PSNR curve of a trial that completes, as its intermediate values (what optuna-dashboard plots).

    Only a completed trial's: Optuna's TPE scores a PRUNED trial by its last intermediate value through
    `study.direction`, which a multi-objective study (every track) refuses, so a pruned trial keeps its curve in
    its `psnr_curve` attribute alone. `Trial.report` refuses multi-objective studies too: the values go through the
    storage's own call for them.
    """
    for step, psnr in checkpoints[1:]:
        if math.isfinite(psnr):
            trial.storage.set_trial_intermediate_value(trial._trial_id, int(step), float(psnr))


def store_weights(store: FileSystemArtifactStore, owner: optuna.Trial | optuna.Study,
                  state_dict: dict[str, torch.Tensor], *, name: str) -> str:
    """Save `state_dict` as an artifact of `owner` (a running trial, or the study for a finished trial's rung
    runs); returns the artifact id."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.pth"
        torch.save(state_dict, path)
        return upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=owner)


class CandidateFailed(RuntimeError):
    def __init__(self, reason: str, record: dict[str, Any]) -> None:
        super().__init__(reason)
        self.record = record


class CandidatePruned(optuna.TrialPruned):
    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__("stopped early: PSNR curve fell under the weakest feasible reference's")
        self.record = record


def _store(trial: optuna.Trial, record: dict[str, Any]) -> None:
    for key, value in record.items():
        trial.set_user_attr(key, value)


def measure_reference(study: optuna.Study, name: str, *, objective: TrialObjective,
                      trial: optuna.Trial | None = None, arch: Architecture | None = None) -> dict[str, Any]:
    """Measure a reference like any candidate (never cut, never stopped) and store it in the study. `arch`: a
    user's extra reference (a config or a model file), else the zoo's `name`."""
    config = arch if arch is not None else get_reference(name)
    record = {"label": config.describe(), "config": config.to_dict(),
              **candidate.measure_complexity(config, measurement=objective.measurement)}
    record.update(candidate.measure_speed(config, measurement=objective.measurement, baseline=objective.baseline))
    trained, weights = reference_training(config, name=name, data=objective.data, budget=objective.budget,
                                          seed=objective.settings.seed, device=objective.settings.device)
    if weights is not None and trial is not None:
        objective.store_weights(trial, weights)
        record["weights_artifact"] = trial.user_attrs.get("weights_artifact")
    record.update(trained=True, psnr_source="proxy training", **trained)
    record.update(reference_verdict(name, record, objective=objective, study=study))
    study.set_user_attr(f"reference:{name}", record)
    return record


def reference_training(config: Architecture, *, name: str, data: Any, budget: Any, seed: int,
                       device: str) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """A reference's proxy-training record and, when trained now, its weights; a training of the same setting on
    this machine is read from the measurement cache instead (the figures are the same, the weights not kept).
    RuntimeError when it cannot be trained (its loss or output not finite)."""
    cache = MeasurementCache.default()
    key = measurement_key(config, data=data, budget=budget, seed=seed, device=device, what="reference training")
    trained = cache.get(key)
    if trained is not None:
        return {**trained, "psnr_source_cache": str(cache.path(key))}, None
    result = candidate.train(config, data=data, budget=budget, seed=seed, device=device)
    if result.status != "ok":
        raise RuntimeError(f"reference {name} could not be trained: {result.reason}")
    trained = candidate.training_record(result)
    cache.put(key, trained)
    return trained, result.state_dict


def reference_verdict(name: str, record: dict[str, Any], *, objective: TrialObjective,
                      study: optuna.Study) -> dict[str, Any]:
    """A reference published on the floor's scale is judged by its published figure; another (SPAN) is predicted
    like any candidate."""
    if name in objective.edition.calibration_references:
        published = objective.edition.published_psnr(name)
        verdict = Verdict.FEASIBLE if published >= objective.settings.floor else Verdict.INFEASIBLE
        return {"psnr_predicted": published, "psnr_low": published, "psnr_high": published,
                "verdict": verdict.value, "psnr_source": "proxy training; verdict from the published PSNR"}
    return objective.calibration(study)[0].predict(ProxyRun.from_record(record)).to_record()


def known_points(settings: SearchSettings, *, data: Any, budget: Any, bicubic_psnr: float) -> list[CalibrationPoint]:
    """The calibration points of this setting besides the study's references: shipped, and --calibrate-with's."""
    key = known_quality.setting_key(data=data, budget=budget, seed=settings.seed, device=settings.device)
    points = known_quality.shipped_points(key=key)
    if settings.calibrate_with:
        points += known_quality.kit_points(settings.calibrate_with, data=data, budget=budget, seed=settings.seed,
                                           device=settings.device, bicubic_psnr=bicubic_psnr,
                                           cache=MeasurementCache.default())
    return known_quality.on_scale_of(points, settings.rules)


def wait_for_references(study: optuna.Study, *, objective: TrialObjective) -> dict[str, dict[str, Any]]:
    """Block until the calibration references are stored; measure here those that nobody is measuring."""
    while True:
        records = reference_records(study)
        missing = [n for n in objective.edition.calibration_references if n not in records]
        if not missing:
            return records
        optuna.storages.fail_stale_trials(study)
        reap_dead_workers(study)  # a reference whose worker died (no heartbeat in a journal file) is not awaited
        running = {t.user_attrs.get("reference") for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        orphan = next((n for n in missing if n not in running), None)
        if orphan is not None:
            measure_reference(study, orphan, objective=objective)
        else:
            time.sleep(POLL_S)


def measured_twin(study: optuna.Study, config: ArchConfig, *, number: int) -> optuna.trial.FrozenTrial | None:
    """The trial that measured the same architecture (completed or pruned), once it has: samplers revisit points of
    discrete spaces, and workers sampling at once may draw the same one. A twin asked earlier (a lower `number`)
    that another worker still runs is waited for, so every architecture is measured once; one whose worker dies
    is failed here, and then this trial measures it."""
    wanted = config.to_dict()
    while True:
        same = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                                    TrialState.RUNNING))
                if t.number != number and t.user_attrs.get("config") == wanted]
        measured = next((t for t in same if t.state != TrialState.RUNNING and "psnr" in t.user_attrs), None)
        if measured is not None:
            return measured
        if not any(t.state == TrialState.RUNNING and t.number < number for t in same):
            return None
        time.sleep(POLL_S)
        optuna.storages.fail_stale_trials(study)
        reap_dead_workers(study)


def budget_of(settings: SearchSettings) -> train_proxy.Budget:
    return train_proxy.get_budget(settings.budget, iterations=settings.iterations, batch_size=settings.batch_size,
                                  lr_patch=settings.patch, lr=settings.lr)


def make_objective(settings: SearchSettings, study: optuna.Study, *, data: Any = None) -> TrialObjective:
    edition = settings.rules
    data = load_dataset(settings.data, valid_limit=settings.valid_limit, edition=edition) if data is None else data
    if "bicubic_psnr" not in study.user_attrs:
        study.set_user_attr("bicubic_psnr", train_proxy.bicubic_baseline_psnr(data))
    if "validation" not in study.user_attrs:
        study.set_user_attr("validation", data.describe_valid())
    measurement = candidate.Measurement.of_edition(edition, device=settings.device,
                                                   latency_input=settings.latency_input, dtype=settings.dtype)
    return TrialObjective(settings=settings, space=study_space(study, settings), data=data, budget=budget_of(settings), measurement=measurement,
                     artifacts=artifact_store(settings), bicubic_psnr=study.user_attrs["bicubic_psnr"])


def artifact_store(settings: SearchSettings) -> FileSystemArtifactStore:
    path = settings.run_dir / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))
