import itertools

import pytest
import torch

from spaces import ArchConfig, build_model, get_reference, inference_config, inference_form
from spaces.config import ACTIVATIONS, ATTENTIONS, BLOCK_TYPES, FUSIONS


def count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, params", [
    ("imdn", 893_936), ("rfdn", 433_448), ("rlfn", 317_218), ("imdn_paper", 715_176), ("span", 150_688),
])
def test_reference_parameter_counts_are_exact(name, params):
    assert count(build_model(get_reference(name))) == params


@pytest.mark.parametrize("block, attention, fusion", itertools.product(BLOCK_TYPES, ATTENTIONS, FUSIONS))
def test_every_block_attention_fusion_combination_runs(block, attention, fusion):
    config = ArchConfig(block=block, num_blocks=2, channels=16, mid_channels=12, attention=attention,
                        esa_channels=4, fusion=fusion)
    out = build_model(config)(torch.rand(2, 3, 10, 14))
    assert out.shape == (2, 3, 40, 56)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_activations_and_kernel_sizes_run(activation, kernel_size):
    config = ArchConfig(block="rfdb", num_blocks=1, channels=16, kernel_size=kernel_size, activation=activation)
    assert build_model(config)(torch.rand(1, 3, 8, 9)).shape == (1, 3, 32, 36)


def test_span_scale_255_keeps_the_unit_range_convention():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 12, 12)
    unit = build_model(get_reference("span"))
    wide = build_model(get_reference("span").replace(input_scale=255.0))
    wide.load_state_dict(unit.state_dict())
    assert count(wide) == 150_688
    assert wide(x).shape == unit(x).shape == (1, 3, 48, 48)
    assert not torch.allclose(wide(x), unit(x))  # the data range changes the function, not the structure


@pytest.mark.parametrize("name", ["span", "imdn", "rfdn", "rlfn"])
def test_rep_conv_fusion_is_exact_and_gives_the_plain_structure(name):
    torch.manual_seed(0)
    config = get_reference(name).replace(rep_conv=True, num_blocks=2)
    model = build_model(config).eval()
    for p in model.parameters():  # non-trivial biases everywhere
        p.data.add_(0.01 * torch.randn_like(p))
    fused = inference_form(model)
    plain = build_model(inference_config(config))
    assert count(model) > count(fused) == count(plain)
    plain.load_state_dict(fused.state_dict())
    x = torch.rand(2, 3, 13, 11)
    with torch.no_grad():
        reference = model(x)
        torch.testing.assert_close(fused(x), reference, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(plain(x), reference, rtol=1e-4, atol=1e-5)
    assert any(type(m).__name__ == "RepConv" for m in model.modules())  # the original is untouched


def test_challenge_imdn_structure():
    model = build_model(get_reference("imdn"))
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 43
    assert isinstance(model.blocks[0].act, torch.nn.LeakyReLU) and model.blocks[0].act.negative_slope == 0.05
    assert model.blocks[0].distilled == 16 and model.blocks[0].remaining == 48
