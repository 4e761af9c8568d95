"""Session-wide fixtures: the corpus location and one embedded broker for the run."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from carehub.broker import EmbeddedBroker
from carehub.demo import demo_secrets
from tests.authkit import TEST_ISSUER, Issuer

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CAREHUB_SHARED", REPO.parent / "shared"))
CORPUS = SHARED / "corpus"
FEED = REPO / "demo" / "feed"
CONFIG = REPO / "config"
# The shipped directory's webhook recipients need signing secrets (it commits none): one per run, as the demo does.
demo_secrets(CONFIG)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with a ``slow`` test come first, in their usual order, then the rest.

    make test hands test files to its pytest-xdist workers in collection order (``--dist loadfile
    --no-loadscope-reorder``): a minute-long file collected last would leave one worker running it
    while the others sit idle; started first, it runs beside the short files.
    """
    slow = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow)  # a stable sort: the order within each part stays


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.fail(f"the shared corpus is missing at {CORPUS} (clone ../shared beside the repo)")
    return CORPUS


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka-protocol broker (the embedded one), started once per test session."""
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_file=log) as running:
        yield running.bootstrap


@pytest.fixture(scope="session")
async def issuer() -> AsyncIterator[Issuer]:
    """The test token issuer with its JWKS on a real HTTP server; test hubs trust it."""
    await TEST_ISSUER.start()
    yield TEST_ISSUER
    await TEST_ISSUER.stop()
