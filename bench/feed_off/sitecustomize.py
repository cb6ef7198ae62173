"""For benchmarks only: this tree with its change feed's entries switched off.

Put this directory first on ``PYTHONPATH`` and Python imports it at start-up: nothing
writes a feed entry any more (``hierarchy.changes`` makes no created entry for the
import's writer and runs no entry statement), everything else is the same code. The
feed's cost on a write path is then measured against the same tree, side by side
(``bench/bench_feed.py``). Never on a register that is kept: its feed would miss the
changes made meanwhile.
"""

import hierarchy.changes as changes

changes.created_entry = lambda *args, **kwargs: None
changes._write_entries = lambda *args, **kwargs: 0  # noqa: SLF001
