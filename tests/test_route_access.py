"""Every route the hub serves has an access rule, and refuses an anonymous caller with 401.

The routes come from the running hub's own router (every role, every
feature), not from a list kept here: a new endpoint without a rule in
carehub/adapters/httpauth/rules.py fails this test, and so does one whose rule is
missing from the table in docs/security.md.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from carehub.adapters.httpauth import RULES, RuleTable
from carehub.hub import Hub
from tests.authkit import Issuer
from tests.conftest import CONFIG, REPO
from tests.integration.conftest import hub_settings

pytestmark = pytest.mark.integration
OPEN = {(m, p) for m in ("GET", "HEAD") for p in ("/health", "/ready", "/console/signin")}
#: Console pages send a browser without a session to the sign-in page instead of a 401 body.
CONSOLE_PAGE = re.compile(r"^/console(/|$)")


@pytest.fixture
async def hub(broker: str, issuer: Issuer, tmp_path: Path) -> AsyncIterator[Hub]:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config, ignore=shutil.ignore_patterns("schemas"))
    running = Hub(hub_settings(config, broker))  # both roles: MLLP, streams, every HTTP route
    await running.start()
    yield running
    await running.stop()


def _served(hub: Hub) -> list[tuple[str, str]]:
    assert hub._http is not None
    return sorted({(r.method, r.resource.canonical) for r in hub._http.app.router.routes() if r.resource is not None})


async def test_every_route_has_a_rule_and_refuses_anonymous_callers(hub: Hub) -> None:
    served = _served(hub)
    assert len(served) >= 15, served
    table = RuleTable()
    unruled = [f"{m} {p}" for m, p in served if table.rule_for(m, p) is None]
    assert not unruled, f"routes without an access rule in carehub/adapters/httpauth/rules.py: {unruled}"
    answers = {}
    async with aiohttp.ClientSession() as http:
        for method, path in served:
            url = f"http://127.0.0.1:{hub.http_port}" + re.sub(r"\{[^}]+\}", "x", path)
            headers = {"Content-Type": "application/json"}
            async with http.request(method, url, data=b"{}", headers=headers, allow_redirects=False) as r:
                answers[(method, path)] = (r.status, r.headers.get("WWW-Authenticate", r.headers.get("Location", "")))
    for (method, path), (status, challenge) in answers.items():
        if (method, path) in OPEN:
            assert status == 200, (method, path, status)
        elif method in ("GET", "HEAD") and CONSOLE_PAGE.match(path):
            assert (status, challenge) == (303, "/console/signin"), f"{method} {path} answered {status} {challenge}"
        else:
            assert status == 401, f"{method} {path} answered {status} to an anonymous caller"
            assert challenge.startswith("Bearer"), (method, path)


def test_every_rule_is_in_the_security_doc() -> None:
    doc = (REPO / "docs" / "security.md").read_text()
    missing = [f"{r.method} {r.path}" for r in RULES if f"`{r.method} {r.path}`" not in doc]
    assert not missing, f"docs/security.md does not list: {missing}"
