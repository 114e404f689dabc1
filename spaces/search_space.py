"""Search spaces: an Optuna trial (anything with suggest_* methods) -> `ArchConfig`.

Parameter names are the study's schema; keep them stable (the README lists them). Conditional
parameters are only suggested where they matter (mid_channels for rlfb/span, distill_* for imdb/rfdb,
esa_channels for esa/esa_slim), which every Optuna sampler supports: TPE (multivariate, group) models
them jointly, the others sample the missing ones independently.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

from spaces.config import ACTIVATIONS, ATTENTIONS, FUSIONS, ArchConfig, is_distilling
from spaces.network import BLOCKS
from spaces.zoo import get_reference


class Suggester(Protocol):
    def suggest_categorical(self, name: str, choices: Any) -> Any: ...
    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1) -> int: ...
    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None) -> float: ...


@dataclass(frozen=True)
class SearchSpace:
    """Ranges of one named space. Categorical choices are tuples; int ranges are (low, high, step)."""

    name: str
    blocks: tuple[str, ...]
    num_blocks: tuple[int, int, int]
    channels: tuple[int, int, int]
    mid_channels: tuple[int, int, int]
    distill_rate: tuple[float, float, float]
    distill_steps: tuple[int, int, int]
    kernel_sizes: tuple[int, ...]
    attentions: tuple[str, ...]
    esa_channels: tuple[int, int, int]
    activations: tuple[str, ...]
    fusions: tuple[str, ...]
    rep_conv: tuple[bool, ...]
    subtract_mean: tuple[bool, ...]

    def suggest(self, trial: Suggester) -> ArchConfig:
        """Sample one config. Raises ValueError only if the space's ranges admit an invalid config."""
        block = _categorical(trial, "block", self.blocks)
        params: dict[str, Any] = {
            "block": block,
            "num_blocks": trial.suggest_int("num_blocks", *self.num_blocks[:2], step=self.num_blocks[2]),
            "channels": trial.suggest_int("channels", *self.channels[:2], step=self.channels[2]),
        }
        if is_distilling(block):
            params["distill_rate"] = trial.suggest_float("distill_rate", *self.distill_rate[:2], step=self.distill_rate[2])
            params["distill_steps"] = trial.suggest_int("distill_steps", *self.distill_steps[:2], step=self.distill_steps[2])
        else:
            params["mid_channels"] = trial.suggest_int("mid_channels", *self.mid_channels[:2], step=self.mid_channels[2])
        params["kernel_size"] = _categorical(trial, "kernel_size", self.kernel_sizes)
        params["attention"] = _categorical(trial, "attention", self.attentions)
        if params["attention"] in ("esa", "esa_slim"):
            params["esa_channels"] = trial.suggest_int("esa_channels", *self.esa_channels[:2], step=self.esa_channels[2])
        params["activation"] = _categorical(trial, "activation", self.activations)
        params["fusion"] = _categorical(trial, "fusion", self.fusions)
        params["rep_conv"] = _categorical(trial, "rep_conv", self.rep_conv)
        params["subtract_mean"] = _categorical(trial, "subtract_mean", self.subtract_mean)
        return ArchConfig(**params)

    def params_of(self, config: ArchConfig) -> dict[str, Any]:
        """The trial parameters that make `suggest` return `config` (for enqueue_trial).

        Raises ValueError naming the parameter when the config lies outside this space.
        """
        params: dict[str, Any] = {"block": config.block, "num_blocks": config.num_blocks, "channels": config.channels}
        if is_distilling(config.block):
            params["distill_rate"] = config.distill_rate
            params["distill_steps"] = config.distill_steps
        else:
            params["mid_channels"] = config.mid_channels
        params.update(kernel_size=config.kernel_size, attention=config.attention)
        if config.esa_channels is not None:
            params["esa_channels"] = config.esa_channels
        params.update(activation=config.activation, fusion=config.fusion, rep_conv=config.rep_conv,
                      subtract_mean=config.subtract_mean)
        for name, value in params.items():
            if not self._admits(name, value):
                raise ValueError(f"{config.describe()} is outside the {self.name!r} space: {name}={value!r}")
        if config.input_scale != 1.0:
            raise ValueError(f"{config.describe()} is outside the {self.name!r} space: input_scale={config.input_scale}")
        return params

    def contains(self, config: ArchConfig) -> bool:
        try:
            self.params_of(config)
        except ValueError:
            return False
        return True

    def recorded(self, ranges: dict[str, tuple]) -> SearchSpace:
        """This space with the choices (categorical) or (low, high, step) of the trial parameters in `ranges`
        replaced: the space a study has recorded, which it must keep sampling (Optuna refuses a parameter whose
        choices change within a study). Names that are not parameters of the space are ignored."""
        return replace(self, **{PARAMETER_FIELDS[name]: tuple(value) for name, value in ranges.items()
                                if name in PARAMETER_FIELDS})

    def _admits(self, name: str, value: Any) -> bool:
        field = getattr(self, PARAMETER_FIELDS[name])
        if name in CATEGORICAL:
            return value in field
        low, high, step = field
        steps_from_low = (value - low) / step
        return low <= value <= high and abs(steps_from_low - round(steps_from_low)) < 1e-9


# Trial parameter -> the SearchSpace field holding its choices or its (low, high, step).
PARAMETER_FIELDS = {"block": "blocks", "num_blocks": "num_blocks", "channels": "channels",
                    "mid_channels": "mid_channels", "distill_rate": "distill_rate", "distill_steps": "distill_steps",
                    "kernel_size": "kernel_sizes", "attention": "attentions", "esa_channels": "esa_channels",
                    "activation": "activations", "fusion": "fusions", "rep_conv": "rep_conv",
                    "subtract_mean": "subtract_mean"}
CATEGORICAL = ("block", "kernel_size", "attention", "activation", "fusion", "rep_conv", "subtract_mean")


def _categorical(trial: Suggester, name: str, choices: tuple) -> Any:
    # A single choice is still suggested, so every trial of a space carries the same parameter names.
    return trial.suggest_categorical(name, list(choices))


SPACES: dict[str, SearchSpace] = {
    # The IMDB family around the challenge baseline (contains imdn and imdn_paper).
    "imdn": SearchSpace(
        name="imdn", blocks=("imdb",), num_blocks=(2, 10, 1), channels=(16, 64, 4), mid_channels=(16, 64, 4),
        distill_rate=(0.125, 0.5, 0.125), distill_steps=(1, 4, 1), kernel_sizes=(3, 5),
        attentions=("none", "cca"), esa_channels=(8, 32, 4), activations=("lrelu", "relu", "silu", "gelu"),
        fusions=("none", "concat"), rep_conv=(False,), subtract_mean=(False,),
    ),
    # Every block type, attention, activation and fusion, and rep-conv (contains every zoo reference).
    "mixed": SearchSpace(
        name="mixed", blocks=tuple(BLOCKS), num_blocks=(2, 10, 1), channels=(16, 64, 2),
        mid_channels=(16, 64, 2), distill_rate=(0.125, 0.5, 0.125), distill_steps=(1, 4, 1), kernel_sizes=(3, 5),
        attentions=ATTENTIONS, esa_channels=(8, 32, 4), activations=ACTIVATIONS, fusions=FUSIONS,
        rep_conv=(False, True), subtract_mean=(False, True),
    ),
}


def get_space(name: str) -> SearchSpace:
    try:
        return SPACES[name]
    except KeyError:
        raise ValueError(f"unknown search space {name!r}; known: {', '.join(SPACES)}") from None


def reference_params(space: SearchSpace, names: list[str]) -> dict[str, dict[str, Any]]:
    """Trial parameters of the named references that lie inside `space` (others are skipped)."""
    return {name: space.params_of(get_reference(name)) for name in names if space.contains(get_reference(name))}
