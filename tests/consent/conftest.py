"""Fixtures shared with the integration tests (a running hub, real HTTP recipients)."""

from tests.integration.conftest import config_dir, hub, recipients  # noqa: F401
from tests.subscriptions.conftest import source  # noqa: F401
