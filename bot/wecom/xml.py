"""Safe XML for callbacks: no DTDs, no entity expansion, no external references."""

from __future__ import annotations

from typing import Any, cast
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException


class XmlError(ValueError):
    """Malformed or dangerous XML (answered 400)."""


def parse_xml(text: str | bytes) -> Element:
    try:
        root = SafeET.fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        return cast(Element, root)
    except DefusedXmlException as exc:
        raise XmlError(f"refused XML: {type(exc).__name__}") from exc
    except SafeET.ParseError as exc:
        raise XmlError(f"malformed XML: {exc}") from exc


def element_to_dict(root: Element) -> dict[str, Any]:
    """Flat WeCom-style XML → dict; repeated children become lists (MemChangeList/Item)."""
    result: dict[str, Any] = {}
    for child in root:
        if len(child):
            items = [(grand.tag, (grand.text or "").strip()) for grand in child]
            result[child.tag] = [value for _, value in items]
        else:
            result[child.tag] = (child.text or "").strip()
    return result


def xml_to_dict(text: str | bytes) -> dict[str, Any]:
    return element_to_dict(parse_xml(text))
