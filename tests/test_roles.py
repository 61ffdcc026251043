"""Member roles from one place: owner and admins from WeCom, staff for the corp's own
members, playbook roles (讲师, KOL …) set through the admin API. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.directory import GroupSnapshot
from bot.sandbox.emulator.server import RunningEmulator
from handlers.features.roles import roles_in, roles_of, set_roles
from storage.groups import apply_snapshot
from storage.models import Membership
from tests.helpers import AUTH, LiveApp, configured_settings, join_callback, live_app, settle

T0 = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
GROUP = "wrRoles"

GROUPCHAT_GET = {
    "chat_id": GROUP,
    "name": "私域运营交流群",
    "owner": "zhangsan",
    "member_list": [],
    "admin_list": [{"userid": "lisi"}, {"userid": ""}, "not an object"],
    "member_version": "v1",
}


async def _group(sessions: async_sessionmaker[AsyncSession]) -> None:
    snapshot = GroupSnapshot.from_api(GROUPCHAT_GET)
    async with sessions() as session, session.begin():
        await apply_snapshot(
            session,
            chat_id=GROUP,
            name=snapshot.name,
            owner=snapshot.owner,
            member_version=snapshot.member_version,
            notice=None,
            channel_type="none",
            channel_config={},
            now=T0,
            admins=snapshot.admins,
        )
        for member, member_type in (("wmCustomer", 2), ("wangwu", 1), ("lisi", 1)):
            session.add(
                Membership(chat_id=GROUP, member_id=member, member_type=member_type, joined_at=T0)
            )


def test_admins_are_read_from_groupchat_get() -> None:
    assert GroupSnapshot.from_api(GROUPCHAT_GET).admins == ("lisi",)
    assert GroupSnapshot.from_api({"chat_id": "x"}).admins == ()


async def test_derived_and_playbook_roles(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _group(sessions)
    async with sessions() as session, session.begin():
        await set_roles(session, chat_id=GROUP, member_id="wmCustomer", roles=["讲师"], now=T0)
    async with sessions() as session:
        roles = await roles_in(
            session, GROUP, ["zhangsan", "lisi", "wangwu", "wmCustomer", "wmStranger"]
        )
        elsewhere = await roles_of(session, "wrOther", "wmCustomer")
    assert roles == {
        "zhangsan": frozenset({"owner", "staff"}),
        "lisi": frozenset({"admin", "staff"}),
        "wangwu": frozenset({"staff"}),
        "wmCustomer": frozenset({"讲师"}),
        "wmStranger": frozenset(),
    }
    assert elsewhere == frozenset()  # playbook roles are per group


async def test_a_snapshot_without_admins_keeps_the_known_ones(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _group(sessions)
    async with sessions() as session, session.begin():
        await apply_snapshot(
            session,
            chat_id=GROUP,
            name="",
            owner=None,
            member_version=None,
            notice=None,
            channel_type="none",
            channel_config={},
            now=T0,
        )
    async with sessions() as session:
        assert "admin" in await roles_of(session, GROUP, "lisi")


@pytest.fixture
async def live(  # type: ignore[misc]
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> AsyncIterator[LiveApp]:
    settings = configured_settings(
        database_url=database_url, templates_dir=templates_dir, api_base=emulator.base_url
    )
    async with live_app(settings) as app:
        yield app


async def test_admin_api_sets_replaces_and_explains_roles(live: LiveApp) -> None:
    url = "/admin/members/wmCustomer/roles"
    body = {"chat_id": GROUP, "roles": ["讲师", "KOL", "讲师"]}
    assert (await live.http.put(url, json=body)).status_code == 401
    assert (await live.http.put(url, json=body, headers=AUTH)).status_code == 404  # no group
    created = await live.http.put(
        f"/admin/groups/{GROUP}", headers=AUTH, json={"channel": {"type": "none"}}
    )
    assert created.status_code == 200
    put = await live.http.put(url, json=body, headers=AUTH)
    assert put.status_code == 200
    assert put.json() == {
        "chat_id": GROUP,
        "member_id": "wmCustomer",
        "roles": ["KOL", "讲师"],
        "effective": ["KOL", "讲师"],
    }
    got = await live.http.get(url, params={"chat_id": GROUP}, headers=AUTH)
    assert got.json()["roles"] == ["KOL", "讲师"]
    cleared = await live.http.put(url, json={"chat_id": GROUP, "roles": []}, headers=AUTH)
    assert cleared.json()["roles"] == []

    derived = await live.http.put(
        url, json={"chat_id": GROUP, "roles": ["owner", "讲师"]}, headers=AUTH
    )
    assert derived.status_code == 422 and "come from WeCom" in derived.text
    blank = await live.http.put(url, json={"chat_id": GROUP, "roles": ["  "]}, headers=AUTH)
    assert blank.status_code == 422 and "blank" in blank.text
    staff = await live.http.get(
        "/admin/members/wangwu/roles", params={"chat_id": GROUP}, headers=AUTH
    )
    assert staff.json()["effective"] == ["staff"] and staff.json()["roles"] == []


async def test_a_join_brings_the_groups_admins_from_wecom(
    live: LiveApp, emulator: RunningEmulator
) -> None:
    emulator.state.upsert_group(
        GROUP,
        name="私域运营交流群",
        owner="zhangsan",
        members=[{"userid": "lisi"}, {"userid": "wmNew"}],
        admins=["lisi"],
    )
    params, body = join_callback(GROUP, ["wmNew"])
    assert (await live.post_callback(params, body)).text == "success"
    await settle(live)
    for member, effective in (("lisi", ["admin", "staff"]), ("zhangsan", ["owner", "staff"])):
        got = await live.http.get(
            f"/admin/members/{member}/roles", params={"chat_id": GROUP}, headers=AUTH
        )
        assert got.json()["effective"] == effective
