"""The operator copilot's pure parts: one digest per person that fits an app
message, and when it is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from handlers.features.copilot import TaskView, decide_digest, render_digest
from handlers.features.welcome import batch_due_at

T0 = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
SH = ZoneInfo("Asia/Shanghai")


def task(n: int, paste: str | None = "请大家不要发广告") -> TaskView:
    return TaskView("私域运营交流群", T0 + timedelta(minutes=n), f"第 {n} 件事", paste)


def test_a_digest_lists_tasks_in_order_with_local_times_and_paste_texts() -> None:
    text = render_digest([task(1), task(2, None)], tz=SH, max_bytes=2048)
    assert text.startswith("【社群助手】有 2 件事需要你处理")
    assert text.index("第 1 件事") < text.index("第 2 件事")
    assert "15:01「私域运营交流群」" in text  # BOT_TIMEZONE, not UTC
    assert text.count("可直接复制") == 1


def test_a_long_digest_fits_the_app_message_limit_and_counts_the_rest() -> None:
    many = [task(n, "很长的提醒文字。" * 20) for n in range(30)]
    text = render_digest(many, tz=SH, max_bytes=2048)
    assert len(text.encode("utf-8")) <= 2048
    assert "还有" in text and "/admin/review" in text
    assert "第 0 件事" in text and "第 29 件事" not in text


def test_one_huge_task_is_cut_to_the_limit() -> None:
    text = render_digest([task(1, "字" * 5000)], tz=SH, max_bytes=2048)
    assert len(text.encode("utf-8")) <= 2048 and text.startswith("【社群助手】")


def test_an_empty_digest_sends_nothing() -> None:
    assert decide_digest(1, "owner1", [], tz=SH).actions == ()


def test_the_first_task_waits_a_moment_and_later_ones_the_interval() -> None:
    assert batch_due_at(
        now=T0, batch_window_seconds=10, last_sent_at=None, min_interval_seconds=300
    ) == T0 + timedelta(seconds=10)
    assert batch_due_at(
        now=T0,
        batch_window_seconds=10,
        last_sent_at=T0 - timedelta(seconds=60),
        min_interval_seconds=300,
    ) == T0 + timedelta(seconds=240)
