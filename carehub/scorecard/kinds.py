"""Which directory recipient is of which kind (pcp, payer, ...): which deliveries reached a PCP."""

from __future__ import annotations

from pathlib import Path

from carehub.core.configfile import parse_yaml
from carehub.core.defaults import shipped
from carehub.streams.routing.load import RECIPIENTS_FILE


def recipient_kinds(config_dir: Path | None) -> dict[str, str]:
    """Recipient id -> kind from the config's recipients.yaml (else the shipped one).

    Read without expanding ``${...}``: the scorecard needs ids and kinds, not endpoints or secrets."""
    path = (config_dir or shipped("config")) / RECIPIENTS_FILE
    if not path.is_file():
        path = shipped("config") / RECIPIENTS_FILE
    data, _ = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    items = data.get("recipients", []) if isinstance(data, dict) else []
    return {str(r["id"]): str(r.get("kind", "")) for r in items if isinstance(r, dict) and "id" in r}
