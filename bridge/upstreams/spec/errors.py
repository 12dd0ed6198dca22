"""The error a spec compiler raises: where in the file, and what is wrong."""

from __future__ import annotations

from collections.abc import Sequence


class SpecError(ValueError):
    """A spec field is invalid. `where` is the JSON path of the field inside the spec file."""

    def __init__(self, where: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.where = tuple(where)
        self.message = message
