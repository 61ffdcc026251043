"""In-memory state of the fake WeCom server: tokens, groups, the sent log, the
会话内容存档 archive and injected faults.

The emulator app runs on one event loop, but tests and the control endpoints
may touch the state from another thread (start_emulator_in_thread), so
mutations go through one lock.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bot.config.settings import (
    SANDBOX_AGENT_ID,
    SANDBOX_AIBOT_ID,
    SANDBOX_AIBOT_SECRET,
    SANDBOX_ARCHIVE_SECRET,
    SANDBOX_CORP_ID,
    SANDBOX_CORP_SECRET,
)

JSONDict = dict[str, Any]

# errcodes check_token() answers.
TOKEN_OK = 0
TOKEN_MISSING = 41001
TOKEN_UNKNOWN = 40014
TOKEN_EXPIRED = 42001

# external_userid prefixes: wm… for WeChat customers, wo… for older ids (notes §5.3).
EXTERNAL_PREFIXES = ("wm", "wo")

# A 智能机器人 response_url takes one call within an hour (notes §4.6).
RESPONSE_URL_TTL = 3600.0


@dataclass
class SentRecord:
    seq: int
    at: float
    api: str
    target: str
    body: JSONDict

    def to_dict(self) -> JSONDict:
        return asdict(self)


# get_groupmsg_send_result's status per recipient (doc 93338).
MASS_SEND_UNSENT, MASS_SEND_SENT = 0, 1
MASS_SEND_STATUSES = (0, 1, 2, 3)  # 2: not a friend; 3: already got another mass send


@dataclass
class MassSend:
    """One add_msg_template task: whom it reaches and what the sender did with it
    (status 0 until confirmed through the control API)."""

    msgid: str
    sender: str
    chat_type: str
    targets: list[str]  # chat_ids (group) or external_userids (single)
    status: int = MASS_SEND_UNSENT
    send_time: int = 0

    def to_dict(self) -> JSONDict:
        return asdict(self)


@dataclass
class ArchiveEntry:
    """One archived message: its seq (increasing, never reused), msgid and the record
    as DecryptData would give it (SPEC §6)."""

    seq: int
    msgid: str
    record: JSONDict

    def to_dict(self) -> JSONDict:
        return asdict(self)


@dataclass
class Fault:
    """Answer the next `times` requests to `api` ("webhook/send", "gettoken", or "*") badly.

    After `delay` seconds the request is answered with `http_status` if it is not 200,
    else with `errcode` if it is not 0, else handled normally (a pure delay).
    """

    api: str
    errcode: int = 0
    http_status: int = 200
    delay: float = 0.0
    times: int = 1


class EmulatorState:
    def __init__(
        self,
        *,
        corp_id: str = SANDBOX_CORP_ID,
        corp_secret: str = SANDBOX_CORP_SECRET,
        archive_secret: str = SANDBOX_ARCHIVE_SECRET,
        agent_id: int = SANDBOX_AGENT_ID,
        aibot_id: str = SANDBOX_AIBOT_ID,
        aibot_secret: str = SANDBOX_AIBOT_SECRET,
        token_ttl: int = 7200,
        webhook_rate_limit: int = 20,
        webhook_rate_window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.corp_id = corp_id
        self.corp_secret = corp_secret
        self.archive_secret = archive_secret
        self.agent_id = agent_id
        # The 智能机器人's long-connection credentials (aibot_ws.py checks them).
        self.aibot_id = aibot_id
        self.aibot_secret = aibot_secret
        self.token_ttl = token_ttl
        # Real robots allow 20 messages per minute (notes §3, §10.2); tests lower it.
        self.webhook_rate_limit = webhook_rate_limit
        self.webhook_rate_window = webhook_rate_window
        self.clock = clock
        self.wall_clock = wall_clock
        self.groups: dict[str, JSONDict] = {}
        self.sent: list[SentRecord] = []
        self.faults: list[Fault] = []
        self.invalid_webhook_keys: set[str] = set()
        self.log_path: Path | None = None
        self.welcome_templates: dict[str, JSONDict] = {}
        self.mass_sends: dict[str, MassSend] = {}  # msgid -> the task
        # api -> requests received, failed ones included: lets tests count gettoken calls.
        self.calls: Counter[str] = Counter()
        self._tokens: dict[str, float] = {}
        self._webhook_hits: dict[str, deque[float]] = {}
        self._seq = 0
        self.archive: list[ArchiveEntry] = []
        self.archive_path: Path | None = None
        self._archive_seq = 0
        # response_code -> (issued at, on self.clock; whom the reply reaches); used codes.
        self._response_codes: dict[str, tuple[float, str]] = {}
        self._used_codes: set[str] = set()
        # The long-connection endpoint, when one runs (aibot_ws.AibotHub sets it).
        self.aibot_hub: Any = None
        self._lock = threading.RLock()

    def reset(self) -> None:
        """Forget all data (tokens, groups, sent log, faults, counters); keep the configuration."""
        with self._lock:
            self.groups.clear()
            self.sent.clear()
            self.faults.clear()
            self.invalid_webhook_keys.clear()
            self.welcome_templates.clear()
            self.mass_sends.clear()
            self.calls.clear()
            self._tokens.clear()
            self._webhook_hits.clear()
            self._response_codes.clear()
            self._used_codes.clear()
            self._seq = 0
            if self.log_path is not None:
                self.log_path.write_text("", encoding="utf-8")
            # The archive's seq numbering goes on: a puller's cursor must stay valid.
            self.archive.clear()
            if self.archive_path is not None:
                self.archive_path.write_text(
                    json.dumps({"watermark": self._archive_seq}) + "\n", encoding="utf-8"
                )

    # -- access tokens ----------------------------------------------------------------

    def issue_token(self) -> str:
        token = secrets.token_urlsafe(64)
        with self._lock:
            self._tokens[token] = self.clock() + self.token_ttl
        return token

    def check_token(self, token: str | None) -> int:
        if not token:
            return TOKEN_MISSING
        with self._lock:
            expires_at = self._tokens.get(token)
        if expires_at is None:
            return TOKEN_UNKNOWN
        if self.clock() >= expires_at:
            return TOKEN_EXPIRED
        return TOKEN_OK

    def expire_tokens(self) -> int:
        """Every issued token now answers 42001, as WeCom does when it ends one early."""
        with self._lock:
            for token in self._tokens:
                self._tokens[token] = float("-inf")
            return len(self._tokens)

    def revoke_tokens(self) -> int:
        """Forget every issued token: they now answer 40014 (invalid access_token)."""
        with self._lock:
            count = len(self._tokens)
            self._tokens.clear()
            return count

    # -- webhook rate limit -------------------------------------------------------------

    def webhook_allow(self, key: str) -> bool:
        """Sliding window per key; only accepted messages use up the window."""
        now = self.clock()
        with self._lock:
            hits = self._webhook_hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.webhook_rate_window:
                hits.popleft()
            if len(hits) >= self.webhook_rate_limit:
                return False
            hits.append(now)
            return True

    # -- groups (externalcontact/groupchat/get shape) -------------------------------------

    def upsert_group(
        self,
        chat_id: str,
        *,
        name: str,
        owner: str = "owner",
        members: list[JSONDict] | None = None,
        admins: list[str] | None = None,
    ) -> JSONDict:
        """Create or rename a group; `members`, when given, replaces the member list."""
        now = int(self.wall_clock())
        with self._lock:
            group = self.groups.get(chat_id)
            if group is None:
                group = {
                    "chat_id": chat_id,
                    "name": name,
                    "owner": owner,
                    "create_time": now,
                    "notice": "",
                    "member_list": [],
                    "admin_list": [],
                    "member_version": _member_version([]),
                }
                self.groups[chat_id] = group
            group["name"] = name
            group["owner"] = owner
            if admins is not None:
                group["admin_list"] = [{"userid": admin} for admin in admins]
            if members is not None:
                group["member_list"] = []
                self._add_members(group, members, now)
            return copy.deepcopy(group)

    def add_members(self, chat_id: str, members: list[JSONDict]) -> None:
        """Members already in the group are left as they are (their join_time stays)."""
        with self._lock:
            self._add_members(self.groups[chat_id], members, int(self.wall_clock()))

    def remove_member(self, chat_id: str, userid: str) -> None:
        with self._lock:
            group = self.groups[chat_id]
            remaining = [m for m in group["member_list"] if m["userid"] != userid]
            if len(remaining) == len(group["member_list"]):
                raise KeyError(userid)
            group["member_list"] = remaining
            group["member_version"] = _member_version(remaining)

    def get_group(self, chat_id: str) -> JSONDict | None:
        with self._lock:
            group = self.groups.get(chat_id)
            return copy.deepcopy(group) if group is not None else None

    def _add_members(self, group: JSONDict, members: list[JSONDict], now: int) -> None:
        present = {m["userid"] for m in group["member_list"]}
        for raw in members:
            member = _normalise_member(raw, now)
            if member["userid"] not in present:
                group["member_list"].append(member)
                present.add(member["userid"])
        group["member_version"] = _member_version(group["member_list"])

    # -- sent log ---------------------------------------------------------------------------

    # -- mass sends (add_msg_template) ---------------------------------------------------

    def add_mass_send(self, mass_send: MassSend) -> None:
        with self._lock:
            self.mass_sends[mass_send.msgid] = mass_send

    def confirm_mass_send(
        self, msgid: str, *, status: int = MASS_SEND_SENT, send_time: int | None = None
    ) -> MassSend:
        """The sender confirmed (status 1, sent now unless `send_time` says when), or WeCom
        could not deliver (2, 3). KeyError for an unknown msgid."""
        if status not in MASS_SEND_STATUSES:
            raise ValueError(f"status must be one of {MASS_SEND_STATUSES}")
        with self._lock:
            mass_send = self.mass_sends[msgid]
            mass_send.status = status
            mass_send.send_time = (
                (int(self.wall_clock()) if send_time is None else send_time)
                if status == MASS_SEND_SENT
                else 0
            )
            return mass_send

    def record(self, api: str, target: str, body: JSONDict) -> SentRecord:
        with self._lock:
            self._seq += 1
            rec = SentRecord(
                seq=self._seq,
                at=self.wall_clock(),
                api=api,
                target=target,
                body=copy.deepcopy(body),
            )
            self.sent.append(rec)
            if self.log_path is not None:
                with self.log_path.open("a", encoding="utf-8") as log:
                    log.write(json.dumps(rec.to_dict(), ensure_ascii=False) + "\n")
            return rec

    def load_log(self, path: Path) -> int:
        """Keep the sent log in `path` (JSON lines) across restarts, like a real server would.

        Returns how many earlier records were read back.
        """
        with self._lock:
            self.log_path = path
            if not path.exists():
                return 0
            for line in path.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    if "watermark" in data:  # left by clear_sent(): numbering goes on
                        self._seq = max(self._seq, int(data["watermark"]))
                        continue
                    rec = SentRecord(**data)
                except (ValueError, TypeError):
                    continue  # a torn last line after a crash
                self.sent.append(rec)
                self._seq = max(self._seq, rec.seq)
            return len(self.sent)

    def sent_since(self, seq: int = 0) -> list[SentRecord]:
        with self._lock:
            return [r for r in self.sent if r.seq > seq]

    def clear_sent(self) -> int:
        """Sequence numbers keep counting, so a reader's `since` cursor stays valid."""
        with self._lock:
            count = len(self.sent)
            self.sent.clear()
            if self.log_path is not None:
                # Keep the sequence watermark so a reader's `since` cursor survives a restart.
                self.log_path.write_text(
                    json.dumps({"watermark": self._seq}) + "\n", encoding="utf-8"
                )
            return count

    # -- 会话内容存档 archive (what GetChatData pulls) ------------------------------------

    def append_archive(self, records: list[JSONDict]) -> list[ArchiveEntry]:
        """Archive records in order, each with the next seq; a record without a msgid
        gets one. Kept in `archive_path` (JSON lines) when set."""
        with self._lock:
            added = []
            for raw in records:
                record = copy.deepcopy(raw)
                msgid = str(record.get("msgid") or _new_msgid())
                record["msgid"] = msgid
                self._archive_seq += 1
                added.append(ArchiveEntry(seq=self._archive_seq, msgid=msgid, record=record))
            self.archive.extend(added)
            if self.archive_path is not None and added:
                with self.archive_path.open("a", encoding="utf-8") as log:
                    for entry in added:
                        log.write(json.dumps(entry.to_dict(), ensure_ascii=False) + "\n")
            return added

    def archive_after(self, seq: int, limit: int) -> list[ArchiveEntry]:
        """GetChatData's answer: up to `limit` entries after `seq`, in seq order."""
        with self._lock:
            later = [entry for entry in self.archive if entry.seq > seq]
            return [copy.deepcopy(entry) for entry in later[:limit]]

    def start_archive_at(self, seq: int) -> None:
        """Number the next records above `seq` (seq only has to grow; sandbox starts
        at the current time in ms, so a database kept from an older archive file
        never has a cursor ahead of new records)."""
        with self._lock:
            self._archive_seq = max(self._archive_seq, seq)

    def load_archive(self, path: Path) -> int:
        """Keep the archive in `path` across restarts, so seq numbers are never reused
        (a puller's cursor would skip new records otherwise). Returns how many were read."""
        with self._lock:
            self.archive_path = path
            if not path.exists():
                return 0
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    data = json.loads(line)
                    if "watermark" in data:
                        self._archive_seq = max(self._archive_seq, int(data["watermark"]))
                        continue
                    entry = ArchiveEntry(**data)
                except (ValueError, TypeError):
                    continue  # a torn last line after a crash
                self.archive.append(entry)
                self._archive_seq = max(self._archive_seq, entry.seq)
            return len(self.archive)

    # -- 智能机器人 response_url ---------------------------------------------------------

    def issue_response_code(self, target: str = "") -> str:
        """A response_code as a callback's response_url carries it; `target` (the chat or
        member) is what the sent log shows for the reply."""
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._response_codes[code] = (self.clock(), target)
        return code

    def use_response_code(self, code: str) -> tuple[str | None, str]:
        """(what is wrong, or None; the reply's target). A code answers one call within
        an hour of its callback, as WeCom documents; a second call is refused."""
        with self._lock:
            issued = self._response_codes.get(code)
            if issued is None:
                return "invalid response_code", ""
            if code in self._used_codes:
                return "response_url already used: it takes one call", issued[1]
            if self.clock() - issued[0] > RESPONSE_URL_TTL:
                return "response_url expired: it is valid for one hour", issued[1]
            self._used_codes.add(code)
            return None, issued[1]

    # -- faults -----------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        if fault.times < 1:
            raise ValueError("Fault.times must be >= 1")
        with self._lock:
            self.faults.append(fault)

    def clear_faults(self) -> int:
        with self._lock:
            count = len(self.faults)
            self.faults.clear()
            return count

    def take_fault(self, api: str) -> Fault | None:
        """The first fault for `api` (or "*"), used up one time; None when there is none."""
        with self._lock:
            for index, fault in enumerate(self.faults):
                if fault.api in (api, "*"):
                    fault.times -= 1
                    if fault.times <= 0:
                        del self.faults[index]
                    return copy.copy(fault)
            return None

    def count_call(self, api: str) -> None:
        with self._lock:
            self.calls[api] += 1


def _new_msgid() -> str:
    # The shape of Tencent's msgids ("CAQQluDa4QUY0On2rYSAgAMgzPrShAE=" or "123_456").
    return f"{secrets.randbits(40)}_{secrets.randbits(40)}_external"


def _normalise_member(raw: Mapping[str, Any], now: int) -> JSONDict:
    userid = str(raw["userid"])
    member_type = raw.get("type") or (2 if userid.startswith(EXTERNAL_PREFIXES) else 1)
    member: JSONDict = {
        "userid": userid,
        "type": int(member_type),
        "join_time": int(raw.get("join_time") or now),
        "join_scene": int(raw.get("join_scene") or 1),
        "group_nickname": str(raw.get("group_nickname") or ""),
        "name": str(raw.get("name") or userid),
    }
    invitor = raw.get("invitor")
    if isinstance(invitor, str) and invitor:
        member["invitor"] = {"userid": invitor}
    elif isinstance(invitor, Mapping) and invitor.get("userid"):
        member["invitor"] = {"userid": str(invitor["userid"])}
    if raw.get("unionid"):
        member["unionid"] = str(raw["unionid"])
    return member


def _member_version(members: list[JSONDict]) -> str:
    # Same 32-hex shape as WeCom's; a function of the member set, so leaving and
    # rejoining restores the earlier version (enough for "did it change?" checks).
    ids = sorted(m["userid"] for m in members)
    return hashlib.md5("\n".join(ids).encode(), usedforsecurity=False).hexdigest()
