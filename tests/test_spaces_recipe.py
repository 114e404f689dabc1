"""The loading recipe of model files and kit entries (spaces.recipe), on small model files that show each pattern
seen in real challenge entries: weights that change the network when loaded (a fusing load_state_dict returning
None, a fuse on the first forward), an after-load step, non-strict loading, a .to() of its own with a tensor that
cannot be deep-copied, a float16 model, a printing constructor, a .cuda() constructor, input-dependent FLOPs.

Each expected figure is what the kit's recipe gives when applied by hand to the same file (construct, load_state_dict,
after-load loop, eval, the validation forwards, then count), counted by the kits' rules.
"""

import dataclasses
import json
import tempfile
from pathlib import Path

import pytest
import torch
from torch import nn

import train_proxy
from data import load_dataset
from evaluators.complexity import profile_complexity
from run_search import main
from spaces import ModelFile, ModelFileError, build_model, check_x4, prepare
from spaces.resolve import ModelOptions, resolve_architecture

CPU = torch.device("cpu")
PATTERNS = '''
import torch
import torch.nn.functional as F
from torch import nn


class RepBlock(nn.Module):
    """Training form: a 3x3 and a 1x1 branch; switch_deploy fuses them into one 3x3 conv and drops the branches."""

    def __init__(self, nf):
        super().__init__()
        self.conv3, self.conv1, self.act = nn.Conv2d(nf, nf, 3, padding=1), nn.Conv2d(nf, nf, 1), nn.LeakyReLU(0.05)
        self.deployed = None

    def forward(self, x):
        y = self.deployed(x) if self.deployed is not None else self.conv3(x) + self.conv1(x)
        return self.act(y) + x

    def switch_deploy(self):
        conv = nn.Conv2d(self.conv3.in_channels, self.conv3.out_channels, 3, padding=1)
        conv.weight.data = self.conv3.weight.data + F.pad(self.conv1.weight.data, [1, 1, 1, 1])
        conv.bias.data = self.conv3.bias.data + self.conv1.bias.data
        self.deployed = conv
        del self.conv3, self.conv1


class RepNet(nn.Module):
    def __init__(self, nf=8, blocks=2):
        super().__init__()
        self.head = nn.Conv2d(3, nf, 3, padding=1)
        self.body = nn.Sequential(*[RepBlock(nf) for _ in range(blocks)])
        self.tail = nn.Conv2d(nf, 48, 3, padding=1)
        self.up = nn.PixelShuffle(4)

    def forward(self, x):
        return self.up(self.tail(self.body(self.head(x))))


class FuseOnLoad(RepNet):
    """Loads its training-form weights and becomes its inference form; returns None, as some entries' overrides do."""

    def load_state_dict(self, state_dict, strict=True):
        super().load_state_dict(state_dict, strict=strict)
        for block in self.body:
            block.switch_deploy()


class FuseOnFirstForward(RepNet):
    def forward(self, x):
        if not self.training and self.body[0].deployed is None:
            for block in self.body:
                block.switch_deploy()
        return super().forward(x)


class OwnTo(RepNet):
    """A .to() of its own signature that runs forwards, and a tensor computed in the constructor (weight_norm's
    weight: not a graph leaf, so deepcopy fails on it)."""

    def __init__(self):
        super().__init__()
        self.tail = nn.utils.weight_norm(self.tail)
        self.to_calls = []

    def to(self, device):
        self.to_calls.append(str(device))
        with torch.no_grad():
            for _ in range(3):
                self(torch.rand(1, 3, 8, 8))
        return super().to(device)


class Chatty(RepNet):
    def __init__(self):
        print("Model: Chatty, building")
        super().__init__()

    def forward(self, x):
        print("forward of Chatty")
        return super().forward(x)


class NeedsGpu(RepNet):
    def __init__(self):
        super().__init__()
        self.cuda()(torch.rand(1, 3, 16, 16).cuda())  # a warm-up in the constructor


class Half(nn.Module):
    """Written for half precision: its weights are half and its forward makes half tensors through its own switch."""

    def __init__(self):
        super().__init__()
        self.dtype = torch.float16
        self.head, self.act = nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()
        self.tail, self.up = nn.Conv2d(8, 48, 3, padding=1), nn.PixelShuffle(4)
        self.half()

    def forward(self, x):
        x = x.to(self.dtype)
        return self.up(self.tail(self.act(self.head(x)))) + torch.zeros(1, dtype=self.dtype)


class HalfOnly(Half):
    """Half precision hard-wired in its forward: no switch to run it in float32."""

    def forward(self, x):
        return self.up(self.tail(self.act(self.head(x.half()))))


class Routed(nn.Module):
    """Top-1 routing between a light and a heavy expert by the input itself: its FLOPs depend on the input."""

    def __init__(self, nf=8):
        super().__init__()
        self.head, self.tail, self.up = nn.Conv2d(3, nf, 3, padding=1), nn.Conv2d(nf, 48, 3, padding=1), nn.PixelShuffle(4)
        self.light = nn.Conv2d(nf, nf, 1)
        self.heavy = nn.Sequential(*[nn.Conv2d(nf, nf, 3, padding=1) for _ in range(3)])

    def forward(self, x):
        expert = self.heavy if x.flatten()[0] > 0.5 else self.light
        return self.up(self.tail(expert(self.head(x))))


class Sampling(Routed):
    """Gumbel-style sampling left on in eval: the route is drawn from torch's RNG."""

    def forward(self, x):
        expert = self.heavy if torch.rand(()) > 0.5 else self.light
        return self.up(self.tail(expert(self.head(x))))
'''


@pytest.fixture()
def kit(tmp_path, monkeypatch):
    """A user's kit clone in the kits' layout: models/patterns.py and training-form weights in model_zoo/."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "patterns.py").write_text(PATTERNS)
    (tmp_path / "model_zoo").mkdir()
    torch.manual_seed(0)
    torch.save(construct(tmp_path, "RepNet").state_dict(), tmp_path / "model_zoo" / "rep.pth")
    torch.save(construct(tmp_path, "Routed").state_dict(), tmp_path / "model_zoo" / "routed.pth")
    torch.save(construct(tmp_path, "OwnTo").state_dict(), tmp_path / "model_zoo" / "own_to.pth")
    torch.save(nearest_half_weights(), tmp_path / "model_zoo" / "half.pth")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the device lock of in-process profile/evaluate
    return tmp_path


def construct(kit_dir: Path, factory: str) -> nn.Module:
    return ModelFile(path=str(kit_dir / "models" / "patterns.py"), factory=factory).construct()


def nearest_half_weights() -> dict[str, torch.Tensor]:
    """Weights that make `Half` a nearest-neighbour x4 upscaler (a real image, so its PSNR means something)."""
    head, tail = torch.zeros(8, 3, 3, 3), torch.zeros(48, 8, 3, 3)
    for channel in range(3):
        head[channel, channel, 1, 1] = 1.0
        tail[channel * 16:(channel + 1) * 16, channel, 1, 1] = 1.0
    return {k: v.half() for k, v in {"head.weight": head, "head.bias": torch.zeros(8), "tail.weight": tail,
                                      "tail.bias": torch.zeros(48)}.items()}


def spec(kit_dir: Path, factory: str, weights: str | None = "rep.pth", **fields) -> ModelFile:
    return ModelFile(path=str(kit_dir / "models" / "patterns.py"), factory=factory,
                     weights=str(kit_dir / "model_zoo" / weights) if weights else None, **fields)


def by_hand(kit_dir: Path, factory: str, weights: str = "rep.pth", *, strict: bool = True, after_load: str = "",
            forward: bool = False) -> nn.Module:
    """The kits' recipe written out: construct, load_state_dict(torch.load(...), strict), the after-load loop, eval
    (and, with `forward`, a validation forward: the kits count after those)."""
    model = construct(kit_dir, factory)
    model.load_state_dict(torch.load(kit_dir / "model_zoo" / weights), strict=strict)
    if after_load:
        for module in model.modules():
            if hasattr(module, after_load):
                getattr(module, after_load)()
    model.eval()
    if forward:
        with torch.no_grad():
            model(torch.rand(1, 3, 16, 16))
    return model


def figures(model: nn.Module) -> tuple:
    report = profile_complexity(model, input_shape=(3, 32, 32))
    return report.params, report.flops, report.activations, report.convs


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def evaluate(capsys, *argv: str) -> dict:
    code, out, err = cli(capsys, "evaluate", *argv, "--json", "--input", "3x12x12")
    assert code == 0, err
    return json.loads(out)


# 1. Weights that change the network.
def test_a_load_state_dict_that_fuses_and_returns_none_is_counted_after_loading(kit):
    prepared = prepare(spec(kit, "FuseOnLoad"), device=CPU)
    training_form = figures(construct(kit, "FuseOnLoad"))
    assert figures(prepared.model) == figures(by_hand(kit, "FuseOnLoad")) != training_form
    assert figures(prepared.model)[0] < training_form[0]  # fewer params once fused


def test_profile_and_evaluate_count_the_loaded_network(kit, capsys):
    model = f"{kit}/models/patterns.py:FuseOnLoad"
    weights = str(kit / "model_zoo" / "rep.pth")
    code, out, err = cli(capsys, "profile", model, "--weights", weights, "--json", "--input", "3x12x12",
                         "--repeats", "5")
    assert code == 0, err
    profiled, = json.loads(out)
    expected = profile_complexity(by_hand(kit, "FuseOnLoad"))
    assert (profiled["params"], profiled["flops_g"], profiled["convs"]) == \
        (expected.params, expected.flops_g, expected.convs)
    record = evaluate(capsys, model, "--weights", weights)
    assert (record["params"], record["flops_g"], record["activations_m"]) == \
        (expected.params, expected.flops_g, expected.activations_m)
    assert record["recipe"]["weights"] == weights and record["recipe"]["strict"] is True


def test_a_network_that_fuses_on_its_first_forward_is_counted_after_the_validation_forwards(kit, capsys):
    record = evaluate(capsys, f"{kit}/models/patterns.py:FuseOnFirstForward", "--weights",
                      str(kit / "model_zoo" / "rep.pth"))
    fused = profile_complexity(by_hand(kit, "FuseOnFirstForward", forward=True))
    assert record["params"] == fused.params < sum(p.numel() for p in construct(kit, "RepNet").parameters())


# 2. The after-load step.
def test_the_after_load_step_runs_on_every_module_that_has_it(kit, capsys):
    prepared = prepare(spec(kit, "RepNet", after_load="switch_deploy"), device=CPU)
    assert prepared.record["after_load_calls"] == 2
    assert figures(prepared.model) == figures(by_hand(kit, "RepNet", after_load="switch_deploy"))
    record = evaluate(capsys, f"{kit}/models/patterns.py:RepNet", "--weights", str(kit / "model_zoo" / "rep.pth"),
                      "--after-load", "switch_deploy")
    assert record["params"] == figures(prepared.model)[0] and record["recipe"]["after_load"] == "switch_deploy"
    with pytest.raises(ModelFileError, match="no module has a method 'switch_delpoy'"):
        prepare(spec(kit, "RepNet", after_load="switch_delpoy"), device=CPU)
    fresh = spec(kit, "RepNet", weights=None, after_load="switch_deploy")
    assert figures(prepare(fresh, device=CPU, weights=False).model)[0] == figures(prepared.model)[0]  # counted deployed
    assert figures(build_model(fresh)) == figures(construct(kit, "RepNet"))  # trained in its training form


# 3. Non-strict loading.
def test_an_extra_key_needs_no_strict_and_is_said(kit):
    state = torch.load(kit / "model_zoo" / "rep.pth")
    torch.save({**state, "ema.decay": torch.tensor(0.999)}, kit / "model_zoo" / "extra.pth")
    with pytest.raises(ModelFileError, match=r"1 unexpected key\(s\) ema.decay.*--no-strict"):
        prepare(spec(kit, "RepNet", "extra.pth"), device=CPU)
    prepared = prepare(spec(kit, "RepNet", "extra.pth", strict=False), device=CPU)
    assert prepared.record["unexpected_keys"] == 1
    assert figures(prepared.model) == figures(by_hand(kit, "RepNet", "extra.pth", strict=False))
    model = prepared.model
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


# 4. A .to() of its own, and a model that cannot be deep-copied.
def test_a_model_with_its_own_to_and_an_uncopyable_tensor_is_measured_as_it_is(kit, capsys):
    import copy
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(construct(kit, "OwnTo"))
    model = f"{kit}/models/patterns.py:OwnTo"
    weights = str(kit / "model_zoo" / "own_to.pth")
    profiled = {}
    for edition in ("2022", "2024"):  # the 2024 kits count FLOPs with fvcore, which traces the model itself
        code, out, err = cli(capsys, "profile", model, "--weights", weights, "--json", "--input", "3x12x12",
                             "--repeats", "5", "--edition", edition)
        assert code == 0, err
        profiled[edition], = json.loads(out)
    record = evaluate(capsys, model, "--weights", weights)
    expected = profile_complexity(by_hand(kit, "OwnTo", "own_to.pth"))
    assert record["params"] == profiled["2022"]["params"] == profiled["2024"]["params"] == expected.params
    assert record["flops_g"] == profiled["2022"]["flops_g"] == expected.flops_g
    prepared = prepare(spec(kit, "OwnTo", "own_to.pth"), device=CPU)
    assert prepared.model.to_calls == ["cpu"]  # called once, the kits' way: model.to(device)


# 5. A model written for half precision.
def test_a_float16_model_runs_in_float32_on_a_cpu_through_its_own_switch_and_says_so(kit, capsys):
    half = spec(kit, "Half", "half.pth", dtype="float16")
    prepared = prepare(half, device=CPU)
    assert all(p.dtype == torch.float32 for p in prepared.model.parameters())
    assert prepared.record["ran_as"].startswith("float32 on cpu") and "1 dtype switch" in prepared.record["ran_as"]
    data = load_dataset(None)
    ours = train_proxy.validation_psnr(prepared.model, data.valid, device=CPU)
    kit_model = by_hand(kit, "Half", "half.pth")  # the kit's way: in half, as it runs it on its GPU
    theirs = train_proxy.validation_psnr(kit_model, data.valid, device=CPU)
    assert ours == pytest.approx(theirs, abs=0.01) and ours > 20
    record = evaluate(capsys, f"{kit}/models/patterns.py:Half", "--weights", str(kit / "model_zoo" / "half.pth"),
                      "--dtype", "fp16")
    assert record["psnr"] == pytest.approx(ours, abs=1e-9) and record["recipe"]["dtype"] == "float16"
    assert record["settings"]["dtype"] == "fp32"  # timed as it runs here


def test_a_float16_model_is_caught_early(kit, capsys):
    with pytest.raises(ModelFileError, match="returns torch.float16.*--dtype fp16"):
        check_x4(prepare(spec(kit, "Half", "half.pth"), device=CPU).model, label="half")
    with pytest.raises(ModelFileError, match="written for float16 and does not run in float32.*on a GPU"):
        prepare(spec(kit, "HalfOnly", "half.pth", dtype="float16"), device=CPU)
    code, _, err = cli(capsys, "evaluate", f"{kit}/models/patterns.py:HalfOnly", "--weights",
                       str(kit / "model_zoo" / "half.pth"), "--dtype", "fp16")
    assert code == 2 and err.count("\n") == 1 and "on a GPU" in err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_float16_model_runs_in_half_on_a_gpu():
    kit_dir = Path(tempfile.mkdtemp())
    (kit_dir / "models").mkdir()
    (kit_dir / "models" / "patterns.py").write_text(PATTERNS)
    torch.save(nearest_half_weights(), kit_dir / "half.pth")
    prepared = prepare(ModelFile(path=str(kit_dir / "models" / "patterns.py"), factory="Half",
                                 weights=str(kit_dir / "half.pth"), dtype="float16"), device=torch.device("cuda"))
    assert prepared.model.native_dtype == torch.float16 and prepared.record["ran_as"].startswith("float16")
    assert prepared.model(torch.rand(1, 3, 8, 8, device="cuda")).dtype == torch.float32


# 6. FLOPs that depend on the input or on sampling.
def test_input_dependent_flops_are_counted_at_a_fixed_input_and_said(kit, capsys):
    model = f"{kit}/models/patterns.py:Routed"
    weights = str(kit / "model_zoo" / "routed.pth")
    runs = [cli(capsys, "profile", model, "--weights", weights, "--json", "--input", "3x12x12", "--repeats", "5")
            for _ in range(2)]
    first, second = (json.loads(out)[0] for _, out, _ in runs)
    seeded = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    assert seeded.flatten()[0] < 0.5  # so the kit's network, loaded by hand, routes to the light expert
    assert first["flops_g"] == second["flops_g"] == profile_complexity(by_hand(kit, "Routed", "routed.pth")).flops_g
    spread = first["input_dependent"]
    assert spread["inputs"] == 3 and spread["flops_g"][0] < spread["flops_g"][1] and spread["convs"] == [3, 5]
    code, out, _ = cli(capsys, "profile", model, "--weights", weights, "--input", "3x12x12", "--repeats", "5")
    assert "depend on the input" in out


def test_sampling_in_eval_counts_the_same_every_time_and_leaves_the_callers_rng(kit):
    model = prepare(spec(kit, "Sampling", "routed.pth"), device=CPU).model
    state = torch.get_rng_state()
    counts = {profile_complexity(model).flops for _ in range(3)}
    assert len(counts) == 1 and torch.equal(torch.get_rng_state(), state)


# 7. Constructors that print.
def test_a_printing_model_leaves_json_on_stdout_alone(kit, capsys):
    record = evaluate(capsys, f"{kit}/models/patterns.py:Chatty", "--weights", str(kit / "model_zoo" / "rep.pth"))
    code, out, err = cli(capsys, "profile", f"{kit}/models/patterns.py:Chatty", "--json", "--input", "3x12x12",
                         "--repeats", "5")
    assert code == 0 and json.loads(out) and "Model: Chatty, building" in err and "forward of Chatty" in err
    assert record["params"] == figures(by_hand(kit, "Chatty"))[0]  # (by hand, its prints go to stdout)


# 8. Constructors that call .cuda().
@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has CUDA: the constructor works without a shim")
def test_a_cuda_constructor_is_refused_in_one_line_and_runs_with_the_cpu_shim(kit, capsys, monkeypatch):
    model = f"{kit}/models/patterns.py:NeedsGpu"
    weights = str(kit / "model_zoo" / "rep.pth")
    code, _, err = cli(capsys, "evaluate", model, "--weights", weights)
    assert code == 2 and err.count("\n") == 1 and "--cpu-shim" in err
    record = evaluate(capsys, model, "--weights", weights, "--cpu-shim")
    assert record["recipe"]["cpu_shim"] is True
    with pytest.raises(AssertionError, match="not compiled with CUDA"):  # the shim is undone
        torch.zeros(1).cuda()
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)  # what users of the kits do by hand
    monkeypatch.setattr(nn.Module, "cuda", lambda self, *a, **k: self)
    assert record["params"] == figures(by_hand(kit, "NeedsGpu"))[0]


# 9. Kit entries honour the options given (or refuse them).
def test_a_kit_entrys_recipe_is_overridden_by_the_options_given(kit, capsys):
    (kit / "2025" / "models").mkdir(parents=True)
    (kit / "2025" / "models" / "patterns.py").write_text(PATTERNS)
    (kit / "2025" / "model_zoo").symlink_to(kit / "model_zoo")
    (kit / "manifest.csv").write_text(
        "edition,id,team,module,factory,args,weights,state_key,strip_prefix,data_range,tile,strict,after_load,dtype\n"
        "2025,7,rep,models.patterns,RepNet,{},model_zoo/rep.pth,,,1.0,,true,switch_deploy,\n"
        "2025,8,half,models.patterns,Half,{},model_zoo/half.pth,,,1.0,,,,float16\n")
    label, arch = resolve_architecture("2025:7", options=ModelOptions(kit=str(kit)))
    assert arch.after_load == "switch_deploy" and arch.strict and arch.dtype.value == "float32"
    assert resolve_architecture("2025:8", options=ModelOptions(kit=str(kit)))[1].dtype.value == "float16"
    other = str(kit / "model_zoo" / "extra.pth")
    torch.save({**torch.load(kit / "model_zoo" / "rep.pth"), "extra": torch.zeros(1)}, other)
    _, given = resolve_architecture("2025:7", options=ModelOptions(kit=str(kit), weights=other, strict=False))
    assert given.weights == other and not given.strict and given.after_load == "switch_deploy"
    record = evaluate(capsys, "2025:7", "--kit", str(kit), "--weights", other, "--no-strict")
    assert record["recipe"]["weights"] == other and record["recipe"]["unexpected_keys"] == 1
    code, _, err = cli(capsys, "evaluate", "2025:7", "--kit", str(kit), "--data-range", "7")
    assert code == 2 and "data range must be 1" in err
    code, _, err = cli(capsys, "evaluate", "imdn", "--after-load", "fuse")
    assert code == 2 and "--after-load applies to model files" in err
    code, _, err = cli(capsys, "profile", "imdn", "--dtype", "bf16", "--input", "3x8x8", "--repeats", "5")
    assert code == 0, err  # --dtype is also the latency dtype of configs


def test_the_manifest_columns_are_optional_and_checked(kit):
    from spaces.kit import read_kit
    (kit / "manifest.csv").write_text("edition,id,team,module,factory,args,weights,state_key,strip_prefix,data_range\n"
                                      "2025,7,rep,models.patterns,RepNet,{},model_zoo/rep.pth,,,1.0\n")
    entry, = read_kit(kit)
    assert entry.model.strict and not entry.model.after_load and entry.model.dtype.value == "float32"
    (kit / "manifest.csv").write_text("edition,id,team,module,factory,args,weights,state_key,strip_prefix,data_range,"
                                      "strict\n2025,7,rep,models.patterns,RepNet,{},model_zoo/rep.pth,,,1.0,maybe\n")
    with pytest.raises(ModelFileError, match="line 2: column strict must be true or false"):
        read_kit(kit)


# The record the measurement cache and stored studies key model files by.
def test_a_model_file_of_the_defaults_keeps_its_key_byte_for_byte(kit):
    plain = ModelFile(path="models/x.py", factory="Net", weights="w.pth")
    assert plain.key() == ('{"model_file": {"args": "{}", "data_range": 1.0, "factory": "Net", "label": "x:Net", '
                           '"path": "models/x.py", "state_key": null, "strict": true, "strip_prefix": null, '
                           '"weights": "w.pth"}}')
    assert list(plain.to_dict()["model_file"]) == ["path", "factory", "args", "weights", "state_key", "strip_prefix",
                                                   "data_range", "strict", "label"]
    full = dataclasses.replace(plain, after_load="fuse", dtype="float16", cpu_shim=True)
    assert {k: full.to_dict()["model_file"][k] for k in ("after_load", "dtype", "cpu_shim")} == \
        {"after_load": "fuse", "dtype": "float16", "cpu_shim": True}
    assert ModelFile.from_dict(json.loads(full.key())) == full
    assert ModelFile.from_dict(plain.to_dict()) == plain


def test_build_model_is_the_fresh_float32_network_training_starts_from(kit):
    built = build_model(spec(kit, "Half", weights=None, dtype="float16"))
    assert all(p.dtype == torch.float32 for p in built.parameters())
