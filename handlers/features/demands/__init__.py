"""Demand posts (招聘 / 求职 / 供应商 / 活动): collected during the day, by a group rule
with `action: collect` or `POST /admin/demands`, and published once a day per group in
the 早报, so members are disturbed once.

- `posts`: pure — tidy text, duplicate keys, which messages are posts at all.
- `store`: submit (duplicates merge into the first post), list, approve, reject.
- `collect`: what the rules handler returns for a collect hit (`RecordDemand`, the
  member's one note a day).
- `feed`: what the 早报 takes (`demands_for_report`, `PublishDemands`, `render_demands`).
"""

from __future__ import annotations

from handlers.core.executor import Executor
from handlers.features.demands.collect import RecordDemand, apply_record
from handlers.features.demands.feed import PublishDemands, apply_publish


def register(executor: Executor) -> None:
    executor.register(RecordDemand, apply_record)
    executor.register(PublishDemands, apply_publish)
