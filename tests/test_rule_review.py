"""Overturn and confirm as pure decisions: who is told what, where the channel allows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.config.playbooks.models import Playbook
from handlers.core.actions import Note, QueueGroupText, QueuePrivateText
from handlers.features.copilot import AssignOwnerTask
from handlers.features.rules.handler import is_appeal
from handlers.features.rules.review import (
    MarkOverturned,
    MarkReviewed,
    ReviewConflict,
    decide_confirm,
    decide_overturn,
)
from storage.models import Group, Membership, Violation

T0 = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
PLAYBOOK = Playbook.model_validate(
    {
        "name": "p",
        "copilot": {"operators": ["yunying1"]},
        "rules": {"items": [{"name": "ads", "title": "不发广告", "match": {"links": True}}]},
    }
)


def violation(step: str | None = "warn", status: str = "taken") -> Violation:
    return Violation(
        id=7, chat_id="wrG", member_id="wmA", rule="ads", family="ads", step=step,
        status=status, reason="", matcher="link", evidence="x.com", created_at=T0,
    )  # fmt: skip


def group(channel: str) -> Group:
    config = {"key": "k"} if channel == "webhook" else {"sender": "owner1"}
    return Group(
        chat_id="wrG", name="交流群", owner="owner1", channel_type=channel, channel_config=config
    )


MEMBER = Membership(chat_id="wrG", member_id="wmA", name="小李", member_type=2)


def test_overturning_a_public_warning_tells_the_member_and_corrects_the_group() -> None:
    actions = decide_overturn(violation(), group("webhook"), PLAYBOOK, MEMBER, reason="误判")
    assert actions[0] == MarkOverturned(7, "误判")
    private = [a for a in actions if isinstance(a, QueuePrivateText)]
    public = [a for a in actions if isinstance(a, QueueGroupText)]
    assert len(private) == 1 and "小李" in private[0].text and "不发广告" in private[0].text
    assert len(public) == 1 and "更正" in public[0].text
    assert private[0].key == "overturn:7"


def test_overturning_a_private_reminder_posts_nothing_in_the_group() -> None:
    actions = decide_overturn(violation("remind"), group("webhook"), PLAYBOOK, MEMBER, reason="")
    assert not [a for a in actions if isinstance(a, QueueGroupText)]
    assert len([a for a in actions if isinstance(a, QueuePrivateText)]) == 1


def test_in_a_customer_group_the_owner_gets_the_apology_to_paste() -> None:
    actions = decide_overturn(violation(), group("customer_group"), PLAYBOOK, MEMBER, reason="")
    [task] = [a for a in actions if isinstance(a, AssignOwnerTask)]
    assert task.recipients == ("owner1", "yunying1")
    assert task.paste_text is not None and "更正" in task.paste_text
    assert not [a for a in actions if isinstance(a, QueueGroupText | QueuePrivateText)]


def test_a_dry_run_hit_is_marked_without_telling_anyone() -> None:
    actions = decide_overturn(
        violation(None, "dry_run"), group("webhook"), PLAYBOOK, MEMBER, reason=""
    )
    assert isinstance(actions[0], MarkOverturned)
    assert all(isinstance(a, MarkOverturned | Note) for a in actions)


def test_an_overturned_violation_cannot_be_overturned_or_confirmed() -> None:
    with pytest.raises(ReviewConflict):
        decide_overturn(violation(status="overturned"), None, None, None, reason="")
    with pytest.raises(ReviewConflict):
        decide_confirm(violation(status="overturned"))
    assert decide_confirm(violation()) == [MarkReviewed(7)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("申诉", True),
        ("申訴 我发的是官网", True),
        ("@机器人 申诉", True),
        ("我想申诉", False),
        ("", False),
    ],
)
def test_the_appeal_word_starts_the_message(text: str, expected: bool) -> None:
    assert is_appeal(text, "申诉") is expected


def test_remove_happens_only_in_a_group_the_app_created() -> None:
    from handlers.core.events import Message
    from handlers.features.rules.handler import deliver
    from handlers.features.rules.texts import story
    from handlers.features.rules.violations import RemoveMember

    assert PLAYBOOK.rules is not None
    told = story(
        PLAYBOOK.rules, PLAYBOOK.rules.items[0], matcher="link", evidence="x.com", text="x.com",
        member_name="小李", group_name="交流群", count=4,
    )  # fmt: skip
    event = Message(source="archive", chat_id="wrG", occurred_at=T0, sender="wmA", text="x.com")
    in_app_group = deliver("remove", told, event, group("appchat"), PLAYBOOK, MEMBER)
    assert [type(a).__name__ for a in in_app_group] == [
        "QueueGroupText",
        "RemoveMember",
        "AssignOwnerTask",
    ]
    assert RemoveMember("wrG", "wmA") in in_app_group
    elsewhere = deliver("remove", told, event, group("webhook"), PLAYBOOK, MEMBER)
    assert [type(a).__name__ for a in elsewhere] == ["AssignOwnerTask"]
    assert isinstance(elsewhere[0], AssignOwnerTask) and "手动移出" in elsewhere[0].summary


def test_overturning_a_taken_step_gives_its_penalty_back_and_a_dry_run_has_none() -> None:
    from handlers.features.points.penalties import ReversePenalty

    for step in ("remind", "warn", "report", "remove"):
        actions = decide_overturn(
            violation(step), group("appchat"), PLAYBOOK, MEMBER, reason="误判"
        )
        assert ReversePenalty(7, "wrG", "wmA", "误判") in actions
    dry = decide_overturn(violation(None, "dry_run"), group("webhook"), PLAYBOOK, MEMBER, reason="")
    assert not [a for a in dry if isinstance(a, ReversePenalty)]
    assert decide_confirm(violation()) == [MarkReviewed(7)]  # confirming takes nothing back
