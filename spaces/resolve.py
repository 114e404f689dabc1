"""One place that turns what a user types for a model into an architecture (and, where asked, trained weights).

Accepted everywhere an architecture is (profile, evaluate, train_proxy.py --arch):
- a reference name of the zoo (`imdn`, `rlfn_prune`, ...);
- an ArchConfig JSON file;
- a model file of the NTIRE layout, `path/to/models/x.py:Factory`, with optional constructor arguments,
  weights (state-dict entry and prefix) and data range;
- a kit entry `EDITION:ID` of the manifest of `--kit DIR`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from spaces.builder import Architecture, build_model
from spaces.config import ArchConfig
from spaces.kit import get_entry
from spaces.model_file import ModelFile, ModelFileError
from spaces.zoo import REFERENCES, get_reference

KIT_ENTRY = re.compile(r"^\d{4}:-?\d+$")


@dataclass(frozen=True)
class ModelOptions:
    """What the command line may add to a model file: constructor arguments, weights and data range."""

    kit: str | None = None
    model_args: str | None = None
    weights: str | None = None
    state_key: str | None = None
    strip_prefix: str | None = None
    data_range: float | None = None


def resolve_architecture(spec: str, *, options: ModelOptions = ModelOptions()) -> tuple[str, Architecture]:
    """(label, architecture) of `spec`; a ModelFileError (a ValueError) says what is wrong in one line."""
    if spec in REFERENCES:
        return spec, get_reference(spec)
    if KIT_ENTRY.match(spec):
        if not options.kit:
            raise ModelFileError(f"{spec} names a kit entry: give the kit folder with --kit DIR")
        entry = get_entry(options.kit, spec)
        return entry.model.label, entry.model
    if ":" in spec and not spec.endswith(".json"):
        model = ModelFile.parse(spec, args=options.model_args, weights=options.weights, state_key=options.state_key,
                                strip_prefix=options.strip_prefix, data_range=options.data_range)
        return model.label, model
    path = Path(spec)
    if path.suffix == ".json" or path.exists():
        return path.stem, ArchConfig.load(path)
    raise ModelFileError(f"unknown model {spec!r}: use a reference ({', '.join(REFERENCES)}), a config .json, "
                         "path/to/models/x.py:Factory, or EDITION:ID with --kit DIR")


def load_trained(arch: Architecture, *, label: str, options: ModelOptions = ModelOptions()) -> nn.Module:
    """The architecture with trained weights, in eval mode: a model file's own weights, a config with --weights,
    or a zoo reference's official checkpoint from --kit."""
    if isinstance(arch, ModelFile):
        return arch.load()
    if options.weights:
        model = build_model(arch)
        state = torch.load(options.weights, map_location="cpu", weights_only=True)
        if options.state_key:
            state = state[options.state_key]
        result = model.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ModelFileError(f"{label}: weights {options.weights} do not fit: {len(result.missing_keys)} missing, "
                                 f"{len(result.unexpected_keys)} unexpected keys (e.g. "
                                 f"{(result.missing_keys + result.unexpected_keys)[0]})")
        return model.eval()
    if label in REFERENCES and options.kit:
        from spaces.official_weights import load_official
        return load_official(label, kit_dir=options.kit).eval()
    raise ModelFileError(f"{label} has no trained weights: give --weights FILE (or --kit DIR for a zoo reference)")
