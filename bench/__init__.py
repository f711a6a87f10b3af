"""The benchmark suite: facta against the raw drivers and the ``eventsourcing`` package.

Run it with ``python bench/run.py`` (see ``docs/benchmarks.md``); nothing here is shipped.
"""
