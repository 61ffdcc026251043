"""The content library (issue 10, item 1): validation, the admin API, the version that
tells replicas to rebuild, and `wecom-bot content import|export`."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from handlers.features.content.library import (
    ContentIn,
    applies_to,
    library_version,
    load_enabled,
)
from handlers.features.content.transfer import (
    FileRefused,
    parse_csv,
    parse_json,
    to_csv,
    to_json,
)
from storage.models import ContentItem
from tests.helpers import AUTH, Clock, LiveApp, configured_settings, live_app
from tests.procs import cli_env, run_cli

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai


def item(**fields: Any) -> dict[str, Any]:
    return {"title": "入门指南", "url": "https://example.com/guide", **fields}


# --- validation (pure) -------------------------------------------------------------


def test_keywords_and_tags_are_stripped_and_deduplicated_across_case_and_width() -> None:
    got = ContentIn.model_validate(
        item(
            title="  Python 入门  ",
            keywords=[" Python ", "python", "ＰＹＴＨＯＮ", "教程", "教程 "],
            tags=["新手", "新手"],
            body="   ",
        )
    )
    assert got.title == "Python 入门"
    assert got.keywords == ["Python", "教程"]
    assert got.tags == ["新手"]
    assert got.body is None  # blank is absent
    assert (got.source, got.enabled, got.scope, got.summary) == ("own", True, [], "")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"title": "   "}, "title must not be blank"),
        ({"title": "长" * 201}, "longer than 200"),
        ({"url": None}, "needs a body or a url"),
        ({"url": "ftp://example.com/x"}, "http:// or https://"),
        ({"url": "javascript:alert(1)"}, "http:// or https://"),
        ({"url": "https://"}, "http:// or https://"),
        ({"keywords": ["好", " "]}, "keyword must not be blank"),
        ({"keywords": ["长" * 41]}, "longer than 40"),
        ({"keywords": [f"k{i}" for i in range(51)]}, "at most 50 keywords"),
        ({"keywords": ["a;b"]}, "semicolon"),
        ({"source": "partner"}, "'own' or 'external'"),
        (
            {"valid_from": "2026-12-10", "valid_until": "2026-12-01"},
            "valid_until is before valid_from",
        ),
        ({"keyword": ["typo"]}, "Extra inputs are not permitted"),
    ],
)
def test_bad_items_are_refused_with_a_clear_message(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ContentIn.model_validate(item(**fields))
    assert message in str(caught.value)


def test_fifty_keywords_of_forty_characters_are_fine() -> None:
    words = [f"{i:02d}" + "字" * 38 for i in range(50)]
    assert ContentIn.model_validate(item(keywords=words)).keywords == words


def test_scope_empty_means_every_group_else_chat_ids_or_tags() -> None:
    assert applies_to([], "wrA", [])
    assert applies_to(["wrA"], "wrA", [])
    assert applies_to(["新用户群"], "wrB", ["新用户群", "付费群"])
    assert not applies_to(["wrA", "付费群"], "wrB", ["新用户群"])


# --- files (pure) ------------------------------------------------------------------


def test_csv_rows_carry_their_line_numbers_across_multi_line_cells() -> None:
    text = (
        "\ufefftitle,body,keywords,enabled\r\n"
        'A,"two\nlines",k1;k2,是\r\n'
        "\r\n"
        ",no title,,\r\n"
        "C,text,k3；k4,maybe\r\n"
        "D,text,,0\r\n"
    )
    rows = list(parse_csv(text))
    assert [row.line for row in rows] == [2, 5, 6, 7]
    first, no_title, bad_flag, last = rows
    assert first.item is not None and first.item.keywords == ["k1", "k2"]
    assert first.item.body == "two\nlines" and first.item.enabled is True
    assert no_title.item is None and "title" in str(no_title.error)
    assert bad_flag.item is None and "enabled" in str(bad_flag.error)
    assert last.item is not None and last.item.enabled is False


def test_a_csv_with_an_unknown_column_is_refused_whole() -> None:
    with pytest.raises(FileRefused, match="unknown column"):
        list(parse_csv("title,keyword\nA,x\n"))


def test_json_entries_carry_the_line_their_object_starts_on() -> None:
    text = '[\n  {"title": "A", "url": "https://a.example"},\n  {"title": ""},\n  7\n]\n'
    rows = list(parse_json(text))
    assert [row.line for row in rows] == [2, 3, 4]
    assert rows[0].item is not None
    assert rows[1].error is not None and "title" in rows[1].error
    assert rows[2].error is not None and "object" in rows[2].error


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"title": "A"}', "array"),
        ('[{"title": "A"} {"title": "B"}]', "expected ','"),
        ('[{"title": "A"},', "not closed"),
        ('[{"title": }]', "not valid JSON"),
    ],
)
def test_broken_json_is_refused_whole(text: str, message: str) -> None:
    with pytest.raises(FileRefused, match=message):
        list(parse_json(text))


def test_formula_like_cells_survive_a_csv_round_trip_as_text() -> None:
    tricky = ContentIn.model_validate(
        item(title="=HYPERLINK(1)", summary="'quoted", keywords=["-折扣", "x"], body="+1")
    )
    text = to_csv([tricky])
    assert text.startswith("\ufeff")
    cells = next(csv.reader(io.StringIO(text.splitlines()[1])))
    assert all(not cell.startswith(("=", "+", "-", "@")) for cell in cells)
    (row,) = parse_csv(text)
    assert row.item == tricky


# --- the admin API -----------------------------------------------------------------


@pytest.fixture
async def app(database_url: str, templates_dir: Path) -> AsyncIterator[LiveApp]:
    settings = configured_settings(
        database_url=database_url, templates_dir=templates_dir, api_base="http://127.0.0.1:9"
    )
    async with live_app(settings, background=False, clock=Clock(NOW)) as live:
        yield live


async def version(app: LiveApp) -> int:
    async with app.runtime.sessions() as session:
        return await library_version(session)


async def count(app: LiveApp) -> int:
    async with app.runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(ContentItem)) or 0)


async def post(app: LiveApp, body: dict[str, Any]) -> dict[str, Any]:
    got = await app.http.post("/admin/content", json=body, headers=AUTH)
    assert got.status_code == 201, got.text
    data: dict[str, Any] = got.json()
    return data


async def listed(app: LiveApp, **params: Any) -> list[str]:
    got = await app.http.get("/admin/content", params=params, headers=AUTH)
    assert got.status_code == 200, got.text
    page = got.json()
    assert page["total"] >= len(page["items"])
    return [entry["title"] for entry in page["items"]]


async def test_crud_through_the_admin_api_bumps_the_version_each_time(app: LiveApp) -> None:
    assert await version(app) == 0
    guide = await post(
        app,
        item(
            keywords=["入门", "新手"],
            tags=["教程"],
            summary="从零开始",
            scope=["新用户群"],
            valid_until="2026-12-31",
        ),
    )
    assert guide["created_at"] == "2026-12-02T10:00:00+08:00"
    assert (guide["keywords"], guide["scope"], guide["valid_until"]) == (
        ["入门", "新手"],
        ["新用户群"],
        "2026-12-31",
    )
    assert await version(app) == 1
    await post(app, {"title": "行业报告", "body": "全文……", "source": "external", "tags": ["报告"]})
    await post(app, {"title": "旧活动", "body": "已结束", "enabled": False})
    assert await version(app) == 3

    assert await listed(app) == ["旧活动", "行业报告", "入门指南"]  # newest first
    assert await listed(app, q="新手") == ["入门指南"]  # a keyword
    assert await listed(app, q="从零") == ["入门指南"]  # the summary
    assert await listed(app, q="100%") == []  # LIKE wildcards are plain text
    assert await listed(app, tag="报告") == ["行业报告"]
    assert await listed(app, source="external") == ["行业报告"]
    assert await listed(app, enabled="false") == ["旧活动"]
    assert await listed(app, limit=1, offset=1) == ["行业报告"]

    changed = await app.http.put(
        f"/admin/content/{guide['id']}",
        json=item(title="入门指南（新版）", keywords=["入门"]),
        headers=AUTH,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["keywords"] == ["入门"] and changed.json()["scope"] == []
    assert await version(app) == 4

    gone = await app.http.delete(f"/admin/content/{guide['id']}", headers=AUTH)
    assert gone.status_code == 204
    assert await version(app) == 5
    assert await listed(app) == ["旧活动", "行业报告"]


async def test_failed_changes_change_nothing_not_even_the_version(app: LiveApp) -> None:
    first = await post(app, item())
    other = await post(app, item(title="另一篇"))
    before = await version(app)

    bad = await app.http.post("/admin/content", json=item(url="ftp://x"), headers=AUTH)
    assert bad.status_code == 422 and "http:// or https://" in bad.text
    same = await app.http.post("/admin/content", json=item(), headers=AUTH)
    assert same.status_code == 409 and "already has the title" in same.text
    # The same title under the other source is another item.
    assert (await post(app, item(source="external")))["source"] == "external"
    before += 1
    clash = await app.http.put(
        f"/admin/content/{other['id']}", json=item(title="入门指南"), headers=AUTH
    )
    assert clash.status_code == 409
    missing = await app.http.put("/admin/content/999999", json=item(title="x"), headers=AUTH)
    assert missing.status_code == 404 and "no content item 999999" in missing.text
    assert (await app.http.delete("/admin/content/999999", headers=AUTH)).status_code == 404
    assert (await app.http.delete("/admin/content/0", headers=AUTH)).status_code == 422
    bad_filter = await app.http.get("/admin/content", params={"source": "x"}, headers=AUTH)
    assert bad_filter.status_code == 422
    assert (await app.http.get("/admin/content")).status_code == 401

    assert await version(app) == before
    assert await count(app) == 3
    assert await listed(app, q="入门指南") == ["入门指南", "入门指南"]
    assert first["id"] != other["id"]


async def test_lookup_loads_enabled_items_within_their_dates_own_first(app: LiveApp) -> None:
    await post(app, item(title="外部1", source="external"))
    await post(app, item(title="自有1"))
    await post(app, item(title="停用", enabled=False))
    await post(app, item(title="未开始", valid_from="2026-12-03"))
    await post(app, item(title="已过期", valid_until="2026-12-01"))
    await post(app, item(title="今天止", valid_from="2026-12-02", valid_until="2026-12-02"))
    await post(app, item(title="外部2", source="external", keywords=["k"]))
    async with app.runtime.sessions() as session:
        entries = await load_enabled(session, today=date(2026, 12, 2))
    assert [e.title for e in entries] == ["自有1", "今天止", "外部1", "外部2"]
    assert entries[-1].keywords == ("k",) and entries[-1].source == "external"


# --- the CLI -----------------------------------------------------------------------


async def cli(args: list[str], database_url: str, cwd: Path) -> Any:
    # A real subprocess, off the event loop: the command runs asyncio.run itself.
    return await asyncio.to_thread(run_cli, args, cli_env(cwd, DATABASE_URL=database_url), cwd)


async def test_import_keeps_good_rows_reports_bad_lines_and_export_round_trips(
    app: LiveApp, database_url: str, tmp_path: Path
) -> None:
    await post(app, item(title="条目 7", body="旧的正文"))  # the import updates it
    lines = ["title,body,url,keywords,tags,source"]
    for n in range(2000):
        source = "external" if n % 3 == 0 else "own"
        lines.append(f"条目 {n},正文 {n},,词{n};共同,标签{n % 5},{source}")
    lines[501] = "条目 500,,,词500,,own"  # neither body nor url: line 502
    lines[1800] = "条目 1799,正文,https://ok.example,词,,partner"  # bad source: line 1801
    source_file = tmp_path / "library.csv"
    source_file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    done = await cli(["content", "import", str(source_file)], database_url, tmp_path)
    assert done.returncode == 1, done.stderr
    assert f"{source_file}:502:" in done.stderr and "body or a url" in done.stderr
    assert f"{source_file}:1801:" in done.stderr and "source" in done.stderr
    assert done.stderr.count("已跳过") == 2
    assert "新增 1997 条，更新 1 条，跳过 2 条" in done.stdout
    assert await count(app) == 1998
    assert await version(app) == 1 + 4  # one per chunk of 500 rows

    async with app.runtime.sessions() as session:
        seventh = await session.scalar(select(ContentItem).where(ContentItem.title == "条目 7"))
    assert seventh is not None and seventh.body == "正文 7"
    assert seventh.keywords == ["词7", "共同"] and seventh.source == "own"

    again = await cli(["content", "import", str(source_file)], database_url, tmp_path)
    assert "新增 0 条，更新 1998 条" in again.stdout  # upsert by (title, source)
    assert await count(app) == 1998

    for suffix in ("json", "csv"):
        exported = tmp_path / f"out.{suffix}"
        out = await cli(["content", "export", str(exported)], database_url, tmp_path)
        assert out.returncode == 0, out.stderr
        assert "已导出 1998 条" in out.stdout
        raw = exported.read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf") == (suffix == "csv")
        text = raw.decode("utf-8-sig")
        parsed = list(parse_json(text) if suffix == "json" else parse_csv(text))
        assert all(row.error is None for row in parsed)
        async with app.runtime.sessions() as session:
            stored = (await session.scalars(select(ContentItem).order_by(ContentItem.id))).all()
        assert [row.item.title for row in parsed if row.item] == [s.title for s in stored]
        # Re-importing the export changes no item.
        back = await cli(["content", "import", str(exported)], database_url, tmp_path)
        assert back.returncode == 0 and "新增 0 条，更新 1998 条，跳过 0 条" in back.stdout
    data = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert data[0] == {
        "title": "条目 7",
        "body": "正文 7",
        "url": None,
        "summary": "",
        "keywords": ["词7", "共同"],
        "tags": ["标签2"],
        "source": "own",
        "scope": [],
        "enabled": True,
        "valid_from": None,
        "valid_until": None,
    }


async def test_files_the_import_cannot_read_are_refused_and_store_nothing(
    app: LiveApp, database_url: str, tmp_path: Path
) -> None:
    wrong = tmp_path / "items.txt"
    wrong.write_text("title\nA\n", encoding="utf-8")
    broken = tmp_path / "items.json"
    broken.write_text('{"title": "A"}', encoding="utf-8")
    for path, message in ((wrong, ".json or .csv"), (broken, "array")):
        done = await cli(["content", "import", str(path)], database_url, tmp_path)
        assert done.returncode == 2 and message in done.stderr
    assert await count(app) == 0 and await version(app) == 0


def test_json_export_lists_every_field_of_an_item() -> None:
    exported = json.loads(to_json([ContentIn.model_validate(item())]))
    assert set(exported[0]) == set(ContentIn.model_fields)
