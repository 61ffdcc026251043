"""Channel objects: what each can do, how a text becomes rows, which window it counts in."""

from __future__ import annotations

import pytest

from handlers.channels import (
    CHANNELS,
    CannotPost,
    compose_group_text,
    compose_private_text,
    group_channel,
    rate_policy_for,
    split_text,
)


def test_every_group_channel_declares_what_it_can_do() -> None:
    assert group_channel("webhook").capabilities.immediate
    assert group_channel("appchat").capabilities.immediate
    customer = group_channel("customer_group").capabilities
    assert customer.can_post and not customer.immediate and customer.daily_quota == 1
    assert not group_channel("none").capabilities.can_post
    assert group_channel("no-such-type") is group_channel("none")


def test_a_long_text_becomes_ordered_rows_that_fit_with_derived_keys() -> None:
    text = "\n".join(f"第{i}行：" + "内容" * 40 for i in range(40))  # ~10 KB of Chinese
    rows = compose_group_text(
        chat_id="wrA",
        channel_type="webhook",
        channel_config={"key": "k1"},
        text=text,
        origin="daily_report",
        dedup_key="daily_report:wrA:2026-11-25",
    )
    assert len(rows) > 1
    assert all(len(r.payload["text"]["content"].encode()) <= 2048 for r in rows)
    assert "".join(r.payload["text"]["content"] for r in rows).replace("\n", "") == text.replace(
        "\n", ""
    )
    assert [r.dedup_key for r in rows][:2] == [
        "daily_report:wrA:2026-11-25",
        "daily_report:wrA:2026-11-25#1",
    ]
    assert {r.order_key for r in rows} == {"group:wrA"} and {r.rate_key for r in rows} == {
        "webhook:k1"
    }


def test_misconfigured_channels_say_why() -> None:
    with pytest.raises(CannotPost, match="no robot key"):
        compose_group_text(
            chat_id="wrA",
            channel_type="webhook",
            channel_config={},
            text="hi",
            origin="x",
            dedup_key=None,
        )
    with pytest.raises(CannotPost, match="no channel"):
        compose_group_text(
            chat_id="wrA",
            channel_type="none",
            channel_config={},
            text="hi",
            origin="x",
            dedup_key=None,
        )
    with pytest.raises(CannotPost, match="unknown channel type"):
        compose_group_text(
            chat_id="wrA",
            channel_type="fax",
            channel_config={},
            text="hi",
            origin="x",
            dedup_key=None,
        )


def test_a_customer_group_post_goes_through_its_owner_unless_a_sender_is_set() -> None:
    (row,) = compose_group_text(
        chat_id="wrC",
        channel_type="customer_group",
        channel_config={},
        text="早报",
        origin="daily_report",
        dedup_key=None,
        owner="owner7",
    )
    assert row.payload["sender"] == "owner7" and row.channel == "customer_group"
    (row,) = compose_group_text(
        chat_id="wrC",
        channel_type="customer_group",
        channel_config={"sender": "ops1"},
        text="早报",
        origin="daily_report",
        dedup_key=None,
        owner="owner7",
    )
    assert row.payload["sender"] == "ops1"


def test_private_messages_pick_the_channel_by_who_the_member_is() -> None:
    inside = compose_private_text(
        member_id="zhangsan",
        member_type=1,
        sender=None,
        text="你好",
        origin="touch",
        chat_id="wrA",
        dedup_key="touch:1",
    )
    assert inside.channel == "private" and inside.payload["touser"] == "zhangsan"
    assert inside.member_id == "zhangsan"
    customer = compose_private_text(
        member_id="wmX",
        member_type=None,
        sender="owner7",
        text="你好",
        origin="touch",
        chat_id="wrA",
        dedup_key="touch:2",
    )
    assert customer.channel == "private_customer" and customer.payload["sender"] == "owner7"
    with pytest.raises(CannotPost, match="group owner"):
        compose_private_text(
            member_id="wmX",
            member_type=2,
            sender=None,
            text="你好",
            origin="touch",
            chat_id="wrA",
            dedup_key=None,
        )


def test_rate_keys_find_their_channel_policy() -> None:
    webhook = rate_policy_for("webhook:abc")
    assert webhook is not None and (webhook.messages, webhook.seconds) == (20, 60)
    private = rate_policy_for("private:zhangsan")
    assert private is not None and private.messages == 30
    assert rate_policy_for("mystery:1") is None
    removals = rate_policy_for("appchat_members:wrApp")
    assert removals is not None and (removals.messages, removals.seconds) == (20, 60)
    assert set(CHANNELS) == {
        "webhook",
        "appchat",
        "appchat_members",
        "customer_group",
        "none",
        "private",
        "private_customer",
        "aibot_response",
        "aibot_stream",
    }


def test_split_keeps_lines_whole_when_it_can() -> None:
    assert split_text("短", 2048) == ["短"]
    parts = split_text("一" * 1000, 300)  # one over-long line: cut by characters
    assert all(len(p.encode()) <= 300 for p in parts) and "".join(parts) == "一" * 1000


def test_a_45009_pauses_the_scope_wecom_limited() -> None:
    from handlers.channels import CHANNELS

    # A robot's limit is its key's own; the other channels share a corp-wide API limit.
    assert CHANNELS["webhook"].pause_key("k1") == "webhook:k1"
    assert CHANNELS["appchat"].pause_key("chatA") == "api:appchat/send"
    assert CHANNELS["private"].pause_key("u1") == "api:message/send"
    assert (
        CHANNELS["customer_group"].pause_key("wr1")
        == CHANNELS["private_customer"].pause_key("wm1")
        == "api:externalcontact/add_msg_template"
    )
