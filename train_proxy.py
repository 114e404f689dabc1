"""Proxy training of one architecture: a short seeded L1 training, then the challenge's PSNR on validation images.

The search ranks candidates by this proxy PSNR, so it must be cheap, comparable between candidates
(same budget, data and seed) and reproducible: on CPU the same seed gives the same PSNR and weights
bit for bit, and the patch stream is the same on every machine. Failures (NaN/inf loss, out of memory)
are results, not crashes. The command line also trains an exported winner longer (`--budget full`).

    python train_proxy.py --arch imdn --budget quick
    python train_proxy.py --arch results/<study>/export/<name>.json --data DIV2K --budget full --device cuda
"""

from __future__ import annotations

import omp_wait  # noqa: F401  (first: OpenMP's wait policy, before torch is imported)
import argparse
import dataclasses
import json
import math
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from data import (SCALE, ImagePair, SRDataset, bicubic_upscale, check_patch_size, check_validation_sizes,
                  load_dataset, patch_batches, to_tensor, to_uint8_tensor)
from data.patches import LoaderSharedMemoryError, loader_workers
from evaluators.cuda import is_out_of_memory, native_bf16, release_memory, tf32_convs
from evaluators.device import resolve_device
from evaluators.quality import average_psnr, mean_psnr, psnr_from_squared_error, quantize, squared_error
from spaces import REFERENCES, ArchConfig, Architecture, build_model, check_x4
from spaces.resolve import ModelOptions, check_options_apply, resolve_architecture

SCHEDULES = ("cosine", "halving")
LOSS_CHECK_EVERY = 10  # steps between reads of the loss (each read waits for the GPU)
CheckpointCallback = Callable[[int, float], "bool | None"]


@dataclass(frozen=True)
class Budget:
    """How long and how one proxy training runs.

    lr_patch is the LR patch side (the HR patch is 4x). `checkpoints` validations are spread evenly
    over the run, the last at the final step (plus one before training). Schedules: "cosine" decays
    the learning rate to 0; "halving" halves it at every fifth of the run (RLFN's 1M-step recipe).
    """

    name: str
    iterations: int
    batch_size: int
    lr_patch: int
    lr: float
    checkpoints: int = 4
    schedule: str = "cosine"

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_size", "lr_patch", "checkpoints"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"budget {name} must be a positive integer, got {value!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr < math.inf:
            raise ValueError(f"budget lr must be a positive number, got {self.lr!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"budget schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}")

    def checkpoint_steps(self) -> tuple[int, ...]:
        """The steps after which the model is validated (the last one is `iterations`)."""
        count = self.checkpoints
        return tuple(sorted({math.ceil(self.iterations * k / count) for k in range(1, count + 1)}))

    def lr_factor(self, step: int) -> float:
        """The learning rate at `step` (0-based) as a fraction of `lr`."""
        if self.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * step / self.iterations))
        return 0.5 ** (step * 5 // self.iterations)

    def replace(self, **changes: Any) -> Budget:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Sized on 2 CPU cores (torch 2.13, 2 threads, embedded data). quick: 1,200 patches; IMDN trains at ~30
# patches/s there (~41 s a run), RLFN ~68/s (~18 s). lr 2e-3 is IMDN's best at this length (3e-3 and
# 4e-3 lose 0.2-2.8 dB and reorder IMDN/RFDN), and keeps the references' published order.
BUDGETS: dict[str, Budget] = {
    # Seconds: for tests and trying the pipeline.
    "smoke": Budget("smoke", iterations=12, batch_size=4, lr_patch=16, lr=2e-3, checkpoints=2),
    # The default search budget: ~25 candidates in ~15 minutes on 2 CPU cores.
    "quick": Budget("quick", iterations=150, batch_size=8, lr_patch=32, lr=2e-3, checkpoints=4),
    # Minutes on a GPU: a steadier ranking of a front, or a search with a GPU.
    "standard": Budget("standard", iterations=10_000, batch_size=32, lr_patch=48, lr=1e-3, checkpoints=10),
    # DIV2K practice (RLFN): LR patch 64, batch 64, lr 5e-4 halved every 200k steps of 1M.
    "full": Budget("full", iterations=1_000_000, batch_size=64, lr_patch=64, lr=5e-4, checkpoints=20,
                   schedule="halving"),
}


def get_budget(budget: str | Budget, *, iterations: int | None = None, batch_size: int | None = None,
               lr_patch: int | None = None, lr: float | None = None) -> Budget:
    """A preset (by name) or a given Budget, with explicit overrides; a changed preset is named "<name>-custom"."""
    if isinstance(budget, str):
        if budget not in BUDGETS:
            raise ValueError(f"unknown budget {budget!r}; choose one of: {', '.join(BUDGETS)}")
        budget = BUDGETS[budget]
    changes = {name: value for name, value in
               (("iterations", iterations), ("batch_size", batch_size), ("lr_patch", lr_patch), ("lr", lr))
               if value is not None}
    if changes:
        budget = budget.replace(name=f"{budget.name.removesuffix('-custom')}-custom", **changes)
    return budget


@dataclass(frozen=True)
class ProxyResult:
    """One proxy training: its PSNR curve, speed, outcome, how it was measured, and the trained weights.

    status: "ok", "stopped" (the checkpoint callback asked) or "failed" (see `reason`; psnr and
    state_dict are then None). psnr: the last checkpoint's mean challenge PSNR (dB) on the validation
    images. checkpoints: (step, psnr) pairs, the first at step 0 (before training). iterations:
    the steps run (for a failed run, the step at which the failure was seen). images_per_s: training
    patches per second, validation time excluded. device / precision / channels_last / data: how it
    was measured.
    """

    status: str
    reason: str | None
    psnr: float | None
    checkpoints: tuple[tuple[int, float], ...]
    iterations: int
    wall_seconds: float
    train_seconds: float
    images_per_s: float
    budget: Budget
    seed: int
    device: str
    precision: str
    channels_last: bool
    data: dict[str, Any]
    state_dict: dict[str, torch.Tensor] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the weights, JSON-ready."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "state_dict"}
        values["checkpoints"] = [list(point) for point in self.checkpoints]
        values["budget"] = self.budget.to_dict()
        return values


class NonFiniteError(FloatingPointError):
    """The loss or the model's output became NaN or infinite."""


def train(config: Architecture, *, data: SRDataset, budget: str | Budget = "quick", seed: int = 0,
          device: str | torch.device | None = None, checkpoint_callback: CheckpointCallback | None = None,
          progress: bool = False, amp: bool = True, channels_last: bool = True,
          workers: int | None = None) -> ProxyResult:
    """Train `config` from scratch for `budget` on `data.train`; validate on `data.valid` at checkpoints.

    checkpoint_callback(step, psnr) is called at every checkpoint after step 0; returning True stops
    the run (status "stopped"). On CUDA, `amp` (bf16 autocast, or fp16 with a GradScaler where bf16
    is not native: before Ampere) and `channels_last` are used unless turned off; on CPU training is fp32
    and deterministic. `workers`: loader worker processes (default `data.patches.loader_workers`: none on
    CPU, up to 4 on CUDA); the batches do not depend on it.
    """
    budget = get_budget(budget)
    device = resolve_device(device)
    check_data(data, budget=budget)
    on_cuda = device.type == "cuda"
    autocast_dtype = _autocast_dtype(device) if amp else None
    # channels_last for our networks only: a model file runs as its kit runs it (and its .to() may be its own).
    memory_format = torch.channels_last if on_cuda and channels_last and isinstance(config, ArchConfig) \
        else torch.contiguous_format
    started = time.perf_counter()

    torch.manual_seed(seed)
    model = build_model(config, device=device)
    if memory_format == torch.channels_last:
        model = model.to(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=budget.lr, betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, budget.lr_factor)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)
    batches = patch_batches(data.train, batch_size=budget.batch_size, lr_patch=budget.lr_patch, seed=seed,
                            device=device, workers=workers)
    checkpoint_steps = set(budget.checkpoint_steps())

    valid_seconds = 0.0

    def checkpoint() -> float:
        nonlocal valid_seconds
        _synchronize(device)
        begin = time.perf_counter()
        psnr = validation_psnr(model, data.valid, device=device, memory_format=memory_format)
        valid_seconds += time.perf_counter() - begin
        return psnr

    curve: list[tuple[int, float]] = []
    status, reason, step, out_of_memory = "ok", None, 0, False
    bar = tqdm(total=budget.iterations, desc=config.describe(), disable=not progress, leave=False)
    try:
        curve.append((0, checkpoint()))
        model.train()
        for step in range(1, budget.iterations + 1):
            lr_u8, hr_u8 = next(batches)
            loss = _train_step(model, optimizer, scaler, lr_u8, hr_u8, device=device,
                               autocast_dtype=autocast_dtype, memory_format=memory_format)
            scheduler.step()
            bar.update()
            if step % LOSS_CHECK_EVERY == 0 or step in checkpoint_steps:
                value = loss.item()
                if not math.isfinite(value):
                    raise NonFiniteError(f"loss became {value} at step {step}")
                bar.set_postfix(loss=f"{value:.4f}", psnr=f"{curve[-1][1]:.2f}")
            if step in checkpoint_steps:
                curve.append((step, checkpoint()))
                if checkpoint_callback is not None and checkpoint_callback(step, curve[-1][1]):
                    status, reason = "stopped", f"stopped by the checkpoint callback at step {step}"
                    break
    except NonFiniteError as error:
        status, reason = "failed", str(error)
    except RuntimeError as error:  # torch.cuda.OutOfMemoryError is a RuntimeError too
        if not is_out_of_memory(error):
            raise
        status, reason, out_of_memory = "failed", f"out of memory at step {step}: {str(error).splitlines()[0]}", True
    finally:
        bar.close()
    if out_of_memory:
        # Only now, the except block left: its traceback held the failed step's activations.
        del model, optimizer, scheduler, batches
        release_memory(device)

    wall = time.perf_counter() - started
    train_seconds = max(wall - valid_seconds, 1e-9)
    return ProxyResult(
        status=status,
        reason=reason,
        psnr=curve[-1][1] if status != "failed" else None,
        checkpoints=tuple(curve),
        iterations=step,
        wall_seconds=wall,
        train_seconds=train_seconds,
        images_per_s=step * budget.batch_size / train_seconds,
        budget=budget,
        seed=seed,
        device=_describe_device(device),
        precision=_describe_precision(autocast_dtype, device=device),
        channels_last=memory_format == torch.channels_last,
        data=data.to_dict(),
        state_dict=None if status == "failed" else {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    )


def check_data(data: SRDataset, *, budget: Budget) -> None:
    """Refuse images too small for `budget`'s patches or for the challenge's PSNR, before any training."""
    check_patch_size(data.train, lr_patch=budget.lr_patch)
    check_validation_sizes(data.valid)


@torch.inference_mode()
def validation_psnr(model: nn.Module, pairs: Iterable[ImagePair], *, device: str | torch.device | None = None,
                    memory_format: torch.memory_format = torch.contiguous_format) -> float:
    """Mean challenge PSNR (dB) of `model` on whole validation images, fp32; NonFiniteError on NaN/inf output.

    Scored on the device, one image at a time: the uint8 LR and HR go there, an exact integer error sum
    per image stays there, and the host waits once, at the end. (Copying each float output back and
    scoring it on the CPU cost 0.5 s a DIV2K image, minutes a checkpoint on the 100 validation images.)
    """
    device = resolve_device(device)
    pairs = list(pairs)
    check_validation_sizes(pairs)
    was_training = model.training
    model.eval()
    finite, errors = [], []
    try:
        for pair in pairs:
            lr = to_uint8_tensor(pair.lr, device=device).unsqueeze(0).float().div_(255.0)
            sr = model(lr.contiguous(memory_format=memory_format)).float()
            finite.append(torch.isfinite(sr).all())
            errors.append(squared_error(quantize(sr), to_uint8_tensor(pair.hr, device=device)))
    finally:
        model.train(was_training)
    bad = (~torch.stack(finite)).nonzero().flatten().tolist()
    if bad:
        raise NonFiniteError(f"the model's output on validation image {pairs[bad[0]].name} is not finite")
    totals = torch.stack([total for total, _ in errors]).tolist()
    return average_psnr([psnr_from_squared_error(total, count) for total, (_, count) in zip(totals, errors)])


def bicubic_baseline_psnr(data: SRDataset) -> float:
    """Mean challenge PSNR of MATLAB-compatible bicubic x4 upscaling of the validation LR images (no network).

    This is the "Bicubic" row of SR papers (MATLAB imresize, Keys a = -0.5), not torch's bicubic (a = -0.75).
    """
    return mean_psnr((to_tensor(bicubic_upscale(pair.lr, scale=SCALE)), to_tensor(pair.hr)) for pair in data.valid)


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                lr_u8: torch.Tensor, hr_u8: torch.Tensor, *, device: torch.device,
                autocast_dtype: torch.dtype | None, memory_format: torch.memory_format) -> torch.Tensor:
    """One Adam step on an L1 loss; returns the loss (on the device, not synchronised)."""
    lr = lr_u8.to(device, non_blocking=True).float().div_(255.0).contiguous(memory_format=memory_format)
    hr = hr_u8.to(device, non_blocking=True).float().div_(255.0).contiguous(memory_format=memory_format)
    with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
        sr = model(lr)
    loss = F.l1_loss(sr.float(), hr)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


def _autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU computes it natively, else fp16 (with a GradScaler); None (fp32) off CUDA."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if native_bf16(device) else torch.float16


def _describe_precision(dtype: torch.dtype | None, *, device: torch.device) -> str:
    if dtype is None:
        return "fp32 (TF32 convolutions)" if tf32_convs(device, torch.float32) else "fp32"
    return "bf16 autocast" if dtype == torch.bfloat16 else "fp16 autocast + GradScaler"


def _describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"{device.type} ({torch.get_num_threads()} threads)"


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _ArgumentParser(argparse.ArgumentParser):
    """argparse, but bad arguments give one `error: ...` line (exit 2) like every other input error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message}\n")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _ArgumentParser(description="Proxy-train one x4 SR architecture and write model.pth, config.json "
                                         "and metrics.json.")
    parser.add_argument("--arch", required=True,
                        help=f"a reference ({', '.join(REFERENCES)}), an ArchConfig JSON file, a model file "
                             "path/to/models/x.py:Factory (its code runs), or EDITION:ID with --kit")
    parser.add_argument("--kit", help="a challenge kit folder (layout of ntire-kits) for EDITION:ID")
    parser.add_argument("--model-args", help="a model file's constructor arguments as JSON")
    parser.add_argument("--data-range", type=float, help="a model file's data range: 1 (default) or 255")
    parser.add_argument("--dtype", help="float16 for a model file written for half precision: trained in float32 "
                                        "through its own dtype switch (default: the manifest's, else float32)")
    parser.add_argument("--cpu-shim", action="store_true", default=None,
                        help="make .cuda() a no-op while a model file's code runs on a machine without CUDA")
    parser.add_argument("--data", help="a DIV2K or DIV2K_LSDIR folder (default: the embedded scikit-image photographs)")
    parser.add_argument("--train-limit", type=int, help="use the first N training images of --data")
    parser.add_argument("--valid-limit", type=int, help="use the first N validation images of --data")
    parser.add_argument("--budget", default="quick", choices=list(BUDGETS))
    parser.add_argument("--iterations", type=int, help="override the budget's training steps")
    parser.add_argument("--batch-size", type=int, help="override the budget's batch size")
    parser.add_argument("--patch", type=int, help="override the budget's LR patch side (HR patch is 4x)")
    parser.add_argument("--lr", type=float, help="override the budget's learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    parser.add_argument("--no-amp", action="store_true", help="train in fp32 on CUDA (no autocast)")
    parser.add_argument("--no-channels-last", action="store_true", help="keep NCHW memory layout on CUDA")
    parser.add_argument("--out", type=Path, help="output folder (default: results/train/<arch>-<budget>-seed<k>/)")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty output folder")
    return parser.parse_args(argv)


def _load_arch(args: argparse.Namespace) -> tuple[str, Architecture]:
    """(label, architecture) of --arch: a reference, a config JSON, a model file or a kit entry."""
    options = ModelOptions(kit=args.kit, model_args=args.model_args, data_range=args.data_range, dtype=args.dtype,
                           cpu_shim=args.cpu_shim)
    label, arch = resolve_architecture(args.arch, options=options)
    check_options_apply(options, [arch], config_weights=False)
    check_x4(build_model(arch), label=label)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label), arch


def _check_counts(args: argparse.Namespace) -> None:
    if args.seed < 0:
        raise ValueError(f"--seed must be 0 or more, got {args.seed}")
    for flag, value in (("--train-limit", args.train_limit), ("--valid-limit", args.valid_limit)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be positive, got {value}")
    if args.data is None and (args.train_limit or args.valid_limit):
        raise ValueError("--train-limit and --valid-limit need --data (the embedded set is fixed)")


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        _check_counts(args)
        label, config = _load_arch(args)
        budget = get_budget(args.budget, iterations=args.iterations, batch_size=args.batch_size,
                            lr_patch=args.patch, lr=args.lr)
        device = resolve_device(args.device)
        out = args.out or Path("results") / "train" / f"{label}-{budget.name}-seed{args.seed}"
        if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
            raise ValueError(f"output folder {out} is not empty; pass --overwrite or choose another --out")
        loader_workers(device)  # a bad NAS_SR_LOADER_WORKERS is refused before the data is read
        data = load_dataset(args.data, train_limit=args.train_limit, valid_limit=args.valid_limit)
        check_data(data, budget=budget)
        out.mkdir(parents=True, exist_ok=True)
    except (ValueError, OSError) as error:  # DataError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        result = train(config, data=data, budget=budget, seed=args.seed, device=device, progress=True,
                       amp=not args.no_amp, channels_last=not args.no_channels_last)
    except LoaderSharedMemoryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    bicubic = bicubic_baseline_psnr(data)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    metrics = {"arch": label, **result.to_dict(), "bicubic_psnr": bicubic, "config": config.to_dict()}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if result.state_dict is None:
        print(f"error: training failed: {result.reason} (metrics in {out})", file=sys.stderr)
        return 1
    torch.save(result.state_dict, out / "model.pth")
    print(f"{label} {budget.name} seed {args.seed}: PSNR {result.psnr:.2f} dB (bicubic {bicubic:.2f} dB), "
          f"{result.iterations} steps in {result.wall_seconds:.1f} s, {result.images_per_s:.1f} patches/s "
          f"on {result.device} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
