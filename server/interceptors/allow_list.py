"""TRADING_ALLOWED_CLIENTS: the networks calls may come from, checked before
anything else, authentication included, so that a caller from elsewhere learns
nothing about tokens or methods."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from domain.errors import PermissionDenied

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

NOT_ALLOWED = "CLIENT_NOT_ALLOWED"


def parse_networks(text: str) -> tuple[Network, ...]:
    """A comma- or space-separated list of CIDR blocks or single addresses
    (`10.0.0.0/8, 192.168.1.7, ::1`); ValueError naming the bad entry."""
    networks = []
    for item in text.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"TRADING_ALLOWED_CLIENTS: {item!r} is not an IP address or CIDR block "
                "(for example 10.0.0.0/8 or 2001:db8::/32)"
            ) from None
    if not networks:
        raise ValueError("TRADING_ALLOWED_CLIENTS is empty: leave it unset to allow every address")
    return tuple(networks)


def peer_address(peer: str) -> Address | None:
    """The IP address in a gRPC peer string (ipv4:1.2.3.4:5, ipv6:[::1]:5,
    ipv6:%5B::1%5D:5), or None for a peer that has none (a unix socket)."""
    scheme, _, rest = peer.partition(":")
    if scheme == "ipv4":
        host = rest.rsplit(":", 1)[0]
    elif scheme == "ipv6":
        host = rest.replace("%5B", "[").replace("%5D", "]").rsplit(":", 1)[0].strip("[]")
        host = host.split("%", 1)[0]  # a zone index (fe80::1%eth0) names no other host
    else:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:10.1.2.3 is 10.1.2.3 on a dual-stack socket
    return address


class AllowList:
    """Admits a call whose peer address is in one of the networks. A unix-socket
    peer is on this machine and is admitted; a peer whose address cannot be read
    is refused (fail closed)."""

    def __init__(self, networks: Iterable[Network]) -> None:
        self.networks = tuple(networks)
        self._allows = lru_cache(maxsize=4096)(self._check)

    def check(self, peer: str) -> None:
        """Raises PermissionDenied (reason CLIENT_NOT_ALLOWED) for a peer outside."""
        if not self._allows(peer.rsplit(":", 1)[0] if peer.startswith("ipv") else peer):
            raise PermissionDenied(
                f"calls from {peer} are not allowed (TRADING_ALLOWED_CLIENTS)",
                reason=NOT_ALLOWED,
                metadata={"peer": peer},
            )

    def _check(self, peer_without_port: str) -> bool:
        if peer_without_port.startswith("unix"):
            return True
        address = peer_address(peer_without_port + ":0")
        return address is not None and any(address in network for network in self.networks)
