"""The change feed: every change of every organisation, in commit order, never missed.

(The design is written out in README.md, "Publishing the register"; this is the
map of the package.)

- ``entries``: what an entry is made of (the organisation's row copied, the kind of
  change, the fields that changed) as INSERT ... SELECT statements; ``hierarchy.changes``
  runs them, numbering entries as it numbers versions, so positions are in commit order.
- ``cursor``: opaque cursors, a position signed with the register's own key.
- ``reading``: a page of the feed after a position.
- ``watcher``: one per worker process and database, wakes long-polling requests when a
  commit takes positions (PostgreSQL ``LISTEN``; SQLite: polls while someone waits).
- ``tick``: ``took_effect`` entries on the day a date takes effect.
- ``routes``, ``cli``: ``GET /api/v1/changes`` and ``sorregistry tick``.
"""
