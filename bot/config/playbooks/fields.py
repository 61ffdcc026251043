"""Field types and the base model every playbook section shares."""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _parse_hhmm(value: Any) -> Any:
    if isinstance(value, time):
        return value
    if isinstance(value, str) and (match := _HHMM.match(value.strip())):
        return time(int(match[1]), int(match[2]))
    raise PydanticCustomError(
        "time_format",
        'expected a time of day "HH:MM" between 00:00 and 23:59, got {value}',
        {"value": repr(value)},
    )


LocalTime = Annotated[
    time,
    BeforeValidator(_parse_hhmm),
    PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^([01]?\d|2[0-3]):[0-5]\d$"}),
]
"""Wall-clock time of day in BOT_TIMEZONE, written "HH:MM"."""


def hhmm(t: time) -> str:
    return t.strftime("%H:%M")


class StrictModel(BaseModel):
    """Base of every section: unknown keys are errors, loaded playbooks are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def stripped_non_blank(values: tuple[str, ...]) -> tuple[str, ...]:
    """A list field's items stripped; a blank one is an error at its own index."""
    cleaned = tuple(v.strip() for v in values)
    for index, value in enumerate(cleaned):
        if not value:
            raise PydanticCustomError("blank", "must not be empty", {"loc_suffix": (index,)})
    return cleaned


class DailySpan(StrictModel):
    """``[start, end)`` on the wall clock (BOT_TIMEZONE); it may span midnight."""

    start: LocalTime = Field(description="开始，HH:MM（含）")
    end: LocalTime = Field(description="结束，HH:MM（不含）；可跨午夜")

    # Named in the error when start equals end.
    span_noun: ClassVar[str] = "a period"

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == self.end:
            raise PydanticCustomError(
                "span_empty",
                "start and end are both {at}; {noun} must not be empty",
                {"at": hhmm(self.start), "noun": self.span_noun, "loc_suffix": ("end",)},
            )
        return self

    def covers(self, t: time) -> bool:
        """The time of day falls in the span (one spanning midnight wraps)."""
        t = t.replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end
