"""The entries of a challenge kit folder (the layout of `../shared/ntire-kits`): one record per entry.

A kit folder holds `<edition>/models/`, `<edition>/model_zoo/` and a `manifest.csv` with, per entry, how the
kit's `test_demo.py` builds and loads it and the figures the challenge published. Entries are addressed as
`edition:id` (ids repeat across editions). The recipe's optional columns: `strict` (true/false, default true),
`after_load` (a method called after loading on every module that has it, empty for none), `dtype` (empty for
float32, or float16 for an entry written for half precision).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

from spaces.model_file import ModelFile, ModelFileError

MANIFEST = "manifest.csv"
RECIPE_FIELDS = ("edition", "id", "team", "module", "factory", "args", "weights", "state_key", "strip_prefix",
                 "data_range")  # the columns every manifest has: how test_demo.py builds and loads an entry
BOOLEANS = {"": True, "true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
PUBLISHED_FIELDS = {  # manifest column -> record field
    "published_val_psnr": "val_psnr", "published_test_psnr": "test_psnr", "runtime_ms": "runtime_ms",
    "params_m": "params_m", "flops_g": "flops_g", "acts_m": "activations_m", "mem_mb": "memory_mb", "convs": "convs",
}


@dataclasses.dataclass(frozen=True)
class KitEntry:
    """One challenge entry: its model reference and the figures the challenge published (None when blank)."""

    edition: int
    id: int
    team: str
    model: ModelFile
    tile: int | None
    published: dict[str, float | None]

    @property
    def name(self) -> str:
        return f"{self.edition}:{self.id}"

    @property
    def has_weights(self) -> bool:
        return bool(self.model.weights) and Path(self.model.weights).is_file()

    def to_dict(self) -> dict[str, Any]:
        return {"entry": self.name, "team": self.team, **self.model.to_dict(), "tile": self.tile,
                "published": dict(self.published)}


def read_kit(kit_dir: str | Path) -> list[KitEntry]:
    """Every entry of the kit's manifest, with paths resolved inside `kit_dir`.

    A malformed manifest is refused whole, in one line naming the row (or the missing columns): reading on
    past a bad row would calibrate or measure less than the kit holds without saying so.
    """
    kit_dir = Path(kit_dir)
    manifest = kit_dir / MANIFEST
    if not manifest.is_file():
        raise ModelFileError(f"{kit_dir} is not a kit folder: {MANIFEST} not found")
    try:
        with manifest.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [field for field in RECIPE_FIELDS if field not in (reader.fieldnames or [])]
            if missing:
                raise ModelFileError(f"{manifest} lacks the column(s) {', '.join(missing)}; its header must name "
                                     f"{', '.join(RECIPE_FIELDS)} (then optional figures)")
            entries = [_entry(kit_dir, row, reader.line_num) for row in reader]
    except (UnicodeDecodeError, csv.Error) as error:
        raise ModelFileError(f"{manifest} is not a readable CSV file ({error})") from None
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            raise ModelFileError(f"{manifest}: entry {entry.name} appears twice; ids must be unique per edition")
        seen.add(entry.name)
    return entries


def get_entry(kit_dir: str | Path, name: str) -> KitEntry:
    """The entry `edition:id` of the kit; a ModelFileError lists the known ones."""
    entries = read_kit(kit_dir)
    for entry in entries:
        if entry.name == name:
            return entry
    raise ModelFileError(f"no entry {name!r} in {Path(kit_dir) / MANIFEST}; entries are edition:id, "
                         f"e.g. {', '.join(e.name for e in entries[:4])}")


def _entry(kit_dir: Path, row: dict[str | None, Any], line: int) -> KitEntry:
    where = f"{kit_dir / MANIFEST} line {line}"
    fields = [value for key, value in row.items() if key is not None]
    if None in row or any(value is None for value in fields):  # csv puts surplus values under None, pads with None
        count = len(fields) - fields.count(None) + len(row.get(None) or [])
        raise ModelFileError(f"{where} has {count} values for {len(fields)} columns; fix or remove that row")
    empty = [field for field in ("team", "module", "factory") if not row[field].strip()]
    if empty:
        raise ModelFileError(f"{where}: {', '.join(empty)} is empty; fix or remove that row")
    try:
        edition, entry_id = int(row["edition"]), int(row["id"])
        folder = kit_dir / str(edition)
        module_path = folder / Path(*row["module"].split("."))
        path = module_path.with_suffix(".py") if module_path.with_suffix(".py").exists() else module_path
        model = ModelFile(
            path=str(path), factory=row["factory"], args=row["args"] or "{}",
            weights=str(folder / row["weights"]) if row["weights"] else None,
            state_key=row["state_key"] or None, strip_prefix=row["strip_prefix"] or None,
            data_range=float(row["data_range"] or 1.0), label=f"{edition}:{entry_id} {row['team']}",
            strict=_boolean(row.get("strict"), column="strict"), after_load=(row.get("after_load") or "").strip(),
            dtype=row.get("dtype") or "")
        published = {field: float(row[column]) if row.get(column) else None
                     for column, field in PUBLISHED_FIELDS.items()}
        return KitEntry(edition=edition, id=entry_id, team=row["team"], model=model,
                        tile=int(row["tile"]) if row.get("tile") else None, published=published)
    except (KeyError, ValueError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{where}: {error}; fix or remove that row") from None


def _boolean(text: str | None, *, column: str) -> bool:
    value = (text or "").strip().lower()
    if value not in BOOLEANS:
        raise ValueError(f"column {column} must be true or false, got {text!r}")
    return BOOLEANS[value]
