"""Points that reward real contribution (SPEC §5.5): the ledger and what earns on it
(messages, discussion, good content, invites, check-ins, the first week), what it
costs (rule penalties), spends it (redemption), and what it builds (the ladder)."""
