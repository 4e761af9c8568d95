"""Read from, and manage Subscriptions on, a source FHIR server (fhirclient).

Authentication is a bearer token from config or SMART Backend Services: a
client-credentials grant with a signed JWT assertion (carehub/connectors/auth.py,
the hub's one SMART client), the access token cached until shortly before it
expires. fhirclient's
``FHIRServer`` does the HTTP (requests, synchronous); :class:`AsyncFhirSource`
runs it in a thread for the stream workers. Errors become ``SourceError``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
from fhirclient.server import FHIRServer

from carehub.connectors.auth import access_token, token_request
from carehub.core.errors import CarehubError

_MAX_PAGES = 20


class SourceError(CarehubError):
    """The source server could not be reached, refused, or answered something unusable."""

    code = "fhir-source-error"


@dataclass(frozen=True, slots=True)
class BearerAuth:
    token: str


@dataclass(frozen=True, slots=True)
class SmartBackendAuth:
    token_url: str
    client_id: str
    private_key_file: str
    key_id: str = ""
    scope: str = "system/*.read"
    algorithm: str = "RS384"


Auth = BearerAuth | SmartBackendAuth | None


class _TimeoutSession(requests.Session):
    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self._timeout_s = timeout_s

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self._timeout_s)
        return super().request(*args, **kwargs)


class _SmartToken:
    """SMART Backend Services over the source's synchronous session (the protocol: carehub/connectors/auth.py)."""

    def __init__(self, auth: SmartBackendAuth, session: requests.Session) -> None:
        self._auth = auth
        self._session = session
        self._token = ""
        self._refresh_at = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            now = time.time()
            if self._token and now < self._refresh_at:
                return self._token
            a = self._auth
            key = Path(a.private_key_file).read_bytes()
            form = token_request(a.client_id, a.token_url, key, a.algorithm, a.key_id, a.scope)
            try:
                res = self._session.post(a.token_url, data=form, headers={"Accept": "application/json"})
            except (requests.RequestException, OSError) as exc:
                raise SourceError(f"token endpoint unreachable: {type(exc).__name__}") from exc
            try:
                got = access_token(res.json(), now) if res.status_code == 200 else None
            except ValueError:
                got = None
            if got is None:
                raise SourceError(f"token endpoint answered {res.status_code}")
            self._token, self._refresh_at = got.value, got.expires_at
            return self._token


class FhirSource:
    """One source FHIR server: reads, searches, $status/$events and Subscription upserts."""

    def __init__(self, base_url: str, auth: Auth = None, *, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self._server = FHIRServer(None, base_uri=self.base_url)
        self._server.session = _TimeoutSession(timeout_s)
        self._auth = auth
        self._smart = _SmartToken(auth, self._server.session) if isinstance(auth, SmartBackendAuth) else None

    def _authorize(self) -> None:
        if isinstance(self._auth, BearerAuth):
            token = self._auth.token
        elif self._smart is not None:
            token = self._smart.token()
        else:
            return
        self._server.session.headers["Authorization"] = f"Bearer {token}"

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        self._authorize()
        try:
            res = fn(*args)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            raise SourceError(f"{what}: the source answered {status}") from exc
        except (requests.RequestException, OSError, ValueError) as exc:
            raise SourceError(f"{what}: {type(exc).__name__}") from exc
        except Exception as exc:  # fhirclient raises its own exceptions for 401/403/404
            answered = getattr(getattr(exc, "response", None), "status_code", None)
            raise SourceError(f"{what}: the source answered {answered or type(exc).__name__}") from exc
        return res.json() if isinstance(res, requests.Response) else res

    def relative(self, reference: str) -> str:
        """A path on this server for a reference (absolute URLs must point to it)."""
        if reference.startswith(("http://", "https://")):
            if not reference.startswith(self.base_url):
                raise SourceError("a reference points to another server")
            return reference[len(self.base_url) :]
        return reference.lstrip("/")

    def read(self, reference: str) -> dict[str, Any]:
        path = self.relative(reference)
        found: dict[str, Any] = self._call(f"read {path.split('/')[0]}", self._server.request_json, path)
        return found

    def search(self, resource_type: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """Every resource of ``resource_type`` matching ``params`` (follows next links)."""
        path: str | None = f"{resource_type}?{urlencode(params)}"
        found: list[dict[str, Any]] = []
        for _ in range(_MAX_PAGES):
            if path is None:
                break
            bundle = self._call(f"search {resource_type}", self._server.request_json, path)
            found += [
                e["resource"]
                for e in bundle.get("entry") or []
                if isinstance(e.get("resource"), dict) and e["resource"].get("resourceType") == resource_type
            ]
            nxt = [link["url"] for link in bundle.get("link") or [] if link.get("relation") == "next"]
            path = self.relative(nxt[0]) if nxt else None
        return found

    def status(self, subscription_id: str) -> dict[str, Any]:
        """``Subscription/{id}/$status``: a Bundle holding the status resource."""
        result: dict[str, Any] = self._call(
            "$status", self._server.request_json, f"Subscription/{subscription_id}/$status"
        )
        return result

    def events(
        self, subscription_id: str, since: int, until: int | None, content: str = "full-resource"
    ) -> dict[str, Any]:
        """``Subscription/{id}/$events``: a notification Bundle with the events asked for."""
        params = {"eventsSinceNumber": str(since), "content": content}
        if until is not None:
            params["eventsUntilNumber"] = str(until)
        path = f"Subscription/{subscription_id}/$events?{urlencode(params)}"
        result: dict[str, Any] = self._call("$events", self._server.request_json, path)
        return result

    def upsert_subscription(self, resource: dict[str, Any], existing_id: str | None) -> dict[str, Any]:
        """Create (POST) or update (PUT) a Subscription; returns what the server stored."""
        if existing_id:
            body = {**resource, "id": existing_id}
            res = self._call("update Subscription", self._server.put_json, f"Subscription/{existing_id}", body)
        else:
            res = self._call("create Subscription", self._server.post_json, "Subscription", resource)
        stored: dict[str, Any] = res
        return stored

    def find_subscription(self, endpoint: str) -> str | None:
        """The id of the Subscription already pointing at ``endpoint`` (``url`` search), if any."""
        for found in self.search("Subscription", {"url": endpoint}):
            if (found.get("channel") or {}).get("endpoint", found.get("endpoint")) == endpoint:
                return str(found["id"])
        return None


class AsyncFhirSource:
    """The same operations for asyncio callers (fhirclient is synchronous: one thread per call)."""

    def __init__(self, source: FhirSource) -> None:
        self.source = source
        self.base_url = source.base_url

    async def read(self, reference: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.source.read, reference)

    async def search(self, resource_type: str, params: dict[str, str]) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.source.search, resource_type, params)

    async def status(self, subscription_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.source.status, subscription_id)

    async def events(self, subscription_id: str, since: int, until: int | None) -> dict[str, Any]:
        return await asyncio.to_thread(self.source.events, subscription_id, since, until)
