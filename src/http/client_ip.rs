//! The address a request comes from, for login and sign-up limits and the session record.
//! Behind a reverse proxy every connection comes from the proxy, so one client's limits
//! would be everyone's. With `--trusted-proxies`, a request whose peer is a trusted proxy is
//! attributed to the address that proxy (and any trusted proxies before it) reports in
//! `X-Forwarded-For`: walking the list from the right, the first address that is not a
//! trusted proxy. Anything a client writes into the header itself sits to the left of that
//! and is never believed; without trusted proxies the header is ignored.

use std::net::{IpAddr, SocketAddr};

use actix_web::HttpRequest;
use ipnet::IpNet;

/// Parses `--trusted-proxies` entries: networks (`10.0.0.0/8`, `fd00::/8`) or single
/// addresses.
pub fn parse_nets(list: &[String]) -> Result<Vec<IpNet>, String> {
    list.iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s:?} is neither an IP address nor a network"))
        })
        .collect()
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port or in brackets.
fn entry(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| s.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

/// The client's address: `peer` unless it is a trusted proxy, else the rightmost address in
/// `forwarded_for` (comma-separated, oldest first) that is not a trusted proxy. An entry that
/// does not parse ends the walk at the last address known good.
pub fn client_ip(peer: Option<IpAddr>, forwarded_for: &str, trusted: &[IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    let mut client = peer?;
    if !is_trusted(&client) {
        return Some(client);
    }
    for hop in forwarded_for.rsplit(',').filter(|h| !h.trim().is_empty()) {
        let Some(ip) = entry(hop) else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    Some(client)
}

/// `client_ip` for a request, with the server's trusted proxies.
pub fn of(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip());
    if trusted.is_empty() {
        return peer;
    }
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .collect();
    client_ip(peer, &forwarded.join(","), trusted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        parse_nets(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn the_client_is_the_rightmost_hop_not_a_trusted_proxy() {
        let t = nets(&["10.0.0.0/8", "127.0.0.1"]);
        // (peer, X-Forwarded-For, client, why)
        let cases = [
            (
                "203.0.113.9",
                "1.2.3.4",
                "203.0.113.9",
                "an untrusted peer, whatever it claims",
            ),
            (
                "127.0.0.1",
                "198.51.100.7, 10.0.0.2",
                "198.51.100.7",
                "client → edge proxy → local proxy",
            ),
            (
                "127.0.0.1",
                "6.6.6.6, 198.51.100.7, 10.0.0.2",
                "198.51.100.7",
                "a client-written entry on the left",
            ),
            ("10.1.1.1", "2001:db8::1", "2001:db8::1", "IPv6"),
            (
                "10.1.1.1",
                "[2001:db8::2]:4711",
                "2001:db8::2",
                "IPv6 with a port",
            ),
            (
                "10.1.1.1",
                "198.51.100.8:5000",
                "198.51.100.8",
                "IPv4 with a port",
            ),
            ("10.0.0.1", "", "10.0.0.1", "no header: the proxy itself"),
            (
                "10.0.0.1",
                "garbage",
                "10.0.0.1",
                "a broken entry ends the walk",
            ),
            (
                "10.0.0.1",
                "198.51.100.7, junk, 10.0.0.3",
                "10.0.0.3",
                "at the last hop known good",
            ),
            (
                "10.0.0.1",
                "10.0.0.5, 10.0.0.3",
                "10.0.0.5",
                "every hop trusted: the oldest",
            ),
        ];
        for (peer, xff, want, why) in cases {
            assert_eq!(client_ip(ip(peer), xff, &t), ip(want), "{why}");
        }
        assert_eq!(
            client_ip(ip("203.0.113.9"), "1.2.3.4", &[]),
            ip("203.0.113.9"),
            "no trusted proxies"
        );
        assert_eq!(client_ip(None, "1.2.3.4", &t), None, "no peer");
    }

    #[test]
    fn networks_and_addresses_parse_and_nonsense_does_not() {
        assert_eq!(nets(&["10.0.0.0/8", " ::1 ", "fd00::/8"]).len(), 3);
        assert!(parse_nets(&["10.0.0.0/33".to_string()]).is_err());
        assert!(parse_nets(&["proxy.local".to_string()]).is_err());
    }
}
