"""Checkpoints: reading a state dict from a file, and loading it into a network the way the kits do.

One reader and one loader for model files, kit entries and configs (`--weights`), so that an empty, truncated
or text file, a checkpoint without the named entry and weights that do not fit the network each give one line
naming the file and what to do, whatever the model.
"""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spaces.errors import ModelFileError, first_line
from spaces.user_code import failure

logger = logging.getLogger(__name__)

# Keys under which training frameworks (BasicSR, KAIR, plain scripts) nest the state dict of a checkpoint.
NESTED_STATE_KEYS = ("params_ema", "params", "state_dict", "model_state_dict", "net", "model")
# torch.save writes a zip archive (PK...) since torch 1.6, a pickle (protocol 2: 0x80 0x02) before.
ZIP_MAGIC, PICKLE_MAGIC = b"PK", b"\x80"
# One part of torch's load_state_dict error: (what it lists, how the summary names it).
KEY_ERRORS = (("Missing key(s)", "missing key(s)"), ("Unexpected key(s)", "unexpected key(s)"))


def read_state_dict(path: str | Path, *, state_key: str | None = None,
                    strip_prefix: str | None = None) -> dict[str, torch.Tensor]:
    """The checkpoint's state dict: the entry `state_key` (else the first of NESTED_STATE_KEYS holding one),
    `strip_prefix` removed from every key (`module.` when every key has it and none is given)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"weights file {path} not found")
    checkpoint = _torch_load(path)
    key = state_key or next((k for k in NESTED_STATE_KEYS if isinstance(checkpoint, dict)
                             and isinstance(checkpoint.get(k), dict)), None)
    if key is not None:
        if not isinstance(checkpoint, dict) or key not in checkpoint:
            raise ModelFileError(f"weights {path} have no entry {key!r}; entries: {_entries(checkpoint)} "
                                 "(name the right one with --state-key)")
        checkpoint = checkpoint[key]
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ModelFileError(f"weights {path} hold no state dict of tensors; entries: {_entries(checkpoint)} "
                             "(name the entry with --state-key)")
    prefix = strip_prefix
    if prefix is None and checkpoint and all(k.startswith("module.") for k in checkpoint):
        prefix = "module."  # saved from DataParallel
    return {k.removeprefix(prefix) if prefix else k: v for k, v in checkpoint.items()}


def load_weights(network: nn.Module, state: dict[str, torch.Tensor], *, strict: bool, label: str,
                 source: str | Path, hint: str = "", cpu_shim: bool = False) -> dict[str, int]:
    """`network.load_state_dict(state, strict=strict)`, as the kits call it: a file's own override runs (it may
    fuse branches while loading, and may return None). Returns what a non-strict load left out (counts; empty
    when nothing), and logs it. `hint` ends the error of weights that do not fit; `cpu_shim` says whether the
    override ran with `.cuda()` a no-op (for the error's advice)."""
    try:
        result = network.load_state_dict(state, strict=strict)
    except RuntimeError as error:  # torch's own check: keys or shapes
        raise ModelFileError(f"{label}: weights {source} do not fit the model: {_mismatch_summary(error)}"
                             f"{f' ({hint})' if hint else ''}") from None
    except Exception as error:  # a model file's own load_state_dict
        raise ModelFileError(f"{label}: load_state_dict with weights {source} raised "
                             f"{failure(error, cpu_shim=cpu_shim)}") from None
    left_out = {"missing_keys": list(getattr(result, "missing_keys", None) or []),
                "unexpected_keys": list(getattr(result, "unexpected_keys", None) or [])}
    if not any(left_out.values()):
        return {}
    logger.warning("%s: non-strict load of %s left out %s", label, source,
                   "; ".join(_key_summary(kind, keys) for kind, keys in left_out.items() if keys))
    return {kind: len(keys) for kind, keys in left_out.items()}


def _torch_load(path: Path) -> Any:
    with path.open("rb") as handle:
        head = handle.read(2)
    if not head:
        raise ModelFileError(f"weights {path} are an empty file")
    if head.startswith(ZIP_MAGIC) and not zipfile.is_zipfile(path):
        raise ModelFileError(f"weights {path} are a truncated or damaged torch.save archive (its zip directory is "
                             "missing): save or download the file again")
    if not head.startswith((ZIP_MAGIC, PICKLE_MAGIC)):
        raise ModelFileError(f"weights {path} are not a PyTorch checkpoint (torch.save writes a zip archive or a "
                             f"pickle; this file starts with {head!r})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickled objects beyond tensors (the user's checkpoint, like their code), or damage
        if "weights_only" not in str(error) and "Unsupported" not in str(error):
            raise ModelFileError(f"cannot read weights {path}: {type(error).__name__}: {first_line(error)}") from None
    logger.warning("weights %s hold pickled Python objects; loading them with weights_only=False", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a pickle that needs the user's classes, or a damaged file
        raise ModelFileError(f"cannot read weights {path}: {type(error).__name__}: {first_line(error)}") from None


def _mismatch_summary(error: RuntimeError) -> str:
    """torch's many-line load_state_dict error as one clause per kind: missing and unexpected keys, shape mismatches."""
    text = str(error)
    parts = []
    for listed, kind in KEY_ERRORS:
        match = re.search(re.escape(listed) + r" in state_dict: (.*?)\.\s*$", text, flags=re.MULTILINE)
        if match:
            parts.append(_key_summary(kind, re.findall(r'"([^"]+)"', match[1])))
    mismatches = re.findall(r"size mismatch for (\S+): copying a param with shape (.*?) from checkpoint, the shape "
                            r"in current model is (.*?)\.\s*$", text, flags=re.MULTILINE)
    if mismatches:
        name, saved, current = mismatches[0]
        parts.append(f"{len(mismatches)} shape mismatch(es), e.g. {name}: {saved} in the file, {current} in the model")
    return "; ".join(parts) or first_line(error)


def _key_summary(kind: str, keys: list[str], shown: int = 4) -> str:
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return f"{len(keys)} {kind} {', '.join(keys[:shown])}{more}"


def _entries(checkpoint: Any) -> str:
    return ", ".join(map(str, list(checkpoint)[:8])) if isinstance(checkpoint, dict) else type(checkpoint).__name__
