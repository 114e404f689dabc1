"""Training on a busy CPU: one candidate's proxy training, alone and beside another CPU-bound process.

torch's OpenMP threads spin while they wait for each other at the end of every parallel region. When another
process takes one of the 2 cores, a spinning thread burns the time slice that the thread it waits for needs,
and a training can slow down twenty-fold. This measures the settings side by side: each run is a fresh process
(the OpenMP runtime reads its environment once, when torch is imported) training the same candidate at the same
budget; the settings take turns within each round, and each round runs quiet, then busy (beside a one-thread
torch training loop, started for the run and stopped after it), so every setting meets the same machine.

    python3 -m bench.cpu_contention
    python3 -m bench.cpu_contention --repeats 3 --budget smoke --name cpu_contention
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from bench.common import REPO, median_and_spread, write_result

# The candidate of the report that found the slowdown (a smoke search's trial: 435 s busy against 22 s on 1 thread).
CANDIDATE = dict(block="rfdb", num_blocks=7, channels=46, distill_rate=0.375, distill_steps=4, kernel_size=3,
                 attention="cca", activation="prelu", fusion="concat", rep_conv=True)
# Environment of each setting's training process (on top of this one's, without OMP_* variables).
SETTINGS = {
    "2 threads, wait policy unset": {},
    "2 threads, OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "1 thread": {"OMP_NUM_THREADS": "1"},
    "1 thread, OMP_WAIT_POLICY=PASSIVE": {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"},
}
CONDITIONS = ("quiet", "busy")

# One training, timed in its own process; torch is imported first, so that nothing of the toolkit sets the OpenMP
# environment before the runtime reads it.
TRAIN = """
import json, sys, time
import torch
import train_proxy
from data import load_dataset
from spaces import ArchConfig
config, budget = ArchConfig.from_dict(json.loads(sys.argv[1])), train_proxy.get_budget(sys.argv[2])
data = load_dataset(None)
started = time.perf_counter()
result = train_proxy.train(config, data=data, budget=budget, seed=0, device="cpu")
print(json.dumps({"seconds": time.perf_counter() - started, "threads": torch.get_num_threads(),
                  "status": result.status, "psnr": result.psnr}))
"""
# The other process of the busy condition: a one-thread torch training loop, as a background job is.
COMPETITOR = """
import torch
torch.set_num_threads(1)
model = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 3, 3, padding=1))
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
x = torch.rand(8, 3, 64, 64)
while True:
    optimizer.zero_grad()
    model(x).square().mean().backward()
    optimizer.step()
"""


def child_env(changes: dict[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OMP_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return {**env, **changes}


def train_once(setting: str, *, budget: str, timeout_s: float) -> dict[str, Any]:
    """One training in a fresh process with `setting`'s environment; a run past `timeout_s` is recorded as such."""
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", TRAIN, json.dumps(CANDIDATE), budget], cwd=REPO,
                              env=child_env(SETTINGS[setting]), capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"seconds": None, "timed_out_after_s": timeout_s, "load_before": load_before}
    if done.returncode != 0:
        raise RuntimeError(f"{setting}: training process failed:\n{done.stderr[-2000:]}")
    record = json.loads(done.stdout.strip().splitlines()[-1])
    return {**record, "process_seconds": time.perf_counter() - started, "load_before": load_before,
            "load_after": os.getloadavg()[0]}


def run_round(*, budget: str, timeout_s: float) -> list[dict[str, Any]]:
    """Every setting once quiet, then once beside the competitor."""
    rows = []
    for condition in CONDITIONS:
        for setting in SETTINGS:
            competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR], env=child_env({})) \
                if condition == "busy" else None
            try:
                if competitor is not None:
                    time.sleep(2.0)  # let it import torch and start its loop
                row = {"condition": condition, "setting": setting, **train_once(setting, budget=budget,
                                                                                   timeout_s=timeout_s)}
            finally:
                if competitor is not None:
                    competitor.send_signal(signal.SIGKILL)
                    competitor.wait()
            seconds = f"{row['seconds']:.1f} s" if row["seconds"] is not None else f"> {timeout_s:.0f} s"
            print(f"  {condition:<5}  {setting:<36}  {seconds}  (load {row['load_before']:.1f})", flush=True)
            rows.append(row)
    return rows


def summarise(rows: list[dict[str, Any]], *, timeout_s: float) -> dict[str, Any]:
    """Per condition and setting: the seconds (a timed-out run counts as the timeout: a lower bound) and the median's
    ratio to the same condition's 1-thread median and to the same setting's quiet median."""
    def seconds(row: dict[str, Any]) -> float:
        return row["seconds"] if row["seconds"] is not None else timeout_s

    table: dict[str, dict[str, Any]] = {}
    for condition in CONDITIONS:
        for setting in SETTINGS:
            runs = [seconds(r) for r in rows if r["condition"] == condition and r["setting"] == setting]
            table.setdefault(condition, {})[setting] = {
                **median_and_spread(runs), "timed_out": sum(r["seconds"] is None for r in rows
                                                            if r["condition"] == condition and r["setting"] == setting)}
    for condition, settings in table.items():
        one_thread = settings["1 thread"]["median"]
        for setting, figures in settings.items():
            figures["ratio_to_1_thread"] = figures["median"] / one_thread
            figures["ratio_to_quiet"] = figures["median"] / table["quiet"][setting]["median"]
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds (every setting quiet and busy in each)")
    parser.add_argument("--budget", default="smoke", help="the proxy budget of each training")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds after which a run is stopped")
    parser.add_argument("--name", default="cpu_contention")
    args = parser.parse_args(argv)
    rows = []
    for round_number in range(args.repeats):
        print(f"round {round_number + 1} of {args.repeats}", flush=True)
        rows += run_round(budget=args.budget, timeout_s=args.timeout)
    summary = summarise(rows, timeout_s=args.timeout)
    for condition, settings in summary.items():
        for setting, figures in settings.items():
            print(f"{condition:<5}  {setting:<36}  median {figures['median']:6.1f} s  x{figures['ratio_to_1_thread']:.2f} "
                  f"of 1 thread, x{figures['ratio_to_quiet']:.2f} of quiet")
    write_result(args.name, {"settings": vars(args), "candidate": CANDIDATE, "environments": SETTINGS,
                             "competitor": "one-thread torch training loop (conv 3-32-3, batch 8, 64x64)",
                             "rows": rows, "summary": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
