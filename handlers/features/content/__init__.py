"""The content library (SPEC §5.4): the company's own articles and external ones that
keyword lookup answers with, own items always first.

`library` validates items (`ContentIn`), writes them over a session with the library's
version bumped in the same transaction, lists them for the admin API, and loads the
enabled, currently valid ones for the lookup index (`load_enabled`). `transfer` reads
and writes the import/export files (JSON, CSV) of `wecom-bot content import|export`.
"""
