"""Turn an `ArchConfig` into a PyTorch module, and a trained module into its inference form."""

from __future__ import annotations

import copy

from torch import nn

from spaces.config import ArchConfig
from spaces.network import SRNet, fuse_rep_convs


def build_model(config: ArchConfig) -> SRNet:
    """The network described by `config`: [0, 1] RGB LR of any size -> x4 RGB."""
    return SRNet(**config.network_kwargs())


def inference_form(model: nn.Module) -> nn.Module:
    """A copy of `model` with re-parameterised convs fused into plain convs (the model is untouched).

    Complexity, latency and exports use this form; a model without RepConv comes back as a plain copy.
    """
    return fuse_rep_convs(copy.deepcopy(model))


def inference_config(config: ArchConfig) -> ArchConfig:
    """The config whose plain build has the same structure and state_dict keys as the fused model."""
    return config.replace(rep_conv=False)
