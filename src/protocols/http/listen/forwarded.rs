//! The client address an L7 balancer reports: `Forwarded` (RFC 7239) or `X-Forwarded-For`,
//! believed only when the connection itself comes from `server.trusted_proxies`. The client is
//! the right-most address that is not itself a trusted proxy: every hop appends, so entries left
//! of the first untrusted one could have been written by the client.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use ipnet::IpNet;

use crate::session::ConnectionInfo;
use crate::types::PeerAddr;

/// The proxies whose forwarding headers are believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    pub fn new(nets: &[IpNet]) -> Self {
        Self(Arc::from(nets.to_vec()))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind a trusted `peer`, from `headers`; `None` when `peer` is not trusted or
    /// the headers name no usable address.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> Option<SocketAddr> {
        if !self.trusts(peer.ip()) {
            return None;
        }
        let hops = forwarded_hops(headers).or_else(|| x_forwarded_for_hops(headers))?;
        // Walk from the nearest hop back; the first address we do not trust is the client.
        let mut client = None;
        for hop in hops.into_iter().rev() {
            let hop = hop?;
            client = Some(hop);
            if !self.trusts(hop.ip()) {
                break;
            }
        }
        client
    }
}

/// Replaces the request's peer address with the forwarded client's, when believed.
pub async fn apply(trusted: TrustedProxies, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectionInfo>().and_then(|info| info.peer.0);
    if let Some(client) = peer.and_then(|peer| trusted.client(peer, request.headers()))
        && let Some(info) = request.extensions_mut().get_mut::<ConnectionInfo>()
    {
        info.peer = PeerAddr(Some(client));
    }
    next.run(request).await
}

/// On the plain-HTTP listener: a request that the balancer says reached it over plain HTTP
/// (`X-Forwarded-Proto` or `Forwarded: proto=`, other than `https`) is refused with 403, since its
/// credentials crossed the network in clear. Only trusted proxies reach that listener.
pub async fn require_https(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let forwarded_proto = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| key.trim().eq_ignore_ascii_case("proto"))
        .map(|(_, proto)| proto.trim().trim_matches('"').to_string())
        .next_back();
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(|v| v.trim().to_string())
        .or(forwarded_proto);
    if proto.is_some_and(|proto| !proto.eq_ignore_ascii_case("https")) {
        return super::error::ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "https_required",
            "this server accepts HTTPS only",
        )
        .into_response();
    }
    next.run(request).await
}

/// `for=` of every `Forwarded` element, in order; an element without a usable `for` (an
/// obfuscated `_hidden` or `unknown` node) is `None`, which ends the walk there.
fn forwarded_hops(headers: &HeaderMap) -> Option<Vec<Option<SocketAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("forwarded") {
        let value = value.to_str().ok()?;
        for element in value.split(',') {
            let node = element
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
                .map(|(_, node)| node.trim().trim_matches('"'));
            hops.push(node.and_then(parse_node));
        }
    }
    (!hops.is_empty()).then_some(hops)
}

fn x_forwarded_for_hops(headers: &HeaderMap) -> Option<Vec<Option<SocketAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let value = value.to_str().ok()?;
        hops.extend(value.split(',').map(|node| parse_node(node.trim())));
    }
    (!hops.is_empty()).then_some(hops)
}

/// `192.0.2.7`, `192.0.2.7:4711`, `[2001:db8::7]:4711`, `[2001:db8::7]` or `2001:db8::7`.
fn parse_node(node: &str) -> Option<SocketAddr> {
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(SocketAddr::new(addr.ip().to_canonical(), addr.port()));
    }
    let bare = node.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(node);
    bare.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip.to_canonical(), 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        map
    }

    fn proxies() -> TrustedProxies {
        TrustedProxies::new(&["10.0.0.0/8".parse().unwrap()])
    }

    const BALANCER: &str = "10.0.0.5:40000";

    #[test]
    fn the_client_is_the_right_most_untrusted_hop() {
        let peer = BALANCER.parse().unwrap();
        let spoofed = headers(&[("x-forwarded-for", "6.6.6.6, 192.0.2.7, 10.0.0.9")]);
        assert_eq!(proxies().client(peer, &spoofed), Some("192.0.2.7:0".parse().unwrap()));
        let split = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "192.0.2.7")]);
        assert_eq!(proxies().client(peer, &split), Some("192.0.2.7:0".parse().unwrap()));
        let rfc =
            headers(&[("forwarded", r#"for=6.6.6.6, for="[2001:db8::7]:4711";proto=https;by=10.0.0.5"#)]);
        assert_eq!(proxies().client(peer, &rfc), Some("[2001:db8::7]:4711".parse().unwrap()));
    }

    #[test]
    fn headers_from_an_untrusted_peer_or_without_an_address_are_ignored() {
        let direct = "192.0.2.99:5000".parse().unwrap();
        let forged = headers(&[("x-forwarded-for", "10.0.0.1")]);
        assert_eq!(proxies().client(direct, &forged), None);
        let peer = BALANCER.parse().unwrap();
        assert_eq!(proxies().client(peer, &HeaderMap::new()), None);
        assert_eq!(proxies().client(peer, &headers(&[("forwarded", "for=_hidden")])), None);
        assert_eq!(proxies().client(peer, &headers(&[("x-forwarded-for", "garbage")])), None);
    }
}
