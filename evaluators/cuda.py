"""What the measurements and the trainer must know about a CUDA device: native bf16, TF32, out-of-memory errors.

Each rule lives here once, so that proxy training, latency and memory decide alike.
"""

from __future__ import annotations

import gc

import torch

# cuDNN's TF32 convolutions need tensor cores of compute capability 8.0 (Ampere) or later.
TF32_CAPABILITY = (8, 0)


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 natively: a CUDA GPU of Ampere or later.

    `torch.cuda.is_bf16_supported()` also says yes where bf16 is only emulated (T4, V100), and cuDNN has
    no bf16 convolutions there: training and timing would fail or mean nothing.
    """
    return device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)


def tf32_convs(device: torch.device, dtype: torch.dtype) -> bool | None:
    """Whether fp32 convolutions on `device` run in TF32 (cuDNN's default on Ampere and later); None off CUDA."""
    if device.type != "cuda":
        return None
    return (dtype == torch.float32 and bool(torch.backends.cudnn.allow_tf32)
            and torch.cuda.get_device_capability(device) >= TF32_CAPABILITY)


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` says the device (CUDA) or the host (CPU allocator) ran out of memory."""
    text = str(error).lower()
    return isinstance(error, torch.cuda.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text))


def release_memory(device: torch.device) -> None:
    """Give the cached memory of a computation that ran out of it back to the driver, so the next one starts clean.

    Call it after the except block that caught the error: until then its traceback holds the tensors.
    """
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
