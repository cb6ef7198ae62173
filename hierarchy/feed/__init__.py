"""The change feed: every change of every organisation, in commit order, never missed.

(The design is written out in README.md, "Publishing the register"; this is the
map of the package.)

- ``entries``: the statements that read what an entry is made of (the organisation's
  row and its previous entry's item); ``hierarchy.changes`` runs them, numbering entries
  as it numbers versions, so positions are in commit order.
- ``items``: each entry rendered once as the API shows it (all an entry keeps of the
  organisation), its kind and changed fields found by comparing with the previous item.
- ``cursor``: opaque cursors, a position signed with the register's own key.
- ``reading``: a page of the feed after a position.
- ``watcher``: one per worker process and database, wakes long-polling requests when a
  commit takes positions (PostgreSQL ``LISTEN``; SQLite: polls while someone waits).
- ``tick``: ``took_effect`` entries on the day a date takes effect.
- ``routes``, ``cli``: ``GET /api/v1/changes`` and ``sorregistry tick``.
"""
