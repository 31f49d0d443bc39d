"""The client address of an HTTP request, the key of per-address limits, and --trusted-proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from twisted.web.iweb import IRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """The ``--trusted-proxy`` values (addresses or networks), checked."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"--trusted-proxy: not an address or network: {value!r}") from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as a proxy may write it (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``)."""
    text = text.strip()
    for candidate in (text, text.rpartition(":")[0].strip("[]"), text.strip("[]")):
        try:
            address = ipaddress.ip_address(candidate)
        except ValueError:
            continue
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            return address.ipv4_mapped
        return address
    return None


def client_address(request: IRequest, trusted: Sequence[Network]) -> str:
    """The client's address: the peer's; or, when the peer is a trusted proxy, the
    right-most address of ``X-Forwarded-For`` that is not itself trusted."""
    peer_host = getattr(request.getClientAddress(), "host", None)
    if not isinstance(peer_host, str):
        return "local"  # a UNIX socket
    peer = _address(peer_host)
    if peer is None or not any(peer in network for network in trusted):
        return str(peer or peer_host)
    hops = [hop.strip() for line in request.requestHeaders.getRawHeaders(b"x-forwarded-for", [])
            for hop in line.decode("latin-1").split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return hop[:64]  # what the proxy wrote, whatever it is
        if not any(address in network for network in trusted):
            return str(address)
    return str(_address(hops[0]) if hops else peer)  # proxies all the way: the first hop
