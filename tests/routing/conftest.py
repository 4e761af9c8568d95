"""The integration fixtures (a running hub on the session broker, real HTTP recipients) for routing tests."""

from tests.integration.conftest import config_dir, hub, recipients  # noqa: F401
