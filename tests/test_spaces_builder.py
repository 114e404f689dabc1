import itertools

import pytest
import torch

from spaces import ArchConfig, build_model, get_reference, inference_config, inference_form
from spaces.config import ACTIVATIONS, ATTENTIONS, FUSIONS
from spaces.network import BLOCKS, Block, EdgeRepConv


def count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, params", [
    ("imdn", 893_936), ("rfdn", 433_448), ("rlfn", 317_218), ("efdn", 276_192), ("imdn_paper", 715_176),
    ("span", 150_688),
])
def test_reference_parameter_counts_are_exact(name, params):
    assert count(build_model(get_reference(name))) == params


@pytest.mark.parametrize("block, attention, fusion", itertools.product(BLOCKS, ATTENTIONS, FUSIONS))
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


@pytest.mark.parametrize("name", ["span", "imdn", "rfdn", "rlfn", "efdn"])
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
    assert all(isinstance(act, torch.nn.LeakyReLU) and act.negative_slope == 0.05 for act in model.blocks[0].acts)
    assert model.blocks[0].distilled == 16 and model.blocks[0].remaining == 48


@pytest.mark.parametrize("in_channels, out_channels, kernel_size", [(6, 6, 3), (4, 7, 3), (5, 5, 5)])
def test_edge_oriented_rep_conv_fuses_into_one_exact_conv(in_channels, out_channels, kernel_size):
    torch.manual_seed(0)
    layer = EdgeRepConv(in_channels, out_channels, kernel_size)
    for p in layer.parameters():
        p.data.add_(0.1 * torch.randn_like(p))  # edge scales and biases far from their initial values
    fused = layer.fuse()
    x = torch.rand(2, in_channels, 9, 8)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), layer(x), rtol=1e-4, atol=1e-5)  # borders included
        without_edges = layer(x) - sum(
            torch.nn.functional.conv2d(edge(torch.nn.functional.pad(x, (kernel_size // 2,) * 4)),
                                       layer._edge_kernel(i).unsqueeze(1), layer.edge_bias[i], groups=out_channels)
            for i, edge in enumerate(layer.edge_inputs))
        assert (layer(x) - without_edges).abs().max() > 1e-2  # the Sobel and Laplacian branches contribute
    assert fused.weight.shape == (out_channels, in_channels, kernel_size, kernel_size)


def test_a_new_block_is_one_class(monkeypatch):
    monkeypatch.setitem(BLOCKS, "plain", None)  # undone after the test: the block registered below leaves with it

    class Plain(Block):
        """Two kxk convs with an activation between and an identity skip."""

        name = "plain"

        def __init__(self, channels, *, mid_channels, kernel_size, activation, attention, esa_channels, rep):
            super().__init__()
            self.first_channels = mid_channels
            self.convs = torch.nn.ModuleList([torch.nn.Conv2d(channels, mid_channels, kernel_size, padding=1),
                                              torch.nn.Conv2d(mid_channels, channels, kernel_size, padding=1)])

        def forward(self, x):
            first = self.convs[0](x)
            return self.convs[1](torch.relu(first)) + x, first

    assert BLOCKS["plain"] is Plain
    config = ArchConfig(block="plain", num_blocks=3, channels=8, mid_channels=6, fusion="span_taps")
    model = build_model(config)
    assert model(torch.rand(1, 3, 6, 5)).shape == (1, 3, 24, 20)
    assert model.fuse.in_channels == 3 * 8 + 6  # SRNet read the block's first-conv width
    assert config.mid_channels == 6 and config.distill_rate is None
