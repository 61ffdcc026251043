"""Head-of-line order for the inbox (per chat) and the outbox (per destination).

A chat's events are handled in the order they arrived, and a destination's
messages go out in the order they were queued. Instead of asking, for every
candidate row, "is there an older unfinished row with my key?" (which costs a
probe per waiting row: a 10k backlog in one busy group made every claim scan
10k rows), each key keeps exactly one flagged row, `is_head`: its oldest
unfinished row. Claims look at heads only, so their cost depends on how many
keys have work, never on how deep one key's backlog is.

Invariant, kept by every writer that adds or finishes rows of a key: the oldest
unfinished row of the key has `is_head` true, and no other row of the key does.
Writers call `settle(keys)` in the same transaction after their change:

- on PostgreSQL it first takes a transaction advisory lock per key (in one
  sorted order, so writers of many keys cannot deadlock), so an insert and a
  finish of the same key cannot both miss the new head;
- on SQLite a transaction holds the single write lock from its first write, so
  writers are already serialized.

`settle` then flags the oldest unfinished row of each key, an index probe per
key (min over (key, status, id) for each unfinished status).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import lock_keys


@dataclass(frozen=True)
class OrderedTable:
    table: str
    key_column: str
    unfinished: tuple[str, ...]
    lock_space: int  # the first half of the advisory lock id: one space per table

    def _min_unfinished(self, key: str = ":k") -> str:
        # One min() per status, each a single probe of the (key, status, id) index;
        # a min() over `status IN (…)` would scan every waiting row of the key.
        parts = " UNION ALL ".join(
            f"SELECT (SELECT min(e.id) FROM {self.table} e "
            f"WHERE e.{self.key_column} = {key} AND e.status = '{status}') AS m"
            for status in self.unfinished
        )
        return f"SELECT min(u.m) FROM ({parts}) u"

    def promote_sql(self, key: str = ":k") -> str:
        """Flag the key's oldest unfinished row; `key` is the placeholder of the key
        (`:k` for SQLAlchemy and sqlite3, `$1` for asyncpg)."""
        return (
            f"UPDATE {self.table} SET is_head = TRUE "
            f"WHERE id = ({self._min_unfinished(key)}) AND is_head = FALSE"
        )

    def demote_sql(self) -> str:
        return (
            f"UPDATE {self.table} SET is_head = FALSE "
            f"WHERE {self.key_column} = :k AND is_head = TRUE "
            f"AND id <> COALESCE(({self._min_unfinished()}), 0)"
        )


INBOX = OrderedTable("inbox", "chat_id", ("pending", "processing"), lock_space=71001)
OUTBOX = OrderedTable("outbox", "order_key", ("pending", "sending"), lock_space=71002)


async def settle(
    session: AsyncSession,
    table: OrderedTable,
    keys: Iterable[str | None],
    *,
    may_have_moved_back: bool = False,
) -> None:
    """Restore the invariant for keys whose rows this transaction added or finished.

    `may_have_moved_back`: an older row became unfinished again (an admin retry), so
    a younger row may hold the flag and must give it up.
    """
    ordered = sorted({key for key in keys if key is not None})
    if not ordered:
        return
    await lock_keys(session, table.lock_space, ordered)
    connection = await session.connection()
    params = [{"k": key} for key in ordered]
    if may_have_moved_back:
        await connection.execute(text(table.demote_sql()), params)
    await connection.execute(text(table.promote_sql()), params)
