"""What a message contains that a group rule may be about: pure and side-effect free.

Text is normalized before any matcher sees it, because evasion is the norm in ad
posts: full-width and compatibility forms (ｖ, Ｖ, ①) fold by NFKC, case folds,
traditional characters become simplified (OpenCC t2s), and separators inserted
between characters (加 V、加-微-信、加.微.信) are squeezed out for keyword and
contact-pattern matching. Keywords are matched with one Aho-Corasick automaton
per rule set, built once per playbook version.
"""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import ahocorasick
import opencc

from bot.config.playbooks.rules_section import Rule, RulesSection

# Characters people put between the letters of a word to get past filters.
_SEPARATORS = re.compile(r"[\s\-_.,，。、·•*~～|/\\'\"“”‘’`^:：;；!！?？()（）\[\]【】<>《》]+")

# Contact-sharing patterns (加V, 微信号, 二维码 …). Most are matched on squeezed text;
# the latin ones need their separators (a colon after vx), or "wxpython" would count.
CONTACT_PATTERNS: tuple[tuple[str, re.Pattern[str], bool], ...] = tuple(
    (label, re.compile(pattern), squeezed)
    for label, pattern, squeezed in (
        ("加V", r"[加+](?:我)?(?:vx|wx|v|薇|威)|v信|微x|w信", True),
        ("微信号", r"(?:微信|威信|薇信|徽信|v信)(?:号|id)?[a-z][a-z0-9_-]{5,19}", True),
        ("微信号", r"(?<![a-z])(?:vx|wx)\s*(?:号|id)?\s*[:：]\s*[a-z][a-z0-9_-]{5,19}", False),
        ("微信号", r"微信号|加微信|加我微信|私信我微信", True),
        ("二维码", r"二维码|扫码|扫一扫|扫我|见图加|长按识别", True),
        ("QQ", r"(?:qq|扣扣|企鹅)(?:号|群)?[1-9][0-9]{4,11}", True),
        ("手机号", r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])", True),
    )
)

# Bare domains in text (ads often leave out http://): a label and a common TLD.
_BARE_DOMAIN = re.compile(
    r"(?<![a-z0-9@-])((?:[a-z0-9-]+\.)+(?:com|cn|net|org|top|xyz|vip|cc|io|me|shop|club|site|"
    r"online|store|info|biz|tv|co|ink|link|fun|ltd|work|live|pro|wang|tech)\b)(?:/[^\s]*)?"
)

_t2s_lock = threading.Lock()


@lru_cache(maxsize=1)
def _converter() -> Any:
    return opencc.OpenCC("t2s")


@lru_cache(maxsize=1024)  # one message's text is normalized by several readers
def normalize(text: str) -> str:
    """Full-width and compatibility forms folded, case folded, simplified Chinese."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    with _t2s_lock:  # one converter for the process; its C++ object is not thread-safe
        return str(_converter().convert(folded))


def squeeze(normalized: str) -> str:
    """`normalized` without the separators people insert between characters."""
    return _SEPARATORS.sub("", normalized)


REPEAT_MIN_CHARS = 6  # "收到", "+1", "好的" said three times is agreement, not spam


def text_fingerprint(text: str) -> str | None:
    """A short digest of what the text says once evasion is folded away, for "the same
    text again"; None for texts too short to count as repeats."""
    squeezed = squeeze(normalize(text))
    if len(squeezed) < REPEAT_MIN_CHARS:
        return None
    return hashlib.blake2b(squeezed.encode("utf-8"), digest_size=8).hexdigest()


@dataclass(frozen=True)
class Hit:
    """One reason a rule matched: which matcher, and the evidence shown to people."""

    rule: str
    matcher: str  # keyword | regex | link | weapp | card | contact | flood | repeat | raid
    evidence: str


@dataclass(frozen=True)
class RuleSpec:
    """What one rule matches, as the matcher needs it (from the playbook's rule)."""

    name: str
    keywords: tuple[str, ...] = ()
    regex: tuple[str, ...] = ()
    links: bool = False
    allow_domains: tuple[str, ...] = ()
    weapp: bool = False
    card: bool = False
    contact: bool = False


@dataclass(frozen=True)
class MessageView:
    """The parts of a message the matchers read."""

    kind: str
    text: str
    urls: Sequence[str] = ()
    weapp: str | None = None
    card_user: str | None = None


@dataclass
class RuleMatcher:
    """Matchers for a set of rules, compiled once."""

    specs: tuple[RuleSpec, ...]
    _automaton: Any = None
    _regex: dict[str, tuple[re.Pattern[str], ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        automaton = ahocorasick.Automaton()
        words: dict[str, list[tuple[str, str]]] = {}
        for spec in self.specs:
            for keyword in spec.keywords:
                key = squeeze(normalize(keyword))
                if key:
                    words.setdefault(key, []).append((spec.name, keyword))
            self._regex[spec.name] = tuple(
                re.compile(pattern, re.IGNORECASE) for pattern in spec.regex
            )
        for key, owners in words.items():
            automaton.add_word(key, tuple(owners))
        if words:
            automaton.make_automaton()
            self._automaton = automaton

    def hits(self, message: MessageView) -> list[Hit]:
        """Every rule the message matches, each with its first piece of evidence."""
        normalized = normalize(message.text)
        squeezed = squeeze(normalized)
        found: dict[str, Hit] = {}
        if self._automaton is not None:
            for _end, owners in self._automaton.iter(squeezed):
                for rule, keyword in owners:
                    found.setdefault(rule, Hit(rule, "keyword", keyword))
        for spec in self.specs:
            if spec.name in found:
                continue
            hit = self._other_hit(spec, message, normalized, squeezed)
            if hit is not None:
                found[spec.name] = hit
        return [found[spec.name] for spec in self.specs if spec.name in found]

    def _other_hit(
        self, spec: RuleSpec, message: MessageView, normalized: str, squeezed: str
    ) -> Hit | None:
        for pattern in self._regex[spec.name]:
            match = pattern.search(normalized) or pattern.search(message.text)
            if match:
                return Hit(spec.name, "regex", match.group(0))
        if spec.weapp and message.kind == "weapp":
            return Hit(spec.name, "weapp", message.weapp or "小程序")
        if spec.card and message.kind == "card":
            return Hit(spec.name, "card", message.card_user or "名片")
        if spec.links:
            for url in links_in(message, normalized):
                if not allowed(url, spec.allow_domains):
                    return Hit(spec.name, "link", url)
        if spec.contact:
            for label, pattern, on_squeezed in CONTACT_PATTERNS:
                match = pattern.search(squeezed if on_squeezed else normalized)
                if match:
                    return Hit(spec.name, "contact", f"{label}：{match.group(0)}")
        return None


def links_in(message: MessageView, normalized: str) -> list[str]:
    """The message's addresses: the source's (link cards, http/www in the text) and
    bare domains written without http://."""
    found = list(message.urls)
    for match in _BARE_DOMAIN.finditer(normalized):
        address = match.group(0)
        if not any(address in url.casefold() for url in found):
            found.append(address)
    return found


def host_of(url: str) -> str:
    candidate = url if "://" in url else "http://" + url
    try:
        return (urlsplit(candidate).hostname or "").casefold().rstrip(".")
    except ValueError:
        return ""


def allowed(url: str, domains: Iterable[str]) -> bool:
    """True when the address is on an allowed domain or one of its subdomains."""
    host = host_of(url)
    return any(
        host == domain or host.endswith("." + domain)
        for domain in (d.casefold().strip(".") for d in domains)
        if domain
    )


def spec_of(rule: Rule) -> RuleSpec:
    match = rule.match
    return RuleSpec(
        name=rule.name,
        keywords=match.keywords,
        regex=match.regex,
        links=match.links,
        allow_domains=match.allow_domains,
        weapp=match.weapp,
        card=match.card,
        contact=match.contact,
    )


_compiled: OrderedDict[int, tuple[RulesSection, RuleMatcher]] = OrderedDict()
_compiled_lock = threading.Lock()
COMPILED_KEPT = 16  # playbook versions whose matchers stay built


def cached_matcher(section: RulesSection) -> RuleMatcher | None:
    """The section's matcher if it is built already (no building on the event loop)."""
    with _compiled_lock:
        cached = _compiled.get(id(section))
        return cached[1] if cached is not None and cached[0] is section else None


def matcher_for(section: RulesSection) -> RuleMatcher:
    """The section's matcher, built once per loaded playbook version (sections are
    immutable; a reload makes new ones). Build it off the event loop first with
    `asyncio.to_thread(matcher_for, section)`: later calls are a lookup."""
    key = id(section)
    with _compiled_lock:
        cached = _compiled.get(key)
        if cached is not None and cached[0] is section:
            _compiled.move_to_end(key)
            return cached[1]
    matcher = RuleMatcher(tuple(spec_of(rule) for rule in section.items))
    with _compiled_lock:
        _compiled[key] = (section, matcher)  # the section is kept, so its id stays its own
        while len(_compiled) > COMPILED_KEPT:
            _compiled.popitem(last=False)
    return matcher
