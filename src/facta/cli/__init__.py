"""The ``facta`` command (``python -m facta`` runs it too).

One module per command family: :mod:`~facta.cli.events` (streams, show, log),
:mod:`~facta.cli.check`, :mod:`~facta.cli.migrate`, :mod:`~facta.cli.demo` and
:mod:`~facta.cli.projections`; :mod:`~facta.cli.app` gathers them into one group, and
:mod:`~facta.cli.stores` is the one way a command opens a store. Only this package reads
``FACTA_URL``.
"""

from facta.cli.app import main

__all__ = ["main"]
