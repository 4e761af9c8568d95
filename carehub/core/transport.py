"""Transport rules shared by the HTTP listener and the outbound connectors.

* :func:`is_loopback`: whether a host name or address stays on this machine.
* :func:`insecure_url_reason`: an outbound HTTP URL must be ``https://``
  unless it points at a loopback address (the demo and the tests); the reason
  it is refused, or None. Checked when recipients are loaded and again when a
  delivery is sent (the record may predate a config change).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str, *, resolve: bool = True) -> bool:
    """Whether ``host`` is a loopback address (or a name that resolves only to loopback addresses)."""
    host = host.strip("[]")
    if host.lower() in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if not resolve:
        return False
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


def insecure_url_reason(url: str) -> str | None:
    """Why ``url`` may not carry PHI or credentials (None when it may): https, or http to loopback only."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname, resolve=False):
        return None
    if parts.scheme == "http":
        return "plain http:// is allowed to loopback addresses only; use https://"
    return f"not an http(s) URL (scheme {parts.scheme or 'missing'!r})"
