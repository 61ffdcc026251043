"""What group rules see in a message: keywords past the usual evasions, links outside
an allow-list, mini-programs, 名片, contact-sharing patterns. Pure functions."""

from __future__ import annotations

import pytest

from bot.config.playbooks.rules_section import RulesSection
from handlers.features.rules.matching import (
    MessageView,
    RuleMatcher,
    RuleSpec,
    allowed,
    matcher_for,
    normalize,
    squeeze,
)

ADS = RuleSpec(name="ads", keywords=("加我微信", "低价代理"))
LINKS = RuleSpec(name="links", links=True, allow_domains=("example.com",))
CARDS = RuleSpec(name="cards", weapp=True, card=True)
CONTACT = RuleSpec(name="contact", contact=True)
REGEX = RuleSpec(name="price", regex=(r"\d+\s*元/月",))
MATCHER = RuleMatcher((ADS, LINKS, CARDS, CONTACT, REGEX))


def _hits(text: str, **parts: object) -> dict[str, tuple[str, str]]:
    view = MessageView(kind=str(parts.pop("kind", "text")), text=text, **parts)  # type: ignore[arg-type]
    return {hit.rule: (hit.matcher, hit.evidence) for hit in MATCHER.hits(view)}


@pytest.mark.parametrize(
    "text",
    [
        "需要的加我微信",
        "需要的加 我 微 信",  # spaced out
        "需要的加-我-微.信",  # separators
        "需要的加我微信",  # plain
        "低價代理，欢迎咨询",  # traditional
        "ＬＯＷ：低价代理",  # full-width letters around
    ],
)
def test_keywords_survive_the_usual_evasions(text: str) -> None:
    assert _hits(text)["ads"][0] == "keyword"


def test_no_hit_on_ordinary_text() -> None:
    assert _hits("大家好，今天的分享资料在群公告里，版本 1.5 更新了") == {}


@pytest.mark.parametrize(
    ("text", "urls", "evidence"),
    [
        (
            "看这里 https://ads.example.net/p",
            ("https://ads.example.net/p",),
            "https://ads.example.net/p",
        ),
        ("打开 shop-abc.top/x 领券", (), "shop-abc.top/x"),
        ("低价 ＷＷＷ．ＦＯＯ．ＣＮ", (), "www.foo.cn"),
    ],
)
def test_links_outside_the_allow_list(text: str, urls: tuple[str, ...], evidence: str) -> None:
    assert _hits(text, urls=urls)["links"] == ("link", evidence)


def test_links_on_allowed_domains_and_their_subdomains_pass() -> None:
    hits = _hits(
        "资料 https://docs.example.com/a 和 example.com/b",
        urls=("https://docs.example.com/a",),
    )
    assert "links" not in hits
    assert allowed("https://example.com", ["example.com"])
    assert not allowed("https://badexample.com", ["example.com"])
    assert not allowed("https://example.com.evil.cn", ["example.com"])


def test_mini_programs_and_cards() -> None:
    assert _hits("拼团", kind="weapp", weapp="某商城")["cards"] == ("weapp", "某商城")
    assert _hits("", kind="card", card_user="wmX")["cards"] == ("card", "wmX")
    assert "cards" not in _hits("小程序", kind="text")


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("有需要+v详聊", "加V"),
        ("加V：abc123", "加V"),
        ("vx: sell_888888", "微信号"),
        ("我的微信号在主页", "微信号"),
        ("扫码进群领资料", "二维码"),
        ("二維碼在下面", "二维码"),  # traditional
        ("QQ 123456789", "QQ"),
        ("电话 138 0013 8000", "手机号"),
    ],
)
def test_contact_sharing_patterns(text: str, label: str) -> None:
    matcher, evidence = _hits(text)["contact"]
    assert matcher == "contact" and evidence.startswith(label)


@pytest.mark.parametrize(
    "text",
    [
        "加维护群的同学请注意",
        "vxworks 是个系统",
        "wxpython 很好用",
        "这个版本号是 2.0.1",
        "订单号 20261130",
    ],
)
def test_contact_patterns_leave_ordinary_words_alone(text: str) -> None:
    assert "contact" not in _hits(text)


def test_regex_rules_and_one_hit_per_rule() -> None:
    hits = _hits("加我微信，99 元/月，低价代理")
    assert hits["ads"][0] == "keyword" and hits["price"] == ("regex", "99 元/月")


def test_normalization() -> None:
    assert normalize("ＡＢＣ１２３") == "abc123"
    assert normalize("軟體") == "软体"
    assert squeeze("加 - 我 . 微 · 信") == "加我微信"


def test_a_sections_matcher_is_built_once_and_follows_a_reload() -> None:
    section = RulesSection.model_validate(
        {"items": [{"name": "ads", "match": {"keywords": ["低价代理"], "links": True}}]}
    )
    first = matcher_for(section)
    assert matcher_for(section) is first
    assert [hit.rule for hit in first.hits(MessageView(kind="text", text="低價代理"))] == ["ads"]
    reloaded = RulesSection.model_validate(
        {"items": [{"name": "ads", "match": {"keywords": ["加我微信"]}}]}
    )
    second = matcher_for(reloaded)
    assert second is not first
    assert second.hits(MessageView(kind="text", text="低价代理")) == []
