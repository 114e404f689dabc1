"""Turn an architecture (an `ArchConfig` or a `ModelFile`) into a PyTorch module, and a trained module into
its inference form."""

from __future__ import annotations

import copy
from typing import Union

import torch
from torch import nn

from spaces.config import ArchConfig
from spaces.model_file import ModelFile
from spaces.network import REPARAMETERISED, SRNet, fuse_rep_convs
from spaces.recipe import Prepared, prepare

# The two kinds of network the toolkit measures and trains: a point of the search space, or a model file.
Architecture = Union[ArchConfig, ModelFile]


def build_model(arch: Architecture, *, device: torch.device = torch.device("cpu")) -> nn.Module:
    """A freshly initialised network on `device`: [0, 1] RGB LR of any size -> x4 RGB in [0, 1], float32 (a model
    file through its recipe, without weights: what training starts from)."""
    if isinstance(arch, ModelFile):
        return prepare(arch, device=device, training=True).model
    return SRNet(**arch.network_kwargs()).to(device)


def measured_form(arch: Architecture, *, device: torch.device = torch.device("cpu")) -> Prepared:
    """The network the kits would measure, on `device`, and how it was made: a config's inference form (fresh
    weights: its figures do not depend on them; an empty record); a model file after its recipe, with its weights
    when it names a checkpoint (loading may change the network: fused branches, an after-load step)."""
    if isinstance(arch, ModelFile):
        return prepare(arch, device=device, weights=bool(arch.weights))
    return Prepared(model=inference_form(build_model(arch, device=device)), record={})


def inference_form(model: nn.Module) -> nn.Module:
    """A copy of `model` with re-parameterised convs fused into plain convs (the model is untouched).

    Complexity, latency and exports use this form. A model without them comes back as it is: there is
    nothing to fuse, and some model files (weight_norm) cannot be deep-copied.
    """
    if not any(isinstance(module, REPARAMETERISED) for module in model.modules()):
        return model
    return fuse_rep_convs(copy.deepcopy(model))


def inference_config(config: ArchConfig) -> ArchConfig:
    """The config whose plain build has the same structure and state_dict keys as the fused model."""
    return config.replace(rep_conv=False)
