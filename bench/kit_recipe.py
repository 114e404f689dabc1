"""The kits' own recipe, applied as their `test_demo.py` applies it: the oracle of `bench.counter_parity`.

Written out from test_demo.py's steps (select_model, run, main), independently of the toolkit's recipe
(`spaces.recipe`), so that the parity bench compares two paths: the constructor, `model.load_state_dict(
torch.load(path)[state_key] with the prefix replaced, strict=...)`, the after-load loop, `eval()`, `requires_grad`
off, `model.to(device)`; the validation forwards through the kit's own `forward` and `utils_image` (PSNR on the
embedded photographs); then the kit's counter as its main() calls it (utils/model_summary.py; fvcore's
FlopCountAnalysis for FLOPs from 2024) and params summed as it sums them. The kit's files are imported from the
kit folder, as a user's clone would be.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from data import ImagePair
from spaces.kit import KitEntry
from spaces.user_code import running_user_code

COMPLEXITY_INPUT = (3, 256, 256)  # test_demo.py's input_dim
FVCORE_FROM = 2024  # the kits count FLOPs with fvcore from this edition on
# Modules the kits' utils_image imports for helpers the PSNR never calls (make_grid, plots), absent from this machine.
STAND_INS = {"torchvision": (), "torchvision.utils": ("make_grid",), "matplotlib": (), "matplotlib.pyplot": ()}


def kit_figures(entry: KitEntry, *, kit_dir: Path, pairs: Sequence[ImagePair], cpu_shim: bool) -> dict[str, Any]:
    """PSNR on `pairs`, then params, FLOPs, activations and #conv, as the entry's kit computes them on CPU (with
    `.cuda()` a no-op, as users run CUDA-bound entries there, where `cpu_shim`)."""
    demo = import_test_demo(kit_dir / str(entry.edition))
    recipe = entry.model
    with running_user_code(cpu_shim=cpu_shim):
        model = recipe.construct()
        state = torch.load(recipe.weights, map_location="cpu", weights_only=False)
        if recipe.state_key:
            state = state[recipe.state_key]
        if recipe.strip_prefix:
            state = {key.replace(recipe.strip_prefix, ""): value for key, value in state.items()}
        model.load_state_dict(state, strict=recipe.strict)
        if recipe.after_load:
            for module in model.modules():
                if hasattr(module, recipe.after_load):
                    getattr(module, recipe.after_load)()
        model.eval()
        for parameter in model.parameters():
            parameter.requires_grad = False
        model = model.to(torch.device("cpu"))
        psnr = [_psnr(demo, model, pair, data_range=recipe.data_range, tile=entry.tile) for pair in pairs]
        activations, convs = demo.get_model_activation(model, COMPLEXITY_INPUT)
        if entry.edition >= FVCORE_FROM:
            flops = demo.FlopCountAnalysis(model, torch.rand(1, *COMPLEXITY_INPUT)).total()
        else:
            flops = demo.get_model_flops(model, COMPLEXITY_INPUT, False)
    return {"psnr": sum(psnr) / len(psnr), "params": sum(p.numel() for p in model.parameters()), "flops": int(flops),
            "activations": int(activations), "convs": int(convs)}


def _psnr(demo: ModuleType, model: torch.nn.Module, pair: ImagePair, *, data_range: float, tile: int | None) -> float:
    """One image of test_demo.run: the kit's tensor conversions, forward (tiled where the kit tiles) and PSNR."""
    util = demo.util
    img_lr = util.uint2tensor4(pair.lr, data_range)
    img_sr = util.tensor2uint(demo.forward(img_lr, model, tile), data_range)
    img_hr = util.modcrop(pair.hr.squeeze(), 4)
    return float(util.calculate_psnr(img_sr, img_hr, border=4))


def import_test_demo(edition_dir: Path) -> ModuleType:
    """The edition's test_demo.py imported from the kit (its `utils` package first on sys.path; another edition's
    `utils` forgotten first), with stand-ins for what its utils_image imports but the PSNR does not use."""
    for name in [n for n in sys.modules if n == "utils" or n.startswith("utils.")]:
        del sys.modules[name]
    sys.path.insert(0, str(edition_dir))
    try:
        with _stand_ins():
            spec = importlib.util.spec_from_file_location(f"ntire_test_demo_{edition_dir.name}",
                                                          edition_dir / "test_demo.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(edition_dir))
    return module


@contextlib.contextmanager
def _stand_ins() -> Iterator[None]:
    """Empty modules in place of STAND_INS that are not installed, removed again after the import (a model file
    that needs torchvision must still fail to import it)."""
    added = [name for name in STAND_INS if name not in sys.modules
             and importlib.util.find_spec(name.split(".")[0]) is None]
    for name in added:
        module = types.ModuleType(name)
        for attribute in STAND_INS[name]:
            setattr(module, attribute, _not_here)
        sys.modules[name] = module
    try:
        yield
    finally:
        for name in added:
            del sys.modules[name]


def _not_here(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("a stand-in of bench.kit_recipe: not installed on this machine")
