"""The ladder decision for a rule hit (pure): every reason to let a hit pass comes
first, then one step up from the warnings still in force."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.config.playbooks.rules_section import RulesSection
from handlers.features.rules.decide import MemberFacts, PastStep, RuleDecision, decide_hit

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Wednesday 2026-11-25 15:00 in Shanghai
AT = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)

RULES = RulesSection.model_validate(
    {
        "exempt_roles": ["owner", "admin", "staff", "讲师"],
        "items": [
            {
                "name": "ads",
                "match": {"keywords": ["加我微信"]},
                "allow_windows": [{"days": ["fri"], "start": "20:00", "end": "21:00"}],
                "exempt_members": ["wmPartner"],
            },
            {"name": "newcomer-links", "match": {"links": True}, "new_members_days": 3},
            {"name": "trial", "match": {"weapp": True}, "dry_run": True},
        ],
    }
)
ADS, NEW_LINKS, TRIAL = RULES.items


def member(*history: PastStep, roles: frozenset[str] = frozenset(), **kw: object) -> MemberFacts:
    return MemberFacts(
        roles=roles,
        member_id=str(kw.get("member_id", "wmAlice")),
        joined_at=kw.get("joined_at", AT - timedelta(days=30)),  # type: ignore[arg-type]
        history=history,
    )


def decide(rule=ADS, facts: MemberFacts | None = None, at: datetime = AT) -> RuleDecision:  # type: ignore[no-untyped-def]
    return decide_hit(RULES, rule, facts or member(), at=at, tz=SHANGHAI)


def test_first_hit_reminds_then_warns_then_reports_and_stays_at_the_top() -> None:
    assert decide().step == "remind"
    one = PastStep("remind", AT - timedelta(hours=2))
    assert decide(facts=member(one)).step == "warn"
    two = PastStep("warn", AT - timedelta(hours=1))
    assert decide(facts=member(one, two)).step == "report"
    three = PastStep("report", AT - timedelta(minutes=30))
    top = decide(facts=member(one, two, three))
    assert top.step == "report" and top.reason == "warnings in force: 3"


def test_expired_and_overturned_warnings_do_not_count() -> None:
    expired = PastStep("remind", AT - timedelta(days=15))
    overturned = PastStep("warn", AT - timedelta(days=1), overturned=True)
    decision = decide(facts=member(expired, overturned))
    assert decision.step == "remind" and decision.reason == "first hit"


def test_never_two_steps_within_a_minute() -> None:
    just_now = PastStep("remind", AT - timedelta(seconds=20))
    held = decide(facts=member(just_now))
    assert held.step is None and held.record and "20 s ago" in held.reason


def test_exempt_roles_and_members_pass_without_a_record() -> None:
    for roles in (frozenset({"owner"}), frozenset({"讲师"}), frozenset({"staff", "KOL"})):
        passed = decide(facts=member(roles=roles))
        assert passed.step is None and not passed.record and "exempt role" in passed.reason
    partner = decide(facts=member(member_id="wmPartner"))
    assert partner.step is None and partner.reason == "exempt member"
    assert decide(facts=member(roles=frozenset({"KOL"}))).step == "remind"


def test_the_allowed_window_lets_ads_through() -> None:
    friday_evening = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)  # 20:30 in Shanghai
    passed = decide(at=friday_evening)
    assert passed.step is None and passed.reason == "inside an allowed window"
    assert decide(at=friday_evening + timedelta(hours=1)).step == "remind"  # 21:30


def test_a_newcomer_rule_leaves_old_members_alone() -> None:
    newcomer = member(joined_at=AT - timedelta(days=1))
    assert decide(NEW_LINKS, newcomer).step == "remind"
    veteran = decide(NEW_LINKS, member(joined_at=AT - timedelta(days=3)))
    assert veteran.step is None and "not a new member" in veteran.reason
    unknown = decide(NEW_LINKS, member(joined_at=None))
    assert unknown.step is None


def test_dry_run_records_what_it_would_do_and_does_nothing() -> None:
    trial = decide(TRIAL)
    assert trial.step is None and trial.record and trial.dry_run
    assert trial.reason == "dry run: would remind"
