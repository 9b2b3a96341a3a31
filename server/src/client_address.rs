//! The address of the client behind trusted proxies.
//!
//! Behind a load balancer, the TCP peer of every request is the balancer. When the peer is one
//! of the [`TrustedProxies`], the client is read from `X-Forwarded-For`, right to left: each
//! trusted hop vouches for the address it appended, so the first address that is not itself a
//! trusted proxy is the client's. An address written by the client (the leftmost entries) is
//! never believed, so a client cannot choose the source that failure limits and the audit log
//! count it under. A header that does not parse stops the walk at the last address vouched for.
//!
//! The work is linear in the header and bounded by [`MAX_FORWARDED_HOPS`].
//!
//! ```
//! use std::net::IpAddr;
//! use http::HeaderMap;
//! use m2m_server::TrustedProxies;
//!
//! let proxies: TrustedProxies = ["10.0.0.0/8".parse().unwrap()].into_iter().collect();
//! let mut headers = HeaderMap::new();
//! headers.insert("x-forwarded-for", "198.51.100.7, 203.0.113.9, 10.0.0.3".parse().unwrap());
//!
//! // From the balancer: the address its own proxy chain vouches for.
//! let balancer: IpAddr = "10.0.0.2".parse().unwrap();
//! assert_eq!(proxies.client(balancer, &headers), "203.0.113.9".parse::<IpAddr>().unwrap());
//!
//! // From anyone else the header is not believed.
//! let stranger: IpAddr = "192.0.2.1".parse().unwrap();
//! assert_eq!(proxies.client(stranger, &headers), stranger);
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderMap;
use ipnet::IpNet;

/// The header a proxy appends the address of its peer to.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The most `X-Forwarded-For` entries read from the right; a longer chain stops there.
pub const MAX_FORWARDED_HOPS: usize = 16;

/// The networks whose connections may name the client in `X-Forwarded-For`; empty (the
/// default) believes no header and takes the TCP peer as the client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl FromIterator<IpNet> for TrustedProxies {
    fn from_iter<I: IntoIterator<Item = IpNet>>(networks: I) -> Self {
        Self(networks.into_iter().collect())
    }
}

impl TrustedProxies {
    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The networks.
    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The client of a request that arrived from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer;
        if !self.trusts(client) {
            return client;
        }
        // Several header lines form one list, in order (RFC 9110, section 5.3).
        let mut hops = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .rev()
            .flat_map(|line| line.as_bytes().rsplit(|&byte| byte == b','))
            .take(MAX_FORWARDED_HOPS);
        while self.trusts(client) {
            let Some(hop) = hops.next() else { break };
            let Some(address) = std::str::from_utf8(hop)
                .ok()
                .and_then(|text| text.trim().parse::<IpAddr>().ok())
            else {
                break;
            };
            client = address;
        }
        client
    }
}

/// Middleware: replaces the request's [`ConnectInfo`] with the client's address when the peer
/// is a trusted proxy, so that every reader of the source (failure limits, the audit log) sees
/// the client.
pub(crate) async fn resolve(
    State(proxies): State<TrustedProxies>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        let client = proxies.client(peer.ip(), request.headers());
        if client != peer.ip() {
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(client, 0)));
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(networks: &[&str]) -> TrustedProxies {
        networks.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn forwarded(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(X_FORWARDED_FOR, line.parse().unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn no_trusted_proxy_takes_the_peer() {
        let headers = forwarded(&["203.0.113.9"]);
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.2"), &headers),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let proxies = proxies(&["10.0.0.0/8", "fd00::/8"]);
        let headers = forwarded(&["1.1.1.1, 203.0.113.9", "fd00::5 , 10.1.2.3"]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &headers), ip("203.0.113.9"));
    }

    #[test]
    fn a_client_cannot_forge_its_way_past_the_proxy() {
        // The client sent "10.9.9.9" itself; the balancer appended the real peer.
        let proxies = proxies(&["10.0.0.0/8"]);
        let headers = forwarded(&["10.9.9.9, 198.51.100.4"]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &headers), ip("198.51.100.4"));
    }

    #[test]
    fn garbage_stops_at_the_last_vouched_address() {
        let proxies = proxies(&["10.0.0.0/8"]);
        let values: [&[u8]; 4] = [b"not an address", b"", b"198.51.100.4:443", b"\xff\xfe"];
        for value in values {
            let mut headers = HeaderMap::new();
            headers.insert(
                X_FORWARDED_FOR,
                http::HeaderValue::from_bytes(value).unwrap(),
            );
            assert_eq!(proxies.client(ip("10.0.0.2"), &headers), ip("10.0.0.2"));
        }
        let headers = forwarded(&["203.0.113.9, garbage, 10.0.0.7"]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &headers), ip("10.0.0.7"));
    }

    #[test]
    fn only_trusted_hops_and_no_header_leave_the_last_one() {
        let proxies = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            proxies.client(ip("10.0.0.2"), &HeaderMap::new()),
            ip("10.0.0.2")
        );
        let headers = forwarded(&["10.0.0.9, 10.0.0.8"]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &headers), ip("10.0.0.9"));
    }

    #[test]
    fn a_long_chain_is_read_only_so_far() {
        let proxies = proxies(&["10.0.0.0/8"]);
        let chain = vec!["10.0.0.1"; 10_000].join(",");
        let headers = forwarded(&[&format!("203.0.113.9,{chain}")]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &headers), ip("10.0.0.1"));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_networks() {
        let proxies = proxies(&["10.0.0.0/8"]);
        let headers = forwarded(&["203.0.113.9"]);
        assert_eq!(
            proxies.client(ip("::ffff:10.0.0.2"), &headers),
            ip("203.0.113.9")
        );
    }
}
