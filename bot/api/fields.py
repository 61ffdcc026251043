"""Field types admin request bodies share."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


# Text that must say something (a reason, who did it): stripped, 422 when blank.
NonBlank = Annotated[str, AfterValidator(non_blank)]
