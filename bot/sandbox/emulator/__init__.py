"""A fake WeCom server API: mounted in-process by sandbox mode, run on a real port by tests."""

from bot.sandbox.emulator.app import create_emulator_app
from bot.sandbox.emulator.state import EmulatorState, Fault, SentRecord

__all__ = ["EmulatorState", "Fault", "SentRecord", "create_emulator_app"]
