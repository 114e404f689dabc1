"""Verify the CUDA path end to end in minutes, the first time a GPU is at hand.

    python3 -m bench.gpu_check            # one GPU: under 10 minutes; writes bench/results/gpu_check.json

Steps (each records its figures and passes or fails on its own; an error in one does not stop the others):
versions and device; the CUDA tests; `profile imdn rfdn rlfn span` in fp32, fp16 and bf16 (IMDN's ratio to
itself 1.00 +- 0.03, memory the same across repeats and with other tensors alive); quick proxy training on
CUDA with and without AMP against the CPU run (within 0.2 dB) and a rerun (within 0.05 dB); an out-of-memory
candidate recorded as such, its memory released; one checkpoint's validation on 100 DIV2K-size images
against a quick trial (under 10%); a smoke search with `--workers 2` (one lock file per GPU, both workers
busy); export and ONNX of a trial trained there. Without CUDA, every CUDA step says "not run: no CUDA device".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.common import REPO, machine, write_result

NO_CUDA = "not run: no CUDA device"
ARCHS = ("imdn", "rfdn", "rlfn", "span")
TRAIN_ARCH = "imdn"  # the baseline: the validation target of step 6 is against its quick trial
PSNR_AGREEMENT_DB, RERUN_DB, RATIO_TOLERANCE = 0.2, 0.05, 0.03
VALIDATION_SHARE = 0.10  # one checkpoint's validation on 100 DIV2K images, against a quick trial
OOM_INPUT = (3, 16000, 16000)  # IMDN's 64-channel maps at this size are 65 GB each: no GPU holds two
OOM_BATCH = 8192  # quick training of IMDN on 8192 64x64 LR patches: hundreds of GB of activations
RELEASED_MB = 64  # what may stay allocated after an out-of-memory error (library workspaces made on first use)


@dataclass(frozen=True)
class Context:
    work: Path  # a scratch folder for this run
    device: torch.device
    facts: dict[str, Any]  # what earlier steps found (e.g. the quick trial's seconds)


Step = Callable[[Context], dict[str, Any]]


def versions(context: Context) -> dict[str, Any]:
    """Versions and the device: what every other figure was measured with."""
    info: dict[str, Any] = {"passed": True, **machine(), "cuda": torch.version.cuda,
                            "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None}
    if context.device.type == "cuda":
        from evaluators.cuda import native_bf16, tf32_convs
        info.update(gpu=torch.cuda.get_device_name(context.device),
                    capability=list(torch.cuda.get_device_capability(context.device)),
                    native_bf16=native_bf16(context.device), tf32_fp32_convs=tf32_convs(context.device, torch.float32),
                    gpus=torch.cuda.device_count(), memory_gb=torch.cuda.get_device_properties(0).total_memory / 1e9)
    return info


def cuda_tests(context: Context) -> dict[str, Any]:
    """The suite's CUDA tests (those named for CUDA, and tests/test_evaluators_cuda.py), none skipped (but the
    one that checks the error where CUDA is missing)."""
    done = _run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-k",
                 "cuda and not without_cuda", "tests/"], timeout=240,
                env={"TMPDIR": str(_folder(context.work / "test_locks"))})
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
    return {"passed": done.returncode == 0 and "skipped" not in summary, "summary": summary}


def profile(context: Context) -> dict[str, Any]:
    """The model summary of the references in each dtype; IMDN against itself; memory under other tensors."""
    from evaluators.cuda import native_bf16
    from evaluators.latency import resolve_dtype
    from evaluators.memory import measure_memory
    from evaluators.counter import Counter
    from evaluators.profile import profile_models
    from spaces import build_model, get_reference, inference_form

    models = [(name, inference_form(build_model(get_reference(name)))) for name in ARCHS]
    imdn = models[0][1]
    result: dict[str, Any] = {"dtypes": {}}
    checks = []
    for dtype in ("fp32", "fp16", "bf16"):
        if dtype == "bf16" and not native_bf16(context.device):
            with contextlib.suppress(ValueError):
                resolve_dtype(dtype, context.device)
                checks.append(False)  # bf16 must be refused where it is emulated
            result["dtypes"][dtype] = "refused: emulated on this GPU"
            continue
        with _lock_dir(context):
            records = profile_models(models, reference=imdn, counter=Counter.NTIRE2022, device=context.device,
                                     dtype=dtype)
        memory = [measure_memory(imdn, device=context.device, input_shape=None, dtype=dtype).peak_mb for _ in range(3)]
        alive = torch.empty(1024**3, dtype=torch.uint8, device=context.device)  # 1 GiB of someone else's tensors
        memory.append(measure_memory(imdn, device=context.device, input_shape=None, dtype=dtype).peak_mb)
        del alive
        ratio = records[0]["latency_ratio"]
        stable = max(memory) - min(memory) <= 0.01 * max(memory)
        checks += [abs(ratio - 1.0) <= RATIO_TOLERANCE, stable]
        result["dtypes"][dtype] = {
            "imdn_ratio_to_itself": ratio, "memory_repeats_mb": memory, "memory_stable": stable,
            "settings": records[0]["settings"],
            "rows": [{k: r[k] for k in ("name", "params", "flops_g", "latency_ms", "latency_ratio", "memory_mb")}
                     for r in records]}
    return {"passed": all(checks), **result}


def train(context: Context) -> dict[str, Any]:
    """Quick proxy training of IMDN: CPU, CUDA with AMP, CUDA in fp32, CUDA with AMP again."""
    import train_proxy

    runs = {}
    for label, extra in (("cpu", ["--device", "cpu"]), ("cuda_amp", ["--device", "cuda"]),
                         ("cuda_fp32", ["--device", "cuda", "--no-amp"]), ("cuda_amp_rerun", ["--device", "cuda"])):
        out = context.work / "train" / label
        code = train_proxy.main(["--arch", TRAIN_ARCH, "--budget", "quick", "--out", str(out), *extra])
        metrics = json.loads((out / "metrics.json").read_text())
        runs[label] = {"exit": code, **{k: metrics[k] for k in ("status", "psnr", "wall_seconds", "train_seconds",
                                                                "images_per_s", "device", "precision")}}
    psnr = {label: run["psnr"] for label, run in runs.items()}
    if None in psnr.values():
        return {"passed": False, "runs": runs}
    gaps = {"amp_vs_fp32": abs(psnr["cuda_amp"] - psnr["cuda_fp32"]),
            "amp_vs_cpu": abs(psnr["cuda_amp"] - psnr["cpu"]),
            "fp32_vs_cpu": abs(psnr["cuda_fp32"] - psnr["cpu"]),
            "rerun": abs(psnr["cuda_amp_rerun"] - psnr["cuda_amp"])}
    context.facts["quick_trial_s"] = runs["cuda_amp"]["wall_seconds"]
    passed = max(gaps["amp_vs_fp32"], gaps["amp_vs_cpu"], gaps["fp32_vs_cpu"]) <= PSNR_AGREEMENT_DB \
        and gaps["rerun"] <= RERUN_DB
    return {"passed": passed, "runs": runs, "gaps_db": gaps}


def out_of_memory(context: Context) -> dict[str, Any]:
    """A candidate too big to time, and a training too big to run: recorded as such, the memory given back."""
    import train_proxy
    from data import load_embedded
    from search import candidate
    from spaces import get_reference

    torch.cuda.synchronize(context.device)
    before = torch.cuda.memory_allocated(context.device)
    measurement = candidate.Measurement(device="cuda", latency_input=OOM_INPUT)
    try:
        with _lock_dir(context):
            candidate.measure_speed(get_reference("imdn"), measurement=measurement, baseline=measurement.baseline())
        speed = "measured (no out of memory: use a larger OOM_INPUT)"
    except candidate.SpeedOutOfMemory as error:
        speed = str(error)
    after_speed = torch.cuda.memory_allocated(context.device)
    budget = train_proxy.get_budget("smoke", iterations=2, batch_size=OOM_BATCH, lr_patch=64)
    result = train_proxy.train(get_reference("imdn"), data=load_embedded(), budget=budget, device=context.device,
                               workers=0)
    after_train = torch.cuda.memory_allocated(context.device)
    released = max(after_speed, after_train) - before <= RELEASED_MB * 1024**2
    passed = speed.startswith("out of memory") and result.status == "failed" and "out of memory" in str(result.reason) \
        and released
    return {"passed": passed, "speed": speed, "train": result.reason, "allocated_before_mb": before / 1024**2,
            "allocated_after_speed_mb": after_speed / 1024**2, "allocated_after_train_mb": after_train / 1024**2,
            "reserved_after_mb": torch.cuda.memory_reserved(context.device) / 1024**2}


def validation_cost(context: Context) -> dict[str, Any]:
    """One checkpoint's validation of IMDN on 100 DIV2K-size images, against a quick trial; the old way on 10."""
    from bench.validation_cost import old_validation_psnr, synthetic_pairs
    from spaces import build_model, get_reference
    from train_proxy import validation_psnr

    pairs = synthetic_pairs(100)
    model = build_model(get_reference(TRAIN_ARCH)).to(context.device)
    validation_psnr(model, pairs[:2], device=context.device)  # warm-up (cuDNN plans)
    new_s = _seconds(lambda: validation_psnr(model, pairs, device=context.device), context.device)
    old_s = _seconds(lambda: old_validation_psnr(model, pairs[:10], device=context.device), context.device) * 10
    trial_s = context.facts.get("quick_trial_s")
    share = new_s / trial_s if trial_s else None
    return {"passed": share is not None and share < VALIDATION_SHARE, "images": 100, "new_s": new_s,
            "old_s_estimated_from_10": old_s, "quick_trial_s": trial_s, "share_of_quick_trial": share}


def workers_search(context: Context) -> dict[str, Any]:
    """A smoke search with two workers on the GPU: both busy, one lock file per GPU UUID."""
    import optuna

    from search.study import make_storage

    locks = _folder(context.work / "search_locks")
    results = context.work / "results"
    done = _run([sys.executable, "run_search.py", "--track", "runtime", "--device", "cuda", "--budget", "smoke",
                 "--trials", "8", "--workers", "2", "--confirm-minutes", "0", "--no-export", "--results", str(results),
                 "--study-name", "gpu-check"], timeout=300, env={"TMPDIR": str(locks)})
    lock_files = sorted(p.name for p in locks.glob("nas_sr_device_*.lock"))
    study = optuna.load_study(study_name="gpu-check",
                              storage=make_storage(f"journal:{(results / 'gpu-check' / 'study.journal').as_posix()}"))
    workers = sorted({str(t.user_attrs.get("worker")) for t in study.trials if "worker" in t.user_attrs})
    with_weights = [t for t in study.trials if t.user_attrs.get("weights_artifact")]
    trained = [t.number for t in with_weights if not t.user_attrs.get("reference")] or [t.number for t in with_weights]
    context.facts["trained_trials"] = trained
    cuda_locks = [name for name in lock_files if name.startswith("nas_sr_device_cuda-")]
    passed = done.returncode == 0 and len(cuda_locks) == torch.cuda.device_count() and len(workers) >= 2
    return {"passed": passed, "exit": done.returncode, "lock_files": lock_files, "workers": workers,
            "trials": len(study.trials), "output_tail": done.stdout[-1500:] + done.stderr[-500:]}


def export(context: Context) -> dict[str, Any]:
    """Export (model file, weights, ONNX) of a trial trained on the GPU by the smoke search."""
    trained = context.facts.get("trained_trials")
    if not trained:
        return {"passed": False, "reason": "the smoke search left no trained trial"}
    out = context.work / "export"
    done = _run([sys.executable, "run_search.py", "export", "--study", "gpu-check", "--results",
                 str(context.work / "results"), "--trial", str(trained[-1]), "--out", str(out)], timeout=180)
    files = sorted(p.name for p in out.glob("**/*") if p.is_file()) if out.exists() else []
    return {"passed": done.returncode == 0 and any(name.endswith(".onnx") for name in files), "trial": trained[-1],
            "files": files, "output_tail": done.stdout[-800:] + done.stderr[-800:]}


STEPS: tuple[tuple[str, Step, bool], ...] = (  # (name, step, needs CUDA)
    ("versions", versions, False),
    ("cuda_tests", cuda_tests, True),
    ("profile", profile, True),
    ("train", train, True),
    ("out_of_memory", out_of_memory, True),
    ("validation_cost", validation_cost, True),
    ("workers_search", workers_search, True),
    ("export", export, True),
)


def run_steps(*, work: Path, budget_s: float, steps: tuple[tuple[str, Step, bool], ...] = STEPS) -> dict[str, Any]:
    """Every step's record; CUDA steps are "not run" without CUDA, and steps after `budget_s` are not started."""
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    context = Context(work=work, device=device, facts={})
    started = time.monotonic()
    records: dict[str, Any] = {}
    for name, step, needs_cuda in steps:
        if needs_cuda and device.type != "cuda":
            records[name] = {"status": NO_CUDA}
            continue
        if time.monotonic() - started > budget_s:
            records[name] = {"status": "not run: time budget spent"}
            continue
        begin = time.monotonic()
        try:
            record = step(context)
            status = "passed" if record.pop("passed") else "failed"
        except Exception as error:  # a broken step is a finding; the others still run
            record = {"traceback": traceback.format_exc()[-3000:]}
            status = f"error: {type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"
        records[name] = {"status": status, "seconds": time.monotonic() - begin, **record}
        print(f"{name}: {status} ({records[name]['seconds']:.0f} s)", flush=True)
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=480.0, help="start no step after this many seconds")
    parser.add_argument("--name", default="gpu_check", help="results file bench/results/<name>.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as scratch:
        steps = run_steps(work=Path(scratch), budget_s=args.budget_s)
    verdict = verdict_of(steps)
    path = write_result(args.name, {"verdict": verdict, "steps": steps})
    print(f"gpu_check {verdict} -> {path}")
    return 1 if verdict.startswith("failed") else 0


def verdict_of(steps: dict[str, Any]) -> str:
    """"passed" only when every step ran and passed; "not verified" when some could not run here."""
    not_run = [name for name, record in steps.items() if record["status"].startswith("not run")]
    failed = [name for name, record in steps.items() if record["status"] != "passed" and name not in not_run]
    if failed:
        return f"failed: {', '.join(failed)}"
    if not_run:
        return f"not verified: {len(not_run)} of {len(steps)} steps not run ({steps[not_run[0]]['status']})"
    return "passed"


def _run(command: list[str], *, timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=timeout)


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _lock_dir(context: Context):
    """The device lock of in-process steps in the scratch folder, like the subprocesses' (TMPDIR)."""
    previous = tempfile.tempdir
    tempfile.tempdir = str(_folder(context.work / "locks"))
    try:
        yield
    finally:
        tempfile.tempdir = previous


def _seconds(function: Callable[[], Any], device: torch.device) -> float:
    torch.cuda.synchronize(device)
    begin = time.perf_counter()
    function()
    torch.cuda.synchronize(device)
    return time.perf_counter() - begin


if __name__ == "__main__":
    raise SystemExit(main())
