"""Export a searched architecture as the NTIRE efficient-SR challenge expects it, plus ONNX.

One export writes, under `out_dir`, the challenge repository's layout (ofsoundof/NTIRE2022_ESR and
its 2023+ successors: a class in `models/<name>.py`, built with no arguments, whose plain state_dict
sits in `model_zoo/<name>.pth` and is loaded with `strict=True`), so both folders drop into that
repository. Beside them: `<name>.json` (configs), `<name>.metrics.json` and `<name>.onnx`.

The model file inlines the parts of `spaces/network.py` (torch-only by design) that its network uses
(search.export.source) and bakes in the inference config, so it never imports the toolkit and never
holds training-time re-parameterisation branches. Each file is checked before it is written: built from
its own text, it must give the toolkit model's output bit for bit.

Exporting again what is already there (same model file, config and weights) leaves the files as they are
(`ExportResult.unchanged`), so rerunning a finished search is harmless; anything else is refused.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import datetime
import importlib.util
import inspect
import json
import keyword
import logging
import pickle
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import spaces.network
from search.export.source import prune_source, used_definitions
from spaces import ArchConfig, build_model, inference_config, inference_form

ONNX_OPSET = 18
_ALLOWED_IMPORTS = frozenset({"__future__", "torch", "torch.nn", "torch.nn.functional"})


@dataclass(frozen=True)
class ExportResult:
    """What one export wrote. `onnx` is None when no exporter succeeded; `onnx_error` says why.
    `unchanged`: the same export was already there and nothing was written."""

    name: str
    class_name: str
    params: int
    model_file: Path
    weights: Path
    config_json: Path
    metrics_json: Path
    onnx: Path | None
    onnx_error: str | None
    unchanged: bool = False


def export_architecture(*, config: ArchConfig, state_dict: dict[str, torch.Tensor], metrics: dict[str, Any],
                        out_dir: Path, name: str,
                        onnx_input_shape: tuple[int, int, int, int] | None = (1, 3, 64, 64)) -> ExportResult:
    """Write the standalone model file, weights, config and metrics JSON and ONNX of one trained network.

    `state_dict` is the trained `build_model(config)`'s (or already its inference form); re-parameterised
    convs are fused first, so the files describe `inference_config(config)`. Nothing is overwritten: when the
    config JSON and weights already there hold the same config and weights, nothing is written and the result
    says `unchanged`; any other existing target (a file edited by hand among them) raises FileExistsError, naming
    it, before anything is written. A failure while writing removes what was written.
    A failed ONNX export is recorded in the result and the metrics JSON instead of raising;
    `onnx_input_shape=None` skips ONNX (it is the slow part: seconds per network).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"export directory {out_dir} is an existing file")
    if "export" in metrics:
        raise ValueError("metrics must not contain an 'export' entry: the exporter writes it")
    json.dumps(metrics)  # fail on unserialisable metrics before writing anything
    module_name = _module_name(name)
    paths = {
        "model_file": out_dir / "models" / f"{module_name}.py",
        "weights": out_dir / "model_zoo" / f"{module_name}.pth",
        "config_json": out_dir / f"{module_name}.json",
        "metrics_json": out_dir / f"{module_name}.metrics.json",
        "onnx": out_dir / f"{module_name}.onnx",
    }
    plain_config = inference_config(config)
    model = build_model(plain_config).eval()
    if state_dict.keys() != model.state_dict().keys():  # the training form: fuse its re-parameterised convs
        trained = _loaded(build_model(config), state_dict, config=config)
        state_dict = inference_form(trained).state_dict()
    _loaded(model, state_dict, config=plain_config)
    weights = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    params = sum(p.numel() for p in model.parameters())
    library = _network_source()
    class_name = _class_name(module_name, taken=_top_level_names(library) | set(dir(builtins)))
    text = _model_file(source=_network_source_for(plain_config, library), config=plain_config,
                       class_name=class_name, module_name=module_name, params=params, from_rep_conv=config.rep_conv)
    if any(path.exists() for path in paths.values()):
        onnx_error = _same_export_on_disk(paths, text=text, config=config, weights=weights,
                                          edition=metrics.get("edition"))
        return ExportResult(name=module_name, class_name=class_name, params=params, model_file=paths["model_file"],
                            weights=paths["weights"], config_json=paths["config_json"],
                            metrics_json=paths["metrics_json"], onnx=None if onnx_error else paths["onnx"],
                            onnx_error=onnx_error, unchanged=True)
    _check_model_file(text, class_name=class_name, model=model, weights=weights)

    written: list[Path] = []
    try:
        for path in paths.values():
            path.parent.mkdir(parents=True, exist_ok=True)
        _write_text(paths["model_file"], text, written)
        written.append(paths["weights"])
        torch.save(weights, paths["weights"])
        _write_text(paths["config_json"], json.dumps(
            {"config": config.to_dict(), "inference_config": plain_config.to_dict(), "params": params},
            indent=2) + "\n", written)
        written.append(paths["onnx"])
        onnx_info = {"error": "not requested (onnx_input_shape=None)", "exporter": None} \
            if onnx_input_shape is None else _export_onnx(model, path=paths["onnx"], input_shape=onnx_input_shape)
        onnx_path = paths["onnx"] if onnx_info["error"] is None else None
        export = {
            "name": module_name, "class": class_name, "params": params, "from_rep_conv": config.rep_conv,
            "input_range": "RGB in [0, 1], output x4 in [0, 1] (NTIRE test_demo data_range 1.0)",
            "files": {key: path.relative_to(out_dir).as_posix() for key, path in paths.items()
                      if key != "onnx" or onnx_path is not None},
            "onnx": onnx_info, "torch": torch.__version__,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        _write_text(paths["metrics_json"], json.dumps({**metrics, "export": export}, indent=2) + "\n", written)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return ExportResult(name=module_name, class_name=class_name, params=params, model_file=paths["model_file"],
                        weights=paths["weights"], config_json=paths["config_json"],
                        metrics_json=paths["metrics_json"], onnx=onnx_path, onnx_error=onnx_info["error"])


def load_exported(model_file: Path, weights: Path) -> nn.Module:
    """Import an exported model file by path, build its class and load its weights (eval mode, CPU)."""
    model_file = Path(model_file)
    spec = importlib.util.spec_from_file_location(f"exported_{model_file.stem}", model_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    classes = [value for value in vars(module).values() if isinstance(value, type)
               and issubclass(value, nn.Module) and value.__module__ == module.__name__]
    if not classes:
        raise ValueError(f"{model_file} defines no nn.Module class")
    model = classes[-1]()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


def _same_export_on_disk(paths: dict[str, Path], *, text: str, config: ArchConfig,
                         weights: dict[str, torch.Tensor], edition: int | None) -> str | None:
    """The ONNX error recorded by the export at `paths` when what is on disk is this export: the model file's text,
    the config, exactly `weights`, metrics by `edition`'s rules (an export older than the edition field passes) and
    the ONNX file it records. Else FileExistsError, in one line, naming the first file that is missing or differs
    (a hand-edited model file among them)."""

    def refuse(path: Path, how: str) -> FileExistsError:
        return FileExistsError(f"{path} {how}; refusing to overwrite an export: remove {paths['config_json'].parent} "
                               f"or give --out another folder")

    try:
        stored_config = json.loads(paths["config_json"].read_text())["config"]
        stored_metrics = json.loads(paths["metrics_json"].read_text())
        onnx_error = stored_metrics["export"]["onnx"]["error"]
    except (OSError, ValueError, KeyError, TypeError):
        missing = paths["config_json"] if not paths["config_json"].is_file() else paths["metrics_json"]
        raise refuse(missing, "is missing or unreadable") from None
    if stored_config != config.to_dict():
        raise refuse(paths["config_json"], "holds another network")
    if stored_metrics.get("edition", edition) != edition:
        raise refuse(paths["metrics_json"], f"holds edition {stored_metrics.get('edition')}'s metrics, not {edition}'s")
    if not paths["model_file"].is_file() or paths["model_file"].read_text() != text:
        raise refuse(paths["model_file"], "differs from what this export writes (edited by hand?)")
    try:
        stored = torch.load(paths["weights"], map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):
        raise refuse(paths["weights"], "is missing or unreadable") from None
    if stored.keys() != weights.keys() or not all(torch.equal(stored[key], value) for key, value in weights.items()):
        raise refuse(paths["weights"], "holds other weights")
    if onnx_error is None and not paths["onnx"].is_file():
        raise refuse(paths["onnx"], "is missing")
    return onnx_error


def _check_model_file(text: str, *, class_name: str, model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Build the model file's class from `text`, load `weights` strictly and compare its output with `model`'s
    bit for bit: a cut-down library that lost something the network needs fails here, before any writing."""
    namespace: dict[str, Any] = {"__name__": "exported_model_check"}
    exec(compile(text, "<exported model file>", "exec"), namespace)  # noqa: S102 - our own generated source
    exported = namespace[class_name]().eval()
    exported.load_state_dict(weights, strict=True)
    x = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        if not torch.equal(exported(x), model(x)):
            raise RuntimeError("the exported model file does not reproduce the toolkit's model (export_source bug)")


def _loaded(model: nn.Module, state_dict: dict[str, torch.Tensor], *, config: ArchConfig) -> nn.Module:
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:  # torch's message spans many lines: keep one
        raise ValueError(f"state_dict does not fit {config.describe()}: {' '.join(str(error).split())[:300]}") from None
    return model


def _module_name(name: str) -> str:
    """`name` as an importable module name (`from models.<name> import ...` in the NTIRE test_demo)."""
    module = re.sub(r"\W+", "_", name, flags=re.ASCII).strip("_")
    if not module:
        raise ValueError(f"export name {name!r} has no letters or digits")
    if module[0].isdigit():
        module = f"model_{module}"
    return f"{module}_" if keyword.iskeyword(module) else module


def _class_name(module_name: str, *, taken: set[str]) -> str:
    """CamelCase of the module name ("nas_t12" -> "NasT12"), clear of the inlined source's names and builtins."""
    class_name = "".join(part[:1].upper() + part[1:] for part in module_name.split("_"))
    while class_name in taken:
        class_name += "Net"
    return class_name


def _network_source() -> str:
    """spaces/network.py without its module docstring; refuses a source that imports beyond torch."""
    text = Path(spaces.network.__file__).read_text()
    tree = ast.parse(text)
    for node in ast.walk(tree):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) else []
        extra = [n for n in names if n not in _ALLOWED_IMPORTS]
        if extra:
            raise RuntimeError(f"spaces/network.py imports {extra}; an exported model file may import torch only")
    first = tree.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        text = "\n".join(text.splitlines()[first.end_lineno:])
    return text.strip("\n") + "\n"


def _network_source_for(config: ArchConfig, library: str) -> str:
    """`library` (spaces/network.py) cut down to the definitions that `config`'s network uses."""
    x = torch.rand(1, 3, 16, 16)

    def build_and_run() -> nn.Module:
        model = build_model(config).eval()
        with torch.no_grad():
            model(x)
        return model

    return prune_source(library, keep=used_definitions(build_and_run, module=spaces.network))


def _top_level_names(source: str) -> set[str]:
    names = {"CONFIG"}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
    return names


def _model_file(*, source: str, config: ArchConfig, class_name: str, module_name: str, params: int,
                from_rep_conv: bool) -> str:
    fused = " (the trained network's re-parameterised convs fused into plain convs)" if from_rep_conv else ""
    header = f'''"""{class_name}: an x4 super-resolution network exported by the NAS toolkit (search/export.py).

Standalone: imports torch only, and holds only the definitions this network uses. Config: {config.describe()}.
Parameters: {params:,}{fused}.
Input and output: RGB in [0, 1] (data_range 1.0 in the NTIRE test_demo.py), output 4x the input size.

    model = {class_name}()
    model.load_state_dict(torch.load("model_zoo/{module_name}.pth"), strict=True)

In the NTIRE efficient-SR repository (models/ and model_zoo/ as laid out here), test_demo.select_model:

    from models.{module_name} import {class_name}
    name, data_range = f"{{model_id:02}}_{class_name}", 1.0
    model_path = os.path.join("model_zoo", "{module_name}.pth")
    model = {class_name}()
    model.load_state_dict(torch.load(model_path), strict=True)
"""

from __future__ import annotations
'''
    entries = "".join(f"    {key!r}: {value!r},\n" for key, value in config.network_kwargs().items())
    tail = f'''
CONFIG = {{
{entries}}}


class {class_name}(SRNet):
    """The searched network with its config baked in: `{class_name}()` takes no arguments."""

    def __init__(self) -> None:
        super().__init__(**CONFIG)
'''
    return f"{header}\n{source}\n{tail}"


def _write_text(path: Path, text: str, written: list[Path]) -> None:
    written.append(path)
    path.write_text(text)


def _export_onnx(model: nn.Module, *, path: Path, input_shape: tuple[int, int, int, int]) -> dict[str, Any]:
    """ONNX with dynamic height and width: torch's default (dynamo) exporter, else the TorchScript one.

    Returns how it was exported, or the reasons both exporters failed (the partial file is removed).
    """
    example = (torch.rand(*input_shape),)
    common = dict(input_names=["input"], output_names=["output"], opset_version=ONNX_OPSET, verbose=False)
    errors = []
    for exporter in ("dynamo", "torchscript"):
        try:
            import onnx

            with _quiet_onnx_exporter():
                if exporter == "dynamo":
                    # Dim.DYNAMIC rather than named Dims: ESA's pooling adds shape guards that named Dims
                    # reject, and the exporter's retry after that rejection doubles the export time.
                    spatial = {2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}
                    torch.onnx.export(model, example, str(path), dynamo=True, external_data=False,
                                      dynamic_shapes=(spatial,), **common)
                    _name_spatial_dims(path)
                else:  # torch < 2.5 has no `dynamo` argument: TorchScript is its only exporter
                    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
                    torch.onnx.export(model, example, str(path), **legacy, dynamic_axes={
                        "input": {2: "height", 3: "width"}, "output": {2: "4*height", 3: "4*width"}}, **common)
            onnx.checker.check_model(str(path))
            return {"error": None, "exporter": exporter, "opset": ONNX_OPSET,
                    "example_input_shape": list(input_shape), "dynamic_axes": {"input": ["height", "width"]}}
        except Exception as error:  # any exporter failure: try the next one, report all
            path.unlink(missing_ok=True)
            first_line = (str(error).strip().splitlines() or [""])[0][:300]
            errors.append(f"{exporter}: {type(error).__name__}: {first_line}")
    return {"error": "; ".join(errors), "exporter": None, "opset": ONNX_OPSET,
            "example_input_shape": list(input_shape)}


def _name_spatial_dims(path: Path) -> None:
    """Rename the exporter's symbolic input sizes (e.g. s53, s0) to height and width, everywhere in the graph."""
    import onnx

    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if not (dims[2].dim_param and dims[3].dim_param):
        raise ValueError("the exported input height and width are not dynamic")
    names = {dims[2].dim_param: "height", dims[3].dim_param: "width"}
    symbol = re.compile(r"\b(" + "|".join(re.escape(name) for name in names) + r")\b")
    for info in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        for dim in info.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = symbol.sub(lambda match: names[match.group()], dim.dim_param)
    onnx.save(model, str(path))


@contextlib.contextmanager
def _quiet_onnx_exporter() -> Iterator[None]:
    """Silence the exporters' warnings and log lines (e.g. 'torchvision is not installed') for one export."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
