"""The figures an edition published for the references, to show beside the toolkit's measurements."""

from __future__ import annotations

from typing import Any

from editions import Edition
from spaces import REFERENCES


def published_records(edition: Edition, names: list[str]) -> dict[str, dict[str, Any]]:
    """name -> the edition's published figures, for the names that are references it published figures for."""
    records = {}
    for name in names:
        figures = edition.published(name) if name in REFERENCES else None
        if figures is not None:
            records[name] = {"val_psnr": figures.val_psnr, "test_psnr": figures.test_psnr,
                             "runtime_ms": figures.runtime_ms, "params_m": figures.params_m,
                             "flops_g": figures.flops_g}
    return records


def format_published(edition: Edition, records: dict[str, dict[str, Any]]) -> str:
    """Lines of the published figures, labelled with the edition, its validation set and its GPU."""
    def show(value: float | None, fmt: str) -> str:
        return "-" if value is None else fmt.format(value)

    lines = [f"published by {edition.name} (PSNR on {edition.validation.value} valid / test, runtime on "
             f"{edition.gpu or 'an unrecorded GPU'}):"]
    for name, r in records.items():
        label = f"{name} (baseline)" if name == edition.baseline else name
        lines.append(f"  {label}: params {show(r['params_m'], '{:.3f}')} M, FLOPs {show(r['flops_g'], '{:.2f}')} G, "
                     f"runtime {show(r['runtime_ms'], '{:.2f}')} ms, PSNR {show(r['val_psnr'], '{:.2f}')} / "
                     f"{show(r['test_psnr'], '{:.2f}')} dB")
    return "\n".join(lines)
