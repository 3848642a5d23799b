"""The SSRF guard: webhooks never reach private, loopback or link-local addresses.

A URL is checked when an endpoint is saved and again before every request. At send time the
request goes to the address that was checked (the host name stays in `Host` and TLS SNI), so a
DNS answer that changes between the check and the connection cannot redirect it. Development
mode, and hosts or networks named in `QUITTANCE_WEBHOOK_ALLOWED_HOSTS`, are exempt.
"""

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from quittance.config import Settings

_LOCAL_NAMES = ("localhost", "localhost.localdomain")
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


class UrlForbidden(Exception):
    """The URL targets an address webhooks may not reach."""


class UrlUnresolvable(Exception):
    """The URL's host has no address (now)."""


def resolve_host(host: str, port: int) -> list[str]:
    """Return every address `host` resolves to."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlUnresolvable(f"{host} does not resolve: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# Tests replace this to give public names an address without a DNS server.
resolver: Resolver = resolve_host


def is_public(address: Address) -> bool:
    """Whether a webhook may be sent to `address`."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_unspecified
    )


@dataclass(frozen=True, slots=True)
class Target:
    """Where to send: the URL to connect to, and the host name to present."""

    url: str
    # When `url` names the checked address: the original `Host` header and TLS server name.
    host_header: str | None = None
    server_name: str | None = None


def _split(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise UrlForbidden("Webhook URLs are absolute http or https URLs.")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, host, port


def _allowed(settings: Settings, host: str, addresses: list[Address]) -> bool:
    networks = []
    for entry in settings.webhook_allowed_hosts:
        if entry == host:
            return True
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    return bool(addresses) and all(any(a in n for n in networks) for a in addresses)


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_url(url: str, settings: Settings, *, strict: bool) -> Target:
    """Check `url` against the guard and return where to send it.

    With `strict=False` (saving an endpoint) a host that does not resolve yet passes; at send
    time (`strict=True`) it is refused.
    """
    scheme, host, port = _split(url)
    if settings.env == "development" or host in settings.webhook_allowed_hosts:
        return Target(url)
    literal = _literal(host)
    if literal is None and (host in _LOCAL_NAMES or host.endswith(_LOCAL_SUFFIXES)):
        raise UrlForbidden(f"{host} is a local name.")
    try:
        raw = [str(literal)] if literal is not None else resolver(host, port)
    except UrlUnresolvable:
        if strict:
            raise
        return Target(url)
    addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in raw]
    if not addresses:
        raise UrlUnresolvable(f"{host} has no address.")
    if _allowed(settings, host, addresses):
        return Target(url)
    refused = [a for a in addresses if not is_public(a)]
    if refused:
        raise UrlForbidden(f"{host} resolves to {refused[0]}, a private or local address.")
    if literal is not None:
        return Target(url)
    pinned = _pin(url, scheme, addresses[0])
    return Target(pinned, host_header=urlsplit(url).netloc.rpartition("@")[2], server_name=host)


def _pin(url: str, scheme: str, address: Address) -> str:
    parts = urlsplit(url)
    netloc = f"[{address}]" if address.version == 6 else str(address)
    if parts.port is not None:
        netloc += f":{parts.port}"
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        netloc = f"{userinfo}@{netloc}"
    return urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))
