//! Who is on the other end of a request, as both edges (the HTTP routes and the WebSocket
//! upgrade) and the session guard see it: the client's IP behind the proxies we trust, the key
//! a per-IP limit counts it by ([`limiter`], [`slots`]), and whether the page it comes from may
//! act here ([`origin`]).

pub(crate) mod limiter;
pub(crate) mod origin;
pub(crate) mod slots;

use std::net::{IpAddr, Ipv6Addr};

use actix_web::HttpRequest;

use crate::config::ServerSettings;

/// The client's IP for per-IP limits and the login records: the socket peer, unless the peer
/// is a proxy we believe (`server.trusted_proxies`, or any peer with the older
/// `server.trust_forwarded_for = true`). Then `X-Forwarded-For` is walked from the right: each
/// proxy appends the address it saw, so the rightmost entry is the one our proxy vouches for,
/// and further left only as long as that entry is itself a trusted proxy. Everything beyond is
/// the client's to invent.
pub(crate) fn client_ip(req: &HttpRequest, server: &ServerSettings) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip().to_canonical();
    let proxies = server.trusted_proxy_nets();
    let trusted = |ip: IpAddr| proxies.iter().any(|net| net.contains(&ip));
    if !peer_is_trusted_proxy(req, server) {
        return Some(peer);
    }
    let hops: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // An entry that is not an address ends the chain we can follow; the last address we
        // could is the best key there is.
        let Some(ip) = parse_ip(hop) else { break };
        client = ip;
        if !trusted(ip) {
            break;
        }
    }
    Some(client)
}

/// Whether the socket peer is a proxy whose forwarding headers (`X-Forwarded-For`,
/// `X-Forwarded-Proto`) we believe.
pub(crate) fn peer_is_trusted_proxy(req: &HttpRequest, server: &ServerSettings) -> bool {
    if server.trust_forwarded_for {
        return true;
    }
    req.peer_addr().is_some_and(|addr| {
        let peer = addr.ip().to_canonical();
        server
            .trusted_proxy_nets()
            .iter()
            .any(|net| net.contains(&peer))
    })
}

fn parse_ip(addr: &str) -> Option<IpAddr> {
    addr.parse::<IpAddr>()
        .ok()
        .or_else(|| addr.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// The IPv6 prefix one client is assumed to control (the smallest a subscriber is given).
const IPV6_CLIENT_PREFIX_BITS: u32 = 64;

/// What a per-IP limit counts `ip` as: an IPv4 address (also written IPv4-mapped) as itself, an
/// IPv6 address as its /64 network.
pub(crate) fn limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let host_bits = u128::BITS - IPV6_CLIENT_PREFIX_BITS;
            let network = (u128::from(v6) >> host_bits) << host_bits;
            IpAddr::V6(Ipv6Addr::from(network))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv6_counts_by_its_64_and_ipv4_by_the_address() {
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            limit_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(limit_key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(limit_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(limit_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }
}
