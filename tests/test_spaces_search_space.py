import optuna
import pytest
import torch

from spaces import REFERENCES, ArchConfig, build_model, get_reference, get_space, reference_params

optuna.logging.set_verbosity(optuna.logging.WARNING)


def sample(space_name, sampler, n):
    study = optuna.create_study(sampler=sampler)
    configs = []
    for _ in range(n):
        trial = study.ask()
        configs.append(get_space(space_name).suggest(trial))
        study.tell(trial, float(len(configs)))
    return configs


@pytest.mark.parametrize("space", ["imdn", "mixed"])
def test_sampling_with_a_fixed_seed_is_deterministic(space):
    first = sample(space, optuna.samplers.TPESampler(seed=3, n_startup_trials=3), 8)
    second = sample(space, optuna.samplers.TPESampler(seed=3, n_startup_trials=3), 8)
    assert first == second
    assert len(set(first)) > 1


@pytest.mark.parametrize("sampler", [
    optuna.samplers.RandomSampler(seed=0),
    optuna.samplers.TPESampler(seed=0, multivariate=True, group=True, n_startup_trials=4),
    optuna.samplers.NSGAIISampler(seed=0, population_size=4),
])
def test_sampled_configs_always_build(sampler):
    for config in sample("mixed", sampler, 12):
        assert isinstance(config, ArchConfig)
        assert build_model(config)(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)


def test_references_lie_inside_the_spaces():
    assert set(reference_params(get_space("mixed"), list(REFERENCES))) == {"imdn", "rfdn", "rlfn", "rlfn_prune", "efdn", "imdn_paper",
                                                                               "span"}
    assert set(reference_params(get_space("imdn"), list(REFERENCES))) == {"imdn", "imdn_paper"}


@pytest.mark.parametrize("name", ["imdn", "rfdn", "rlfn", "span"])
def test_enqueued_reference_params_reproduce_the_reference(name):
    space = get_space("mixed")
    study = optuna.create_study()
    study.enqueue_trial(space.params_of(get_reference(name)))
    assert space.suggest(study.ask()) == get_reference(name)


def test_params_of_names_what_lies_outside():
    with pytest.raises(ValueError, match="outside the 'imdn' space: block='rlfb'"):
        get_space("imdn").params_of(get_reference("rlfn"))
    with pytest.raises(ValueError, match="outside the 'mixed' space: input_scale=255.0"):
        get_space("mixed").params_of(get_reference("span").replace(input_scale=255.0))


def test_unknown_space_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown search space 'huge'; known: imdn, mixed"):
        get_space("huge")
