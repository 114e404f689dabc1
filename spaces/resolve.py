"""One place that turns what a user types for a model into an architecture (and, where asked, trained weights).

Accepted everywhere an architecture is (profile, evaluate, train_proxy.py --arch, a search's --reference):
- a reference name of the zoo (`imdn`, `rlfn_prune`, ...);
- a JSON file: an ArchConfig, an export's `<name>.json` ({"config", "inference_config", "params"}, written by
  search/export; its `config` is the trained form), or train_proxy.py's `config.json` of a model file
  ({"model_file": ...});
- a model file of the NTIRE layout, `path/to/models/x.py:Factory`, with the recipe's options (constructor
  arguments, weights, state-dict entry and prefix, strict, after-load step, data range, dtype, CPU shim);
- a kit entry `EDITION:ID` of the manifest of `--kit DIR`, whose recipe the options given override.
An option that no model given takes is refused (`check_options_apply`), never silently ignored.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from spaces.builder import Architecture, build_model, inference_config
from spaces.checkpoint import load_weights, read_state_dict
from spaces.config import ArchConfig
from spaces.kit import get_entry
from spaces.model_file import ModelFile, ModelFileError
from spaces.recipe import Prepared, prepare
from spaces.zoo import REFERENCES, get_reference

KIT_ENTRY = re.compile(r"^\d{4}:-?\d+$")
EXPORT_CONFIG_KEYS = {"config", "inference_config", "params"}  # an export's <name>.json
# ModelOptions field -> (ModelFile field, its command-line flag).
MODEL_FILE_OPTIONS = {
    "model_args": ("args", "--model-args"), "weights": ("weights", "--weights"),
    "state_key": ("state_key", "--state-key"), "strip_prefix": ("strip_prefix", "--strip-prefix"),
    "data_range": ("data_range", "--data-range"), "strict": ("strict", "--no-strict"),
    "after_load": ("after_load", "--after-load"), "dtype": ("dtype", "--dtype"), "cpu_shim": ("cpu_shim", "--cpu-shim"),
}
CONFIG_WEIGHT_OPTIONS = ("weights", "state_key", "strip_prefix")  # a config's trained weights (evaluate) take these


@dataclass(frozen=True)
class ModelOptions:
    """What the command line adds to model files and kit entries (None: not given): constructor arguments, the
    loading recipe (weights, state key, prefix, strict, after-load step, dtype), data range and the CPU shim."""

    kit: str | None = None
    model_args: str | None = None
    weights: str | None = None
    state_key: str | None = None
    strip_prefix: str | None = None
    data_range: float | None = None
    strict: bool | None = None
    after_load: str | None = None
    dtype: str | None = None
    cpu_shim: bool | None = None

    def given(self) -> dict[str, Any]:
        """The recipe options given, by ModelFile field."""
        return {MODEL_FILE_OPTIONS[name][0]: value for name in MODEL_FILE_OPTIONS
                if (value := getattr(self, name)) is not None}

    def flags(self, names: Sequence[str] = tuple(MODEL_FILE_OPTIONS)) -> list[str]:
        """The command-line flags of the options given among `names`."""
        return [MODEL_FILE_OPTIONS[name][1] for name in names if getattr(self, name) is not None]


def resolve_architecture(spec: str, *, options: ModelOptions = ModelOptions()) -> tuple[str, Architecture]:
    """(label, architecture) of `spec`; a ModelFileError (a ValueError) says what is wrong in one line. The options
    given override a kit entry's or a JSON model file's recipe."""
    if spec in REFERENCES:
        return spec, get_reference(spec)
    if KIT_ENTRY.match(spec):
        if not options.kit:
            raise ModelFileError(f"{spec} names a kit entry: give the kit folder with --kit DIR")
        entry = get_entry(options.kit, spec)
        return entry.model.label, dataclasses.replace(entry.model, **options.given())
    if ":" in spec and not spec.endswith(".json"):
        model = ModelFile.parse(spec, **options.given())
        return model.label, model
    path = Path(spec)
    if path.suffix == ".json" or path.exists():
        arch = read_architecture(path)
        if isinstance(arch, ModelFile):
            arch = dataclasses.replace(arch, **options.given())
        return path.stem, arch
    raise ModelFileError(f"unknown model {spec!r}: use a reference ({', '.join(REFERENCES)}), a config .json, "
                         "path/to/models/x.py:Factory, or EDITION:ID with --kit DIR")


def read_architecture(path: Path) -> Architecture:
    """The architecture in a JSON file of any kind the toolkit writes or reads (see the module's list)."""
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise ModelFileError(f"cannot read config {path}: {error.strerror}") from None
    except ValueError:
        return ArchConfig.load(path)  # its one-line error, naming the file
    if isinstance(data, dict) and set(data) == {"model_file"}:
        try:
            return ModelFile.from_dict(data)
        except TypeError as error:
            raise ModelFileError(f"{path}: not a model file record: {error}") from None
    if isinstance(data, dict) and set(data) == EXPORT_CONFIG_KEYS:
        data = data["config"]
    try:
        return ArchConfig.from_dict(data)
    except ValueError as error:
        raise ModelFileError(f"{path}: {error}") from None


def check_options_apply(options: ModelOptions, archs: Sequence[Architecture], *, config_weights: bool) -> None:
    """Refuse, in one line, options that no model given takes (a silently ignored flag reads as a wrong figure).
    Model files and kit entries take them all; configs only their weights' options, where `config_weights`."""
    if any(isinstance(arch, ModelFile) for arch in archs):
        return
    allowed = CONFIG_WEIGHT_OPTIONS if config_weights else ()
    refused = options.flags([name for name in MODEL_FILE_OPTIONS if name not in allowed])
    if refused:
        raise ModelFileError(f"{', '.join(refused)} {'applies' if len(refused) == 1 else 'apply'} to model files "
                             "(path/to/models/x.py:Factory) and kit entries (EDITION:ID), and no model given is one")


def load_trained(arch: Architecture, *, label: str, options: ModelOptions = ModelOptions(),
                 device: torch.device = torch.device("cpu")) -> Prepared:
    """The architecture with trained weights, in eval mode on `device`: a model file through its recipe, a config
    with --weights (its training or, for a re-parameterised config, its inference form's), or a zoo reference's
    official checkpoint from --kit."""
    if isinstance(arch, ModelFile):
        return prepare(arch, device=device)
    if options.weights:
        state = read_state_dict(options.weights, state_key=options.state_key, strip_prefix=options.strip_prefix)
        model = build_model(arch)
        if arch.rep_conv and state.keys() != model.state_dict().keys():
            plain = build_model(inference_config(arch))
            model = plain if state.keys() == plain.state_dict().keys() else model
        load_weights(model, state, strict=True, label=label, source=options.weights,
                     hint=f"are they {label}'s? check --state-key and --strip-prefix")
        return Prepared(model=model.eval().to(device), record={"weights": options.weights})
    if label in REFERENCES and options.kit:
        from spaces.official_weights import load_official
        return Prepared(model=load_official(label, kit_dir=options.kit).eval().to(device),
                        record={"weights": f"official, from kit {options.kit}"})
    raise ModelFileError(f"{label} has no trained weights: give --weights FILE (or --kit DIR for a zoo reference)")
