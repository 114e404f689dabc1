import pytest
import torch
from torch import nn

from evaluators.latency import CPU_INPUT_SHAPE
from evaluators.memory import MB, measure_memory, measure_memory_over
from spaces import build_model, get_reference


def chain() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1),
                         nn.Conv2d(16, 3, 3, padding=1))


def test_cpu_estimate_is_labelled_and_positive():
    report = measure_memory(chain(), device="cpu", input_shape=(3, 8, 8))
    assert report.method == "cpu_estimate_peak_live_tensors"
    assert report.peak_mb > 0
    assert report.device_name.startswith("cpu") and report.input_shape == (3, 8, 8) and report.dtype == "fp32"
    assert report.to_dict()["method"] == report.method


def test_cpu_estimate_counts_weights_input_and_the_live_activations():
    model = chain()
    pixels = 20 * 20
    weights = sum(p.numel() for p in model.parameters()) * 4
    # At the middle conv the input, its 16-channel input and its 16-channel output are alive; at the last
    # conv the first 16-channel map has been freed.
    expected = weights + 4 * (3 * pixels + 16 * pixels + 16 * pixels)
    assert measure_memory(model, device="cpu", input_shape=(3, 20, 20)).peak_mb == expected / MB


def test_the_challenges_figure_is_the_maximum_over_the_images():
    """The challenge reports max over the validation set; a search keeps its one-input figure, labelled as one."""
    model = chain()
    images = [torch.rand(1, 3, 12, 12), torch.rand(1, 3, 20, 20), torch.rand(1, 3, 16, 8)]
    over = measure_memory_over(model, images=images, device="cpu")
    single = measure_memory(model, device="cpu", input_shape=(3, 20, 20))
    assert over.peak_mb == single.peak_mb and over.input_shape == (3, 20, 20)
    assert over.images == 3 and single.images == 1 and over.method == single.method
    assert measure_memory_over(model, images=images[:1], device="cpu").peak_mb < over.peak_mb
    with pytest.raises(ValueError, match="no input"):
        measure_memory_over(model, images=[], device="cpu")


def test_no_input_shape_means_the_latency_default():
    assert measure_memory(chain(), device="cpu", input_shape=None).input_shape == CPU_INPUT_SHAPE


def test_a_bigger_input_gives_a_bigger_estimate():
    model = build_model(get_reference("rlfn"))
    small = measure_memory(model, device="cpu", input_shape=(3, 12, 12)).peak_mb
    large = measure_memory(model, device="cpu", input_shape=(3, 24, 24)).peak_mb
    assert large > small > sum(p.numel() for p in model.parameters()) * 4 / MB


def test_bf16_halves_the_estimate_and_the_model_is_untouched():
    model = chain().train()
    fp32 = measure_memory(model, device="cpu", input_shape=(3, 20, 20)).peak_mb
    bf16 = measure_memory(model, device="cpu", input_shape=(3, 20, 20), dtype="bf16")
    assert bf16.dtype == "bf16" and bf16.peak_mb == pytest.approx(fp32 / 2)
    assert model.training and all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_peak_is_the_allocator_figure():
    model = chain()
    report = measure_memory(model, device="cuda", input_shape=(3, 64, 64))
    assert report.method == "cuda_max_memory_allocated"
    assert report.device_name == torch.cuda.get_device_name()
    floor = (sum(p.numel() for p in model.parameters()) + 35 * 64 * 64) * 4 / MB
    assert report.peak_mb >= floor
    alive = torch.empty(64 * MB, dtype=torch.uint8, device="cuda")  # other tensors of the process do not count
    again = measure_memory(model, device="cuda", input_shape=(3, 64, 64))
    assert again.peak_mb == pytest.approx(report.peak_mb, rel=0.05)
    del alive
    over = measure_memory_over(model, images=[torch.rand(1, 3, 32, 32), torch.rand(1, 3, 64, 64)], device="cuda")
    assert over.images == 2 and over.input_shape == (3, 64, 64)
    assert over.peak_mb == pytest.approx(report.peak_mb, rel=0.05)
