"""Counter parity: our complexity counts against each NTIRE kit's official counter, entry by entry.

For every entry of a kit folder (../shared/ntire-kits), builds the network, counts params, FLOPs, activations
and #Conv at 1x3x256x256 with `evaluators.complexity` and with the kit's own `utils/model_summary.py` (loaded
from the kit, as a user's clone of it would be), and checks ours against the figures the challenge published
at their printed precision. Entries that cannot be built here say why.

    python3 -m bench.counter_parity
    python3 -m bench.counter_parity --kit ../shared/ntire-kits --entries 2022:0 2022:4
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from bench.common import REPO, write_result
from evaluators.complexity import COMPLEXITY_INPUT_SHAPE, profile_complexity
from spaces.builder import build_model
from spaces.kit import KitEntry, read_kit
from spaces.model_file import DataRange, ModelFileError

logger = logging.getLogger(__name__)

DEFAULT_KIT = REPO.parent / "shared" / "ntire-kits"
FIGURES = ("params", "flops", "activations", "convs")
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


def published_mismatches(entry: KitEntry, ours: dict[str, Any]) -> list[str]:
    """Our figures that differ from the published ones at the printed precision (blank or fvcore ones skipped)."""
    misses = []
    for field, figure, scale, decimals in PRINTED:
        published = entry.published.get(field)
        if published is None or (figure == "flops" and entry.edition >= FVCORE_FLOPS_FROM):
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
        model = build_model(entry.model)
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


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The parity table of BENCHMARKS.md."""
    lines = ["| entry | team | official FLOPs [G] / acts [M] / #conv | ours | agree (to the unit, params too) "
             "| published figures |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        if row["not_built"]:
            lines.append(f"| {row['entry']} | {row['team']} | not built on CPU: {row['not_built']} | | | |")
            continue
        official, ours = (f"{c['flops'] / 1e9:.4f} / {c['activations'] / 1e6:.4f} / {c['convs']}"
                          for c in (row["official"], row["ours"]))
        published = "not checked" if row["published_mismatches"] is None else \
            "; ".join(row["published_mismatches"]) or "equal"
        if row["fvcore_flops"] and row["published"]["flops_g"] is not None:
            published += f" (FLOPs published by fvcore, {row['published']['flops_g']:.2f} G: not compared)"
        lines.append(f"| {row['entry']} | {row['team']} | {official} | {ours} | {'yes' if row['agree'] else 'NO'} "
                     f"| {published} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kit", type=Path, default=DEFAULT_KIT, help="a kit folder with manifest.csv")
    parser.add_argument("--entries", nargs="*", help="edition:id of the entries to check (default: all)")
    args = parser.parse_args(argv)
    entries = [e for e in read_kit(args.kit) if not args.entries or e.name in args.entries]
    rows = []
    for entry in entries:
        rows.append(parity_row(entry, kit_dir=args.kit))
        logger.info("%s done", entry.name)
    table = markdown_table(rows)
    print(table)
    built = [r for r in rows if not r["not_built"]]
    summary = {"entries": len(rows), "built": len(built), "agree": sum(bool(r["agree"]) for r in built),
               "published_equal": sum(r["published_mismatches"] == [] for r in built)}
    print(summary)
    write_result("counter_parity", {"kit": str(args.kit), "summary": summary, "rows": rows, "table": table})
    return 0 if summary["agree"] == summary["built"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
