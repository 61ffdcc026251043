"""/docs and /redoc work offline: no CDN, every asset served by the app (issue 7)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from bot.app import create_app
from bot.config.settings import SANDBOX_API_PATH
from tests.conftest import SHIPPED_TEMPLATES, make_settings

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")


def _assets(html: str) -> list[str]:
    return [a or b for a, b in ASSET.findall(html)]


@pytest.mark.parametrize(
    ("page", "prefix"),
    [("/docs", ""), ("/redoc", ""), (f"{SANDBOX_API_PATH}/docs", SANDBOX_API_PATH)],
)
async def test_docs_pages_load_only_from_the_app(tmp_path: Path, page: str, prefix: str) -> None:
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        sop_templates_dir=SHIPPED_TEMPLATES,
    )
    app = create_app(settings, start_background=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get(page)
        assert response.status_code == 200
        html = response.text
        assert not re.search(r"https?://", html), "a page that loads from another host"
        assets = _assets(html)
        assert any(a.endswith(".js") for a in assets)
        if page.endswith("/docs"):
            assert any(a.endswith(".css") for a in assets)
        for asset in assets:
            if asset.endswith("openapi.json"):
                continue  # the schema, checked below
            assert asset.startswith("/"), asset
            got = await http.get(asset)
            assert got.status_code == 200, asset
            assert len(got.content) > 1000 or asset.endswith(".png"), asset
        schema = await http.get(f"{prefix}/openapi.json")
        assert schema.status_code == 200
