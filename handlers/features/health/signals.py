"""Who answers whom in a group's message log: the pure reading behind interaction
rounds, "questions answered by members", the ladder's answers given and the
discussion points.

The archive rarely says which message a reply quotes, so a message answers the
one it quotes when the source tells, else the group's previous message when that
came from someone else within the thread window. Crude for a busy group, honest
for the small ones most communities are; the window is the playbook's.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class LoggedMessage:
    member_id: str
    at: datetime
    is_question: bool = False
    replies_to: str | None = None  # the member it quotes, where the source says
    length: int = 0  # characters (points ask the answered message to be a real one)


def answered_member(
    message: LoggedMessage, previous: LoggedMessage | None, window: timedelta
) -> str | None:
    """The member this message answers, or None (a new thread, or talking to oneself)."""
    if message.replies_to is not None:
        return message.replies_to if message.replies_to != message.member_id else None
    if previous is None or message.at - previous.at > window:
        return None
    return previous.member_id if previous.member_id != message.member_id else None


def member_rounds(
    messages: Sequence[LoggedMessage], hosts: Collection[str], window: timedelta
) -> int:
    """Rounds of member-to-member interaction without the host: messages of a member
    answering another member (neither the owner, an admin nor staff). `messages` in
    time order."""
    rounds = 0
    for index, message in enumerate(messages):
        if message.member_id in hosts:
            continue
        previous = messages[index - 1] if index else None
        partner = answered_member(message, previous, window)
        if partner is not None and partner not in hosts:
            rounds += 1
    return rounds


@dataclass(frozen=True)
class Answer:
    question: LoggedMessage
    answerer: str | None  # None: nobody answered within the window


def first_answers(messages: Sequence[LoggedMessage], window: timedelta) -> list[Answer]:
    """Each question with the first person who answered it: the first later message
    within the window from someone else that does not quote a third person."""
    answers: list[Answer] = []
    for index, question in enumerate(messages):
        if not question.is_question:
            continue
        answerer: str | None = None
        for later in messages[index + 1 :]:
            if later.at - question.at > window:
                break
            if later.member_id == question.member_id:
                continue
            if later.replies_to is not None and later.replies_to != question.member_id:
                continue
            answerer = later.member_id
            break
        answers.append(Answer(question, answerer))
    return answers
