"""A customer group's 早报 mass send after WeCom took it: the owner confirms it (or
not) and the day's row follows what get_groupmsg_send_result says (issue 10)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.daily_report_confirmations import CHECK_EVERY
from bot.sandbox.emulator import Fault
from bot.sandbox.emulator.server import RunningEmulator
from handlers.features.daily_report.mass_send import (
    NEVER_CONFIRMED,
    chat_status,
    confirmation_outcome,
)
from tests.helpers import AUTH, Clock, LiveApp, settle
from tests.test_daily_report import GROUP, add_knowledge, history, live, local

__all__ = ["live"]  # the fixture, shared with tests/test_daily_report.py

API = "get_groupmsg_send_result"


# --- pure -----------------------------------------------------------------------------------


def test_what_the_send_result_means() -> None:
    sent_at = datetime(2026, 12, 7, 1, 5, tzinfo=UTC)
    stamp = int(sent_at.timestamp())
    assert confirmation_outcome(1, stamp, day_over=False) == ("confirmed", sent_at, None)
    assert confirmation_outcome(1, stamp, day_over=True) == ("confirmed", sent_at, None)
    assert confirmation_outcome(0, 0, day_over=False) is None
    assert confirmation_outcome(0, 0, day_over=True) == ("unconfirmed", None, NEVER_CONFIRMED)
    state, _, reason = confirmation_outcome(2, 0, day_over=False) or ("", None, None)
    assert state == "failed" and "not a friend" in (reason or "")
    state, _, reason = confirmation_outcome(3, 0, day_over=False) or ("", None, None)
    assert state == "failed" and "another" in (reason or "")


def test_only_the_groups_row_counts_and_none_is_not_sent() -> None:
    rows = [
        {"chat_id": "wrOther", "status": 1, "send_time": 5},
        {"chat_id": "wrMine", "status": 2, "send_time": 0},
    ]
    assert chat_status("wrMine", rows) == (2, 0)
    assert chat_status("wrMissing", rows) == (0, 0)
    assert chat_status("wrMine", [{"chat_id": "wrMine", "status": "1"}]) == (0, 0)


# --- live -----------------------------------------------------------------------------------


async def awaiting_mass_send(
    app: LiveApp, clock: Clock, emulator: RunningEmulator
) -> tuple[str, dict[str, Any]]:
    """Monday's 早报 as a mass send WeCom took: (its msgid, the day's history row)."""
    put = await app.http.put(
        f"/admin/groups/{GROUP}", headers=AUTH, json={"channel": {"type": "customer_group"}}
    )
    assert put.status_code == 200, put.text
    await add_knowledge(app, "客户群知识")
    clock.now = local(2026, 12, 7, 8, 30)
    await settle(app)
    await app.runtime.follow_daily_report_mass_sends()
    [row] = await history(app)
    assert row["mass_send_state"] == "awaiting_confirmation"
    [mass] = [m for m in emulator.state.mass_sends.values() if m.chat_type == "group"]
    assert (mass.msgid, mass.sender, mass.targets) == (row["mass_send_msgid"], "owner1", [GROUP])
    return mass.msgid, row


async def follow(app: LiveApp) -> dict[str, Any]:
    await app.runtime.follow_daily_report_mass_sends()
    [row] = await history(app)
    return row


async def test_the_owner_confirms_and_the_row_says_when(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    msgid, row = await awaiting_mass_send(app, clock, emulator)
    # The first look came with the msgid: not sent yet, and it was asked.
    assert emulator.state.calls[API] == 1
    assert row["mass_send_checked_at"] == "2026-12-07T08:30:00+08:00"
    assert row["mass_send_confirmed_at"] is None
    sent_at = local(2026, 12, 7, 9, 5)
    emulator.state.confirm_mass_send(msgid, send_time=int(sent_at.timestamp()))
    clock.now = local(2026, 12, 7, 8, 39)  # polled gently: not again within ten minutes
    assert (await follow(app))["mass_send_state"] == "awaiting_confirmation"
    assert emulator.state.calls[API] == 1
    clock.now = local(2026, 12, 7, 8, 30) + CHECK_EVERY
    row = await follow(app)
    assert emulator.state.calls[API] == 2
    assert row["mass_send_state"] == "confirmed"
    assert row["mass_send_confirmed_at"] == "2026-12-07T09:05:00+08:00"  # BOT_TIMEZONE
    clock.now = local(2026, 12, 8, 9, 0)  # settled: never asked again
    assert (await follow(app))["mass_send_state"] == "confirmed"
    assert emulator.state.calls[API] == 2


async def test_never_confirmed_is_unconfirmed_after_the_day_and_polling_stops(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    await awaiting_mass_send(app, clock, emulator)
    clock.now = local(2026, 12, 7, 23, 59)
    assert (await follow(app))["mass_send_state"] == "awaiting_confirmation"
    clock.now = local(2026, 12, 8, 0, 10)
    row = await follow(app)
    assert row["mass_send_state"] == "unconfirmed"
    assert NEVER_CONFIRMED in row["reason"] and row["mass_send_confirmed_at"] is None
    asked = emulator.state.calls[API]
    assert asked == 3
    clock.now = local(2026, 12, 8, 12, 0)
    assert (await follow(app))["mass_send_state"] == "unconfirmed"
    assert emulator.state.calls[API] == asked


@pytest.mark.parametrize(("status", "words"), [(2, "not a friend"), (3, "another one")])
async def test_a_failed_send_is_failed_with_the_reason(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator, status: int, words: str
) -> None:
    app, clock = live
    msgid, _ = await awaiting_mass_send(app, clock, emulator)
    emulator.state.confirm_mass_send(msgid, status=status)
    clock.now += CHECK_EVERY
    row = await follow(app)
    assert row["mass_send_state"] == "failed"
    assert words in row["reason"] and f"status {status}" in row["reason"]
    assert row["mass_send_confirmed_at"] is None


async def test_wecom_erroring_leaves_the_row_and_it_is_asked_again_later(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    app, clock = live
    msgid, _ = await awaiting_mass_send(app, clock, emulator)
    emulator.state.confirm_mass_send(msgid, send_time=int(local(2026, 12, 7, 9, 0).timestamp()))
    emulator.state.add_fault(Fault(API, errcode=60011))  # no privilege: permanent
    clock.now += CHECK_EVERY
    note = await app.runtime.follow_daily_report_mass_sends()
    [row] = await history(app)
    assert row["mass_send_state"] == "awaiting_confirmation" and note == "1 errors"
    assert "cannot ask WeCom whether it was sent" in caplog.text
    emulator.state.add_fault(Fault(API, http_status=502, times=10))  # down for a while
    clock.now += CHECK_EVERY
    assert (await follow(app))["mass_send_state"] == "awaiting_confirmation"
    clock.now += CHECK_EVERY
    emulator.state.clear_faults()
    row = await follow(app)
    assert row["mass_send_state"] == "confirmed"
    assert row["mass_send_confirmed_at"] == "2026-12-07T09:00:00+08:00"
