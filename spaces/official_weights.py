"""The official trained weights of the zoo's references, loaded into our own networks by parameter name.

Each reference's checkpoint lives in a challenge kit (../shared/ntire-kits). Its keys are renamed to ours by
explicit tables, one per official block type plus the modules around the blocks, so two convs of the same
shape can never be swapped (a shape-order mapping puts RFDN's ESA `conv_max` into our `conv2`). The data
range is part of a reference: the config returned carries the entry's data range as `input_scale`, which
makes our network compute what the kit's module computes under the kit's `data_range` (bit for bit).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import torch
from torch import nn

from spaces.builder import build_model
from spaces.config import ArchConfig
from spaces.kit import get_entry
from spaces.zoo import get_reference

logger = logging.getLogger(__name__)

# Official module name inside one block -> ours (a prefix: deeper names, such as ESA's convs, carry over).
IMDB_KEYS = {"conv1.0": "refine.0", "conv2.0": "refine.1", "conv3.0": "refine.2", "conv4": "last",
             "conv1x1": "fuse"}
RFDB_KEYS = {"c1_d": "distill.0", "c2_d": "distill.1", "c3_d": "distill.2", "c1_r": "refine.0",
             "c2_r": "refine.1", "c3_r": "refine.2", "c4": "last", "c5": "fuse", "esa": "attention"}
RLFB_KEYS = {"c1_r": "refine.0", "c2_r": "refine.1", "c3_r": "refine.2", "c5": "fuse", "esa": "attention"}
EFDB_KEYS = {"conv1.conv1x1": "reduce", "conv1.act": "acts.0", "conv2.rep_conv": "refine.0", "conv2.act": "acts.1",
             "conv3.rep_conv": "refine.1", "conv3.act": "acts.2", "branch": "branches", "fuse": "fuse",
             "att": "attention"}
SPAB_KEYS = {"c1_r.eval_conv": "refine.0", "c2_r.eval_conv": "refine.1", "c3_r.eval_conv": "refine.2"}


@dataclasses.dataclass(frozen=True)
class OfficialLayout:
    """How one kit entry's checkpoint maps onto a zoo reference.

    outer: official module -> ours, for the modules around the blocks (`{num_blocks}` is the config's).
    block: regex of a block's module name, its group the block's number; first_block: that number for
    our block 0; block_keys: the block type's table. input_gain: a factor the official network applies to
    its input after the mean subtraction (SPAN's img_range), folded into our head conv's weight.
    """

    entry: str
    reference: str
    outer: dict[str, str]
    block: str
    first_block: int
    block_keys: dict[str, str]
    input_gain: float = 1.0


RFDN_OUTER = {"fea_conv": "head", "c.0": "fuse.0", "LR_conv": "body_conv", "upsampler.0": "tail"}
OFFICIAL: dict[str, OfficialLayout] = {
    "imdn": OfficialLayout("2022:-1", "imdn", {"model.0": "head", "model.1.sub.{num_blocks}": "body_conv",
                                               "model.2": "tail"}, r"model\.1\.sub\.(\d+)", 0, IMDB_KEYS),
    "rfdn": OfficialLayout("2022:0", "rfdn", RFDN_OUTER, r"B(\d+)", 1, RFDB_KEYS),
    "rlfn": OfficialLayout("2022:4", "rlfn", RFDN_OUTER, r"B(\d+)", 1, RLFB_KEYS),
    "rlfn_prune": OfficialLayout("2024:0", "rlfn", {"conv_1": "head", "conv_2": "body_conv",
                                                     "upsampler.0": "tail"}, r"block_(\d+)", 1, RLFB_KEYS),
    "efdn": OfficialLayout("2022:1", "efdn", {"head": "head", "local_fuse.0": "local_fuse.0",
                                              "local_fuse.1": "local_fuse.1", "local_fuse.2": "local_fuse.2",
                                              "tail.0": "tail"}, r"cells\.(\d+)", 0, EFDB_KEYS),
    "span": OfficialLayout("2024:38", "span", {"conv_1.eval_conv": "head", "conv_cat": "fuse",
                                               "conv_2.eval_conv": "body_conv", "upsampler.0": "tail"},
                           r"block_(\d+)", 1, SPAB_KEYS, input_gain=255.0),
}


def rename_official_keys(state: dict[str, torch.Tensor], *, layout: OfficialLayout,
                         config: ArchConfig) -> dict[str, torch.Tensor]:
    """The official state dict under our parameter names; a ValueError names any key no table maps."""
    outer = {name.format(num_blocks=config.num_blocks): ours for name, ours in layout.outer.items()}
    renamed, unmapped = {}, []
    for key, tensor in state.items():
        module, _, param = key.rpartition(".")
        ours = _rename_module(module, outer=outer, layout=layout)
        if ours is None:
            unmapped.append(key)
        else:
            renamed[f"{ours}.{param}"] = tensor
    if unmapped:
        raise ValueError(f"{layout.entry}: no rename for {len(unmapped)} key(s): {', '.join(unmapped[:6])}")
    return renamed


def official_state_dict(name: str, *, kit_dir: str | Path) -> tuple[ArchConfig, dict[str, torch.Tensor]]:
    """The zoo config (at the entry's data range) and the official weights under our names.

    name: a key of OFFICIAL (imdn, rfdn, rlfn, rlfn_prune, efdn, span).
    """
    layout = _layout(name)
    entry = get_entry(kit_dir, layout.entry)
    config = get_reference(layout.reference).replace(input_scale=entry.model.data_range)
    state = rename_official_keys(entry.model.state_dict(), layout=layout, config=config)
    if layout.input_gain != 1.0:
        state["head.weight"] = state["head.weight"] * layout.input_gain
    return config, state


def load_official(name: str, *, kit_dir: str | Path) -> nn.Module:
    """Our network of the reference with the official weights (strict load), in eval mode, [0, 1] in and out."""
    config, state = official_state_dict(name, kit_dir=kit_dir)
    model = build_model(config)
    model.load_state_dict(state, strict=True)
    logger.info("loaded %s weights from kit entry %s into %s", name, OFFICIAL[name].entry, config.describe())
    return model.eval()


def _rename_module(module: str, *, outer: dict[str, str], layout: OfficialLayout) -> str | None:
    if module in outer:
        return outer[module]
    match = re.fullmatch(layout.block + r"\.(.+)", module)
    if match is None:
        return None
    index, inner = int(match[1]) - layout.first_block, match[2]
    for official, ours in sorted(layout.block_keys.items(), key=lambda item: -len(item[0])):
        if inner == official or inner.startswith(official + "."):
            return f"blocks.{index}.{ours}{inner[len(official):]}"
    return None


def _layout(name: str) -> OfficialLayout:
    try:
        return OFFICIAL[name]
    except KeyError:
        raise ValueError(f"no official weights for {name!r}; known: {', '.join(OFFICIAL)}") from None
