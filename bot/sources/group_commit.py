"""Group commit for the inbox: concurrent callbacks share one transaction.

WeCom must hear `success` only once its event is durable, and a commit is the
expensive part of a callback (an fsync on SQLite, a round trip and a WAL flush
on PostgreSQL). So a callback hands its event to the writer and waits; the
writer takes everything that arrived meanwhile and writes it in one INSERT and
one commit (storage/inbox_append.py, at driver level). With one callback in
flight this is a plain transaction (no added delay, nothing waits for a timer);
under load, batches form by themselves while the previous commit runs.

A batch that fails is written again one event per transaction, so one bad event
fails alone: every other callback of the batch still gets its answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from bot.sources.normalized import Incoming, store_many
from storage.inbox_append import InboxAppender

log = logging.getLogger(__name__)

Waiting = tuple[Incoming, "asyncio.Future[bool]"]


class InboxWriter:
    def __init__(
        self,
        appender: InboxAppender,
        clock: Callable[[], datetime],
        *,
        max_batch: int = 500,
    ) -> None:
        self.appender = appender
        self.clock = clock
        self.max_batch = max_batch
        self._waiting: list[Waiting] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # commits made, for the metrics and tests

    async def store(self, incoming: Incoming) -> bool:
        """Durably in the inbox when this returns; True when this call stored it."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((incoming, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="inbox group commit")
        return await future

    async def _write_all(self) -> None:
        while self._waiting:
            batch = self._waiting[: self.max_batch]
            del self._waiting[: self.max_batch]
            try:
                await self._write(batch)
            except Exception:
                # Never leave a callback waiting: the ones not answered get the error.
                log.exception("inbox group commit failed")

    async def _write(self, batch: list[Waiting]) -> None:
        try:
            results = await self._commit([incoming for incoming, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _answer_error(batch, exc)
                return
            log.warning("inbox batch of %s failed (%s); writing one by one", len(batch), exc)
            for one in batch:
                try:
                    (result,) = await self._commit([one[0]])
                except Exception as single:
                    _answer_error([one], single)
                else:
                    _answer(one[1], result)
            return
        for (_incoming, future), result in zip(batch, results, strict=True):
            _answer(future, result)

    async def _commit(self, incoming: list[Incoming]) -> list[bool]:
        results = await store_many(self.appender, incoming, now=self.clock())
        self.batches += 1
        return results


def _answer(future: asyncio.Future[bool], result: bool) -> None:
    if not future.done():  # the caller may have gone (client disconnected)
        future.set_result(result)


def _answer_error(batch: list[Waiting], exc: Exception) -> None:
    for _incoming, future in batch:
        if not future.done():
            future.set_exception(exc)
