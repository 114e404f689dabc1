"""Create or load the Optuna study of a run, with its storage, sampler and reference trials.

The references (IMDN, RFDN, RLFN, SPAN) are the first trials of every study, enqueued once: the
storage hands each waiting trial to exactly one worker, so parallel workers measure each reference
once. Their records are mirrored in the study's user attributes, where every worker reads them.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from search.settings import SearchSettings
from search.tracks import get_track
from spaces import get_reference, get_space

REFERENCES = ("imdn", "rfdn", "rlfn", "span")  # imdn, rfdn, rlfn calibrate the floor; span is for comparison
CALIBRATION_REFERENCES = ("imdn", "rfdn", "rlfn")
HEARTBEAT_INTERVAL_S = 20
GRACE_PERIOD_S = 60


class StudyMismatchError(ValueError):
    """The named study exists with settings that its reference measurements do not allow to change."""


def make_storage(url: str) -> optuna.storages.BaseStorage:
    """SQLite/PostgreSQL/MySQL URLs -> RDBStorage with heartbeats; `journal:PATH` -> a journal file."""
    if url.startswith("journal:"):
        path = Path(url[len("journal:"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return RDBStorage(url, heartbeat_interval=HEARTBEAT_INTERVAL_S, grace_period=GRACE_PERIOD_S,
                      engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None)


def make_sampler(settings: SearchSettings) -> optuna.samplers.BaseSampler:
    seed = settings.seed
    if settings.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=8,
                                          constant_liar=settings.workers > 1)
    if settings.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=8)
    if settings.sampler == "nsga3":
        return optuna.samplers.NSGAIIISampler(seed=seed, population_size=8)
    if settings.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=8)
    return optuna.samplers.RandomSampler(seed=seed)


def open_study(settings: SearchSettings, *, storage: optuna.storages.BaseStorage | None = None) -> optuna.Study:
    """Create the run's study, or load it to resume; a study created with other settings is refused."""
    storage = storage or make_storage(settings.storage_url)
    track = get_track(settings.track)
    study = optuna.create_study(study_name=settings.name, storage=storage, sampler=make_sampler(settings),
                                directions=track.directions, load_if_exists=True)
    stored = study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", settings.defining())
        enqueue_references(study, settings)
    else:
        changed = {k: (stored.get(k), v) for k, v in settings.defining().items() if stored.get(k) != v}
        if changed:
            key, (old, new) = next(iter(changed.items()))
            raise StudyMismatchError(
                f"study {settings.name!r} exists with {key}={old!r} (asked: {new!r}); rerun with the same "
                f"settings to resume it, or choose another --study-name")
    reap_dead_workers(study)
    return study


def enqueue_references(study: optuna.Study, settings: SearchSettings) -> None:
    space = get_space(settings.space)
    for name in REFERENCES:
        try:
            params = space.params_of(get_reference(name))
        except ValueError:
            params = {}  # outside this space: measured all the same, without search parameters
        study.enqueue_trial(params, user_attrs={"reference": name})


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def reap_dead_workers(study: optuna.Study) -> list[int]:
    """Fail the running trials of this host's dead workers (kill -9) and enqueue them again.

    RDB storages also do this through heartbeats (for workers on other machines); journal files have no
    heartbeat, and waiting for a heartbeat's grace period is needless when the process is known dead.
    """
    host = socket.gethostname()
    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get("worker", "")
        owner_host, _, pid = owner.rpartition(":")
        if owner_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", f"worker {owner} died")
        retry_attrs = {k: v for k, v in trial.user_attrs.items() if k == "reference"}
        study.enqueue_trial(trial.params, user_attrs=retry_attrs)
        reaped.append(trial.number)
    return reaped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def done_trials(study: optuna.Study) -> int:
    """Trials that count towards --trials: completed and pruned (failed ones are retried)."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def reference_records(study: optuna.Study) -> dict[str, dict[str, Any]]:
    """The references measured so far in this study (name -> record)."""
    attrs = study.user_attrs
    return {name: attrs[f"reference:{name}"] for name in REFERENCES if f"reference:{name}" in attrs}
