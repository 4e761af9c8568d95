"""The directory refuses webhook recipients without a signing secret and plain-http endpoints off loopback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from carehub.core.errors import ConfigError
from carehub.core.transport import insecure_url_reason
from carehub.streams.routing.load import check_config_dir, load_routing_map
from carehub.streams.subscriptions.config import load_subscriptions
from tests.conftest import CONFIG


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(CONFIG, target, ignore=shutil.ignore_patterns("schemas"))
    return target


def _edit(directory: Path, old: str, new: str) -> None:
    path = directory / "recipients.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_the_shipped_directory_holds_no_secret_and_names_the_variable(directory: Path) -> None:
    text = (CONFIG / "recipients.yaml").read_text()
    assert "riverside-demo-shared-secret" not in text
    assert "secret: ${CAREHUB_SECRET_PCP_RIVERSIDE}" in text, "no default: the variable must be set"


def test_a_webhook_recipient_without_a_secret_is_refused_at_load(directory: Path) -> None:
    _edit(directory, "    secret: ${CAREHUB_SECRET_PAYER_ACME}\n", "")
    with pytest.raises(ConfigError, match="'payer-acme': a webhook recipient needs a signing secret") as refused:
        load_routing_map(directory)
    assert refused.value.line is not None and refused.value.file.endswith("recipients.yaml")


def test_an_unset_secret_variable_is_refused_at_load(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAREHUB_SECRET_CBO_FOODBANK")
    with pytest.raises(ConfigError, match="CAREHUB_SECRET_CBO_FOODBANK is not set"):
        load_routing_map(directory)


def test_plain_http_endpoints_off_loopback_are_refused_at_load(directory: Path) -> None:
    _edit(
        directory,
        "${CAREHUB_ENDPOINT_PAYER_ACME:-http://127.0.0.1:9102/fhir/$process-message}",
        "http://payer.example.org/fhir/$process-message",
    )
    problems = [p.reason for p in check_config_dir(directory)]
    assert any("'payer-acme': endpoint plain http:// is allowed to loopback addresses only" in p for p in problems)


def test_https_or_loopback_only() -> None:
    assert insecure_url_reason("https://recipient.example.org/notify") is None
    assert insecure_url_reason("http://127.0.0.1:9101/x") is None and insecure_url_reason("http://[::1]:80/") is None
    assert insecure_url_reason("http://localhost:9101/x") is None
    for bad in ("http://recipient.example.org/", "http://10.0.0.5/", "http://127.0.0.1.evil.example/", "file:///x"):
        assert insecure_url_reason(bad) is not None, bad


def test_fhir_sources_and_secret_bearing_endpoints_need_https(directory: Path) -> None:
    path = directory / "subscriptions.yaml"
    text = path.read_text()
    path.write_text(
        text.replace("${CAREHUB_EHR_EXAMPLE_URL:-https://ehr.example.org/fhir}", "http://ehr.example.org/fhir")
    )
    with pytest.raises(ConfigError, match="base_url: plain http:// is allowed to loopback addresses only") as refused:
        load_subscriptions(directory)
    assert refused.value.line is not None
    path.write_text(
        text.replace("${CAREHUB_EHR_EXAMPLE_SECRET:-}", "a-subscription-secret-01").replace(
            "${CAREHUB_PUBLIC_URL:-http://127.0.0.1:8080}", "http://carehub.example.org"
        )
    )
    with pytest.raises(ConfigError, match="endpoint: plain http://"):
        load_subscriptions(directory)
