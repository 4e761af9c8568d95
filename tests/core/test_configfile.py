"""Bad config gets an error naming the file and the line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from carehub.core.errors import ConfigError
from carehub.core.settings import load_settings
from carehub.streams.routing.load import load_routing_map
from tests.conftest import CONFIG


def test_the_shipped_config_loads() -> None:
    routing = load_routing_map(CONFIG)
    assert {"pcp-riverside", "payer-acme"} <= set(routing.recipients)
    declared = next(line.split('"')[1] for line in (CONFIG / "routes.yaml").read_text().splitlines()
                    if line.startswith("version:"))  # fmt: skip
    assert routing.version.startswith(declared + "+"), "declared version plus a content hash"


def test_schema_violation_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "carehub.yaml").write_text("kafka:\n  partitions: 4\nmllp:\n  port: not-a-port\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert caught.value.file.endswith("carehub.yaml")
    assert caught.value.line == 4
    assert "mllp/port" in str(caught.value)


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    (tmp_path / "carehub.yaml").write_text("kafka:\n  partitions: 4\n mllp: [\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert caught.value.line == 3


def test_unknown_recipient_in_a_rule_names_the_action_line(tmp_path: Path) -> None:
    shutil.copytree(CONFIG, tmp_path, dirs_exist_ok=True)
    routes = (tmp_path / "routes.yaml").read_text().replace("notify: attributed:payer", "notify: payer-nobody", 1)
    (tmp_path / "routes.yaml").write_text(routes)
    with pytest.raises(ConfigError) as caught:
        load_routing_map(tmp_path)
    line = next(i for i, text in enumerate(routes.splitlines(), 1) if "payer-nobody" in text)
    assert caught.value.line == line
    assert "payer-nobody" in str(caught.value)


def test_unset_variable_is_reported_with_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAREHUB_TEST_UNSET", raising=False)
    (tmp_path / "carehub.yaml").write_text("app_id: hub\nhub_base_url: ${CAREHUB_TEST_UNSET}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert caught.value.line == 2
    assert "CAREHUB_TEST_UNSET" in str(caught.value)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    (tmp_path / "carehub.yaml").write_text("kafka:\n  bootstrap: file-host:9092\n")
    settings = load_settings(tmp_path, env={"CAREHUB_KAFKA_BOOTSTRAP": "env-host:9092"})
    assert settings.kafka.bootstrap == "env-host:9092"
    assert not settings.embedded_broker
    assert load_settings(tmp_path / "missing", env={}).embedded_broker
