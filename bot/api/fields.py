"""Field types admin request bodies share."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from fastapi import HTTPException
from pydantic import AfterValidator


def non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


# Text that must say something (a reason, who did it): stripped, 422 when blank.
NonBlank = Annotated[str, AfterValidator(non_blank)]


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def query_day(value: str | None, name: str, default: date | None = None) -> date | None:
    """A `YYYY-MM-DD` query parameter, or `default` when it is absent; 422 naming the
    parameter otherwise (fromisoformat alone would take 20261207 too)."""
    if value is None:
        return default
    try:
        if not _DAY.match(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise HTTPException(
            status_code=422, detail=f"{name} must be a date like 2026-12-07, not {value!r}"
        ) from None
