"""Model files of the NTIRE layout as architectures: building, loading real-world checkpoints, data range, and the
one-line errors of bad model files; the evaluate/profile/train_proxy commands on them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spaces import DataRange, ModelFile, ModelFileError, build_model, check_x4, prepare
from spaces.resolve import ModelOptions, resolve_architecture

REPO = Path(__file__).resolve().parents[1]
KIT = REPO.parent / "shared" / "ntire-kits"
CPU = torch.device("cpu")

MODEL_FILE = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, nf=8, scale=4):
        super().__init__()
        self.head = nn.Conv2d(3, nf, 3, padding=1)
        self.tail = nn.Conv2d(nf, 3 * scale * scale, 3, padding=1)
        self.up = nn.PixelShuffle(scale)

    def forward(self, x):
        return self.up(self.tail(torch.relu(self.head(x))))


class Wrong(Net):
    def __init__(self):
        super().__init__(scale=2)


class Broken(nn.Module):
    def __init__(self):
        super().__init__()
        raise RuntimeError("bad hyper-parameters")


class NeedsGpu(nn.Module):
    def __init__(self):
        super().__init__()
        torch.zeros(1).cuda()
'''


@pytest.fixture()
def layout(tmp_path):
    """A user's folder in the kits' layout: models/tiny.py, model_zoo/tiny.pth (BasicSR-style: params, module.)."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.py").write_text(MODEL_FILE)
    (tmp_path / "model_zoo").mkdir()
    torch.manual_seed(0)
    spec = ModelFile(path=str(tmp_path / "models" / "tiny.py"), factory="Net", args='{"nf": 8}')
    weights = {"params": {f"module.{k}": v for k, v in build_model(spec).state_dict().items()}}
    torch.save(weights, tmp_path / "model_zoo" / "tiny.pth")
    return tmp_path


def model_file(layout, factory="Net", **fields):
    return ModelFile(path=str(layout / "models" / "tiny.py"), factory=factory, **fields)


def test_a_model_file_builds_and_loads_a_nested_prefixed_checkpoint(layout):
    spec = model_file(layout, args='{"nf": 8}', weights=str(layout / "model_zoo" / "tiny.pth"))
    model = prepare(spec, device=CPU).model
    saved = torch.load(layout / "model_zoo" / "tiny.pth")["params"]
    assert all(torch.equal(model.state_dict()[k], saved[f"module.{k}"]) for k in model.state_dict())
    check_x4(model, label="tiny")
    assert build_model(spec).head.out_channels == 8  # an architecture like any config


def test_the_data_range_wrapper_runs_a_0_255_model_on_0_1_images(layout):
    spec = model_file(layout, data_range=255)
    model = build_model(spec)
    assert isinstance(model, DataRange)
    x = torch.rand(1, 3, 8, 8)
    assert torch.allclose(model(x), model.model(x * 255) / 255)


@pytest.mark.parametrize("factory, fields, fragment", [
    ("Missing", {}, "defines no 'Missing'; its torch modules: Broken, NeedsGpu, Net, Wrong"),
    ("Broken", {}, "Broken(...) raised RuntimeError: bad hyper-parameters"),
    ("NeedsGpu", {}, "the code calls CUDA and this machine has no CUDA device; --cpu-shim"),
])
def test_bad_model_files_give_one_clear_line(layout, factory, fields, fragment):
    if factory == "NeedsGpu" and torch.cuda.is_available():
        pytest.skip("the machine has CUDA: the constructor works")
    with pytest.raises(ModelFileError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        build_model(model_file(layout, factory=factory, **fields))


def test_a_model_that_is_not_x4_is_refused(layout):
    with pytest.raises(ModelFileError, match=r"output \(1, 3, 64, 64\).*must give \(1, 3, 128, 128\)"):
        check_x4(build_model(model_file(layout, factory="Wrong")), label="wrong")


def test_weights_that_do_not_fit_list_their_keys(layout):
    torch.save({"head.weight": torch.zeros(1)}, layout / "model_zoo" / "bad.pth")
    with pytest.raises(ModelFileError, match=r"missing key\(s\) head.bias.*unexpected|size mismatch|do not fit"):
        prepare(model_file(layout, weights=str(layout / "model_zoo" / "bad.pth")), device=CPU)


def test_a_missing_file_and_a_malformed_spec_are_refused(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        build_model(ModelFile(path=str(tmp_path / "nope.py"), factory="Net"))
    with pytest.raises(ModelFileError, match="path/to/file.py:Factory"):
        ModelFile.parse("models/x.py:")
    with pytest.raises(ModelFileError, match="not JSON"):
        ModelFile.parse("models/x.py:Net", args="{nf: 8}")


def test_resolve_accepts_every_kind_of_model(layout):
    assert resolve_architecture("imdn")[0] == "imdn"
    label, arch = resolve_architecture(f"{layout}/models/tiny.py:Net", options=ModelOptions(model_args='[8]'))
    assert isinstance(arch, ModelFile) and arch.args == "[8]"
    with pytest.raises(ModelFileError, match="--kit DIR"):
        resolve_architecture("2022:4")


def run(*args, cwd=REPO):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_evaluate_and_profile_a_model_file(layout, tmp_path):
    spec = f"{layout}/models/tiny.py:Net"
    done = run("run_search.py", "evaluate", spec, "--weights", str(layout / "model_zoo" / "tiny.pth"), "--json",
               "--input", "3x16x24")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["params"] == sum(p.numel() for p in build_model(model_file(layout)).parameters())
    assert 5 < record["psnr"] < 40 and record["bicubic_psnr"] > 25 and record["memory_images"] == 2
    done = run("run_search.py", "profile", spec, "imdn", "--input", "3x16x24", "--repeats", "5")
    assert done.returncode == 0 and "tiny:Net" in done.stdout, done.stderr


@pytest.mark.parametrize("extra, fragment", [
    ((), "has no weights"),
    (("--weights", "nothing.pth"), "weights file nothing.pth not found"),
])
def test_evaluate_refuses_bad_input_in_one_line(layout, extra, fragment):
    done = run("run_search.py", "evaluate", f"{layout}/models/tiny.py:Net", *extra)
    assert done.returncode == 2 and fragment in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_train_proxy_trains_a_model_file(layout, tmp_path):
    out = tmp_path / "out"
    done = run("train_proxy.py", "--arch", f"{layout}/models/tiny.py:Net", "--budget", "smoke", "--out", str(out))
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "ok" and (out / "model.pth").is_file()


@pytest.mark.skipif(not KIT.is_dir(), reason="../shared/ntire-kits is absent (a user's fresh clone)")
def test_kit_entries_load_with_their_recipe_and_score_as_published_order():
    from data import load_dataset
    from spaces import get_entry
    from train_proxy import validation_psnr
    data = load_dataset(None)
    psnr = {name: validation_psnr(prepare(get_entry(KIT, name).model, device=CPU).model, data.valid, device="cpu")
            for name in ("2022:-1", "2022:4", "2022:8")}  # IMDN, RLFN (data range 255, ...), a broken entry
    assert psnr["2022:-1"] == pytest.approx(29.56, abs=0.01) and psnr["2022:4"] == pytest.approx(29.48, abs=0.01)
    assert psnr["2022:8"] < 27.92  # under bicubic: the broken submission the kit README describes
    with pytest.raises(ModelFileError, match="no entry '2022:99'"):
        get_entry(KIT, "2022:99")
