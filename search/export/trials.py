"""Export trials of a finished study: each one's config, trained weights (from the study's artifact store) and
metrics under the chosen edition's rules."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import optuna
import pandas as pd
import torch
from optuna.artifacts import FileSystemArtifactStore, download_artifact

from editions import Edition
from search.export.metrics import edition_metrics
from search.export.writer import export_architecture
from search.records import rung_records
from search.report.tables import references_frame
from spaces import ArchConfig

Printer = Callable[[str], None]


def export_trials(study: optuna.Study, frame: pd.DataFrame, numbers: list[int], *, out_dir: Path,
                  artifacts_dir: Path, study_edition: Edition, edition: Edition, say: Printer) -> list[Path]:
    """Export the given trials (config, trained weights from the artifact store, metrics); the metrics follow
    `edition`'s rules (`search.export.metrics`), the study having measured by `study_edition`'s."""
    store = FileSystemArtifactStore(str(artifacts_dir))
    references = references_frame(study)
    written = []
    for number in numbers:
        trial = study.trials[number]
        rungs = rung_records(study).get(number, {})
        # the weights of the longest training the trial had: its highest promotion rung's, else the search's
        artifact = (rungs[max(rungs)].get("weights_artifact") if rungs else None) or trial.user_attrs.get("weights_artifact")
        if artifact is None:
            raise ValueError(f"trial #{number} has no trained weights to export (it was not trained)")
        with tempfile.TemporaryDirectory() as tmp:
            weights = Path(tmp) / "weights.pth"
            download_artifact(artifact_store=store, file_path=str(weights), artifact_id=artifact)
            state_dict = torch.load(weights, map_location="cpu", weights_only=True)
        row = frame.loc[frame["number"] == number].iloc[0]
        metrics = {k: (None if pd.isna(v) else getattr(v, "item", lambda: v)()) for k, v in row.items()}
        config = ArchConfig.from_dict(trial.user_attrs["config"])
        metrics = edition_metrics(metrics, config=config, edition=edition, study_edition=study_edition,
                                  references=references)
        name = export_name(number, config=config, rung=max(rungs, default=0))
        result = export_architecture(config=config, state_dict=state_dict,
                                     metrics={"study": study.study_name, "trial": number, **metrics},
                                     out_dir=out_dir, name=name)
        if result.unchanged:
            say(f"export of trial #{number} unchanged: {result.model_file} and {result.weights} already hold it")
        else:
            say(f"exported trial #{number}: {result.model_file} (class {result.class_name}), {result.weights}"
                + (f", {result.onnx}" if result.onnx else f"; ONNX failed: {result.onnx_error}"))
        written += [p for p in (result.model_file, result.weights, result.config_json, result.metrics_json,
                                result.onnx) if p is not None]
    return written


def export_name(number: int, *, config: ArchConfig, rung: int) -> str:
    """The files' name of trial `number`: a promoted trial's export carries its rung, so the weights of a longer
    training never overwrite (nor are refused by) an earlier export of the same trial."""
    return f"trial{number}_{config.block}" + (f"_rung{rung}" if rung else "")
