"""Kit parity: the toolkit against each NTIRE kit, entry by entry: its counter, and its `profile` and `evaluate`.

For every entry of a kit folder (../shared/ntire-kits):
- the kit's own figures (`bench.kit_recipe`: the entry loaded as its test_demo.py loads it, the validation forwards
  on the embedded photographs with the kit's PSNR, then the kit's counter), against what `run_search.py profile` and
  `run_search.py evaluate` print for the same entry (`--json`, run in this process): params, FLOPs (the edition's
  counter), activations, #conv and PSNR; and the printed figures against those the challenge published;
- `parity_row`: the network as built (no weights), counted by `evaluators.complexity` and by the kit's
  `utils/model_summary.py` (the test `tests/test_evaluators_complexity_kit.py`).
An entry whose constructor needs CUDA runs with `--cpu-shim` (the kit side with the same no-op `.cuda()`); entries
that do not run here say why, in the toolkit's one line.

    python3 -m bench.counter_parity
    python3 -m bench.counter_parity --kit ../shared/ntire-kits --entries 2022:0 2022:4
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import io
import json
import logging
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

import run_search
from bench.common import REPO, write_result
from bench.kit_recipe import kit_figures
from data import load_dataset
from evaluators.complexity import COMPLEXITY_INPUT_SHAPE, profile_complexity
from spaces.builder import build_model
from spaces.kit import KitEntry, read_kit
from spaces.model_file import DataRange, ModelFileError

logger = logging.getLogger(__name__)

DEFAULT_KIT = REPO.parent / "shared" / "ntire-kits"
FIGURES = ("params", "flops", "activations", "convs")
FAST = ("--json", "--device", "cpu", "--input", "3x16x16")  # latency and memory are not compared: keep them small
PSNR_TOLERANCE_DB = 0.005
# How the challenge printed each published figure: manifest field, our figure, scale, decimals.
PRINTED = (("params_m", "params", 1e6, 3), ("flops_g", "flops", 1e9, 2),
           ("activations_m", "activations", 1e6, 2), ("convs", "convs", 1, 0))
# From 2024 the kits publish fvcore's FLOPs (their model_summary.py still gives activations and #Conv).
FVCORE_FLOPS_FROM = 2024


def load_official_counter(kit_dir: Path, edition: int) -> ModuleType:
    """The edition's `utils/model_summary.py`, imported from the kit under a name of its own."""
    path = Path(kit_dir) / str(edition) / "utils" / "model_summary.py"
    spec = importlib.util.spec_from_file_location(f"ntire{edition}_model_summary", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def official_counts(model: nn.Module, counter: ModuleType, *, input_shape: tuple[int, ...]) -> dict[str, int]:
    """Params, FLOPs, activations and #Conv as the kit's test_demo.py computes them (its functions, its order)."""
    activations, convs = counter.get_model_activation(model, input_shape)
    flops = counter.get_model_flops(model, input_shape, False)
    return {"params": sum(p.numel() for p in model.parameters()), "flops": int(flops),
            "activations": int(activations), "convs": int(convs)}


def our_counts(model: nn.Module, *, input_shape: tuple[int, ...]) -> dict[str, Any]:
    report = profile_complexity(model, input_shape=input_shape)
    return {**{name: getattr(report, name) for name in FIGURES}, "uncounted": list(report.uncounted)}


def published_mismatches(entry: KitEntry, ours: dict[str, Any], *, fvcore_checked: bool = False) -> list[str]:
    """Our figures that differ from the published ones at the printed precision (blank ones skipped; FLOPs
    published by fvcore, 2024 on, only when `ours` were counted by it too: `fvcore_checked`)."""
    misses = []
    for field, figure, scale, decimals in PRINTED:
        published = entry.published.get(field)
        if published is None or (figure == "flops" and entry.edition >= FVCORE_FLOPS_FROM and not fvcore_checked):
            continue
        printed = f"{ours[figure] / scale:.{decimals}f}"
        if printed != f"{published:.{decimals}f}":
            misses.append(f"{field} {printed} != published {published:.{decimals}f}")
    return misses


def parity_row(entry: KitEntry, *, kit_dir: Path, input_shape: tuple[int, ...] = COMPLEXITY_INPUT_SHAPE
               ) -> dict[str, Any]:
    """One entry: official and our counts (None with `not_built` when the network cannot be built here)."""
    row: dict[str, Any] = {"entry": entry.name, "team": entry.team, "input_shape": list(input_shape),
                           "published": dict(entry.published), "fvcore_flops": entry.edition >= FVCORE_FLOPS_FROM,
                           "official": None, "ours": None, "agree": None, "published_mismatches": None,
                           "not_built": None}
    try:
        model = _built(entry)
    except ModelFileError as error:
        # The first clause of the reason, with paths inside the kit shown relative to it.
        reason = str(error).removeprefix(f"{entry.model.label}: ").replace(f"{Path(kit_dir).resolve()}/", "")
        row["not_built"] = reason.split("; ")[0]
        return row
    # The kits count the network itself; the data range is applied outside it.
    network = model.model if isinstance(model, DataRange) else model
    started = time.perf_counter()
    row["ours"] = our_counts(network, input_shape=input_shape)
    with torch.no_grad():
        row["official"] = official_counts(network, load_official_counter(kit_dir, entry.edition),
                                          input_shape=input_shape)
    row["seconds"] = round(time.perf_counter() - started, 1)
    row["agree"] = all(row["ours"][name] == row["official"][name] for name in FIGURES)
    if tuple(input_shape) == COMPLEXITY_INPUT_SHAPE:
        row["published_mismatches"] = published_mismatches(entry, row["ours"])
    return row


def _built(entry: KitEntry) -> nn.Module:
    """The entry's network as built (no weights); with `.cuda()` a no-op where its constructor needs CUDA."""
    try:
        return build_model(entry.model)
    except ModelFileError as error:
        if "--cpu-shim" not in str(error):
            raise
    return build_model(dataclasses.replace(entry.model, cpu_shim=True))


def recipe_row(entry: KitEntry, *, kit_dir: Path, pairs: list) -> dict[str, Any]:
    """One entry: the kit's figures and the toolkit's profile and evaluate records (or why it does not run here)."""
    row: dict[str, Any] = {"entry": entry.name, "team": entry.team, "published": dict(entry.published),
                           "cpu_shim": False, "reason": None}
    started = time.perf_counter()
    shim: tuple[str, ...] = ()
    for command in ("profile", "evaluate"):
        argv = [command, entry.name, "--kit", str(kit_dir), "--edition", str(entry.edition), *FAST, *shim]
        code, out, err = _cli(argv + (["--repeats", "5"] if command == "profile" else []))
        if code != 0 and not shim and "--cpu-shim" in err:
            shim, row["cpu_shim"] = ("--cpu-shim",), True
            code, out, err = _cli(argv + ["--cpu-shim"] + (["--repeats", "5"] if command == "profile" else []))
        if code != 0:
            row["reason"] = err.strip().splitlines()[-1].removeprefix("error: ").replace(f"{kit_dir.resolve()}/", "")
            return row
        record = json.loads(out)
        row[command] = _figures(record[0] if command == "profile" else record)
    row["kit"] = kit_figures(entry, kit_dir=kit_dir, pairs=pairs, cpu_shim=row["cpu_shim"])
    row["agree"] = {command: all(row[command][name] == row["kit"][name] for name in FIGURES)
                    for command in ("profile", "evaluate")}
    row["psnr_difference_db"] = row["evaluate"]["psnr"] - row["kit"]["psnr"]
    row["agree"]["psnr"] = abs(row["psnr_difference_db"]) <= PSNR_TOLERANCE_DB
    row["published_mismatches"] = published_mismatches(entry, row["evaluate"], fvcore_checked=True)
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def _cli(argv: list[str]) -> tuple[int, str, str]:
    """run_search.py ARGV in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_search.main(argv)
    return code, out.getvalue(), err.getvalue()


def _figures(record: dict[str, Any]) -> dict[str, Any]:
    """A profile or evaluate record's figures, in the kit's units (FLOPs and activations as counts)."""
    return {"params": record["params"], "flops": round(record["flops_g"] * 1e9),
            "activations": round(record["activations_m"] * 1e6), "convs": record["convs"], "psnr": record.get("psnr"),
            "input_dependent": record["input_dependent"], "recipe": record["recipe"]}


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The parity table of BENCHMARKS.md: the kit's figures, profile's and evaluate's, and the published ones."""
    lines = ["| entry | team | kit: params / FLOPs [G] / acts [M] / #conv | profile | evaluate "
             "| PSNR kit / evaluate [dB] | agree | published figures |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        if row["reason"]:
            lines.append(f"| {row['entry']} | {row['team']} | does not run here: {row['reason']} | | | | | |")
            continue
        kit, profile, evaluate = (_counts(row[side]) for side in ("kit", "profile", "evaluate"))
        agree = "yes" if all(row["agree"].values()) else \
            "NO: " + ", ".join(name for name, ok in row["agree"].items() if not ok)
        shim = " (--cpu-shim)" if row["cpu_shim"] else ""
        lines.append(f"| {row['entry']} | {row['team']}{shim} | {kit} | {profile} | {evaluate} "
                     f"| {row['kit']['psnr']:.3f} / {row['evaluate']['psnr']:.3f} | {agree} "
                     f"| {'; '.join(row['published_mismatches']) or 'equal'} |")
    return "\n".join(lines)


def _counts(figures: dict[str, Any]) -> str:
    return (f"{figures['params']:,} / {figures['flops'] / 1e9:.4f} / {figures['activations'] / 1e6:.4f} / "
            f"{figures['convs']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kit", type=Path, default=DEFAULT_KIT, help="a kit folder with manifest.csv")
    parser.add_argument("--entries", nargs="*", help="edition:id of the entries to check (default: all)")
    args = parser.parse_args(argv)
    logging.getLogger("fvcore").setLevel(logging.ERROR)  # the kits' own fvcore calls list every skipped op
    entries = [e for e in read_kit(args.kit) if not args.entries or e.name in args.entries]
    pairs = load_dataset(None).valid
    rows = []
    for entry in entries:
        rows.append(recipe_row(entry, kit_dir=args.kit, pairs=pairs))
        logger.info("%s done", entry.name)
        print(markdown_table(rows[-1:]).splitlines()[-1], flush=True)
    table = markdown_table(rows)
    ran = [r for r in rows if not r["reason"]]
    summary = {"entries": len(rows), "ran": len(ran), "agree": sum(all(r["agree"].values()) for r in ran),
               "published_equal": sum(r["published_mismatches"] == [] for r in ran),
               "with_cpu_shim": sum(r["cpu_shim"] for r in ran)}
    print(table)
    print(summary)
    write_result("counter_parity", {"kit": str(args.kit), "photographs": [p.name for p in pairs], "summary": summary,
                                    "rows": rows, "table": table})
    return 0 if summary["agree"] == summary["ran"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
