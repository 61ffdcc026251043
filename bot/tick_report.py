"""The `tick` command's report as lines an operator reads (Chinese), not a dict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Outcome statuses of due work (scheduler/engine.py Outcome.status), in reading order.
STATUS_WORDS = {
    "sent": "发出",
    "done": "完成",
    "skipped": "跳过",
    "deferred": "顺延",
    "failed": "失败",
}


def describe_counts(counts: Mapping[str, int], unit: str) -> str:
    """{"sent": 2, "skipped": 1} → "发出 2 个，跳过 1 个"; nothing → "无"."""
    parts = [
        f"{STATUS_WORDS[status]} {counts[status]} {unit}"
        for status in STATUS_WORDS
        if counts.get(status)
    ]
    parts += [
        f"{status} {n} {unit}" for status, n in sorted(counts.items()) if status not in STATUS_WORDS
    ]
    return "，".join(parts) if parts else "无"


def tick_lines(report: Mapping[str, Any]) -> list[str]:
    """The report of `run_tick_command` (its `at` already in BOT_TIMEZONE)."""
    lines = [
        f"时间点：{report['at']}",
        f"欢迎批次：{describe_counts(report['welcomes'], '批')}",
        f"触达步骤：{describe_counts(report['steps'], '步')}",
    ]
    if report.get("reports"):  # the 早报, on the ticks that have one
        lines.append(f"早报：{describe_counts(report['reports'], '份')}")
    if report["queued"]:
        lines.append(
            f"消息：排队 {report['queued']} 条，已发出 {report['sent']} 条，"
            f"等待 {report['waiting']} 条，失败 {report['failed']} 条"
        )
    else:
        lines.append("消息：没有新消息")
    return lines
