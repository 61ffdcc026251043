"""Group health judged by signals, not by message counts (SPEC §5.8, issue 9)."""
