"""Create or load the Optuna study of a run, with its storage, sampler and reference trials.

The edition's references (2022: IMDN, RFDN, RLFN, SPAN) are the first trials of every study, enqueued once: one worker
creates the study (the storage refuses a second study of the same name), enqueues them, then stores the
settings, which the other workers wait for; the storage hands each waiting trial to exactly one worker,
so parallel workers measure each reference once. A reference lost to a dead or interrupted worker is
enqueued again when a worker next opens the study. Their records are mirrored in the study's user
attributes, where every worker reads them.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from editions import DEFAULT_EDITION
from search.settings import SearchSettings
from search.tracks import get_track
from search.verdict.rungs import DEFAULT_REDUCTION_FACTOR
from spaces import SearchSpace, get_space, reference_params

HEARTBEAT_INTERVAL_S = 20
SEED_OWNER = "seed_stream_worker"  # the process that samples from --seed as it is (study user attribute)
GRACE_PERIOD_S = 60
STORAGE_ATTEMPTS = 3
READY_TIMEOUT_S = 10.0  # the creator of a study enqueues the references, then stores the settings: milliseconds


class StudyMismatchError(ValueError):
    """The named study exists with settings that its reference measurements do not allow to change."""


class StorageError(ValueError):
    """The storage URL cannot be opened (unreachable server, unknown dialect, missing driver)."""


def make_storage(url: str, *, read_only: bool = False) -> optuna.storages.BaseStorage:
    """SQLite/PostgreSQL/MySQL URLs -> RDBStorage with heartbeats; `journal:PATH` -> a journal file.

    `read_only` (report, export): the storage must hold a study already and is never changed, not even by
    Optuna's table creation: a missing or empty file is a StorageError; SQLite opens in mode=ro, PostgreSQL in
    read-only transactions, a journal refuses appends."""
    if read_only:
        return _read_only_storage(url)
    prepare_storage_folder(url)
    if url.startswith("journal:"):
        return JournalStorage(JournalFileBackend(url[len("journal:"):]))
    for attempt in range(STORAGE_ATTEMPTS):
        try:
            return RDBStorage(url, heartbeat_interval=HEARTBEAT_INTERVAL_S, grace_period=GRACE_PERIOD_S,
                              heartbeat_stale_trial_callback=requeue_stale_trial,
                              engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            # Workers starting at once on an empty database race to create Optuna's tables: retry.
            if attempt == STORAGE_ATTEMPTS - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
        except (sqlalchemy.exc.SQLAlchemyError, ImportError) as error:
            raise StorageError(f"cannot open storage {_safe_url(url)}: {_reason(error)}") from None
    raise AssertionError("unreachable")


def _reason(error: BaseException) -> str:
    cause = error.__cause__ or error  # optuna's ImportError hides the driver's name in its cause
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


def _read_only_storage(url: str) -> optuna.storages.BaseStorage:
    path = storage_file(url)
    if path is not None and (not path.is_file() or path.stat().st_size == 0):
        state = "is empty (0 bytes)" if path.is_file() else "does not exist"
        raise StorageError(f"study storage {path} {state}: report and export read a study and create none; check "
                           f"--study and --results, or give --storage")
    if url.startswith("journal:"):
        try:
            return JournalStorage(_ReadOnlyJournal(str(path)))
        except ValueError as error:  # a line that is not a journal entry
            raise StorageError(f"{path} is not an Optuna journal file ({_reason(error)})") from None
    engine_kwargs: dict[str, Any] = {}
    opened = url
    if path is not None:  # SQLite: read-only at the file level (a read-only folder needs no journal file)
        opened = f"sqlite:///file:{path.as_posix()}?mode=ro&uri=true"
    elif url.startswith("postgresql"):
        engine_kwargs = {"connect_args": {"options": "-c default_transaction_read_only=on"}}
    try:
        return RDBStorage(opened, engine_kwargs=engine_kwargs, skip_table_creation=True)
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError, ImportError) as error:
        raise StorageError(f"cannot open storage {_safe_url(url)} to read a study: {_reason(error)}") from None


class _ReadOnlyJournal(JournalFileBackend):
    """A journal file opened to read: an append (a change to the study) is refused."""

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        raise StorageError(f"journal {self._file_path} is opened read-only; nothing was written")


def storage_file(url: str) -> Path | None:
    """The file of a file storage (`sqlite:///PATH`, `journal:PATH`); None for a server or an in-memory database."""
    prefix = next((p for p in ("journal:", "sqlite:///") if url.startswith(p)), None)
    if prefix is None or url == "sqlite:///:memory:":
        return None
    return Path(url[len(prefix):])


def check_writable_storage(url: str) -> None:
    """Refuse, in one line, a file storage that this process may not write (a study shared read-only): a
    search writes every trial to it. report and export only read, and work on it."""
    path = storage_file(url)
    if path is None:
        return
    # The file and its folder (SQLite writes a rollback journal beside it, a journal file its lock), or the
    # folder that the missing ones would be created in.
    targets = [path, path.parent] if path.exists() else [next(p for p in path.parents if p.exists())]
    blocked = [p for p in targets if not os.access(p, os.W_OK)]
    if blocked:
        raise StorageError(f"storage {url} is read-only here ({blocked[0]} is not writable): a search writes every "
                           f"trial to its study; copy the study folder to a writable place to resume it (report and "
                           f"export only read it)")


def prepare_storage_folder(url: str) -> Path | None:
    """Create the folder of a file storage (a `sqlite:///` or `journal:` URL) if it is missing, and return it;
    None when there was nothing to create. A folder that cannot be created is a StorageError (one line)."""
    path = storage_file(url)
    if path is None:
        return None
    folder = path.parent
    if folder.is_dir():
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StorageError(f"cannot create the folder {folder} of storage {_safe_url(url)}: "
                           f"{error.strerror or error}") from None
    return folder


def _safe_url(url: str) -> str:
    """The URL with its password hidden (it is printed in errors)."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def make_sampler(settings: SearchSettings, *, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The sampler of --sampler, seeded with `seed` (default: --seed)."""
    seed = settings.seed if seed is None else seed
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


def open_study(settings: SearchSettings, *, storage: optuna.storages.BaseStorage | None = None,
               stream: int = 0) -> optuna.Study:
    """Create the run's study, or load it to resume; a study created with other settings is refused.

    `stream`: the local worker number (0 for a lone process), which seeds a joining sampler (joining_seed).
    """
    storage = storage or make_storage(settings.storage_url)
    track = get_track(settings.track, settings.rules)
    try:
        # Exactly one of the workers starting together creates the study (the storage refuses a second
        # study of that name); only the creator enqueues the references, then marks the study ready.
        study = optuna.create_study(study_name=settings.name, storage=storage, sampler=make_sampler(settings),
                                    directions=track.directions)
        stored = None
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=settings.name, storage=storage, sampler=make_sampler(settings))
        stored = _wait_until_ready(study)
        if stored is not None:
            # studies made before editions were 2022's; before promotion rungs, the ladder is the default one
            stored = {"edition": DEFAULT_EDITION, "reduction_factor": DEFAULT_REDUCTION_FACTOR, **stored}
        study.sampler = make_sampler(settings, seed=joining_seed(study, seed=settings.seed, stream=stream))
    if stored is None:  # created here, or its creator died before marking it ready
        enqueue_references(study, settings)
        study.set_user_attr(SEED_OWNER, worker_id())  # this process samples from --seed itself
        study.set_user_attr("settings", settings.defining())
    else:
        changed = {k: (stored.get(k), v) for k, v in settings.defining().items() if stored.get(k) != v}
        if changed:
            key, (old, new) = next(iter(changed.items()))
            raise StudyMismatchError(
                f"study {settings.name!r} exists with {key}={old!r} (asked: {new!r}); rerun with the same "
                f"settings to resume it, or choose another --study-name")
    reap_dead_workers(study)
    enqueue_references(study, settings)  # again those lost to an interrupted or stale trial
    return study


def joining_seed(study: optuna.Study, *, seed: int, stream: int = 0) -> int:
    """The sampler seed of a process that resumes or joins `study` (`stream`: its local worker number, 0 alone).

    --seed again would replay the draws already made (a resumed random search proposed its earlier candidates
    again) and give workers started together the same draws (both measured the same first candidate); so the
    seed is mixed with the number of candidates, the stream and the process id, unless the study holds only its
    references and no other live process samples from --seed (its creator, on another machine or alive here):
    then this lone process keeps --seed, as its creator would, and takes that stream over.
    """
    candidates = sum("reference" not in t.user_attrs for t in study.get_trials(deepcopy=False))
    owner = study.user_attrs.get(SEED_OWNER)
    if candidates == 0 and stream == 0 and (owner in (None, worker_id()) or _worker_gone(owner)):
        study.set_user_attr(SEED_OWNER, worker_id())
        return seed
    return int(np.random.SeedSequence([seed, candidates, stream, os.getpid()]).generate_state(1)[0])


def _wait_until_ready(study: optuna.Study, timeout_s: float = READY_TIMEOUT_S) -> dict[str, Any] | None:
    """The stored settings of a study another worker has just created (None if they never come: a study
    created by other means, or whose creator died before storing them)."""
    deadline = time.monotonic() + timeout_s
    while (stored := study.user_attrs.get("settings")) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    return stored


def study_space(study: optuna.Study, settings: SearchSettings) -> SearchSpace:
    """The search space as `study` has recorded it: the toolkit's space of that name, with the ranges and choices
    the study's trials were sampled from. A study begun before a space grew (a new block type, a new
    activation) resumes with the space it began with: Optuna refuses a parameter whose choices change."""
    recorded: dict[str, tuple] = {}
    for trial in study.get_trials(deepcopy=False):
        for name, distribution in trial.distributions.items():
            if name not in recorded:
                recorded[name] = tuple(distribution.choices) \
                    if isinstance(distribution, optuna.distributions.CategoricalDistribution) \
                    else (distribution.low, distribution.high, distribution.step)
    return get_space(settings.space).recorded(recorded)


def enqueue_references(study: optuna.Study, settings: SearchSettings) -> None:
    """Enqueue each reference that has no trial completed, waiting or running."""
    space = study_space(study, settings)
    alive = (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)
    present = {t.user_attrs.get("reference") for t in study.get_trials(deepcopy=False, states=alive)}
    references = settings.rules.references
    inside = reference_params(space, list(references))
    for name in (n for n in references if n not in present):
        # A reference outside this space is measured all the same, without search parameters.
        study.enqueue_trial(inside.get(name, {}), user_attrs={"reference": name})


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def reap_dead_workers(study: optuna.Study, *, unowned_after_s: float = GRACE_PERIOD_S) -> list[int]:
    """Fail the running trials of this host's dead workers (kill -9) and enqueue them again.

    RDB storages also do this through heartbeats (for workers on other machines); journal files have no
    heartbeat, and waiting for a heartbeat's grace period is needless when the process is known dead.
    A trial running for `unowned_after_s` with no worker named lost its worker between its creation and its
    start (it is named as the trial is claimed; heartbeats start only then): it is reaped too.
    """
    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get("worker", "")
        if not owner:
            age = datetime.datetime.now() - (trial.datetime_start or datetime.datetime.now())
            if age < datetime.timedelta(seconds=unowned_after_s):
                continue
            reason = f"its worker died before starting it (no worker took it up in {age.total_seconds():.0f} s)"
        elif _worker_gone(owner):
            reason = f"worker {owner} died"
        else:
            continue
        try:  # the reason first: a finished trial takes no more attributes
            study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
            study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker starting at the same time reaped it
        requeue(study, trial)
        reaped.append(trial.number)
    return reaped


def requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """Enqueue a lost trial's parameters again (a reference keeps its name).

    A candidate lost before its parameters were sampled has nothing to retry: the sampler picks afresh.
    """
    reference = {k: v for k, v in trial.user_attrs.items() if k == "reference"}
    if trial.params or reference:
        study.enqueue_trial(trial.params, user_attrs=reference)


def requeue_stale_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """Heartbeat callback: a worker on another machine stopped beating; its trial was failed, run it again."""
    requeue(study, trial)


def _worker_gone(owner: str) -> bool:
    """Whether the worker `host:pid` is known dead: a process of this host that no longer runs."""
    host, _, pid = owner.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not _alive(int(pid))


def _alive(pid: int) -> bool:
    """Whether process `pid` runs: one that exited but that its parent has not reaped yet (a `--workers` worker
    killed while the parent waits for another) is a zombie, and dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no procfs (not Linux): kill's answer stands
        return True
    return not stat[stat.rindex(")") + 2:].startswith("Z")  # the state follows the parenthesised command name


def done_trials(study: optuna.Study) -> int:
    """Trials that count towards --trials: completed and pruned (failed ones are retried)."""
    return count_trials(study)[0]


def count_trials(study: optuna.Study) -> tuple[int, int]:
    """(done, running): the trials that count towards --trials, and those that workers are running."""
    states = [t.state for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                                        TrialState.RUNNING))]
    running = states.count(TrialState.RUNNING)
    return len(states) - running, running

