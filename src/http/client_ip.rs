//! The client address used for rate limits and logs: the socket peer, unless the peer is a
//! trusted proxy, in which case the nearest untrusted address in `X-Forwarded-For`. A header
//! from anyone else is ignored, so clients cannot choose their own rate-limit bucket.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::app::AppState;

/// The client's IP address, as far as we can trust it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Ok(ClientIp(client_ip(
            peer,
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

/// Resolves the client address from the peer and the forwarding header.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpAddr]) -> IpAddr {
    let peer = canonical(peer);
    if !trusted_proxies
        .iter()
        .any(|proxy| canonical(*proxy) == peer)
    {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    // Walk from the nearest hop outwards; the first address that is not one of our proxies
    // is the client. Anything further left was written by the client and proves nothing, so
    // a hop we cannot read ends the walk instead of being skipped.
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(address) = hop.parse::<IpAddr>().map(canonical) else {
            break;
        };
        client = address;
        if !trusted_proxies
            .iter()
            .any(|proxy| canonical(*proxy) == address)
        {
            break;
        }
    }
    client
}

fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(address),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(forwarded: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", forwarded.parse().expect("header"));
        headers
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "127.0.0.1".parse().expect("ip");
        let stranger: IpAddr = "203.0.113.9".parse().expect("ip");
        let spoofed = headers("198.51.100.1, 192.0.2.7");
        assert_eq!(client_ip(stranger, &spoofed, &[proxy]), stranger);
        assert_eq!(
            client_ip(proxy, &spoofed, &[proxy]),
            "192.0.2.7".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &[proxy]), proxy);
        assert_eq!(client_ip(proxy, &headers("garbage"), &[proxy]), proxy);
        // An unreadable hop stops the walk: the spoofed entry left of it is never reached.
        assert_eq!(
            client_ip(proxy, &headers("198.51.100.1, unknown"), &[proxy]),
            proxy
        );
        assert_eq!(
            client_ip(proxy, &headers("198.51.100.1, 192.0.2.7:5678"), &[proxy]),
            proxy
        );
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("ip");
        assert_eq!(
            client_ip(mapped, &headers("192.0.2.8"), &[proxy]),
            "192.0.2.8".parse::<IpAddr>().expect("ip")
        );
    }
}
