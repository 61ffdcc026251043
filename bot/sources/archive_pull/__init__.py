"""Pulling 会话内容存档 ourselves (SPEC §10): sources of records, and the puller.

Kept light: bot.config.settings imports `keys` from here, so nothing heavy is
imported at package level.
"""
