"""FLOPs as the NTIRE 2024-2026 kits count them: fvcore's FlopCountAnalysis at 1 x 3 x 256 x 256.

fvcore traces the model and counts one multiply-accumulate per conv and matmul MAC; element-wise ops,
activations and interpolation count zero, so its figures sit slightly under the 2022 kit's counter
(RLFN: 19.67 G against 19.70 G). Its warnings about skipped ops are silenced: skipping them is the rule.
"""

from __future__ import annotations

import logging

import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from evaluators.complexity import seeded_rng

logger = logging.getLogger(__name__)


def count_fvcore_flops(model: nn.Module, *, input_shape: tuple[int, ...] = (3, 256, 256), seed: int = 0) -> int:
    """FLOPs of one forward pass on a 1 x `input_shape` input drawn from `seed`, as fvcore counts them (the 2024+
    kits, which trace the model itself: no copy, which some model files refuse). The model is traced in eval mode
    with torch's RNG seeded (`seeded_rng`); its training flags are put back. A model the tracer refuses (a tensor
    that requires grad held as a constant) is a ValueError in one line."""
    training = {module: module.training for module in model.modules()}
    parameter = next(model.parameters(), torch.empty(0))
    x = torch.rand(1, *input_shape, generator=torch.Generator().manual_seed(seed))
    x = x.to(device=parameter.device, dtype=parameter.dtype)
    analysis = FlopCountAnalysis(model.eval(), x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    try:
        with seeded_rng(seed, device=parameter.device), torch.inference_mode():
            total = int(analysis.total())
    except RuntimeError as error:  # the trace failed: the kits' own call fails on this model the same way
        raise ValueError(f"fvcore cannot trace {type(model).__name__} to count its FLOPs (nor can the 2024+ kits): "
                         f"{str(error).strip().splitlines()[0]}") from None
    finally:
        for module, flag in training.items():
            module.training = flag
    logger.debug("fvcore: %d FLOPs at %s", total, input_shape)
    return total
