"""What a study stores beside its trials, read back: shared by the study loop and the packages that read a
finished study (report, export), so that neither reaches into the other."""

from __future__ import annotations

from typing import Any

import optuna

REFERENCE_PREFIX = "reference:"


def reference_records(study: optuna.Study) -> dict[str, dict[str, Any]]:
    """The references measured so far in this study (name -> record)."""
    return {key[len(REFERENCE_PREFIX):]: value for key, value in study.user_attrs.items()
            if key.startswith(REFERENCE_PREFIX)}
