"""The weekly 群刊: once a week per group, last week's best threads and new resources
as one message (compose.py decides it, purely; schedule.py reads, books and sends it)."""
