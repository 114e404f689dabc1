"""A network brought as a model file of the NTIRE layout (`models/<name>.py`, `model_zoo/<name>.pth`).

`ModelFile` is the model reference of the toolkit: anything that is not an `ArchConfig` (a user's own
network, a challenge kit's entry) is built, measured and trained through it, by the same evaluators and
trainer as the search's candidates. It holds the kits' recipe of one entry (constructor, weights, state key,
prefix, strict, after-load step, data range, dtype); `spaces.recipe` applies it. Building one runs the file's
code, as the kits' `test_demo.py` does.

A model file may work in a 0-255 data range (the kits' `data_range`) or in half precision; `DataRange` wraps it
so that it takes and returns [0, 1] fp32 like every network of the toolkit, which keeps training, PSNR and
latency code unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import importlib
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spaces.checkpoint import read_state_dict
from spaces.errors import ModelFileError, first_line
from spaces.user_code import failure, running_user_code

SCALE = 4
PROBE_SHAPE = (1, 3, 32, 32)  # a forward at this size checks the output is x4 (small, divisible by 8 windows)
DATA_RANGES = (1.0, 255.0)  # [0, 1] or 0-255: the kits' data_range takes no other value


class NativeDtype(enum.Enum):
    """The precision a model file's weights and forward are written for (the manifest's `dtype`)."""

    FLOAT32 = "float32"
    FLOAT16 = "float16"

    @classmethod
    def parse(cls, value: str | NativeDtype | None) -> NativeDtype:
        """float32 (also empty, fp32) or float16 (also fp16, half)."""
        if isinstance(value, NativeDtype):
            return value
        names = {"": cls.FLOAT32, "float32": cls.FLOAT32, "fp32": cls.FLOAT32,
                 "float16": cls.FLOAT16, "fp16": cls.FLOAT16, "half": cls.FLOAT16}
        text = (value or "").strip().lower()
        if text not in names:
            raise ModelFileError(f"dtype must be float32 (or empty) or float16, got {value!r}")
        return names[text]


class DataRange(nn.Module):
    """Runs a model at its data range (the kits' `data_range`: 1 or 255) and, for a model written for half
    precision, in that precision (`native_dtype`: the input is cast to it after scaling, as the kits do, and the
    output back to fp32); it takes and returns [0, 1]. Evaluators never cast a model with a `native_dtype`."""

    def __init__(self, model: nn.Module, data_range: float, *, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.model = model
        self.data_range = float(data_range)
        self.native_dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.native_dtype is None:
            return self.model(x * self.data_range) / self.data_range
        return self.model((x * self.data_range).to(self.native_dtype)).float() / self.data_range


# Fields added after the measurement cache and stored studies keyed model files by `to_dict()`: written only when
# they differ from their default, so that a model file of the defaults keeps its key byte for byte.
OPTIONAL_FIELDS = {"after_load": "", "dtype": NativeDtype.FLOAT32, "cpu_shim": False}


@dataclasses.dataclass(frozen=True)
class ModelFile:
    """How to build and load one network from a Python file: `factory(*args)` or `factory(**args)`.

    path: the .py file (or a package folder) defining `factory`. args: constructor arguments as JSON text
    (a list or an object). weights: a checkpoint; state_key: the entry of the checkpoint holding the state
    dict (found among the usual ones when empty); strip_prefix: removed from every key (e.g. `module.`).
    data_range: 1 when the model takes [0, 1], 255 when it takes 0-255. strict: load_state_dict's strict.
    after_load: a method called, after loading, on every module that has it (e.g. switch_deploy), empty for none.
    dtype: float16 for a model written for half precision. cpu_shim: `.cuda()` is a no-op while its code runs on
    a machine without CUDA.
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
    after_load: str = ""
    dtype: NativeDtype = NativeDtype.FLOAT32
    cpu_shim: bool = False

    def __post_init__(self) -> None:
        try:
            parsed = json.loads(self.args)
        except ValueError as error:
            raise ModelFileError(f"constructor arguments of {self.path} are not JSON: {error}") from None
        if not isinstance(parsed, (list, dict)):
            raise ModelFileError(f"constructor arguments must be a JSON list or object, got {self.args!r}")
        if isinstance(self.data_range, bool) or not isinstance(self.data_range, (int, float)) \
                or float(self.data_range) not in DATA_RANGES:
            raise ModelFileError(f"data range must be 1 (the model takes and returns [0, 1]) or 255 (0-255), "
                                 f"got {self.data_range!r}")
        if self.after_load and not self.after_load.isidentifier():
            raise ModelFileError(f"after-load step must be a method name (e.g. switch_deploy), got {self.after_load!r}")
        object.__setattr__(self, "data_range", float(self.data_range))
        object.__setattr__(self, "dtype", NativeDtype.parse(self.dtype))
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
        values = dataclasses.asdict(self)
        for name, default in OPTIONAL_FIELDS.items():
            if values[name] == default:
                del values[name]
        if "dtype" in values:
            values["dtype"] = values["dtype"].value
        return {"model_file": values}

    def key(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelFile:
        return cls(**data["model_file"])

    # The recipe's first step and its checkpoint (spaces.recipe applies the rest).
    def construct(self) -> nn.Module:
        """The raw network, as the kits' test_demo.py makes it: the file imported with the folder above `models/`
        on sys.path, `factory(*args)` or `factory(**args)` called; its code runs under `running_user_code`."""
        args = json.loads(self.args)
        with running_user_code(cpu_shim=self.cpu_shim):
            factory = _import_factory(Path(self.path), self.factory, cpu_shim=self.cpu_shim)
            try:
                model = factory(*args) if isinstance(args, list) else factory(**args)
            except Exception as error:  # the user's constructor: any failure is reported in one line
                raise ModelFileError(f"{self.label}: {self.factory}(...) raised "
                                     f"{failure(error, cpu_shim=self.cpu_shim)}") from None
        if not isinstance(model, nn.Module):
            raise ModelFileError(f"{self.label}: {self.factory}(...) returned {type(model).__name__}, not a torch module")
        return model

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The checkpoint's state dict: nested entry taken, prefix stripped."""
        return read_state_dict(self.weights or "", state_key=self.state_key, strip_prefix=self.strip_prefix)


def check_x4(model: nn.Module, *, label: str) -> None:
    """Raise ModelFileError unless `model` maps a 1x3xHxW fp32 input to a 1x3x4Hx4W fp32 output (no gradient, on
    the device the model is on). A model that gives or wants half precision is told to say so (its dtype)."""
    anchor = next(itertools.chain(model.parameters(), model.buffers()), None)
    probe = torch.rand(PROBE_SHAPE, device=anchor.device if anchor is not None else "cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model(probe)
    except Exception as error:  # the user's forward
        raise ModelFileError(f"{label}: forward on {'x'.join(map(str, PROBE_SHAPE))} failed: "
                             f"{type(error).__name__}: {first_line(error)}{_half_hint(str(error))}") from None
    finally:
        model.train(was_training)
    expected = (1, 3, PROBE_SHAPE[2] * SCALE, PROBE_SHAPE[3] * SCALE)
    if not isinstance(output, torch.Tensor) or tuple(output.shape) != expected:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ModelFileError(f"{label}: output {shape} for input {PROBE_SHAPE}; an x{SCALE} model must give {expected}")
    if output.dtype != torch.float32:
        raise ModelFileError(f"{label}: returns {output.dtype} for a float32 input{_half_hint('Half')}")


def _import_factory(path: Path, name: str, *, cpu_shim: bool) -> Any:
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
        raise ModelFileError(f"cannot import {path}: {failure(error, cpu_shim=cpu_shim)}") from None
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


def _half_hint(message: str) -> str:
    if "half" not in message.lower():
        return ""
    return "; a model written for half precision must say so: --dtype fp16 (a kit manifest's dtype column: float16)"
