"""What members and operators read about a rule hit: which rule, why, what happens
next, and how to appeal. Plain, polite Chinese; never an internal id in front of
members."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config.playbooks import Playbook
from bot.config.playbooks.rules_section import Rule, RulesSection
from storage.models import Membership

# Why a rule exists, when the playbook does not say, by what matched.
DEFAULT_EXPLAIN = {
    "keyword": "群里不发广告和推广信息",
    "regex": "群里不发广告和推广信息",
    "link": "为了大家的安全，群里不发外部链接",
    "weapp": "群里不转发小程序卡片",
    "card": "群里不推送名片",
    "contact": "群里不留联系方式拉人私聊",
    "flood": "短时间连续发很多条会刷掉别人的消息",
    "repeat": "同样的内容反复发会打扰大家",
    "raid": "短时间内有很多新朋友入群，新成员暂时不能发链接和联系方式",
}
EXCERPT_CHARS = 60


@dataclass(frozen=True)
class HitStory:
    """Everything a text about one hit may say."""

    member_name: str
    group_name: str
    rule_title: str
    explain: str
    evidence: str
    excerpt: str  # what the member wrote, shortened
    count: int  # this hit's place on the ladder: 1 for the first in force
    ttl_days: int
    appeal_word: str
    appeal_hours: int


def story(
    rules: RulesSection,
    rule: Rule | None,
    *,
    matcher: str,
    evidence: str,
    text: str,
    member_name: str,
    group_name: str,
    count: int,
) -> HitStory:
    title = rule.display_title if rule is not None else "防突击入群"
    explain = (rule.explain if rule is not None else None) or DEFAULT_EXPLAIN.get(
        matcher, "请遵守群规"
    )
    return HitStory(
        member_name=member_name,
        group_name=group_name,
        rule_title=title,
        explain=explain,
        evidence=shorten(evidence, 40),
        excerpt=shorten(text, EXCERPT_CHARS),
        count=count,
        ttl_days=rules.warning_ttl_days,
        appeal_word=rules.appeal_word,
        appeal_hours=rules.appeal_window_hours,
    )


def member_name(membership: Membership | None, playbook: Playbook) -> str:
    """How texts name a member: their nickname, never a raw wm… id."""
    return (membership.name if membership is not None else None) or playbook.neutral_name


def rule_title(rules: RulesSection | None, rule_name: str) -> str:
    """A recorded rule's name as members read it (the playbook may have changed since)."""
    rule = next((r for r in (rules.items if rules else ()) if r.name == rule_name), None)
    return rule.display_title if rule is not None else rule_name


def shorten(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _nth(s: HitStory) -> str:
    return f"{s.member_name} 在 {s.ttl_days} 天内第 {s.count} 次碰到群规「{s.rule_title}」"


def _appeal(s: HitStory) -> str:
    return f"如果是误判，{s.appeal_hours} 小时内回复「{s.appeal_word}」，管理员会复核。"


def remind_text(s: HitStory) -> str:
    """The first step, in private: no one else sees it."""
    return (
        f"{s.member_name}，你好。你刚在「{s.group_name}」发的消息（{s.evidence}）"
        f"碰到了群规「{s.rule_title}」：{s.explain}。\n"
        f"这只是私下提醒一下，没有任何处罚；{s.ttl_days} 天内再出现，会在群里提醒。\n" + _appeal(s)
    )


def warn_text(s: HitStory) -> str:
    """The second step, in the group: the rule is explained to everyone, kindly."""
    return (
        f"@{s.member_name} 提醒一下：群规「{s.rule_title}」——{s.explain}。"
        f"你刚才的消息（{s.evidence}）是 {s.ttl_days} 天内第 {s.count} 次碰到这条规则，"
        f"再出现会报告群主。\n" + _appeal(s)
    )


def report_summary(s: HitStory) -> str:
    return (
        _nth(s) + f"（{s.evidence}），原话：「{s.excerpt}」。之前已私下和在群里提醒过。"
        "请决定是否私聊沟通或移出群聊；如是误判，可在管理后台撤销这条记录。"
    )


def remove_summary(s: HitStory) -> str:
    return (
        _nth(s) + f"（{s.evidence}），原话：「{s.excerpt}」，阶梯已到「移出」。"
        "机器人不会自己踢人：请确认后手动移出；如是误判，可在管理后台撤销这条记录。"
    )


def remove_notice(s: HitStory) -> str:
    """Said in the group before the bot removes someone (only in groups the app created)."""
    return (
        _nth(s) + f"（{s.explain}），之前已私下和在群里提醒过，按群规移出本群。"
        "如有误会，请联系群主。"
    )


def removed_summary(s: HitStory) -> str:
    return (
        f"已按群规把 {s.member_name} 移出群聊：{s.ttl_days} 天内第 {s.count} 次碰到"
        f"「{s.rule_title}」（{s.evidence}），原话：「{s.excerpt}」。"
        "如是误判，在管理后台撤销这条记录，再把 TA 拉回群。"
    )


def remind_task(s: HitStory) -> str:
    return (
        f"请私下提醒 {s.member_name}：TA 的消息（{s.evidence}，原话：「{s.excerpt}」）"
        f"碰到了群规「{s.rule_title}」。机器人在这里不能直接发消息，下面这段可以直接发给 TA。"
    )


def warn_task(s: HitStory) -> str:
    return (
        f"请在群里提醒 {s.member_name}：TA 在 {s.ttl_days} 天内第 {s.count} 次碰到群规"
        f"「{s.rule_title}」（{s.evidence}，原话：「{s.excerpt}」）。"
        "机器人不能直接在客户群发言，下面这段可以直接发到群里。"
    )


def overturn_text(member_name: str, group_name: str, rule_title: str) -> str:
    return (
        f"{member_name}，你好。你在「{group_name}」收到的群规「{rule_title}」提醒经管理员复核"
        "是误判，已经撤销，不会留下任何记录。抱歉打扰了！"
    )


def overturn_group_text(member_name: str, rule_title: str) -> str:
    return f"更正：刚才对 @{member_name} 的群规「{rule_title}」提醒是误判，已撤销。抱歉！"


def appeal_received_text(member_name: str, rule_title: str) -> str:
    return (
        f"{member_name}，你的申诉已收到（群规「{rule_title}」）。管理员会尽快复核，有结果会告诉你。"
    )


def appeal_task(member_name: str, rule_title: str, step: str | None, said: str) -> str:
    return (
        f"{member_name} 对群规「{rule_title}」的处理（{STEP_NAMES.get(step or '', '记录')}）"
        f"提出申诉：「{shorten(said, EXCERPT_CHARS)}」。请在管理后台的待复核列表里确认或撤销。"
    )


def raid_notice(joins: int, seconds: int, minutes: int) -> str:
    return (
        f"欢迎刚入群的新朋友！{seconds} 秒内进来了 {joins} 位，为了防止广告号混入，"
        f"接下来 {minutes} 分钟新成员发的链接和联系方式会先交给群主查看。"
        "大家也请留意陌生链接，谨防受骗。"
    )


def raid_task(joins: int, seconds: int, minutes: int) -> str:
    return (
        f"{seconds} 秒内有 {joins} 人入群，已开启防突击入群保护 {minutes} 分钟："
        "新成员发的链接和联系方式会作为报告发给你，不逐个提醒。"
    )


STEP_NAMES = {"remind": "私下提醒", "warn": "群里提醒", "report": "报告群主", "remove": "建议移出"}
