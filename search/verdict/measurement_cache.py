"""Proxy measurements of known networks (references, kit entries), cached per machine.

Training a reference or a kit entry at the proxy budget costs tens of seconds to minutes on a CPU, and the
result depends only on the architecture, the budget, the data, the seed, the device and the torch version. So
it is stored once under `~/.cache/nas-sr/` (or `$NAS_SR_CACHE`) and read back by every later study and
benchmark on the same machine. Candidates are not cached here: the study is their storage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import train_proxy
from data import SRDataset
from evaluators.complexity import count_params
from evaluators.counter import Counter, count_complexity
from spaces import Architecture, ModelFile, build_model, check_x4, measured_form, prepare

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass(frozen=True)
class MeasurementCache:
    """One JSON file per measurement under `root`, named by the hash of everything the figure depends on."""

    root: Path

    @classmethod
    def default(cls) -> MeasurementCache:
        return cls(Path(os.environ.get("NAS_SR_CACHE") or Path.home() / ".cache" / "nas-sr" / "measurements"))

    def path(self, key: dict[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        return self.root / f"{digest}.json"

    def get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        path = self.path(key)
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return stored["record"] if stored.get("key") == key else None

    def put(self, key: dict[str, Any], record: dict[str, Any]) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.part")
        partial.write_text(json.dumps({"key": key, "record": record}, indent=1) + "\n")
        partial.replace(path)


def measurement_key(arch: Architecture, *, data: SRDataset, budget: train_proxy.Budget, seed: int,
                    device: str, what: str) -> dict[str, Any]:
    """Everything a proxy figure depends on. A model file is keyed by its code and weights' contents too."""
    key = {"version": CACHE_VERSION, "what": what, "arch": arch.to_dict(), "data": data.to_dict(),
           "budget": budget.to_dict(), "seed": seed, "device": device, "torch": torch.__version__.split("+")[0]}
    if isinstance(arch, ModelFile):
        key["files"] = _file_digests(arch)
    return key


def measure_architecture(arch: Architecture, *, data: SRDataset, budget: train_proxy.Budget, seed: int,
                         cache: MeasurementCache, device: str = "cpu", official: bool = False,
                         train: bool = True) -> dict[str, Any]:
    """Proxy curve (trained from scratch) and, with `official`, the trained weights' PSNR on `data.valid`.
    With `train` False, a measurement missing from the cache raises LookupError instead of training."""
    key = measurement_key(arch, data=data, budget=budget, seed=seed, device=device, what="proxy")
    record = cache.get(key)
    if record is None and not train:
        raise LookupError(f"{arch.describe()}: not measured yet in this setting")
    if record is None:
        check_x4(build_model(arch), label=arch.describe())
        result = train_proxy.train(arch, data=data, budget=budget, seed=seed, device=device)
        if result.status != "ok":
            raise RuntimeError(f"{arch.describe()}: proxy training {result.status}: {result.reason}")
        record = {"proxy_psnr": result.psnr, "curve": [list(point) for point in result.checkpoints],
                  "train_seconds": result.wall_seconds, "params": count_params(build_model(arch)),
                  "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}
        cache.put(key, record)
    if "activations_m" not in record:  # counted, not trained: a record cached before the count was kept gets it
        record = {**record, "activations_m": count_activations_m(arch)}
        cache.put(key, record)
    if official and isinstance(arch, ModelFile):
        record = {**record, "official_psnr": official_psnr(arch, data=data, cache=cache)}
    return record


def count_activations_m(arch: Architecture) -> float:
    """The architecture's activations [M] as every edition's kit counts them (inference form; a model file after its
    recipe)."""
    return count_complexity(measured_form(arch).model, counter=Counter.NTIRE2022).activations_m


def official_psnr(arch: ModelFile, *, data: SRDataset, cache: MeasurementCache) -> float:
    """The challenge PSNR of the file's trained weights on `data.valid` (fp32, CPU, cached)."""
    key = {"version": CACHE_VERSION, "what": "official", "arch": arch.to_dict(), "files": _file_digests(arch),
           "data": data.to_dict(), "torch": torch.__version__.split("+")[0]}
    record = cache.get(key)
    if record is None:
        record = {"psnr": train_proxy.validation_psnr(prepare(arch, device=torch.device("cpu")).model, data.valid,
                                                      device="cpu")}
        cache.put(key, record)
    return record["psnr"]


def _file_digests(arch: ModelFile) -> dict[str, str]:
    paths = [Path(arch.path)] + ([Path(arch.weights)] if arch.weights else [])
    files = [p for path in paths for p in (sorted(path.rglob("*.py")) if path.is_dir() else [path]) if p.is_file()]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in files}
