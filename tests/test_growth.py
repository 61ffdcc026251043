"""Growth attribution (issue 9): the inviter report (invites per week, 7/30-day
retention, who became active, leads per inviter) and lead marks with their history.
The pure report on hand-computed rows; the API on joins, leaves and messages that went
through the real callbacks, archive and inbox worker; SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.sandbox.emulator.server import RunningEmulator
from handlers.features.growth.inviters import (
    Invitee,
    InviterInfo,
    Retained,
    describe_inviters,
    inviter_report,
    weeks_between,
)
from handlers.features.growth.leads import (
    Mark,
    UnknownStage,
    canonical_stage,
    lead_stage_counts,
    next_mark,
)
from storage.models import Group, Membership
from tests.helpers import (
    AUTH,
    Clock,
    LiveApp,
    join_callback,
    leave_callback,
    live_webhook_group,
    settle,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI).astimezone(UTC)  # type: ignore[misc]


# --- the pure report ------------------------------------------------------------------


def invitee(
    member: str,
    invitor: str,
    joined: datetime,
    left: datetime | None = None,
    *,
    active: bool = False,
    lead: str | None = None,
) -> Invitee:
    return Invitee("wrG", member, invitor, joined, left, active, lead)


def test_inviter_report_by_hand() -> None:
    rows = [
        invitee("wmA", "zhangsan", local(2026, 11, 2, 10), active=True, lead="MQL"),
        invitee("wmB", "zhangsan", local(2026, 11, 2, 11), local(2026, 11, 6, 11)),  # 4 days
        invitee("wmC", "zhangsan", local(2026, 11, 5, 9), local(2026, 11, 20, 9), active=True),
        invitee("wmE", "zhangsan", local(2026, 11, 30, 23, 30)),  # the last local day
        invitee("wmD", "wmA", local(2026, 11, 12, 10), lead="customer"),
        invitee("wmH", "lisi", local(2026, 11, 3, 10)),
        invitee("wmF", "zhangsan", local(2026, 12, 1, 0, 10)),  # after the range (local)
        invitee("wmG", "zhangsan", local(2026, 10, 31, 23, 59)),  # before it
    ]
    inviters = {"zhangsan": InviterInfo("张三", True), "wmA": InviterInfo("小安", False)}
    lines = inviter_report(
        rows,
        inviters,
        first=date(2026, 11, 1),
        last=date(2026, 11, 30),
        now=local(2026, 12, 5, 12),
        tz=SHANGHAI,
    )
    assert [(line.inviter, line.invites) for line in lines] == [
        ("zhangsan", 4),
        ("lisi", 1),  # equal counts: by id
        ("wmA", 1),
    ]
    zhang, lisi, wma = lines
    assert (zhang.name, zhang.staff) == ("张三", True)
    assert zhang.per_week == {
        "2026-W44": 0,
        "2026-W45": 3,
        "2026-W46": 0,
        "2026-W47": 0,
        "2026-W48": 0,
        "2026-W49": 1,
    }
    # 7 days: A, B, C joined a week before now (E did not): A and C stayed.
    # 30 days: A, B, C joined by Nov 5 12:00: only A stayed (C left after 15 days).
    assert zhang.retained == {7: Retained(2, 3), 30: Retained(1, 3)}
    assert zhang.became_active == 2
    assert zhang.leads == {"lead": 0, "MQL": 1, "SQL": 0, "customer": 0}
    assert (wma.name, wma.staff, wma.per_week["2026-W46"]) == ("小安", False, 1)
    assert wma.retained == {7: Retained(1, 1), 30: Retained(0, 0)}  # Nov 12 + 30 > Dec 5
    assert wma.leads["customer"] == 1
    # Unknown to the memberships: no name, staff judged by the id's shape.
    assert (lisi.name, lisi.staff, lisi.retained[30]) == (None, True, Retained(1, 1))


def test_leaving_exactly_on_the_seventh_day_counts_as_stayed() -> None:
    joined = local(2026, 11, 2, 10)
    lines = inviter_report(
        [
            invitee("wmA", "zs", joined, joined + timedelta(days=7)),
            invitee("wmB", "zs", joined, joined + timedelta(days=7) - timedelta(seconds=1)),
        ],
        {},
        first=date(2026, 11, 2),
        last=date(2026, 11, 2),
        now=joined + timedelta(days=7),  # exactly 7 days: both eligible
        tz=SHANGHAI,
    )
    assert lines[0].retained[7] == Retained(1, 2)
    assert lines[0].per_week == {"2026-W45": 2}


def test_no_invitees_no_lines() -> None:
    report = inviter_report(
        [], {}, first=date(2026, 11, 1), last=date(2026, 11, 2), now=local(2026, 11, 3), tz=UTC
    )
    assert report == []


def test_weeks_cross_the_year_by_iso_numbering() -> None:
    assert weeks_between(date(2026, 12, 27), date(2027, 1, 4)) == [
        "2026-W52",
        "2026-W53",  # 2026 has 53 ISO weeks (it starts on a Thursday)
        "2027-W01",
    ]


def test_inviter_names_prefer_the_reported_group_and_staff_follows_wecom() -> None:
    rows = [
        ("wrOther", "zs", "张三(别群)", 1),
        ("wrG", "zs", "张三", 1),
        ("wrG", "wmX", None, 2),
        ("wrG", "wmY", "外部", None),  # no type known: judged by the id's shape
        ("wrOther", "wmY", None, None),
        ("wrOther", "lisi", "李四", None),
    ]
    info = describe_inviters(rows, "wrG")
    assert info["zs"] == InviterInfo("张三", True)
    assert info["wmX"] == InviterInfo(None, False)
    assert info["wmY"] == InviterInfo("外部", False)
    assert info["lisi"] == InviterInfo("李四", True)
    assert describe_inviters(rows, None)["zs"].name == "张三(别群)"  # the first one seen


def test_stages_are_canonical_and_unknown_ones_named() -> None:
    assert [canonical_stage(s) for s in ("LEAD", "mql", " Sql ", "Customer")] == list(
        ("lead", "MQL", "SQL", "customer")
    )
    with pytest.raises(UnknownStage, match="lead, MQL, SQL, customer"):
        canonical_stage("VIP")


def test_a_mark_changes_only_what_is_given() -> None:
    first = next_mark(None, stage="lead", owner="王五", note=None)
    assert first == Mark("lead", "王五", None)
    assert next_mark(first, stage="lead", owner=None, note=None) is None  # nothing new
    moved = next_mark(first, stage="MQL", owner=None, note="约了演示")
    assert moved == Mark("MQL", "王五", "约了演示")
    assert next_mark(moved, stage="MQL", owner="", note=None) == Mark("MQL", None, "约了演示")


# --- through the service --------------------------------------------------------------

GROUP, OTHER = "wrGrowth", "wrGrowth2"
T0 = local(2026, 11, 2, 10)  # a Monday, ISO week 45
PLAYBOOK = """\
name: growth_only
extends: default
applies_to: {chat_ids: [wrGrowth]}
rules: {enabled: false}
touch_sequence: {enabled: false}
"""


class World:
    def __init__(self, app: LiveApp, clock: Clock, emulator: RunningEmulator) -> None:
        self.app, self.clock, self.emulator = app, clock, emulator

    async def join(self, member: str, name: str, invitor: str, at: datetime) -> None:
        self.clock.now = at
        self.emulator.state.add_members(
            GROUP, [{"userid": member, "name": name, "invitor": invitor}]
        )
        params, body = join_callback(GROUP, [member], create_time=int(at.timestamp()))
        assert (await self.app.post_callback(params, body)).status_code == 200
        await settle(self.app)

    async def leave(self, member: str, at: datetime) -> None:
        self.clock.now = at
        self.emulator.state.remove_member(GROUP, member)
        params, body = leave_callback(GROUP, [member], create_time=int(at.timestamp()))
        assert (await self.app.post_callback(params, body)).status_code == 200
        await settle(self.app)

    async def archive(self, records: list[dict[str, Any]]) -> None:
        response = await self.app.http.post("/wecom/archive", headers=AUTH, json=records)
        assert response.status_code == 200, response.text
        await settle(self.app)


def message(msgid: str, sender: str, at: datetime, **kind: Any) -> dict[str, Any]:
    msgtype, body = next(iter(kind.items())) if kind else ("text", {"content": "请问怎么报名"})
    return {
        "msgid": msgid,
        "action": "recall" if msgtype == "revoke" else "send",
        "from": sender,
        "tolist": [],
        "roomid": GROUP,
        "msgtime": int(at.timestamp() * 1000),
        "msgtype": msgtype,
        msgtype: body,
    }


@pytest.fixture
async def world(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> AsyncIterator[World]:
    """zhangsan (staff) brings wmA and wmB on day 0 and wmC on day 3; wmB leaves on
    day 4; wmA brings wmD on day 10. wmA speaks; wmC speaks and takes it back. Now is
    day 12 (2026-11-14)."""
    (templates_dir / "growth_only.yaml").write_text(PLAYBOOK, encoding="utf-8")
    clock = Clock(T0 - timedelta(days=30))
    async with live_webhook_group(
        database_url=database_url,
        templates_dir=templates_dir,
        emulator=emulator,
        clock=clock,
        chat_id=GROUP,
        name="增长群",
        members={"zhangsan": "张三"},
    ) as app:
        params, body = join_callback(GROUP, ["zhangsan"], create_time=int(clock.now.timestamp()))
        assert (await app.post_callback(params, body)).status_code == 200
        await settle(app)
        world = World(app, clock, emulator)
        await world.join("wmA", "小安", "zhangsan", T0)
        await world.join("wmB", "小白", "zhangsan", T0 + timedelta(hours=1))
        await world.join("wmC", "小陈", "zhangsan", T0 + timedelta(days=3))
        await world.leave("wmB", T0 + timedelta(days=4))
        await world.join("wmD", "小丁", "wmA", T0 + timedelta(days=10))
        await world.archive(
            [
                message("g1", "wmA", T0 + timedelta(days=1)),
                message("g2", "wmC", T0 + timedelta(days=4)),
                message("g3", "wmC", T0 + timedelta(days=4, seconds=9), revoke={"pre_msgid": "g2"}),
            ]
        )
        # wmA is also in a second group (seeded directly: only its membership matters).
        async with app.runtime.sessions() as session:
            session.add(Group(chat_id=OTHER, name="第二群", channel_type="none"))
            session.add(
                Membership(chat_id=OTHER, member_id="wmA", name="小安", joined_at=T0, join_count=1)
            )
            await session.commit()
        clock.now = T0 + timedelta(days=12)
        yield world


async def inviters(app: LiveApp, **params: str) -> Any:
    got = await app.http.get("/admin/growth/inviters", headers=AUTH, params=params)
    assert got.status_code == 200, got.text
    return got.json()


async def put_lead(app: LiveApp, member: str, body: dict[str, Any], **headers: str) -> Any:
    return await app.http.put(
        f"/admin/members/{member}/lead", headers={**AUTH, **headers}, json=body
    )


async def test_the_inviter_report_shows_invites_retention_and_leads(world: World) -> None:
    app = world.app
    marked = await put_lead(app, "wmA", {"chat_id": GROUP, "stage": "mql"})
    assert marked.status_code == 200, marked.text
    report = await inviters(app, chat_id=GROUP, **{"from": "2026-11-01", "to": "2026-11-14"})
    assert (report["from"], report["to"], report["chat_id"]) == ("2026-11-01", "2026-11-14", GROUP)
    assert report["as_of"] == "2026-11-14T10:00:00+08:00"
    zhang, wma = report["inviters"]
    assert zhang == {
        "inviter": "zhangsan",
        "name": "张三",
        "staff": True,
        "invites": 3,
        "invites_per_week": {"2026-W44": 0, "2026-W45": 3, "2026-W46": 0},
        "retained_7d": 2,  # wmB left on day 4
        "eligible_7d": 3,
        "retained_30d": 0,
        "eligible_30d": 0,
        "became_active": 1,  # wmC's only message was taken back
        "leads": {"lead": 0, "MQL": 1, "SQL": 0, "customer": 0},
    }
    assert (wma["inviter"], wma["name"], wma["staff"], wma["invites"]) == ("wmA", "小安", False, 1)
    assert (wma["invites_per_week"]["2026-W46"], wma["eligible_7d"]) == (1, 0)
    # The default range is the last four weeks up to today: the same invites.
    default = await inviters(app)
    assert (default["from"], default["to"]) == ("2026-10-18", "2026-11-14")
    assert default["chat_id"] is None  # every group
    assert [(line["inviter"], line["invites"]) for line in default["inviters"]] == [
        ("zhangsan", 3),
        ("wmA", 1),
    ]
    # A range before the joins: nobody.
    assert (await inviters(app, **{"from": "2026-10-01", "to": "2026-11-01"}))["inviters"] == []


async def test_the_inviter_report_as_csv_opens_in_excel(world: World) -> None:
    got = await world.app.http.get(
        "/admin/growth/inviters",
        headers=AUTH,
        params={"chat_id": GROUP, "from": "2026-11-01", "to": "2026-11-14", "format": "csv"},
    )
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith("text/csv")
    assert got.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for Chinese
    header, *rows = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert header[:4] == ["邀请人", "姓名", "员工", "邀请人数"]
    assert header[-3:] == ["2026-W44", "2026-W45", "2026-W46"]
    assert [row[:9] for row in rows] == [
        ["zhangsan", "张三", "是", "3", "2", "3", "0", "0", "1"],
        ["wmA", "小安", "否", "1", "0", "0", "0", "0", "0"],
    ]


async def test_a_lead_keeps_its_origin_and_every_change(world: World) -> None:
    app = world.app
    body = {"chat_id": GROUP, "stage": "Lead", "owner": "王五"}
    first = await put_lead(app, "wmA", body, **{"X-Admin-Actor": "lisi"})
    assert first.status_code == 200, first.text
    # Moved from the second group, by someone named in the body: the origin stays.
    moved = await put_lead(
        app, "wmA", {"chat_id": OTHER, "stage": "sql", "note": "要报价", "by": "zhaoliu"}
    )
    assert moved.status_code == 200, moved.text
    again = await put_lead(app, "wmA", {"chat_id": OTHER, "stage": "SQL"})  # no change
    lead = again.json()
    assert (lead["origin_chat_id"], lead["inviter"], lead["name"]) == (GROUP, "zhangsan", "小安")
    assert (lead["stage"], lead["owner"], lead["note"]) == ("SQL", "王五", "要报价")
    assert [
        (c["chat_id"], c["from_stage"], c["to_stage"], c["owner"], c["by"]) for c in lead["history"]
    ] == [(GROUP, None, "lead", "王五", "lisi"), (OTHER, "lead", "SQL", "王五", "zhaoliu")]
    assert lead["history"][0]["at"] == "2026-11-14T10:00:00+08:00"
    fetched = await app.http.get("/admin/members/wmA/lead", headers=AUTH)
    assert fetched.json() == lead

    async def listed(**params: str) -> list[str]:
        got = await app.http.get("/admin/leads", headers=AUTH, params=params)
        assert got.status_code == 200, got.text
        return [row["member_id"] for row in got.json()]

    assert await listed(stage="sql") == ["wmA"]
    assert await listed(stage="lead") == []
    assert await listed(chat_id=GROUP, owner="王五") == ["wmA"]
    assert await listed(chat_id=OTHER) == []  # listed by the group of origin
    async with app.runtime.sessions() as session:
        assert await lead_stage_counts(session, GROUP) == {
            "lead": 0,
            "MQL": 0,
            "SQL": 1,
            "customer": 0,
        }
        assert await lead_stage_counts(session, OTHER) == dict.fromkeys(
            ("lead", "MQL", "SQL", "customer"), 0
        )
    exported = await app.http.get("/admin/leads", headers=AUTH, params={"format": "csv"})
    assert exported.content.startswith(b"\xef\xbb\xbf")
    header, row = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert header[:5] == ["成员ID", "成员名", "来源群", "邀请人", "阶段"]
    assert row[:7] == ["wmA", "小安", GROUP, "zhangsan", "SQL", "王五", "要报价"]
    assert row[7] == "2026-11-14T10:00:00+08:00"


async def test_a_csv_cell_never_runs_as_a_formula(world: World) -> None:
    await put_lead(world.app, "wmC", {"chat_id": GROUP, "stage": "lead", "note": "=HYPERLINK(1)"})
    exported = await world.app.http.get("/admin/leads", headers=AUTH, params={"format": "csv"})
    [_, row] = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert row[6] == "'=HYPERLINK(1)"


@pytest.mark.parametrize(
    ("member", "body", "status", "says"),
    [
        ("wmA", {"chat_id": GROUP, "stage": "VIP"}, 422, "lead, MQL, SQL, customer"),
        ("wmA", {"chat_id": GROUP}, 422, "stage"),
        ("wmA", {"chat_id": "wrNope", "stage": "lead"}, 404, "no group wrNope"),
        ("wmZ", {"chat_id": GROUP, "stage": "lead"}, 404, "never been in group"),
        ("wmD", {"chat_id": OTHER, "stage": "lead"}, 404, "never been in group"),
    ],
)
async def test_bad_lead_marks_are_refused_and_change_nothing(
    world: World, member: str, body: dict[str, Any], status: int, says: str
) -> None:
    refused = await put_lead(world.app, member, body)
    assert refused.status_code == status
    assert says in refused.text
    missing = await world.app.http.get(f"/admin/members/{member}/lead", headers=AUTH)
    assert missing.status_code == 404
    assert "not marked" in missing.json()["detail"]


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"from": "2026-13-01"}, 422, "from must be a date"),
        ({"to": "20261101"}, 422, "to must be a date"),
        ({"from": "2026-02-30"}, 422, "from must be a date"),
        ({"from": "2026-11-10", "to": "2026-11-01"}, 422, "not be after"),
        ({"from": "2025-01-01", "to": "2026-11-01"}, 422, "at most 366 days"),
        ({"chat_id": "wrNope"}, 404, "no group wrNope"),
        ({"format": "xml"}, 422, "format"),
    ],
)
async def test_bad_report_requests_are_refused(
    world: World, params: dict[str, str], status: int, says: str
) -> None:
    got = await world.app.http.get("/admin/growth/inviters", headers=AUTH, params=params)
    assert got.status_code == status
    assert says in got.text


@pytest.mark.parametrize(
    ("params", "status"), [({"stage": "vip"}, 422), ({"chat_id": "wrNope"}, 404)]
)
async def test_bad_lead_lists_are_refused(
    world: World, params: dict[str, str], status: int
) -> None:
    got = await world.app.http.get("/admin/leads", headers=AUTH, params=params)
    assert got.status_code == status
