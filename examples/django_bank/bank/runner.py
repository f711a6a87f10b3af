from typing import Any

from django.test.runner import DiscoverRunner

from .store import close_stores


class Runner(DiscoverRunner):
    """Django's test runner, closing facta's connections before it drops the test database."""

    def teardown_databases(self, old_config: Any, **kwargs: Any) -> None:
        close_stores()
        super().teardown_databases(old_config, **kwargs)
