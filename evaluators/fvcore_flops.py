"""FLOPs as the NTIRE 2024-2026 kits count them: fvcore's FlopCountAnalysis at 1 x 3 x 256 x 256.

fvcore traces the model and counts one multiply-accumulate per conv and matmul MAC; element-wise ops,
activations and interpolation count zero, so its figures sit slightly under the 2022 kit's counter
(RLFN: 19.67 G against 19.70 G). Its warnings about skipped ops are silenced: skipping them is the rule.
"""

from __future__ import annotations

import copy
import logging

import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

logger = logging.getLogger(__name__)


def count_fvcore_flops(model: nn.Module, *, input_shape: tuple[int, ...] = (3, 256, 256)) -> int:
    """FLOPs of one forward pass on a 1 x `input_shape` input, as fvcore counts them (the 2024+ kits)."""
    traced = copy.deepcopy(model).eval()
    parameter = next(traced.parameters(), torch.empty(0))
    x = torch.rand(1, *input_shape, generator=torch.Generator().manual_seed(0))
    x = x.to(device=parameter.device, dtype=parameter.dtype)
    analysis = FlopCountAnalysis(traced, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.inference_mode():
        total = int(analysis.total())
    logger.debug("fvcore: %d FLOPs at %s", total, input_shape)
    return total
