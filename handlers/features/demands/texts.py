"""What a member reads when their demand post is collected: one kind line, never a
warning. "下一期早报" rather than "明早": a post made before the morning's cutoff is in
that same morning's 早报."""

from __future__ import annotations


def private_note(group_name: str, kind: str, *, approval: bool) -> str:
    when = "运营看过后会在早报里统一发布" if approval else "会在下一期早报里统一发布"
    return f"你在「{group_name}」发的{kind}信息已收录，{when}，让更多群友看到，谢谢理解～"


def group_note(name: str, kind: str, *, approval: bool) -> str:
    when = "运营看过后会在早报里统一发布" if approval else "会在下一期早报里统一发布"
    return f"@{name} 你的{kind}信息已收录，{when}，谢谢理解～"
