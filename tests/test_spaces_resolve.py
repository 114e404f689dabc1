"""What a user types for a model (spaces.resolve): every file the toolkit writes is accepted where the README says
to pass it, and options no model given takes are refused rather than ignored."""

import json

import pytest
import torch

import train_proxy
from search.export.writer import export_architecture, load_exported
from spaces import ArchConfig, ModelFile, ModelFileError, build_model
from spaces.resolve import ModelOptions, check_options_apply, load_trained, resolve_architecture

REP = ArchConfig(block="imdb", num_blocks=2, channels=16, kernel_size=5, attention="cca", fusion="concat",
                 rep_conv=True)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """An export of a re-parameterised config (its files hold the fused inference form)."""
    out = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    export_architecture(config=REP, state_dict=build_model(REP).state_dict(), metrics={}, out_dir=out, name="winner",
                        onnx_input_shape=None)
    return out


def test_an_exports_json_is_its_config_and_its_weights_load(export):
    label, arch = resolve_architecture(str(export / "winner.json"))
    assert (label, arch) == ("winner", REP)
    weights = str(export / "model_zoo" / "winner.pth")
    model = load_trained(arch, label=label, options=ModelOptions(weights=weights)).model  # the fused form's weights
    x = torch.rand(1, 3, 12, 16)
    with torch.no_grad():
        assert torch.equal(model(x), load_exported(export / "models" / "winner.py", weights)(x))


def test_train_proxy_trains_an_export_and_its_own_output_is_accepted_again(export, tmp_path, tiny_div2k):
    out = tmp_path / "first"
    args = ["--budget", "smoke", "--data", str(tiny_div2k)]
    assert train_proxy.main(["--arch", str(export / "winner.json"), *args, "--out", str(out)]) == 0
    assert resolve_architecture(str(out / "config.json"))[1] == REP
    model_file = tmp_path / "models" / "net.py"
    model_file.parent.mkdir()
    model_file.write_text("from torch import nn\n\ndef Net():\n    return nn.Sequential(nn.Conv2d(3, 48, 3, padding=1), "
                          "nn.PixelShuffle(4))\n")
    assert train_proxy.main(["--arch", f"{model_file}:Net", *args, "--out", str(tmp_path / "file")]) == 0
    label, arch = resolve_architecture(str(tmp_path / "file" / "config.json"),
                                       options=ModelOptions(weights=str(tmp_path / "file" / "model.pth")))
    assert isinstance(arch, ModelFile) and arch.factory == "Net" and arch.weights.endswith("model.pth")
    assert load_trained(arch, label=label).record["weights"] == arch.weights


def test_a_json_of_another_kind_names_the_file(tmp_path):
    path = tmp_path / "odd.json"
    path.write_text(json.dumps({"model_file": {"path": "x.py", "factory": "Net", "colour": "red"}}))
    with pytest.raises(ModelFileError, match="odd.json: not a model file record"):
        resolve_architecture(str(path))
    path.write_text(json.dumps({"blocks": 3}))
    with pytest.raises(ModelFileError, match=r"odd.json: unknown ArchConfig field\(s\) \['blocks'\]"):
        resolve_architecture(str(path))


def test_options_no_model_takes_are_refused():
    imdn = resolve_architecture("imdn")[1]
    with pytest.raises(ModelFileError, match="^--model-args, --cpu-shim apply to model files"):
        check_options_apply(ModelOptions(model_args="[8]", cpu_shim=True), [imdn], config_weights=True)
    with pytest.raises(ModelFileError, match="^--weights applies to model files"):
        check_options_apply(ModelOptions(weights="w.pth"), [imdn], config_weights=False)
    check_options_apply(ModelOptions(weights="w.pth", state_key="params"), [imdn], config_weights=True)
    check_options_apply(ModelOptions(after_load="fuse"), [imdn, ModelFile(path="m.py", factory="Net")],
                        config_weights=False)
