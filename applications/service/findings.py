"""What validation finds: errors (they block submission) and warnings (allowed)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class Finding:
    """One problem found by validation; duplicates carry their candidates."""

    field: str
    code: str
    message: str
    # Each a JSON object: an organisation or an application (see duplicates).
    # (dataclasses.field in full: the attribute ``field`` hides the bare name here.)
    candidates: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # A duplicate among other municipalities' applications, which the reader may not see.
    elsewhere: bool = False

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"field": self.field, "code": self.code, "message": self.message}
        if self.candidates:
            found["candidates"] = self.candidates
        if self.elsewhere:
            found["elsewhere"] = True
        return found


@dataclass
class Validation:
    errors: list[Finding] = dataclasses.field(default_factory=list)
    warnings: list[Finding] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "errors": [f.as_dict() for f in self.errors],
            "warnings": [f.as_dict() for f in self.warnings],
        }
