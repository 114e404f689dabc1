import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from evaluators.complexity import ComplexityReport, count_params, profile_complexity
from spaces import build_model, get_reference


def test_imdn_baseline_matches_the_challenge_figures():
    report = profile_complexity(build_model(get_reference("imdn")))
    assert report.input_shape == (3, 256, 256)
    assert report.params == 893_936
    assert round(report.flops_g, 2) == 58.53
    assert round(report.activations_m, 2) == 154.14
    assert report.convs == 43


@pytest.mark.parametrize("name, params", [("imdn", 893_936), ("rfdn", 433_448), ("rlfn", 317_218), ("span", 150_688)])
def test_reference_parameter_counts(name, params):
    assert count_params(build_model(get_reference(name))) == params


def test_conv_macs_agree_with_torch_flop_counter():
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.Conv2d(16, 24, 5, padding=2, bias=False),
        nn.Conv2d(24, 24, 3, padding=1, groups=4),
        nn.Conv2d(24, 32, 3, stride=2, padding=1),
        nn.Conv2d(32, 32, 3, padding=2, dilation=2, groups=32),
        nn.Conv2d(32, 8, (1, 3)),
    )
    report = profile_complexity(net, input_shape=(3, 20, 18))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        outputs = [torch.rand(1, 3, 20, 18)]
        for layer in net:
            outputs.append(layer(outputs[-1]))
    assert report.flops == counter.get_total_flops() // 2
    assert report.activations == sum(out.numel() for out in outputs[1:])
    assert report.convs == 6


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.LeakyReLU(0.05, inplace=True)
        self.conv2 = nn.Conv2d(8, 12, 1)
        self.gate = nn.Sigmoid()
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv1(x))
        y = F.relu(y) + torch.sigmoid(y)  # functional calls and element-wise ops count zero
        return self.shuffle(self.gate(self.conv2(y)))


def test_hand_counted_tiny_net():
    report = profile_complexity(Tiny(), input_shape=(3, 10, 12))
    pixels = 10 * 12
    assert report.flops == 3 * 3 * 3 * 8 * pixels + 8 * pixels + 8 * 12 * pixels
    assert report.activations == 8 * pixels + 12 * pixels
    assert report.convs == 2
    assert report.params == count_params(Tiny()) == (3 * 9 * 8 + 8) + (8 * 12 + 12)
    assert report.flops_g == report.flops / 1e9 and report.activations_m == report.activations / 1e6
    assert report.to_dict()["flops_g"] == report.flops_g


def test_counted_activation_types_count_their_outputs():
    for act in (nn.ReLU(), nn.LeakyReLU(), nn.PReLU(), nn.ELU(), nn.ReLU6()):
        report = profile_complexity(nn.Sequential(act), input_shape=(3, 5, 7))
        assert report.flops == 3 * 5 * 7, type(act).__name__


def test_modules_outside_the_convention_count_zero():
    net = nn.Sequential(
        nn.AvgPool2d(2), nn.Upsample(scale_factor=2), nn.Sigmoid(), nn.SiLU(), nn.GELU(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1), nn.Dropout(), nn.Softmax(dim=1), nn.Identity(), nn.LayerNorm(1),
    )
    report = profile_complexity(net, input_shape=(3, 8, 8))
    assert (report.flops, report.activations, report.convs) == (0, 0, 0)
    assert report.params == 2


def test_batch_norm_counts_its_outputs_twice_when_affine():
    for affine, per_element in ((True, 2), (False, 1)):
        report = profile_complexity(nn.Sequential(nn.BatchNorm2d(3, affine=affine)), input_shape=(3, 5, 7))
        assert report.flops == per_element * 3 * 5 * 7
        assert (report.activations, report.convs) == (0, 0)


def test_transposed_conv_counts_at_its_output_size():
    net = nn.Sequential(nn.ConvTranspose2d(4, 6, 2, stride=2, groups=2))
    report = profile_complexity(net, input_shape=(4, 5, 3))
    assert report.flops == 2 * 2 * 4 * (6 // 2) * 10 * 6  # kernel * C_in * C_out/groups * H_out * W_out
    assert report.activations == 6 * 10 * 6
    assert report.convs == 1


class Tokens(nn.Module):
    """A linear map on (N, tokens, C) and on (N, H, W, C) inputs, as transformer blocks call them."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 5)
        self.mix = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        tokens = self.proj(x.flatten(2).transpose(1, 2))  # (1, h*w, 5)
        pixels = self.mix(tokens.view(n, h, w, 5))  # (1, h, w, 3)
        return pixels.permute(0, 3, 1, 2)


def test_linear_counts_batch_times_second_dims_of_input_and_output():
    report = profile_complexity(Tokens(), input_shape=(3, 4, 6))
    assert report.flops == 1 * 24 * 24 + 1 * 4 * 4  # not the true MACs (24 * 3 * 5 + 24 * 5 * 3)


def test_linear_counts_macs_without_bias():
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10))
    assert profile_complexity(net, input_shape=(3, 4, 4)).flops == 48 * 10


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(self.act(self.conv(x))))


def test_a_module_called_twice_counts_twice():
    report = profile_complexity(Twice(), input_shape=(4, 6, 6))
    assert report.flops == 2 * (9 * 4 * 4 * 36 + 4 * 36)
    assert report.activations == 2 * 4 * 36
    assert report.convs == 2


class MyConv(nn.Conv2d):
    pass


class Shared(nn.Module):
    """One activation module held by two parents, called once in each."""

    def __init__(self) -> None:
        super().__init__()
        act = nn.LeakyReLU(0.05)
        self.a = nn.Sequential(nn.Conv2d(2, 2, 1), act)
        self.b = nn.Sequential(nn.Conv2d(2, 2, 1), act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.a[1](x)


def test_a_shared_module_counts_once_per_call():
    report = profile_complexity(Shared(), input_shape=(2, 3, 3))
    assert report.flops == 2 * (2 * 2 * 9) + 3 * (2 * 9)
    assert report.convs == 2


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.conv(x), self.conv.weight, padding=1)


def test_a_functional_conv_counts_zero_and_is_reported(caplog):
    report = profile_complexity(Functional(), input_shape=(3, 4, 4))
    assert report.flops == 9 * 3 * 3 * 16 and report.convs == 1
    assert len(report.uncounted) == 1 and report.uncounted[0].startswith("1 call(s) of conv2d")
    assert "conv2d" in caplog.text
    assert profile_complexity(Tiny(), input_shape=(3, 4, 4)).uncounted == ()


@pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning")
def test_weight_norm_models_profile():
    net = nn.Sequential(nn.utils.weight_norm(nn.Conv2d(3, 4, 3, padding=1)), nn.ReLU())
    report = profile_complexity(net, input_shape=(3, 5, 5))
    assert report.flops == 9 * 3 * 4 * 25 + 4 * 25


def test_conv_subclasses_are_counted():
    report = profile_complexity(nn.Sequential(MyConv(2, 3, 3, padding=1)), input_shape=(2, 4, 4))
    assert report.flops == 9 * 2 * 3 * 16
    assert report.convs == 1


def test_the_profiled_model_is_untouched():
    model = build_model(get_reference("rlfn")).train()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    profile_complexity(model, input_shape=(3, 16, 16))
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[key], before[key]) for key in before)
    assert not any(hasattr(m, "total_ops") or hasattr(m, "total_params") for m in model.modules())
    assert not any(m._forward_hooks for m in model.modules())


def test_profiling_leaves_the_global_rng_alone():
    model = Tiny()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    profile_complexity(model, input_shape=(3, 4, 4))
    assert torch.equal(torch.rand(3), expected)


def test_report_is_frozen():
    report = ComplexityReport(params=1, flops=2, activations=3, convs=4, input_shape=(3, 8, 8))
    with pytest.raises(AttributeError):
        report.flops = 5


def test_profiling_prints_and_warns_nothing(capsys, recwarn):
    class Unknown(nn.Module):  # a leaf module type that no rule knows
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    profile_complexity(nn.Sequential(Tiny(), Unknown(), nn.BatchNorm2d(3)), input_shape=(3, 4, 4))
    assert capsys.readouterr() == ("", "")
    assert len(recwarn) == 0
