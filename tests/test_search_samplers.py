"""Every sampler of --sampler runs on our spaces with constraints and reference trials (no training)."""

import socket

import optuna
import pytest
from optuna.trial import TrialState

import search.study
from search.settings import SAMPLERS, SearchSettings
from search.study import enqueue_references, joining_seed, make_sampler, open_study
from search.tracks import get_track
from spaces import build_model, get_space, reference_params
from editions import get_edition

REFERENCES = get_edition(2022).references  # the default edition's

optuna.logging.set_verbosity(optuna.logging.WARNING)


def synthetic_objective(space):
    def objective(trial):
        name = trial.user_attrs.get("reference")
        config = space.suggest(trial) if not name or name in reference_params(space, [name]) else None
        width = config.channels * config.num_blocks if config else 200
        trial.set_constraint("params", width - 300.0)
        trial.set_constraint("psnr", 0.5 - (width % 7) / 7)
        return [width / 256, 20.0 + (width % 13) / 13]
    return objective


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("space", ["imdn", "mixed"])
def test_every_sampler_searches_every_space_with_constraints(sampler, space):
    settings = SearchSettings(sampler=sampler, space=space, seed=1)
    study = optuna.create_study(directions=get_track("runtime").directions, sampler=make_sampler(settings))
    enqueue_references(study, settings)  # some lie outside the imdn space: trials without parameters
    study.optimize(synthetic_objective(get_space(space)), n_trials=14)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 14
    sampled = [t for t in complete if "reference" not in t.user_attrs]
    assert len({tuple(sorted(t.params.items())) for t in sampled}) > 3  # it explores
    for trial in sampled[-2:]:
        build_model(get_space(space).suggest(optuna.trial.FixedTrial(trial.params)))


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_resumed_search_draws_new_candidates_not_its_first_ones_again(search_settings, tmp_path):
    """Re-seeding with --seed on resume would replay the first run's draws (a resumed random search proposed
    its earlier candidates again, each then a duplicate that counted as a trial)."""
    settings = search_settings(tmp_path / "results", sampler="random")
    space = get_space(settings.space)

    def references_done(settings):
        study = open_study(settings)
        for _ in REFERENCES:
            study.tell(study.ask(), values=[1.0, 27.0])

    references_done(settings)
    first = space.suggest(open_study(settings).ask())  # only references so far: nothing to replay, --seed as is
    resumed = [space.suggest(open_study(settings).ask()) for _ in range(2)]  # candidates exist: fresh draws
    assert len({config.key() for config in (first, *resumed)}) == 3
    fresh = settings.replace(study_name="same-seed-fresh")
    references_done(fresh)
    assert space.suggest(open_study(fresh).ask()) == first  # same --seed, same first draw: reproducible
    workers = [open_study(settings, stream=k) for k in (1, 2)]
    assert space.suggest(workers[0].ask()) != space.suggest(workers[1].ask())


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_process_joining_while_the_creator_lives_draws_its_own_seed_stream(search_settings, tmp_path, monkeypatch):
    """Two commands started together on one study both kept --seed and measured the same first candidate."""
    settings = search_settings(tmp_path / "results")
    study = open_study(settings)  # created here: this process samples from --seed
    assert joining_seed(study, seed=7) == 7  # the creator itself, reopening
    monkeypatch.setattr(search.study, "worker_id", lambda: f"{socket.gethostname()}:1")  # another live process
    assert joining_seed(study, seed=7) != 7
    study.set_user_attr(search.study.SEED_OWNER, f"{socket.gethostname()}:999999999")  # a creator that died
    assert joining_seed(study, seed=7) == 7  # a lone resume replays --seed, and takes the stream over
    assert study.user_attrs[search.study.SEED_OWNER] == f"{socket.gethostname()}:1"
