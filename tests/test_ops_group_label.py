"""The operator's label and the WeCom group name are kept apart (issue 7): messages say
the name members see; `PUT /admin/groups` sets the label, which WeCom never overwrites."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.sandbox.emulator.server import RunningEmulator
from storage import db
from tests.helpers import (
    AUTH,
    RunningClock,
    configured_settings,
    join_callback,
    live_app,
    sent_texts,
    wait_for,
)

GROUP = "wrLabelled"


async def test_label_stays_and_messages_use_the_wecom_name(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    emulator.state.upsert_group(
        GROUP, name="私域交流群", owner="o1", members=[{"userid": "wmA", "name": "阿甲"}]
    )
    settings = configured_settings(
        database_url=database_url, templates_dir=templates_dir, api_base=emulator.base_url
    )
    clock = RunningClock()
    async with live_app(settings, clock=clock) as live:
        put = await live.http.put(
            f"/admin/groups/{GROUP}",
            headers=AUTH,
            json={"name": "北京-新用户-3组", "channel": {"type": "webhook", "key": "k-l"}},
        )
        assert put.status_code == 200, put.text
        body = put.json()
        assert (body["name"], body["label"], body["wecom_name"]) == ("北京-新用户-3组",) * 2 + (
            None,
        )

        params, payload = join_callback(GROUP, ["wmA"])
        assert (await live.post_callback(params, payload)).text == "success"
        await wait_for(lambda: len(sent_texts(emulator)) == 1, within=10)
        welcome = sent_texts(emulator)[0]
        assert "私域交流群" in welcome and "北京-新用户-3组" not in welcome

        got = (await live.http.get(f"/admin/groups/{GROUP}", headers=AUTH)).json()
        assert got["label"] == "北京-新用户-3组" and got["name"] == "北京-新用户-3组"
        assert got["wecom_name"] == "私域交流群"

        # Renamed in WeCom; an admin edits only the tags: each keeps its own.
        emulator.state.upsert_group(GROUP, name="私域交流二群")
        emulator.state.add_members(GROUP, [{"userid": "wmB", "name": "阿乙"}])
        params, payload = join_callback(GROUP, ["wmB"])
        assert (await live.post_callback(params, payload)).text == "success"
        await live.runtime.inbox.drain()
        clock.advance(120)  # past the welcome interval (one welcome a minute per group)
        await live.runtime.tick()
        await live.runtime.dispatcher.drain()
        await wait_for(lambda: len(sent_texts(emulator)) == 2, within=10)
        assert "私域交流二群" in sent_texts(emulator)[1]
        tags = await live.http.put(f"/admin/groups/{GROUP}", headers=AUTH, json={"tags": ["新"]})
        after = tags.json()
        assert after["label"] == "北京-新用户-3组" and after["wecom_name"] == "私域交流二群"
        listed = (await live.http.get("/admin/groups", headers=AUTH)).json()
        assert [(g["label"], g["wecom_name"]) for g in listed] == [
            ("北京-新用户-3组", "私域交流二群")
        ]


async def test_a_group_without_a_label_is_named_after_wecom(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    emulator.state.upsert_group(
        GROUP, name="客户群甲", owner="o1", members=[{"userid": "wmA", "name": "阿甲"}]
    )
    settings = configured_settings(
        database_url=database_url, templates_dir=templates_dir, api_base=emulator.base_url
    )
    async with live_app(settings) as live:
        params, payload = join_callback(GROUP, ["wmA"])
        assert (await live.post_callback(params, payload)).text == "success"

        async def known() -> bool:
            got = await live.http.get(f"/admin/groups/{GROUP}", headers=AUTH)
            return got.status_code == 200 and got.json()["wecom_name"] == "客户群甲"

        await wait_for(known, within=10)
        got = (await live.http.get(f"/admin/groups/{GROUP}", headers=AUTH)).json()
        assert got["label"] is None and got["name"] == "客户群甲"


async def test_migration_keeps_admin_names_as_labels(engine: AsyncEngine) -> None:
    await db.downgrade(engine, "0008")
    now = datetime(2026, 11, 30, tzinfo=UTC).replace(tzinfo=None)
    insert = text(
        "INSERT INTO groups (chat_id, name, tags, channel_type, channel_config, origin,"
        " created_at, updated_at) VALUES (:chat, :name, '[]', 'none', '{}', :origin, :now, :now)"
    )
    async with engine.begin() as conn:
        for chat, name, origin in (
            ("wrAdmin", "运营起的名", "admin"),
            ("wrSeen", "微信里的名", "callback"),
            ("wrBare", "", "admin"),
        ):
            await conn.execute(insert, {"chat": chat, "name": name, "origin": origin, "now": now})
    await db.upgrade(engine)
    async with engine.connect() as conn:
        rows = dict(
            (await conn.execute(text("SELECT chat_id, label FROM groups ORDER BY chat_id"))).all()
        )
    assert rows == {"wrAdmin": "运营起的名", "wrBare": None, "wrSeen": None}
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE groups SET name = 'WeCom名' WHERE chat_id = 'wrAdmin'"))
    await db.downgrade(engine, "0008")  # back to one column: the label wins, as before
    async with engine.connect() as conn:
        name = await conn.scalar(text("SELECT name FROM groups WHERE chat_id = 'wrAdmin'"))
    assert name == "运营起的名"
