"""The zoo's references with their official weights reproduce the kits' own modules (../shared/ntire-kits)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from evaluators.complexity import count_params
from spaces import build_model, get_entry, get_reference, prepare
from spaces.official_weights import OFFICIAL, load_official, official_state_dict, rename_official_keys

KIT = Path(__file__).resolve().parents[1].parent / "shared" / "ntire-kits"
pytestmark = [
    pytest.mark.skipif(not (KIT / "manifest.csv").is_file(), reason=f"no NTIRE kit folder at {KIT}"),
    pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning"),
]
IMAGE = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(1))


def kit_module(name: str) -> nn.Module:
    """The kit's own module through its recipe (weights, data range); the CPU shim lets SPAN build on CPU."""
    entry = get_entry(KIT, OFFICIAL[name].entry)
    return prepare(dataclasses.replace(entry.model, cpu_shim=True), device=torch.device("cpu")).model


def outputs(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    official, ours = kit_module(name), load_official(name, kit_dir=KIT)
    with torch.no_grad():
        return official(IMAGE), ours(IMAGE)


@pytest.mark.parametrize("name", ["imdn", "rfdn", "rlfn", "rlfn_prune"])
def test_official_weights_reproduce_the_kit_module_bit_for_bit(name):
    official, ours = outputs(name)
    assert torch.equal(official, ours)
    assert 0.3 < ours.mean() < 0.7  # a [0, 1] image, not a 0-255 one


def test_efdn_reproduces_the_kit_module_bit_for_bit_within_its_output_clamp():
    # EFDN clamps its output to [0, 1]; our networks leave that to the PSNR's conversion to uint8.
    official, ours = outputs("efdn")
    assert (ours < 0).any() and (ours > 1).any()  # the clamp is all that differs, and it matters here
    assert torch.equal(official, ours.clamp(0, 1))
    assert count_params(load_official("efdn", kit_dir=KIT)) == 276_192  # published 0.276 M


def test_span_reproduces_the_kit_module_up_to_its_folded_input_gain():
    # SPAN multiplies its mean-subtracted input by 255 inside the network; our config folds that factor into
    # the head conv's weight, which rounds differently (about 5e-5 on a [0, 1] output).
    official, ours = outputs("span")
    assert (official - ours).abs().max() < 1e-4
    mse = torch.mean((official - ours).double() ** 2)
    assert 10 * torch.log10(1 / mse) > 90  # dB: far beyond any PSNR difference that matters
    assert count_params(load_official("span", kit_dir=KIT)) == 150_688  # published 0.151 M


@pytest.mark.parametrize("name, data_range", [("imdn", 1.0), ("rfdn", 255.0), ("rlfn", 255.0),
                                              ("rlfn_prune", 255.0), ("efdn", 1.0), ("span", 1.0)])
def test_the_config_carries_the_entry_data_range_and_nothing_else_changes(name, data_range):
    config, state = official_state_dict(name, kit_dir=KIT)
    reference = get_reference(OFFICIAL[name].reference)
    assert config.input_scale == data_range
    assert config.replace(input_scale=reference.input_scale) == reference
    assert count_params(build_model(config)) == count_params(build_model(reference))


def test_rfdn_at_data_range_one_is_a_different_network():
    config, state = official_state_dict("rfdn", kit_dir=KIT)
    wrong = build_model(config.replace(input_scale=1.0))
    wrong.load_state_dict(state)
    with torch.no_grad():
        assert (wrong.eval()(IMAGE) - kit_module("rfdn")(IMAGE)).abs().max() > 0.1


def test_esa_convs_are_mapped_by_name_not_by_shape_order():
    entry = get_entry(KIT, OFFICIAL["rfdn"].entry)
    official = entry.model.state_dict()
    _, ours = official_state_dict("rfdn", kit_dir=KIT)
    for conv in ("conv_max", "conv2", "conv3", "conv3_"):
        assert torch.equal(ours[f"blocks.0.attention.{conv}.weight"], official[f"B1.esa.{conv}.weight"])
    assert not torch.equal(official["B1.esa.conv_max.weight"], official["B1.esa.conv2.weight"])
    # Our ESA declares conv2 before conv_max: pairing the two state dicts in order would swap same-shaped convs.
    ours_order = list(build_model(get_reference("rfdn")).state_dict())
    position = list(official).index("B1.esa.conv_max.weight")
    assert ours_order[position] == "blocks.0.attention.conv2.weight"


def test_an_unmapped_key_or_an_unknown_name_is_an_error():
    config = get_reference("rlfn")
    with pytest.raises(ValueError, match="B1.extra.weight"):
        rename_official_keys({"B1.extra.weight": torch.zeros(1)}, layout=OFFICIAL["rlfn"], config=config)
    with pytest.raises(ValueError, match="known: imdn"):
        official_state_dict("bsrn", kit_dir=KIT)
