"""What members and operators read about the 贡献之星 vote (handlers/features/star/vote.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any

TITLE = "【贡献之星】"


def month_words(month: str) -> str:
    """ "2026-11" → "11月"."""
    return f"{int(month[5:7])}月"


def _deadline(closes_at: datetime, tz: tzinfo) -> str:
    local = closes_at.astimezone(tz)
    return f"{local.month}月{local.day}日 {local:%H:%M}"


def open_text(
    month: str, candidates: Sequence[dict[str, Any]], *, closes_at: datetime, tz: tzinfo
) -> str:
    lines = [
        f"{TITLE}{month_words(month)}贡献之星投票开始啦！候选人（按{month_words(month)}积分）："
    ]
    lines += [f"{c['number']}. {c['name']}（{c['points']} 分）" for c in candidates]
    lines.append(
        f"回复数字即可投票，例如回复「{candidates[0]['number']}」。"
        "每人一票，以第一次为准；不能投自己。"
        f"投票截止：{_deadline(closes_at, tz)}。"
    )
    return "\n".join(lines)


def open_task(month: str) -> str:
    return (
        f"{month_words(month)}贡献之星投票已开始，但机器人不能在本群直接发言："
        "请把下面这段发到群里，成员回复数字即可投票。"
    )


def result_text(
    month: str,
    candidates: Sequence[dict[str, Any]],
    votes: dict[int, int],
    winners: Sequence[int],
    *,
    counted: int,
    winner_points: int,
) -> str:
    by_number = {int(c["number"]): c for c in candidates}
    head = f"{TITLE}{month_words(month)}贡献之星投票结果："
    if not winners:
        return f"{head}\n本次没有收到有效投票，{month_words(month)}贡献之星空缺。谢谢大家的参与！"
    names = "、".join(str(by_number[n]["name"]) for n in winners)
    top = votes.get(winners[0], 0)
    if len(winners) == 1:
        line = f"恭喜 {names} 当选{month_words(month)}贡献之星！（{top} 票）"
    else:
        line = f"恭喜 {names} 并列当选{month_words(month)}贡献之星！（各 {top} 票）"
    if winner_points:
        line += f"\n当选者各奖励 {winner_points} 积分。"
    tally = "；".join(
        f"{c['number']}. {c['name']} {votes.get(int(c['number']), 0)} 票" for c in candidates
    )
    return f"{head}\n{line}\n得票：{tally}\n共 {counted} 张有效票，谢谢大家的参与！"


def result_task(month: str) -> str:
    return (
        f"{month_words(month)}贡献之星投票已结束，机器人不能在本群直接发言："
        "请把下面的结果发到群里。"
    )


def no_candidates_note(month: str) -> str:
    return f"{month} 没有可提名的成员（无人得分，或得分的都是群主、管理员和员工）：本月不投票"
