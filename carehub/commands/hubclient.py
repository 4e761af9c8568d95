"""How the CLI talks to a running hub's HTTP API: base URL, bearer token, CA for https.

The token comes from ``--token-file`` or the ``CAREHUB_TOKEN`` environment
variable (never a command-line value, which other users can read in the
process list) and is never printed. ``--ca-file`` verifies an https hub
whose certificate a private CA signed.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_HUB = "http://127.0.0.1:8080"
TOKEN_VARIABLE = "CAREHUB_TOKEN"


def add_hub_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hub", default=DEFAULT_HUB, help=f"the hub's HTTP base URL (default {DEFAULT_HUB})")
    parser.add_argument(
        "--token-file",
        type=Path,
        help=f"file holding the bearer token (default: the {TOKEN_VARIABLE} environment variable)",
    )
    parser.add_argument("--ca-file", type=Path, help="CA bundle to verify an https hub with")


def _token(args: argparse.Namespace) -> str:
    path: Path | None = getattr(args, "token_file", None)
    if path is not None:
        return path.read_text(encoding="utf-8").strip()
    return os.environ.get(TOKEN_VARIABLE, "").strip()


def call(
    args: argparse.Namespace, path: str, body: Any = None, *, method: str | None = None, content_type: str = ""
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of one request to the hub; raises URLError/OSError when it is unreachable."""
    headers = {"Content-Type": content_type or "application/json", "Accept": "application/json"}
    token = _token(args)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{args.hub.rstrip('/')}{path}", data=data, headers=headers, method=method)
    ca_file = getattr(args, "ca_file", None)
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return response.status, dict(json.loads(response.read() or b"{}"))
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, dict(json.loads(raw))
        except ValueError:
            return exc.code, {"error": raw.decode(errors="replace")[:300]}


def refusal_text(body: dict[str, Any]) -> str:
    """The reason in an OperationOutcome or an ``{"error": ...}`` body."""
    if "issue" in body:
        return str(body["issue"][0].get("details", {}).get("text", ""))
    return str(body.get("error", ""))


class HubRefused(Exception):
    """The hub answered, but not with what the command asked for (the message says why)."""


def guarded(fn: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run one hub command: a refusal or an unreachable hub is one line on stderr and exit status 2."""
    try:
        return int(fn(args))
    except HubRefused as exc:
        print(str(exc), file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"cannot reach the hub at {args.hub}: {exc}", file=sys.stderr)
    return 2
