"""The error of everything a user brings as a model (a model file, a kit entry, a checkpoint, a config's weights)."""

from __future__ import annotations


class ModelFileError(ValueError):
    """A model file cannot be imported, built, loaded or run; the message names what and how to fix it."""


def first_line(error: BaseException) -> str:
    """The first line of an error's message (torch's span many lines; a command prints one)."""
    return (str(error).strip().splitlines() or [""])[0]
