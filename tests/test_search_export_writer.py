import ast
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch

import run_search
import search.export.writer
from conftest import STUDY, sqlite_url
from evaluators.counter import Counter, count_complexity
from search.export.writer import export_architecture, load_exported
from search.report.tables import references_frame
from spaces import ArchConfig, build_model, get_reference, inference_config, inference_form

REPO = Path(__file__).resolve().parents[1]
TORCH_ONLY = {"__future__", "torch", "torch.nn", "torch.nn.functional"}

CASES = {
    "imdn": ArchConfig(block="imdb", num_blocks=2, channels=16),
    "rlfn": ArchConfig(block="rlfb", num_blocks=2, channels=16, mid_channels=12, attention="esa_slim",
                       esa_channels=8),
    "rfdn": ArchConfig(block="rfdb", num_blocks=2, channels=16, attention="esa", fusion="concat"),
    "span": ArchConfig(block="span", num_blocks=2, channels=16, attention="pfa", activation="silu",
                       fusion="span_taps", subtract_mean=True, input_scale=255.0),
    "rep_imdn": ArchConfig(block="imdb", num_blocks=2, channels=16, kernel_size=5, attention="cca",
                           fusion="concat", rep_conv=True),
    "rep_efdn": ArchConfig(block="efdb", num_blocks=3, channels=16, mid_channels=12, attention="esa",
                           activation="prelu", fusion="local", rep_conv=True),
}
# ONNX export takes seconds per network: skip it where another case covers the same operators.
ONNX_CASES = ["rlfn", "rfdn", "span", "rep_imdn", "rep_efdn"]

# Run as the NTIRE test_demo does: cwd = the folder holding models/ and model_zoo/, no toolkit on the path.
NTIRE_STYLE_RUN = """
import importlib, json, sys, torch
io_dir, classes = sys.argv[1], json.loads(sys.argv[2])
x = torch.load(f"{io_dir}/input.pt")
for name, class_name in classes.items():
    model = getattr(importlib.import_module(f"models.{name}"), class_name)()
    model.load_state_dict(torch.load(f"model_zoo/{name}.pth"), strict=True)
    with torch.no_grad():
        torch.save(model.eval()(x), f"{io_dir}/{name}.out.pt")
toolkit = {"spaces", "search", "evaluators", "data", "train_proxy", "run_search"}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in toolkit)))
"""


def count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every case exported into one folder (as `export --top K` does), with the toolkit's reference output."""
    out_dir = tmp_path_factory.mktemp("exports")
    x = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    runs = {}
    for seed, (name, config) in enumerate(CASES.items()):
        torch.manual_seed(seed)
        trained = build_model(config).eval()
        with torch.no_grad():
            reference = trained(x)
        result = export_architecture(config=config, state_dict=trained.state_dict(), metrics={"psnr": 23.5 + seed},
                                     out_dir=out_dir, name=f"nas_{name}",
                                     onnx_input_shape=(1, 3, 64, 64) if name in ONNX_CASES else None)
        runs[name] = {"config": config, "trained": trained, "result": result, "reference": reference}
    return {"out_dir": out_dir, "input": x, "runs": runs}


@pytest.fixture(scope="module")
def ntire_outputs(exported, tmp_path_factory):
    """Outputs of the exported files, loaded in a clean subprocess outside the repository."""
    io_dir = tmp_path_factory.mktemp("io")
    assert not exported["out_dir"].resolve().is_relative_to(REPO)
    torch.save(exported["input"], io_dir / "input.pt")
    classes = {run["result"].name: run["result"].class_name for run in exported["runs"].values()}
    completed = subprocess.run(
        [sys.executable, "-E", "-c", NTIRE_STYLE_RUN, str(io_dir), json.dumps(classes)],
        cwd=exported["out_dir"], env={"PATH": os.environ.get("PATH", ""), "HOME": str(io_dir)},
        capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout.splitlines()[-1]) == [], "the exported files imported the toolkit"
    return {name: torch.load(io_dir / f"{run['result'].name}.out.pt") for name, run in exported["runs"].items()}


@pytest.mark.parametrize("case", CASES)
def test_exported_file_reproduces_the_toolkit_model(case, exported, ntire_outputs):
    reference = exported["runs"][case]["reference"]
    assert ntire_outputs[case].shape == reference.shape == (1, 3, 80, 96)
    torch.testing.assert_close(ntire_outputs[case], reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_load_exported_matches_the_toolkit_model(case, exported):
    run = exported["runs"][case]
    model = load_exported(run["result"].model_file, run["result"].weights)
    assert type(model).__name__ == run["result"].class_name
    with torch.no_grad():
        torch.testing.assert_close(model(exported["input"]), run["reference"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_exported_file_imports_torch_only_and_holds_no_training_branches(case, exported):
    result = exported["runs"][case]["result"]
    tree = ast.parse(result.model_file.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    assert imported <= TORCH_ONLY
    config_node = next(node for node in tree.body if isinstance(node, ast.Assign) and node.targets[0].id == "CONFIG")
    baked = ast.literal_eval(config_node.value)
    assert baked == inference_config(CASES[case]).network_kwargs() and baked["rep_conv"] is False
    weights = torch.load(result.weights, weights_only=True)
    assert weights.keys() == build_model(inference_config(CASES[case])).state_dict().keys()
    assert all(t.device.type == "cpu" and t.is_contiguous() for t in weights.values())


@pytest.mark.parametrize("case", CASES)
def test_params_are_those_of_the_inference_form(case, exported):
    config, result = CASES[case], exported["runs"][case]["result"]
    params = count(build_model(inference_config(config)))
    assert result.params == params == count(load_exported(result.model_file, result.weights))
    assert json.loads(result.config_json.read_text())["params"] == params
    assert json.loads(result.metrics_json.read_text())["export"]["params"] == params
    if config.rep_conv:
        assert params < count(build_model(config))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's sigmoid overflows on SPAN's 0-255 range
@pytest.mark.parametrize("case", ONNX_CASES)
def test_onnx_is_valid_and_keeps_height_and_width_dynamic(case, exported):
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    run = exported["runs"][case]
    if run["result"].onnx is None:
        pytest.skip(f"ONNX export unsupported in torch {torch.__version__}: {run['result'].onnx_error}")
    onnx.checker.check_model(str(run["result"].onnx), full_check=True)
    graph = onnx.load(str(run["result"].onnx)).graph
    assert [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, 3, "height", "width"]
    # Exported at 64x64, evaluated at other sizes: the spatial axes must be dynamic.
    evaluator = ReferenceEvaluator(str(run["result"].onnx))
    other = torch.rand(1, 3, 31, 17, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = run["trained"](other)
    for x, reference in ((exported["input"], run["reference"]), (other, expected)):
        output = torch.from_numpy(evaluator.run(None, {"input": x.numpy()})[0])
        torch.testing.assert_close(output, reference, rtol=0, atol=1e-5)


def test_config_and_metrics_json(exported):
    run = exported["runs"]["rep_imdn"]
    config, result = run["config"], run["result"]
    data = json.loads(result.config_json.read_text())
    assert ArchConfig.from_dict(data["config"]) == config
    assert ArchConfig.from_dict(data["inference_config"]) == inference_config(config)
    metrics = json.loads(result.metrics_json.read_text())
    assert metrics["psnr"] == 23.5 + list(CASES).index("rep_imdn")
    export = metrics["export"]
    assert export["torch"] == torch.__version__ and export["from_rep_conv"] is True and export["date"]
    assert export["class"] == result.class_name == "NasRepImdn"
    assert export["files"]["model_file"] == f"models/{result.name}.py"
    assert export["files"]["weights"] == f"model_zoo/{result.name}.pth"
    assert (export["onnx"]["error"] is None) == (result.onnx is not None)


def test_onnx_can_be_skipped(exported):
    result = exported["runs"]["imdn"]["result"]
    assert result.onnx is None and "not requested" in result.onnx_error
    assert not (exported["out_dir"] / "nas_imdn.onnx").exists()
    assert "onnx" not in json.loads(result.metrics_json.read_text())["export"]["files"]


def test_refuses_to_overwrite_an_existing_export(exported):
    run = exported["runs"]["imdn"]
    before = run["result"].weights.read_bytes()
    with pytest.raises(FileExistsError, match="nas_imdn") as error:
        export_architecture(config=run["config"], state_dict=build_model(run["config"]).state_dict(), metrics={},
                            out_dir=exported["out_dir"], name="nas_imdn")
    assert "\n" not in str(error.value)
    assert run["result"].weights.read_bytes() == before


def test_rejects_an_out_dir_that_is_a_file(tmp_path):
    path = tmp_path / "not_a_dir"
    path.write_text("")
    config = CASES["imdn"]
    with pytest.raises(NotADirectoryError, match="not_a_dir") as error:
        export_architecture(config=config, state_dict=build_model(config).state_dict(), metrics={},
                            out_dir=path, name="x")
    assert "\n" not in str(error.value)


def test_onnx_failure_is_recorded_not_raised(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("no exporter here")
    monkeypatch.setattr(torch.onnx, "export", fail)
    config = CASES["rlfn"]
    result = export_architecture(config=config, state_dict=build_model(config).state_dict(), metrics={"psnr": 1.0},
                                 out_dir=tmp_path, name="no onnx")
    assert result.onnx is None and "no exporter here" in result.onnx_error
    assert result.model_file.exists() and result.weights.exists() and not (tmp_path / "no_onnx.onnx").exists()
    assert json.loads(result.metrics_json.read_text())["export"]["onnx"]["error"] == result.onnx_error


@pytest.mark.parametrize("name, module, class_name", [
    ("12 best!", "model_12_best", "Model12Best"),   # importable as models.<module>
    ("rep-conv", "rep_conv", "RepConvNet"),         # clear of the inlined RepConv class
])
def test_names_are_importable_and_do_not_shadow_the_blocks(tmp_path, name, module, class_name):
    config = CASES["imdn"]
    result = export_architecture(config=config, state_dict=build_model(config).state_dict(), metrics={},
                                 out_dir=tmp_path, name=name, onnx_input_shape=None)
    assert (result.name, result.class_name) == (module, class_name)
    assert result.model_file == tmp_path / "models" / f"{module}.py"
    assert type(load_exported(result.model_file, result.weights)).__name__ == class_name


def test_a_failure_while_writing_leaves_no_partial_export(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(search.export.writer, "_export_onnx", crash)
    config = CASES["imdn"]
    with pytest.raises(OSError, match="disk full"):
        export_architecture(config=config, state_dict=build_model(config).state_dict(), metrics={},
                            out_dir=tmp_path, name="x")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_accepts_the_fused_form_and_rejects_a_state_dict_of_another_network(tmp_path):
    config = CASES["rep_imdn"]
    torch.manual_seed(0)
    fused = inference_form(build_model(config)).state_dict()
    result = export_architecture(config=config, state_dict=fused, metrics={}, out_dir=tmp_path, name="fused",
                                 onnx_input_shape=None)
    torch.testing.assert_close(load_exported(result.model_file, result.weights).state_dict(), fused)
    with pytest.raises(ValueError, match="does not fit") as error:
        export_architecture(config=config, state_dict=build_model(CASES["rlfn"]).state_dict(), metrics={},
                            out_dir=tmp_path, name="other", onnx_input_shape=None)
    assert "\n" not in str(error.value) and not (tmp_path / "other.json").exists()


def test_a_plain_imdb_export_holds_only_the_classes_it_uses(exported, tmp_path):
    result = exported["runs"]["imdn"]["result"]
    tree = ast.parse(result.model_file.read_text())
    defined = {node.name for node in tree.body if isinstance(node, (ast.ClassDef, ast.FunctionDef))}
    assert {"IMDB", "SRNet", result.class_name} <= defined
    assert not defined & {"RepConv", "EnhancedSpatialAttention", "ContrastChannelAttention", "RFDB", "RLFB", "SPAB",
                          "fuse_rep_convs", "three_convs"}
    assert "RepConv" not in result.model_file.read_text() and "F." not in result.model_file.read_text()
    # As the kit loads it: a fresh process, the file by path, strict state_dict loading.
    loaded = load_exported(result.model_file, result.weights)
    with torch.no_grad():
        assert torch.equal(loaded(exported["input"]), exported["runs"]["imdn"]["reference"])
    assert len(result.model_file.read_text().splitlines()) < 220


def test_an_esa_export_keeps_esa_and_drops_the_other_attention(exported):
    text = exported["runs"]["rfdn"]["result"].model_file.read_text()
    assert "class EnhancedSpatialAttention" in text and "class RFDB" in text
    assert "class ContrastChannelAttention" not in text and "class IMDB" not in text


def test_exporting_the_same_network_again_leaves_the_files_as_they_are(tmp_path):
    config = CASES["rlfn"]
    torch.manual_seed(3)
    state_dict = build_model(config).state_dict()
    first = export_architecture(config=config, state_dict=state_dict, metrics={"psnr": 1.0}, out_dir=tmp_path,
                                name="again", onnx_input_shape=None)
    files = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in tmp_path.rglob("*") if path.is_file()}
    second = export_architecture(config=config, state_dict=state_dict, metrics={"psnr": 2.0}, out_dir=tmp_path,
                                 name="again", onnx_input_shape=None)
    assert second.unchanged and not first.unchanged
    assert (second.model_file, second.class_name, second.onnx) == (first.model_file, first.class_name, None)
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in tmp_path.rglob("*") if path.is_file()} \
        == files
    changed = {key: value + 1 if key.endswith("conv4.bias") else value for key, value in state_dict.items()}
    with pytest.raises(FileExistsError, match="refusing to overwrite an export"):
        export_architecture(config=config, state_dict=changed, metrics={}, out_dir=tmp_path, name="again",
                            onnx_input_shape=None)


# `export --edition`: a study of the default edition (2022) exported for the 2024+ rules. The session's study of
# the four references (conftest: imdn, rfdn, rlfn, span, trials 0-3) is the tiny study; trial 2 is RLFN.
RLFN_TRIAL = "2"


def export_metrics(results, capsys, *, edition=None, out=None):
    """Run `export --trial 2` on the study in `results`; returns (exit code, its metrics JSON or None, stderr)."""
    args = ["export", "--study", STUDY, "--results", str(results), "--trial", RLFN_TRIAL]
    args += (["--edition", edition] if edition else []) + (["--out", str(out)] if out else [])
    code = run_search.main(args)
    folder = out or results / STUDY / ("export" if edition is None else f"export-{edition}")
    metrics = json.loads(next(folder.glob("*.metrics.json")).read_text()) if code == 0 else None
    return code, metrics, capsys.readouterr().err


def fvcore_figures(name):
    return count_complexity(inference_form(build_model(get_reference(name))), counter=Counter.FVCORE)


def test_export_for_a_later_edition_counts_by_its_rules(study_with_references, capsys):
    code, own, err = export_metrics(study_with_references, capsys)
    assert code == 0, err
    assert own["edition"] == 2022 and own["flops_counter"] == "ntire2022" and own["latency_ratio_to"] == "imdn"
    assert "c_params" in own and "study_edition" not in own and "score" not in own  # 2022 ranks a whole board

    code, later, err = export_metrics(study_with_references, capsys, edition="2026")
    assert code == 0, err
    assert later["edition"] == 2026 and later["study_edition"] == 2022 and later["flops_counter"] == "fvcore"
    rlfn, span = fvcore_figures("rlfn"), fvcore_figures("span")
    assert later["flops_g"] == rlfn.flops_g != own["flops_g"]  # fvcore skips what the 2022 counter counts
    assert later["params"] == own["params"] == rlfn.params
    # The study timed SPAN (2026's baseline) beside IMDN: the two ratios to IMDN divide.
    study = optuna.load_study(study_name=STUDY, storage=sqlite_url(study_with_references))
    references = references_frame(study).set_index("name")
    assert later["latency_ratio_to"] == "span"
    assert later["latency_ratio"] == pytest.approx(own["latency_ratio"] / references.loc["span", "latency_ratio"])
    assert later["score"] == pytest.approx(0.8 * math.exp(2 * later["latency_ratio"])
                                           + 0.1 * math.exp(2 * rlfn.flops / span.flops)
                                           + 0.1 * math.exp(2 * rlfn.params / span.params))
    assert not {"c_params", "c_psnr", "feasible", "pareto", "verdict"} & set(later)  # 2022's judgement, not 2026's
    assert later["psnr"] == own["psnr"] and later["export"]["name"] == own["export"]["name"]
    # The study's own export folder holds 2022's metrics: exporting 2026's over them is refused.
    code, _, err = export_metrics(study_with_references, capsys, edition="2026",
                                  out=study_with_references / STUDY / "export")
    assert code == 2 and err.startswith("error: ") and "refusing to overwrite an export" in err


def test_export_for_an_edition_whose_baseline_the_study_did_not_time(study_with_references, capsys, caplog, tmp_path):
    code, metrics, err = export_metrics(study_with_references, capsys, edition="2024", out=tmp_path / "x")
    assert code == 0, err
    assert metrics["edition"] == 2024 and metrics["latency_ratio_to"] == "rlfn_prune"
    assert metrics["flops_g"] == fvcore_figures("rlfn").flops_g
    assert metrics["latency_ratio"] is None and metrics["score"] is None
    assert "baseline rlfn_prune was not timed in this NTIRE 2022 study" in caplog.text

    code, _, err = export_metrics(study_with_references, capsys, edition="1999", out=tmp_path / "y")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: unknown edition '1999'; known: 2022")
