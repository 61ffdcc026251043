"""CSV downloads of the admin API: UTF-8 with a BOM, so Excel (what operators open
them with) reads the Chinese names right; times in BOT_TIMEZONE with the offset."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from urllib.parse import quote

from fastapi import Response

CellValue = str | int | None


def csv_response(
    filename: str, header: Sequence[str], rows: Iterable[Sequence[CellValue]]
) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if cell is None else cell for cell in row])
    return Response(
        content="\ufeff" + buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
        },
    )
