"""Checkpoints (spaces.checkpoint): every bad file or mismatch is one line naming the file and what to do, whatever
the model, on the command line too."""

import pytest
import torch
from torch import nn

from spaces import ModelFileError
from spaces.checkpoint import load_weights, read_state_dict


@pytest.fixture()
def files(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"params": {"module.w": torch.zeros(4000)}}, good)
    (tmp_path / "truncated.pth").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (tmp_path / "notes.pth").write_text("hello\n")
    (tmp_path / "empty.pth").write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize("name, fragment", [
    ("missing.pth", "weights file {} not found"),
    ("truncated.pth", "weights {} are a truncated or damaged torch.save archive"),
    ("notes.pth", "weights {} are not a PyTorch checkpoint"),
    ("empty.pth", "weights {} are an empty file"),
])
def test_bad_files_name_themselves(files, name, fragment):
    with pytest.raises(ModelFileError, match=fragment.format(files / name).replace(".", r"\.")):
        read_state_dict(files / name)


def test_nested_entries_and_prefixes(files):
    assert list(read_state_dict(files / "good.pth")) == ["w"]  # params found, module. stripped
    with pytest.raises(ModelFileError, match="have no entry 'net'; entries: params"):
        read_state_dict(files / "good.pth", state_key="net")


def test_weights_that_do_not_fit_are_summarised_in_one_line():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 1))
    state = {"0.weight": torch.zeros(8, 3, 1, 1), "0.bias": torch.zeros(8), "2.weight": torch.zeros(1)}
    with pytest.raises(ModelFileError) as caught:
        load_weights(net, state, strict=True, label="net", source="w.pth", hint="check --state-key")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("net: weights w.pth do not fit the model: ")
    assert "2 missing key(s) 1.weight, 1.bias; 1 unexpected key(s) 2.weight; 1 shape mismatch(es), e.g. 0.weight: " \
           "torch.Size([8, 3, 1, 1]) in the file, torch.Size([8, 3, 3, 3]) in the model (check --state-key)" in message


@pytest.mark.parametrize("extra, fragment", [
    (("imdn", "--weights", "{rlfn}"), "imdn: weights {rlfn} do not fit the model: "),
    (("imdn", "--weights", "{dir}/truncated.pth"), "truncated or damaged"),
    (("imdn", "--weights", "{dir}/notes.pth"), "notes.pth are not a PyTorch checkpoint"),
    (("imdn", "--data-range", "255"), "--data-range applies to model files"),
    (("models/x.py:Net", "--data-range", "7"), "data range must be 1 (the model takes and returns [0, 1]) or 255"),
])
def test_the_command_line_says_each_in_one_line(files, run_cli, extra, fragment):
    rlfn = files / "rlfn.pth"
    from spaces import build_model, get_reference
    torch.save(build_model(get_reference("rlfn")).state_dict(), rlfn)
    done = run_cli("evaluate", *(arg.format(rlfn=rlfn, dir=files) for arg in extra))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and fragment.format(rlfn=rlfn) in done.stderr
