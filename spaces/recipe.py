"""The one loading recipe of model files and kit entries: the steps of the kits' `test_demo.py`, in their order.

build (the file's constructor) -> load the weights (state key, prefix, strict; the file's own `load_state_dict`
runs, and may fuse branches while loading) -> the after-load step (a method called on every module that has it:
switch_deploy, fuse, reparameterize, ...) -> eval -> `model.to(device)`, called once as the kits call it ->
precision (a float16 file runs in half on a GPU, as its kit runs it; on a CPU, where a half forward is about 100x
slower, in float32 through its own dtype switch, or it is refused before any work) -> the data range.

`profile`, `evaluate`, `train_proxy.py` and the search's model-file references and kit entries take their network
from here, and count, time and score it afterwards: so the figures are those of the network the kit measures.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import torch
from torch import nn

from spaces.checkpoint import load_weights
from spaces.errors import ModelFileError, first_line
from spaces.model_file import PROBE_SHAPE, DataRange, ModelFile, NativeDtype
from spaces.user_code import failure, running_user_code

logger = logging.getLogger(__name__)

FIT_HINT = "check --state-key, --strip-prefix and --model-args; --no-strict loads what fits, as kits do for some entries"


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A model file's network after the recipe, [0, 1] fp32 in and out, in eval mode on its device, and `record`:
    how it was made (weights, strict and what it left out, after-load calls, dtype run, CPU shim), for the figures'
    records."""

    model: nn.Module
    record: dict[str, Any]


def prepare(arch: ModelFile, *, device: torch.device, weights: bool = True, training: bool = False) -> Prepared:
    """Apply `arch`'s recipe on `device` (a resolved torch.device).

    weights: load the file's checkpoint (a ModelFileError when it names none); without, the after-load step still
    runs on the fresh weights, so that the network counted is the one the kit counts. training: the fresh network
    training starts from instead: no weights, no after-load step (it belongs to trained weights), float32 wherever
    it runs (a float16 file through its dtype switch: training keeps fp32 weights; autocast does the rest on a GPU).
    """
    load = weights and not training
    record: dict[str, Any] = {"weights": arch.weights if load else None, "strict": arch.strict,
                              "after_load": arch.after_load or None, "dtype": arch.dtype.value}
    with running_user_code(cpu_shim=arch.cpu_shim) as shimmed:
        network = arch.construct()
        if load:
            if not arch.weights:
                raise ModelFileError(f"{arch.label} has no weights; give a checkpoint (--weights)")
            record.update(load_weights(network, arch.state_dict(), strict=arch.strict, label=arch.label,
                                       source=arch.weights, hint=FIT_HINT if arch.strict else "",
                                       cpu_shim=arch.cpu_shim))
        if arch.after_load and not training:
            record["after_load_calls"] = after_load(network, arch.after_load, label=arch.label,
                                                    cpu_shim=arch.cpu_shim)
        network.eval()
        moved = network.to(device)  # as the kits do; a file's own .to() may take nothing else
        network = moved if isinstance(moved, nn.Module) else network
        native, record["ran_as"] = _precision(network, arch=arch, device=device, float32=training)
    record["cpu_shim"] = shimmed
    if arch.data_range == 1.0 and native is None:
        return Prepared(model=network, record=record)
    return Prepared(model=DataRange(network, arch.data_range, dtype=native), record=record)


def after_load(network: nn.Module, method: str, *, label: str, cpu_shim: bool = False) -> int:
    """Call `method()` on every module of `network` that has it, in `modules()` order as the kits loop (a module a
    parent's call removed is not visited); the number of calls. A name no module has is refused: it is a typo."""
    calls = 0
    for module in network.modules():
        step = getattr(module, method, None)
        if callable(step):
            try:
                step()
            except Exception as error:  # the file's own step
                raise ModelFileError(f"{label}: after-load step {type(module).__name__}.{method}() raised "
                                     f"{failure(error, cpu_shim=cpu_shim)}") from None
            calls += 1
    if not calls:
        raise ModelFileError(f"{label}: no module has a method {method!r} (the after-load step); check --after-load "
                             "or the manifest's after_load column")
    logger.info("%s: after-load step %s called on %d module(s)", label, method, calls)
    return calls


def _precision(network: nn.Module, *, arch: ModelFile, device: torch.device,
               float32: bool) -> tuple[torch.dtype | None, str]:
    """(the precision `DataRange` must run the network in, None for as it is; what the record says)."""
    if arch.dtype is NativeDtype.FLOAT32:
        return None, "float32"
    if device.type == "cuda" and not float32:
        network.half()
        return torch.float16, "float16, as its kit runs it"
    network.float()
    switches = _float32_switches(network)
    try:
        with torch.no_grad():
            probe = torch.rand(PROBE_SHAPE, generator=torch.Generator().manual_seed(0)).to(device)
            output = network(probe * arch.data_range)
    except Exception as error:  # the file's forward still makes half tensors
        raise ModelFileError(f"{arch.label} is written for float16 and does not run in float32 ({type(error).__name__}"
                             f": {first_line(error)}); a half forward on a CPU is about 100x slower than float32, so "
                             "it is not run here: measure it on a GPU") from None
    if output.dtype != torch.float32:
        raise ModelFileError(f"{arch.label} is written for float16 and still returns {output.dtype} in float32; "
                             "measure it on a GPU")
    where = "for training" if float32 and device.type == "cuda" else f"on {device.type}"
    return None, (f"float32 {where} (a float16 model: weights cast, {switches} dtype switch(es) of its own set to "
                  "float32)")


def _float32_switches(network: nn.Module) -> int:
    """Set every module attribute holding torch.float16 (a model's own dtype switch, e.g. `self.dtype`) to float32;
    how many there were."""
    switched = 0
    for module in network.modules():
        for name, value in list(vars(module).items()):
            if value is torch.float16:
                setattr(module, name, torch.float32)
                switched += 1
    return switched


def describe(record: dict[str, Any]) -> str:
    """One line of what a recipe did (for a command's text output; `--json` has the record itself)."""
    if not record:
        return "built as configured"
    left_out = [f"{record[kind]} {kind.replace('_', ' ')} left out" for kind in ("missing_keys", "unexpected_keys")
                if record.get(kind)]
    loading = f" ({'strict' if record['strict'] else 'non-strict'}{''.join('; ' + p for p in left_out)})" \
        if "strict" in record else ""
    parts = [f"weights {record['weights']}{loading}" if record.get("weights") else "no weights (as built)"]
    if record.get("after_load_calls"):
        parts.append(f"after-load {record['after_load']}() on {record['after_load_calls']} module(s)")
    if "ran_as" in record:
        parts.append(f"run in {record['ran_as']}")
    if record.get("cpu_shim"):
        parts.append(".cuda() a no-op (--cpu-shim)")
    return ", ".join(parts)
