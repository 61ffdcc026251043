"""Pieces every message source needs: the addresses in a text, tolerant field access."""

from __future__ import annotations

import json
import re
from typing import Any

# http(s) and www. addresses, ending at whitespace or at punctuation that closes a
# Chinese or English sentence (a URL rarely ends in "，" or "）", a sentence often does).
_URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"'，。！？、；：“”‘’（）()【】《》\[\]{}]+")
_TRAILING = ".,;:!?"


def urls_in(text: str) -> list[str]:
    """The addresses written in `text`, in order, without trailing punctuation."""
    found = []
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(_TRAILING)
        if url and url not in found:
            found.append(url)
    return found


def addresses(text: str, *given: str) -> list[str]:
    """A message's addresses: the ones its source names (a link card's), then those
    written in its text; each once, empty ones dropped."""
    return list(dict.fromkeys([*(url for url in given if url), *urls_in(text)]))


def field(body: Any, name: str) -> str:
    """`body[name]` as a string, or "" when the body or the field is missing or odd:
    a record from a newer WeCom may lack a field or give it another type."""
    if not isinstance(body, dict):
        return ""
    value = body.get(name)
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)


def json_object(value: Any) -> dict[str, Any]:
    """A part that may come as an object or as JSON text (the archive's mixed items
    carry their content as a JSON string); {} for anything else."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def joined(*parts: str) -> str:
    return "\n".join(part for part in parts if part)
