"""groupchat/get → names, invitor and join details; one call per member_version."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.directory import GroupDirectory, GroupSnapshot, enrich
from bot.sandbox.emulator.server import RunningEmulator
from bot.wecom.client import WeComClient
from handlers.core.events import MemberInfo, MemberJoined
from tests.conftest import TEST_CORP_ID, TEST_CORP_SECRET

DOC_SAMPLE = {  # externalcontact/groupchat/get, notes §5.2
    "chat_id": "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA",
    "name": "销售客服群",
    "owner": "ZhuShengBen",
    "create_time": 1572505490,
    "notice": "文明沟通,拒绝脏话",
    "member_list": [
        {
            "userid": "abel",
            "type": 1,
            "join_time": 1572505491,
            "join_scene": 1,
            "invitor": {"userid": "jack"},
            "group_nickname": "客服小张",
            "name": "张三丰",
        },
        {
            "userid": "wmOgQhDgAAuXFJGwbve4g4iXknfOAAAA",
            "type": 2,
            "unionid": "ozynqsulJFCZ2z1aYeS8h-nuasdAAA",
            "join_time": 1572505491,
            "join_scene": 1,
            "group_nickname": "顾客老王",
            "name": "王语嫣",
        },
        {"userid": "jack", "type": 1, "join_time": 1572505400, "join_scene": 1, "name": "杰克"},
        {
            "userid": "wmNoName",
            "type": 2,
            "join_time": 1572505491,
            "join_scene": 3,
            "group_nickname": "",
            "name": "",
        },
    ],
    "admin_list": [{"userid": "sam"}, {"userid": "pony"}],
    "member_version": "71217227bbd112ecfe3a49c482195cb4",
}


def test_snapshot_from_the_doc_sample() -> None:
    snap = GroupSnapshot.from_api(DOC_SAMPLE)
    assert (snap.name, snap.owner) == ("销售客服群", "ZhuShengBen")
    abel = snap.member_info("abel")
    assert abel.name == "张三丰" and abel.member_type == 1
    assert abel.invitor == "jack" and abel.invitor_name == "杰克"
    assert abel.join_scene == 1
    assert abel.join_time == datetime.fromtimestamp(1572505491, UTC)
    customer = snap.member_info("wmOgQhDgAAuXFJGwbve4g4iXknfOAAAA")
    assert customer.name == "王语嫣" and customer.member_type == 2 and customer.invitor is None
    assert snap.member_info("wmNoName").display_name == "wmNoName"
    assert snap.member_info("unknown").name is None


def test_enrich_fills_joined_members() -> None:
    event = MemberJoined(
        source="change_external_chat",
        chat_id=DOC_SAMPLE["chat_id"],
        occurred_at=datetime.now(UTC),
        members=[MemberInfo(id="abel"), MemberInfo(id="ghost")],
    )
    enriched = enrich(event, GroupSnapshot.from_api(DOC_SAMPLE))
    assert isinstance(enriched, MemberJoined)
    assert [m.display_name for m in enriched.members] == ["张三丰", "ghost"]


async def test_one_call_per_member_version(emulator: RunningEmulator) -> None:
    emulator.state.upsert_group(
        "wrDir", name="目录群", owner="o", members=[{"userid": "wmA", "name": "甲"}]
    )
    client = WeComClient(
        api_base=emulator.base_url, corp_id=TEST_CORP_ID, corp_secret=TEST_CORP_SECRET
    )
    directory = GroupDirectory(client)
    try:
        first = await directory.snapshot("wrDir", None)
        version = first.member_version
        assert (await directory.snapshot("wrDir", version)).members.keys() == {"wmA"}
        assert emulator.state.calls["groupchat/get"] == 1
        emulator.state.add_members("wrDir", [{"userid": "wmB", "name": "乙"}])
        newer = emulator.state.get_group("wrDir")
        assert newer is not None and newer["member_version"] != version
        refreshed = await directory.snapshot("wrDir", newer["member_version"])
        assert refreshed.member_info("wmB").name == "乙"
        assert emulator.state.calls["groupchat/get"] == 2
    finally:
        await client.aclose()


class FakeGroups:
    """groupchat/get answers for any chat id, counting calls per chat."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    async def groupchat_get(self, chat_id: str, *, need_name: bool = True) -> dict[str, Any]:
        self.calls[chat_id] = self.calls.get(chat_id, 0) + 1
        return {"chat_id": chat_id, "name": chat_id, "member_version": f"v-{chat_id}"}


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    groups = FakeGroups()
    directory = GroupDirectory(groups, max_groups=3, monotonic=Ticks())
    for chat in ("a", "b", "c"):
        await directory.snapshot(chat, None)
    await directory.snapshot("a", None)  # a is now the most recently used
    await directory.snapshot("d", None)  # evicts b, the least recently used
    assert len(directory) == 3
    assert "b" not in directory and {"a", "c", "d"} <= {c for c in "abcd" if c in directory}
    await directory.snapshot("a", "v-a")
    assert groups.calls["a"] == 1  # still cached
    await directory.snapshot("b", None)
    assert groups.calls["b"] == 2  # evicted, fetched again
    assert len(directory) == 3 and "c" not in directory


async def test_cache_entry_without_member_version_expires_after_ttl() -> None:
    groups = FakeGroups()
    ticks = Ticks()
    directory = GroupDirectory(groups, cache_seconds=300, monotonic=ticks)
    await directory.snapshot("a", None)
    ticks.now = 299.0
    await directory.snapshot("a", None)
    assert groups.calls["a"] == 1
    ticks.now = 300.0
    await directory.snapshot("a", None)
    assert groups.calls["a"] == 2
    # A matching member_version vouches for the entry however old it is.
    ticks.now = 10_000.0
    await directory.snapshot("a", "v-a")
    assert groups.calls["a"] == 2


def test_cache_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        GroupDirectory(FakeGroups(), max_groups=0)
