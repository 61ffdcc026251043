"""The 智能机器人 long connection (SPEC §10): frames, and the loop that holds it."""
