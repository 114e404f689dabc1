"""A network brought as a model file of the NTIRE layout (`models/<name>.py`, `model_zoo/<name>.pth`).

`ModelFile` is the model reference of the toolkit: anything that is not an `ArchConfig` (a user's own
network, a challenge kit's entry) is built, measured and trained through it, by the same evaluators and
trainer as the search's candidates. Building one runs the file's code, as the kits' `test_demo.py` does.

A model file may work in a 0-255 data range (the kits' `data_range`); `build` wraps it so that it takes and
returns [0, 1] like every network of the toolkit, which keeps training, PSNR and latency code unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

SCALE = 4
PROBE_SHAPE = (1, 3, 32, 32)  # a forward at this size checks the output is x4 (small, divisible by 8 windows)
# Keys under which training frameworks (BasicSR, KAIR, plain scripts) nest the state dict of a checkpoint.
NESTED_STATE_KEYS = ("params_ema", "params", "state_dict", "model_state_dict", "net", "model")


class ModelFileError(ValueError):
    """A model file cannot be imported, built, loaded or run; the message names what and how to fix it."""


class DataRange(nn.Module):
    """Runs a 0-`data_range` model on [0, 1] input and returns [0, 1] output (the kits' `data_range`)."""

    def __init__(self, model: nn.Module, data_range: float) -> None:
        super().__init__()
        self.model = model
        self.data_range = float(data_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x * self.data_range) / self.data_range


@dataclasses.dataclass(frozen=True)
class ModelFile:
    """How to build and load one network from a Python file: `factory(*args)` or `factory(**args)`.

    path: the .py file (or a package folder) defining `factory`. args: constructor arguments as JSON text
    (a list or an object). weights: a checkpoint; state_key: the entry of the checkpoint holding the state
    dict (found among the usual ones when empty); strip_prefix: removed from every key (e.g. `module.`).
    data_range: 1 when the model takes [0, 1], 255 when it takes 0-255. strict: load_state_dict's strict.
    """

    path: str
    factory: str
    args: str = "{}"
    weights: str | None = None
    state_key: str | None = None
    strip_prefix: str | None = None
    data_range: float = 1.0
    strict: bool = True
    label: str = ""

    def __post_init__(self) -> None:
        try:
            parsed = json.loads(self.args)
        except ValueError as error:
            raise ModelFileError(f"constructor arguments of {self.path} are not JSON: {error}") from None
        if not isinstance(parsed, (list, dict)):
            raise ModelFileError(f"constructor arguments must be a JSON list or object, got {self.args!r}")
        if isinstance(self.data_range, bool) or not isinstance(self.data_range, (int, float)) or self.data_range <= 0:
            raise ModelFileError(f"data range must be a positive number (1 or 255), got {self.data_range!r}")
        object.__setattr__(self, "data_range", float(self.data_range))
        if not self.label:
            object.__setattr__(self, "label", f"{Path(self.path).stem}:{self.factory}")

    @classmethod
    def parse(cls, spec: str, **fields: Any) -> ModelFile:
        """`path/to/models/x.py:Factory` (and the other fields as keywords)."""
        path, sep, factory = spec.rpartition(":")
        if not sep or not path or not factory.isidentifier():
            raise ModelFileError(f"a model file is given as path/to/file.py:Factory, got {spec!r}")
        return cls(path=path, factory=factory, **{k: v for k, v in fields.items() if v is not None})

    # The interface an ArchConfig has too: a label, a stable key, a JSON record.
    def describe(self) -> str:
        return self.label

    def to_dict(self) -> dict[str, Any]:
        return {"model_file": dataclasses.asdict(self)}

    def key(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelFile:
        return cls(**data["model_file"])

    # Building and loading.
    def build(self) -> nn.Module:
        """A fresh module (the file's own initialisation), wrapped to [0, 1] when its data range is not 1."""
        factory = _import_factory(Path(self.path), self.factory)
        args = json.loads(self.args)
        try:
            model = factory(*args) if isinstance(args, list) else factory(**args)
        except Exception as error:  # the user's constructor: any failure is reported in one line
            raise ModelFileError(_constructor_failure(self, error)) from None
        if not isinstance(model, nn.Module):
            raise ModelFileError(f"{self.label}: {self.factory}(...) returned {type(model).__name__}, not a torch module")
        return model if self.data_range == 1.0 else DataRange(model, self.data_range)

    def load(self) -> nn.Module:
        """The module with its trained weights (`weights` must be set), in eval mode."""
        model = self.build()
        if not self.weights:
            raise ModelFileError(f"{self.label} has no weights; give a checkpoint (--weights)")
        inner = model.model if isinstance(model, DataRange) else model
        state = self.state_dict()
        try:
            result = inner.load_state_dict(state, strict=False)
        except RuntimeError as error:  # shapes that differ: torch lists them one per line
            mismatches = [line.strip() for line in str(error).splitlines() if "size mismatch" in line]
            raise ModelFileError(f"{self.label}: weights {self.weights} do not fit the model: "
                                 f"{len(mismatches)} shape mismatch(es), e.g. {(mismatches or [''])[0]}") from None
        if self.strict and (result.missing_keys or result.unexpected_keys):
            raise ModelFileError(f"{self.label}: weights {self.weights} do not fit the model: "
                                 f"{_key_summary('missing', result.missing_keys)}"
                                 f"{_key_summary('unexpected', result.unexpected_keys)}".rstrip("; "))
        return model.eval()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The checkpoint's state dict: nested entry taken, prefix stripped."""
        path = Path(self.weights or "")
        if not path.is_file():
            raise ModelFileError(f"weights file {path} not found")
        checkpoint = _torch_load(path)
        key = self.state_key or next((k for k in NESTED_STATE_KEYS if isinstance(checkpoint, dict)
                                      and isinstance(checkpoint.get(k), dict)), None)
        if key is not None:
            if not isinstance(checkpoint, dict) or key not in checkpoint:
                raise ModelFileError(f"weights {path} have no entry {key!r}; entries: {_entries(checkpoint)}")
            checkpoint = checkpoint[key]
        if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
            raise ModelFileError(f"weights {path} hold no state dict of tensors; entries: {_entries(checkpoint)} "
                                 "(name the entry with --state-key)")
        prefix = self.strip_prefix
        if prefix is None and checkpoint and all(k.startswith("module.") for k in checkpoint):
            prefix = "module."  # saved from DataParallel
        return {k.removeprefix(prefix) if prefix else k: v for k, v in checkpoint.items()}


def check_x4(model: nn.Module, *, label: str) -> None:
    """Raise ModelFileError unless `model` maps a 1x3xHxW input to 1x3x4Hx4W (on CPU, no gradient)."""
    probe = torch.rand(PROBE_SHAPE)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model(probe)
    except Exception as error:  # the user's forward
        raise ModelFileError(f"{label}: forward on {'x'.join(map(str, PROBE_SHAPE))} failed: "
                             f"{type(error).__name__}: {_first_line(error)}") from None
    finally:
        model.train(was_training)
    expected = (1, 3, PROBE_SHAPE[2] * SCALE, PROBE_SHAPE[3] * SCALE)
    if not isinstance(output, torch.Tensor) or tuple(output.shape) != expected:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ModelFileError(f"{label}: output {shape} for input {PROBE_SHAPE}; an x{SCALE} model must give {expected}")


def _import_factory(path: Path, name: str) -> Any:
    """Import `name` from the file or package at `path` the way the kits do: the folder above `models/` on sys.path."""
    if not path.exists():
        raise ModelFileError(f"model file {path} not found")
    path = path.resolve()
    parts = list(path.with_suffix("").parts) if path.suffix == ".py" else list(path.parts)
    if "models" in parts[:-1]:
        at = len(parts) - 1 - parts[::-1].index("models")
        root, module_name = Path(*parts[:at]), ".".join(parts[at:])
    else:
        root, module_name = Path(*parts[:-1]), parts[-1]
    if module_name.endswith("__init__"):
        module_name = module_name.rsplit(".", 1)[0]
    try:
        with _on_sys_path(root, top=module_name.split(".")[0]):
            module = importlib.import_module(module_name)
    except Exception as error:  # the user's module: any failure at import is reported in one line
        raise ModelFileError(f"cannot import {path}: {type(error).__name__}: {_first_line(error)}") from None
    if not hasattr(module, name):
        defined = sorted(k for k, v in vars(module).items() if isinstance(v, type) and issubclass(v, nn.Module))
        raise ModelFileError(f"{path} defines no {name!r}; its torch modules: {', '.join(defined) or 'none'}")
    return getattr(module, name)


@contextlib.contextmanager
def _on_sys_path(root: Path, *, top: str):
    """Put `root` first on sys.path and forget a same-named top package imported from elsewhere (two kits
    both have a `models` package)."""
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        origin = getattr(sys.modules[name], "__file__", None) or ""
        if not Path(origin).resolve().is_relative_to(root):
            del sys.modules[name]
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path.remove(str(root))


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickled objects beyond tensors: the user's own checkpoint, like their code
        if "weights_only" not in str(error) and "Unsupported" not in str(error):
            raise ModelFileError(f"cannot read weights {path}: {_first_line(error)}") from None
        logger.warning("weights %s hold pickled Python objects; loading them with weights_only=False", path)
        return torch.load(path, map_location="cpu", weights_only=False)


def _constructor_failure(ref: ModelFile, error: Exception) -> str:
    text = f"{type(error).__name__}: {_first_line(error)}"
    if not torch.cuda.is_available() and ("cuda" in text.lower() or "nvidia" in text.lower()):
        return (f"{ref.label}: the constructor calls CUDA ({text}) and this machine has no CUDA device; "
                "run it on a GPU machine or remove the .cuda() calls from the model file")
    return f"{ref.label}: {ref.factory}(...) raised {text}"


def _key_summary(kind: str, keys: list[str], shown: int = 6) -> str:
    if not keys:
        return ""
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return f"{len(keys)} {kind} key(s) {', '.join(keys[:shown])}{more}; "


def _entries(checkpoint: Any) -> str:
    return ", ".join(map(str, list(checkpoint)[:8])) if isinstance(checkpoint, dict) else type(checkpoint).__name__


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0]
