"""Message-body checks shared by webhook/send, appchat/send and message/send.

Limits are WeCom's (notes §3, §5.1, §6.1): text ≤ 2048 bytes everywhere,
webhook markdown ≤ 4096 bytes. The over-length answer imitates a captured
one: errcode 40058, "markdown.content exceed max length 4096. invalid Request
Parameter". (Real message/send is documented to truncate long text instead;
the emulator rejects so that a missing length check shows up in tests.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.sandbox.emulator.errors import ApiError

MAX_NEWS_ARTICLES = 8
MEDIA_TYPES = frozenset({"image", "voice", "video", "file"})


@dataclass(frozen=True)
class MessageRules:
    types: frozenset[str]
    content_limits: Mapping[str, int]
    card_types: frozenset[str]
    # Webhook images travel inline (base64 + md5); app messages reference a media_id.
    inline_image: bool = False


WEBHOOK_RULES = MessageRules(
    types=frozenset(
        {"text", "markdown", "markdown_v2", "news", "image", "template_card", "file", "voice"}
    ),
    content_limits={"text": 2048, "markdown": 4096, "markdown_v2": 4096},
    card_types=frozenset({"text_notice", "news_notice"}),
    inline_image=True,
)
APPCHAT_RULES = MessageRules(
    types=frozenset(
        {"text", "image", "voice", "video", "file", "textcard", "news", "mpnews", "markdown"}
    ),
    content_limits={"text": 2048, "markdown": 2048},
    card_types=frozenset(),
)
APP_MESSAGE_RULES = MessageRules(
    types=APPCHAT_RULES.types | {"miniprogram_notice", "template_card"},
    content_limits={"text": 2048, "markdown": 2048},
    card_types=frozenset(
        {
            "text_notice",
            "news_notice",
            "button_interaction",
            "vote_interaction",
            "multiple_interaction",
        }
    ),
)


def validate_message(body: Mapping[str, Any], rules: MessageRules) -> str:
    """Raise ApiError as WeCom would; return the msgtype."""
    msgtype = body.get("msgtype")
    if not isinstance(msgtype, str) or msgtype not in rules.types:
        raise ApiError(40008)
    payload = body.get(msgtype)
    if not isinstance(payload, Mapping):
        raise ApiError(40058, f"{msgtype} missing")
    limit = rules.content_limits.get(msgtype)
    if limit is not None:
        check_content(payload, f"{msgtype}.content", limit)
    elif msgtype in ("news", "mpnews"):
        _check_articles(payload)
    elif msgtype == "image" and rules.inline_image:
        if not payload.get("base64") or not payload.get("md5"):
            raise ApiError(40058, "image.base64 and image.md5 required")
    elif msgtype in MEDIA_TYPES:
        if not payload.get("media_id"):
            raise ApiError(41006)
    elif msgtype == "textcard":
        if not payload.get("title"):
            raise ApiError(41016)
        if not payload.get("description"):
            raise ApiError(41033)
    elif msgtype == "template_card" and payload.get("card_type") not in rules.card_types:
        raise ApiError(40058, "invalid template_card.card_type")
    return msgtype


def check_content(payload: Mapping[str, Any], field: str, limit: int) -> None:
    content = payload.get("content")
    if not isinstance(content, str) or not content:
        raise ApiError(44004)
    if len(content.encode("utf-8")) > limit:
        raise ApiError(40058, f"{field} exceed max length {limit}. invalid Request Parameter")


def _check_articles(payload: Mapping[str, Any]) -> None:
    articles = payload.get("articles")
    if not isinstance(articles, list) or not articles:
        raise ApiError(40058, "articles missing")
    if len(articles) > MAX_NEWS_ARTICLES:
        raise ApiError(45008)
    for article in articles:
        if not isinstance(article, Mapping) or not article.get("title"):
            raise ApiError(41016)
