"""Our complexity counts against the official counter of the NTIRE kits (../shared/ntire-kits), entry by entry.

The oracle is the kit's own `utils/model_summary.py`, imported from the kit folder. Every entry that builds on
CPU must give the official params, FLOPs, activations and #Conv to the unit at 1x3x256x256, and the figures
the challenge published at their printed precision.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.counter_parity import parity_row, published_mismatches
from spaces.kit import read_kit

KIT = Path(__file__).resolve().parents[1].parent / "shared" / "ntire-kits"
ENTRIES = read_kit(KIT) if (KIT / "manifest.csv").is_file() else []

pytestmark = [
    pytest.mark.skipif(not ENTRIES, reason=f"no NTIRE kit folder at {KIT}"),
    pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning", "ignore::DeprecationWarning"),
]


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry.name for entry in ENTRIES])
def test_counts_equal_the_official_counter_and_the_published_figures(entry):
    row = parity_row(entry, kit_dir=KIT)
    if row["not_built"]:
        # Only missing CPU builds of torchvision/timm excuse an entry (a constructor that calls .cuda() runs with
        # the CPU shim).
        assert "torchvision" in row["not_built"] or "timm" in row["not_built"]
        pytest.skip(f"{entry.name} cannot be built here: {row['not_built']}")
    ours, official = row["ours"], row["official"]
    assert {k: ours[k] for k in official} == official
    assert row["published_mismatches"] == []


def test_published_figures_are_compared_at_their_printed_precision():
    entry = next(e for e in ENTRIES if e.published["flops_g"] is not None and e.edition < 2024)
    published = entry.published
    exact = {"params": round(published["params_m"] * 1e6), "flops": round(published["flops_g"] * 1e9),
             "activations": round(published["activations_m"] * 1e6), "convs": int(published["convs"])}
    assert published_mismatches(entry, exact) == []
    off = {**exact, "flops": exact["flops"] + 6_000_000}  # 0.006 G more prints one hundredth higher
    assert published_mismatches(entry, off) == [f"flops_g {published['flops_g'] + 0.01:.2f} != published "
                                                 f"{published['flops_g']:.2f}"]
