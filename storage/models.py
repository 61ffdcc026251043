"""The schema. Alembic (storage/migrations) owns it; these classes mirror it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.types import UTCDateTime, utcnow

# BigInteger ids on PostgreSQL, INTEGER PRIMARY KEY (rowid) on SQLite.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Group(Base):
    __tablename__ = "groups"

    chat_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    # The name members see in WeCom (groupchat/get, change events): what messages say.
    name: Mapped[str] = mapped_column(String(200), default="")
    # The operator's own name for it (PUT /admin/groups); WeCom never overwrites it.
    label: Mapped[str | None] = mapped_column(String(200))
    owner: Mapped[str | None] = mapped_column(String(128))
    admins: Mapped[list[Any] | None]  # userids of the group's admins (groupchat/get admin_list)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    channel_type: Mapped[str] = mapped_column(String(32), default="none")
    channel_config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    member_version: Mapped[str | None] = mapped_column(String(128))
    notice: Mapped[str | None] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(String(32), default="admin")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    dismissed_at: Mapped[datetime | None]


class Membership(Base):
    """One row per (group, member); a rejoin reuses the row and keeps the history fields."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("chat_id", "member_id", name="uq_membership"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(128), index=True)
    member_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(200))
    member_type: Mapped[int | None] = mapped_column(Integer)  # 1 internal, 2 external
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    left_at: Mapped[datetime | None]
    previous_left_at: Mapped[datetime | None]
    join_scene: Mapped[int | None] = mapped_column(Integer)
    quit_scene: Mapped[int | None] = mapped_column(Integer)
    invitor: Mapped[str | None] = mapped_column(String(128))
    join_count: Mapped[int] = mapped_column(Integer, default=1)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    last_message_at: Mapped[datetime | None]
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    welcomed_at: Mapped[datetime | None]


class InboxItem(Base):
    __tablename__ = "inbox"
    __table_args__ = (
        Index("ix_inbox_due", "status", "next_attempt_at"),
        Index("ix_inbox_chat_order", "chat_id", "status", "id"),
        Index("ix_inbox_head", "is_head", "id", postgresql_where=text("is_head")),
        # Rows retention has not blanked yet (storage/retention.py walks only these).
        Index(
            "ix_inbox_unpruned",
            "id",
            postgresql_where=text("raw <> ''"),
            sqlite_where=text("raw <> ''"),
        ),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32))
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)
    raw: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(String(40))
    event: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    chat_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(40))
    last_error: Mapped[str | None] = mapped_column(Text)
    # The oldest unfinished event of its chat (storage/heads.py): only heads are claimed.
    is_head: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]


class OutboxItem(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_order", "order_key", "status", "id"),
        Index("ix_outbox_member", "member_id", "status"),
        Index("ix_outbox_head", "is_head", "id", postgresql_where=text("is_head")),
        Index(
            "ix_outbox_head_due",
            "is_head",
            "status",
            "next_attempt_at",
            postgresql_where=text("is_head"),
        ),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    origin: Mapped[str] = mapped_column(String(40), default="")
    chat_id: Mapped[str | None] = mapped_column(String(128), index=True)
    rate_key: Mapped[str] = mapped_column(String(200))
    order_key: Mapped[str] = mapped_column(String(200))
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(40))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_kind: Mapped[str | None] = mapped_column(String(32))
    # The member a message is about (a touch, a private welcome): when they leave or
    # opt out, what is still queued for them is cancelled instead of sent.
    member_id: Mapped[str | None] = mapped_column(String(128))
    # The oldest unsent message of its order key (storage/heads.py): only heads are claimed.
    is_head: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class RateEvent(Base):
    """One row per send attempt through a rate-limited key; shared by all replicas."""

    __tablename__ = "rate_events"
    __table_args__ = (Index("ix_rate_events_key_at", "rate_key", "at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    rate_key: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class RatePause(Base):
    """A key WeCom told us to slow down on (45009): nothing goes through it before `until`."""

    __tablename__ = "rate_pauses"

    rate_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    until: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(Text)


class WelcomeBatch(Base):
    __tablename__ = "welcome_batches"
    __table_args__ = (
        Index("ix_welcome_due", "status", "due_at"),
        Index(
            "uq_welcome_open",
            "chat_id",
            unique=True,
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="open")
    members: Mapped[list[Any]] = mapped_column(JSON, default=list)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime]
    flushed_at: Mapped[datetime | None]
    outbox_id: Mapped[int | None] = mapped_column(IdType)
    note: Mapped[str | None] = mapped_column(Text)


class Enrollment(Base):
    __tablename__ = "enrollments"
    __table_args__ = (
        Index("ix_enrollment_member", "chat_id", "member_id"),
        # Two replicas processing one join must not both enroll the member.
        Index(
            "uq_enrollment_active",
            "chat_id",
            "member_id",
            unique=True,
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(128))
    member_id: Mapped[str] = mapped_column(String(128))
    playbook: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16), default="active")
    enrolled_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    ended_reason: Mapped[str | None] = mapped_column(Text)


class TouchStep(Base):
    """A materialized step of an enrollment: the tick claims these by due time, O(due)."""

    __tablename__ = "touch_steps"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "step_key", name="uq_touch_step"),
        Index("ix_touch_due", "status", "due_at"),
        # "Any step of this enrollment still pending?" must be one index probe: with only
        # ix_touch_due the planner may intersect every pending step in the table.
        Index("ix_touch_enrollment_status", "enrollment_id", "status"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    enrollment_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("enrollments.id", ondelete="CASCADE")
    )
    step_key: Mapped[str] = mapped_column(String(64))
    step_index: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(Text)
    outbox_id: Mapped[int | None] = mapped_column(IdType)
    done_at: Mapped[datetime | None]
    # The local day (BOT_TIMEZONE) a sent step counted against: at most N a day.
    sent_on: Mapped[date | None] = mapped_column(Date)


class WelcomeTemplate(Base):
    """WeCom 入群欢迎语素材 we created for a playbook (customer groups), kept in sync by hash."""

    __tablename__ = "welcome_templates"

    playbook: Mapped[str] = mapped_column(String(80), primary_key=True)
    template_id: Mapped[str] = mapped_column(String(128))
    content_hash: Mapped[str] = mapped_column(String(64))
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)


class ScheduledJob(Base):
    """A periodic job as due work (scheduler/periodic.py): one replica runs it at a time."""

    __tablename__ = "scheduled_jobs"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="idle")
    due_at: Mapped[datetime]
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_result: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)


class ServiceLease(Base):
    """Which replica runs a service only one may run at a time (storage/leases.py): the
    智能机器人 long connection, of which WeCom keeps one per bot (a newer connection
    kicks the older). `holder` is the replica's claim token, `lease_until` when the
    lease ends unless renewed."""

    __tablename__ = "service_leases"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ArchiveCursor(Base):
    """Where pulling 会话内容存档 has got to, and who pulls (bot/sources/archive_pull).

    One row per archive. `seq` is the last seq stored in the inbox; `holder` and
    `lease_until` let one replica pull at a time; `requests` counts wake-ups that
    arrived while another replica held the lease, so the holder pulls once more."""

    __tablename__ = "archive_cursor"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    holder: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class MessageLog(Base):
    """One row per group message (handlers/features/message_log.py), without content:
    what points and group health count. Kept RETENTION_LOG_DAYS."""

    __tablename__ = "message_log"
    __table_args__ = (
        Index("ix_message_log_chat_time", "chat_id", "sent_at"),
        Index("ix_message_log_member", "chat_id", "member_id", "sent_at"),
        Index("ix_message_log_msg", "chat_id", "msg_id"),
        Index("ix_message_log_sent", "sent_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(128))
    member_id: Mapped[str] = mapped_column(String(128))
    sent_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(16))
    length: Mapped[int] = mapped_column(Integer)
    msg_id: Mapped[str | None] = mapped_column(String(128))
    replies_to: Mapped[str | None] = mapped_column(String(128))  # whom it quotes
    revoked_at: Mapped[datetime | None]
    source_id: Mapped[str] = mapped_column(String(64), unique=True)  # inbox:<id>
    # A digest of the normalized text (rules' "repeated text"); no content is kept.
    text_hash: Mapped[str | None] = mapped_column(String(16))
    # Whether it reads as a question (handlers/features/questions.py), for group health.
    is_question: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class MemberRole(Base):
    """A playbook role (讲师, KOL, 核心 …) an admin gave a member in a group; owner,
    admin and staff are derived from WeCom instead (handlers/features/roles.py)."""

    __tablename__ = "member_roles"
    __table_args__ = (UniqueConstraint("chat_id", "member_id", "role", name="uq_member_role"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(128))
    member_id: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberLevel(Base):
    """A member's rung on the group's ladder (普通 → 活跃 → 核心 → KOL, from the
    playbook's thresholds; handlers/features/points/ladder.py). 普通 has no row."""

    __tablename__ = "member_levels"
    __table_args__ = (UniqueConstraint("chat_id", "member_id", name="uq_member_level"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(128))
    member_id: Mapped[str] = mapped_column(String(128))
    level: Mapped[str] = mapped_column(String(32))
    since: Mapped[datetime]


class LevelChange(Base):
    """Every promotion and demotion, with the reason members and admins can read."""

    __tablename__ = "level_changes"
    __table_args__ = (Index("ix_level_change_member", "chat_id", "member_id", "at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(128))
    member_id: Mapped[str] = mapped_column(String(128))
    from_level: Mapped[str] = mapped_column(String(32))
    to_level: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]


class Violation(Base):
    """A rule hit (handlers/features/rules): what the member did, what the bot did
    about it, and what an admin decided. The member's ladder is read from these."""

    __tablename__ = "violations"
    __table_args__ = (
        UniqueConstraint("source_id", "rule", name="uq_violation_source_rule"),
        Index("ix_violation_ladder", "chat_id", "member_id", "family", "created_at"),
        Index("ix_violation_created", "created_at"),
        Index("ix_violation_status", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(128))
    member_id: Mapped[str] = mapped_column(String(128))
    rule: Mapped[str] = mapped_column(String(40))
    family: Mapped[str] = mapped_column(String(40))
    # remind | warn | report | remove; None when no step was taken (dry run, held)
    step: Mapped[str | None] = mapped_column(String(16))
    # taken | dry_run | held | overturned
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    matcher: Mapped[str] = mapped_column(String(16))
    evidence: Mapped[str] = mapped_column(Text, default="")
    msg_id: Mapped[str | None] = mapped_column(String(128))
    source_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    appealed_at: Mapped[datetime | None]
    appeal_text: Mapped[str | None] = mapped_column(Text)
    reviewed_at: Mapped[datetime | None]  # an admin confirmed or overturned it
    overturned_at: Mapped[datetime | None]
    overturn_reason: Mapped[str | None] = mapped_column(Text)


class RaidGuardState(Base):
    """A group under the raid guard (many joins at once) until `until`."""

    __tablename__ = "raid_guards"

    chat_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    started_at: Mapped[datetime]
    until: Mapped[datetime]
    joins: Mapped[int] = mapped_column(Integer)


class OwnerDigest(Base):
    """The operator copilot's batch for one person: owner tasks gathered for a few
    minutes, then sent as one app message (handlers/features/copilot.py)."""

    __tablename__ = "owner_digests"
    __table_args__ = (
        Index("ix_owner_digest_due", "status", "due_at"),
        Index(
            "uq_owner_digest_open",
            "recipient",
            unique=True,
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    recipient: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="open")
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime]
    flushed_at: Mapped[datetime | None]
    outbox_id: Mapped[int | None] = mapped_column(IdType)
    note: Mapped[str | None] = mapped_column(Text)


class OwnerTask(Base):
    """Something only a person can do (post in a customer group, remind a customer,
    look at a report), with the context and a ready-to-paste text."""

    __tablename__ = "owner_tasks"
    __table_args__ = (
        UniqueConstraint("dedup_key", "recipient", name="uq_owner_task_key"),
        Index("ix_owner_task_digest", "digest_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    recipient: Mapped[str] = mapped_column(String(128))
    chat_id: Mapped[str] = mapped_column(String(128))
    member_id: Mapped[str | None] = mapped_column(String(128))
    origin: Mapped[str] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(Text)
    paste_text: Mapped[str | None] = mapped_column(Text)
    dedup_key: Mapped[str] = mapped_column(String(200))
    digest_id: Mapped[int | None] = mapped_column(IdType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PointsEntry(Base):
    """One line of the append-only points ledger (handlers/features/points/ledger.py). A
    balance is the sum of a member's lines; nothing is ever updated in place. The
    unique key (member, reason, source) makes every earning idempotent."""

    __tablename__ = "points_ledger"
    __table_args__ = (
        UniqueConstraint("chat_id", "member_id", "reason", "source_key", name="uq_points_entry"),
        Index("ix_points_member", "chat_id", "member_id", "created_at"),
        Index("ix_points_chat_time", "chat_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(128))
    member_id: Mapped[str] = mapped_column(String(128))
    delta: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(24))  # message | manual | …
    source_key: Mapped[str] = mapped_column(String(160))  # what earned it: msg:<id>, admin:<n>
    created_at: Mapped[datetime]  # when it was earned (a message's own time)
    actor: Mapped[str | None] = mapped_column(String(64))  # who, for manual adjustments
    note: Mapped[str | None] = mapped_column(Text)  # why, for manual adjustments


class Redemption(Base):
    """A reward a member took (handlers/features/points/redemption.py `redeem`); its cost is the
    ledger line `redeem:<id>`. A reward's stock is counted from these rows."""

    __tablename__ = "redemptions"
    __table_args__ = (
        Index("ix_redemption_reward", "playbook", "reward"),
        Index("ix_redemption_member", "chat_id", "member_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(128))
    member_id: Mapped[str] = mapped_column(String(128))
    playbook: Mapped[str] = mapped_column(String(80))  # whose rewards (and stock)
    reward: Mapped[str] = mapped_column(String(40))
    cost: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]


class Lead(Base):
    """A member marked as a sales lead (handlers/features/growth/leads.py, PUT
    /admin/members/{id}/lead): one per member. The group of origin and the inviter are
    those of the first mark and never change; stage, owner and note are the latest."""

    __tablename__ = "leads"
    __table_args__ = (
        UniqueConstraint("member_id", name="uq_lead_member"),
        Index("ix_lead_origin", "origin_chat_id", "stage"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    member_id: Mapped[str] = mapped_column(String(128))
    origin_chat_id: Mapped[str] = mapped_column(String(128))
    inviter: Mapped[str | None] = mapped_column(String(128))  # the origin membership's invitor
    stage: Mapped[str] = mapped_column(String(16))  # lead | MQL | SQL | customer
    owner: Mapped[str | None] = mapped_column(String(128))  # who follows it up
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class LeadChange(Base):
    """One change of a lead mark, with who made it: the lead's history."""

    __tablename__ = "lead_changes"
    __table_args__ = (Index("ix_lead_change_lead", "lead_id", "at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    lead_id: Mapped[int] = mapped_column(IdType, ForeignKey("leads.id", ondelete="CASCADE"))
    chat_id: Mapped[str] = mapped_column(String(128))  # the group the change was made from
    from_stage: Mapped[str | None] = mapped_column(String(16))  # None: the first mark
    to_stage: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str | None] = mapped_column(String(128))  # after the change
    note: Mapped[str | None] = mapped_column(Text)  # after the change
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


class StarVote(Base):
    """One group's 贡献之星 vote for one month (handlers/features/star/vote.py): due
    work twice, opened at `due_at` (scheduled → open) and closed at `due_at` again
    (open → closed). The unique (group, month) makes it happen once per month."""

    __tablename__ = "star_votes"
    __table_args__ = (
        UniqueConstraint("chat_id", "month", name="uq_star_vote_month"),
        Index("ix_star_vote_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(128))
    month: Mapped[str] = mapped_column(String(7))  # the month voted on, YYYY-MM (local)
    # scheduled | opening | open | closing | closed | no_candidates | skipped | failed |
    # close_failed
    status: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime]
    opened_at: Mapped[datetime | None]
    closes_at: Mapped[datetime | None]  # the end of the window (replies before it count)
    closed_at: Mapped[datetime | None]
    # [{number, member_id, name, points}] as posted
    candidates: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # the tally at the close: {votes: {number: n}, counted, duplicates, self_votes, …}
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    winners: Mapped[list[Any]] = mapped_column(JSON, default=list)  # member ids
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StarBallot(Base):
    """A reply in the group that names a candidate's number while a vote is open; which
    ones count (first per member, not for oneself) is decided at the tally."""

    __tablename__ = "star_ballots"
    __table_args__ = (
        UniqueConstraint("vote_id", "source_key", name="uq_star_ballot_source"),
        Index("ix_star_ballot_vote", "vote_id", "cast_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    vote_id: Mapped[int] = mapped_column(IdType)
    voter: Mapped[str] = mapped_column(String(128))
    number: Mapped[int] = mapped_column(Integer)
    cast_at: Mapped[datetime]  # the message's own time
    source_key: Mapped[str] = mapped_column(String(160))  # msg:<id>: a replay counts once


# Ledger lines found by what earned them, whoever holds them: an invite pays once per
# invitee in a group whichever member invited them (handlers/features/points/invite.py).
# Declared here, not in PointsEntry's table args, so the model above stays as it was.
Index("ix_points_source", PointsEntry.chat_id, PointsEntry.reason, PointsEntry.source_key)


class ContentItem(Base):
    """One entry of the content library (handlers/features/content): what keyword lookup
    answers with and the 早报 draws knowledge points from. `scope` lists chat ids or group
    tags the item applies to; empty means every group. (title, source) names an item, so
    an import updates what an earlier import or export brought in instead of doubling it."""

    __tablename__ = "content_items"
    __table_args__ = (
        UniqueConstraint("title", "source", name="uq_content_title_source"),
        Index("ix_content_enabled", "enabled", "source", "id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(2000))
    summary: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[list[Any]] = mapped_column(JSON, default=list)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(String(16))  # own | external
    scope: Mapped[list[Any]] = mapped_column(JSON, default=list)  # chat ids / group tags
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    valid_from: Mapped[date | None] = mapped_column(Date)  # local dates, inclusive
    valid_until: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ContentLibrary(Base):
    """One row (id 1): the library's version, bumped in the transaction of every change,
    so each replica can tell its in-memory lookup index is stale with one cheap read."""

    __tablename__ = "content_library"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class KeywordAnswer(Base):
    """One reply (or owner task) the keyword lookup gave in a group: which items it
    offered, so the same item is not offered there again within the playbook's
    cooldown. `source_key` (the message) makes a replayed event answer once."""

    __tablename__ = "keyword_answers"
    __table_args__ = (
        UniqueConstraint("source_key", name="uq_keyword_answer_source"),
        Index("ix_keyword_answer_recent", "chat_id", "answered_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(128))
    member_id: Mapped[str] = mapped_column(String(128))
    item_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    source_key: Mapped[str] = mapped_column(String(200))
    answered_at: Mapped[datetime] = mapped_column(default=utcnow)


class KeywordWait(Base):
    """A keyword answer held back in `mode: wait` (群友交流 > 群主回答): due
    `wait_minutes` after the question, when it is sent only if no member answered
    meanwhile. `source_key` (the question's message) makes it one per question;
    `status` pending → claimed → sent | quiet | skipped | failed, `note` says why."""

    __tablename__ = "keyword_waits"
    __table_args__ = (
        UniqueConstraint("source_key", name="uq_keyword_wait_source"),
        Index("ix_keyword_wait_due", "status", "due_at"),
        Index("ix_keyword_wait_chat_pending", "chat_id", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(128))
    member_id: Mapped[str] = mapped_column(String(128))
    source_key: Mapped[str] = mapped_column(String(200))
    asked_at: Mapped[datetime]
    due_at: Mapped[datetime]
    item_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    question: Mapped[str] = mapped_column(String(200))
    reply_text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    note: Mapped[str] = mapped_column(String(200), default="")
    done_at: Mapped[datetime | None]
    # "answer": a held library answer; "expert": a question the library had nothing for,
    # whose expert (by tag) is cued if it stays unanswered.
    kind: Mapped[str] = mapped_column(String(16), default="answer", server_default="answer")
    question_key: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # Members who asked the same during the wait, [member_id, source_key] pairs: one reply
    # names them all, and their asking is no answer.
    askers: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    experts: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default=text("'[]'"))


class UnansweredQuestion(Base):
    """A member's question the library had nothing for: what the content team should
    write next. `normalized_key` groups the same question asked in other words of
    width, case or script; `text` keeps the first 200 characters for people to read."""

    __tablename__ = "unanswered_questions"
    __table_args__ = (
        UniqueConstraint("source_key", name="uq_unanswered_source"),
        Index("ix_unanswered_chat_asked", "chat_id", "asked_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(128))
    member_id: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(String(200))
    normalized_key: Mapped[str] = mapped_column(String(200))
    source_key: Mapped[str] = mapped_column(String(200))
    asked_at: Mapped[datetime] = mapped_column(default=utcnow)


class WeeklyDigest(Base):
    """One group's 群刊 for one ISO week (handlers/features/weekly_digest): booked as due
    work on the playbook's weekday of the week after, sent once (the unique group and
    week, the claim, and the outbox key `weekly_digest:{chat_id}:{week}`), or skipped
    with the reason kept in `note`. `threads` and `resources` keep what it listed."""

    __tablename__ = "weekly_digests"
    __table_args__ = (
        UniqueConstraint("chat_id", "week", name="uq_weekly_digest_week"),
        Index("ix_weekly_digest_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(128))
    week: Mapped[str] = mapped_column(String(8))  # the week it looks back on: 2026-W49
    # scheduled | sending (claimed) | sent | skipped | failed
    status: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime]
    text: Mapped[str | None] = mapped_column(Text)  # as sent (or handed to the owner)
    threads: Mapped[list[Any]] = mapped_column(JSON, default=list)
    resources: Mapped[list[Any]] = mapped_column(JSON, default=list)
    delivery: Mapped[str | None] = mapped_column(String(16))  # group | owner_task
    note: Mapped[str | None] = mapped_column(Text)  # why skipped or failed; what was queued
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class DemandPost(Base):
    """A demand post (招聘 / 求职 / 供应商 / 活动; handlers/features/demands): collected in
    a group by a rule with `action: collect`, or submitted by an operator, and published
    once a day in the 早报 of the groups in its `scope` (chat ids or group tags; empty:
    every group). The same text again within the playbook's `dedup_days` is merged into
    the first post (`merged`, `last_seen_at`, the merged sources' keys in `merged_keys`)
    instead of becoming a second one. `source_key` (the message for a detected post) makes
    a replayed event add nothing. `status` pending → approved | rejected, with who
    (`decided_by`, "auto" when no approval is needed), when and why."""

    __tablename__ = "demand_posts"
    __table_args__ = (
        UniqueConstraint("source_key", name="uq_demand_source"),
        Index("ix_demand_status", "status", "submitted_at"),
        Index("ix_demand_dedup", "dedup_key", "submitted_at"),
        Index("ix_demand_member", "member_id", "kind", "submitted_at"),
        Index("ix_demand_submitted", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    member_id: Mapped[str | None] = mapped_column(String(128))  # None: an operator's post
    name: Mapped[str] = mapped_column(String(64), default="")  # the name shown in the 早报
    contact: Mapped[str | None] = mapped_column(String(200))
    chat_id: Mapped[str | None] = mapped_column(String(128))  # the group it was posted in
    scope: Mapped[list[Any]] = mapped_column(JSON, default=list)  # chat ids / group tags
    status: Mapped[str] = mapped_column(String(16))  # pending | approved | rejected
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(Text)
    dedup_key: Mapped[str] = mapped_column(String(64))  # digest of the normalized text
    merged: Mapped[int] = mapped_column(Integer, default=0)  # duplicates merged into it
    merged_keys: Mapped[list[Any]] = mapped_column(JSON, default=list)  # their source keys
    last_seen_at: Mapped[datetime]
    submitted_at: Mapped[datetime]
    source_key: Mapped[str] = mapped_column(String(200))


class DemandPublication(Base):
    """A demand post published in one group's 早报: at most once per group (unique), so
    a resent or replayed 早报 publishes nothing twice."""

    __tablename__ = "demand_publications"
    __table_args__ = (
        UniqueConstraint("demand_id", "chat_id", name="uq_demand_publication"),
        Index("ix_demand_publication_chat", "chat_id", "report_date"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    demand_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("demand_posts.id", ondelete="CASCADE")
    )
    chat_id: Mapped[str] = mapped_column(String(128))
    report_date: Mapped[date] = mapped_column(Date)  # the 早报's local date
    published_at: Mapped[datetime]


class DailyReport(Base):
    """One group's 早报 for one local day (handlers/features/daily_report/): booked
    `planned` for the playbook's `at`, claimed like any due item, then `sent`,
    `skipped` (with the reason: late start, nothing to say, playbook changed) or
    `failed`. The unique (group, day) and the outbox key `daily_report:{chat}:{day}`
    make it once per group and day across replicas, restarts and admins."""

    __tablename__ = "daily_reports"
    __table_args__ = (
        UniqueConstraint("chat_id", "report_date", name="uq_daily_report_day"),
        Index("ix_daily_report_due", "status", "due_at"),
        Index("ix_daily_report_mass_send", "mass_send_state"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(128))
    report_date: Mapped[date] = mapped_column(Date)  # the local day (BOT_TIMEZONE)
    # planned | claimed | sending (an admin's send now) | sent | skipped | failed
    status: Mapped[str] = mapped_column(String(16), default="planned")
    due_at: Mapped[datetime]
    trigger: Mapped[str] = mapped_column(String(16), default="schedule")  # schedule | admin
    text: Mapped[str | None] = mapped_column(Text)  # as sent (or handed to the owner)
    parts: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text)  # why skipped or failed; what was trimmed
    outbox_key: Mapped[str | None] = mapped_column(String(200))
    delivery: Mapped[str | None] = mapped_column(String(16))  # group | mass_send | owner_task
    knowledge_item_id: Mapped[int | None] = mapped_column(IdType)
    # Customer groups: queued → awaiting_confirmation (WeCom took the mass send; the
    # owner confirms in the client) → confirmed (with the time WeCom sent it) |
    # unconfirmed (the day ended unsent) | failed. WeCom's msgid of the mass send, when
    # told, and the sender whose execution result says whether it went out.
    mass_send_state: Mapped[str | None] = mapped_column(String(24))
    mass_send_msgid: Mapped[str | None] = mapped_column(String(128))
    mass_send_sender: Mapped[str | None] = mapped_column(String(64))
    mass_send_checked_at: Mapped[datetime | None]  # last asked WeCom (polled gently)
    mass_send_confirmed_at: Mapped[datetime | None]  # WeCom's send_time
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class KnowledgePointUse(Base):
    """The knowledge point a group's 早报 carried on a day: the queue offers an item
    again in that group only after every eligible item was used."""

    __tablename__ = "knowledge_point_uses"
    __table_args__ = (
        UniqueConstraint("chat_id", "report_date", name="uq_knowledge_use_day"),
        Index("ix_knowledge_use_item", "chat_id", "item_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(128))
    item_id: Mapped[int] = mapped_column(IdType)
    report_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
