"""Own content first (SPEC §5.4): the content library and the lookup over it, own
items always first.

`library` validates items (`ContentIn`), writes them over a session with the library's
version bumped in the same transaction, lists them for the admin API, and loads the
enabled, currently valid ones for the lookup index (`load_enabled`). `transfer` reads
and writes the import/export files (JSON, CSV) of `wecom-bot content import|export`.
`index` is the lookup itself: exact keywords by one Aho-Corasick automaton, else BM25
over jieba-segmented titles, summaries and keywords, built once per library version.
"""
