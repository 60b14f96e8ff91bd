//! The keys every listener section shares (`bind`, connection limits, `proxy_protocol`,
//! `allow`, `deny`), read by one function so each section spells them the same way.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::reader::Reader;

/// Whether a listener expects a PROXY protocol header (v1 or v2) before the protocol's bytes.
/// A header is only ever read from an address in `server.trusted_proxies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Headers are not read: the TCP peer is the client.
    Off,
    /// Trusted proxies may send a header; a connection without one (a health check, a client on
    /// the same network) is served with its TCP peer as the client.
    Optional,
    /// Every connection must come from a trusted proxy with a header; others are closed.
    Required,
}

/// One listener's address and admission settings.
#[derive(Debug, Clone)]
pub struct ListenConfig {
    pub bind: SocketAddr,
    /// Connections served at once; the next ones are closed at accept.
    pub max_connections: usize,
    /// Connections from one client address at once (authenticated or not).
    pub max_connections_per_ip: usize,
    pub proxy_protocol: ProxyMode,
    /// Client addresses served (empty: every address); checked on the real client address.
    pub allow: Vec<IpNet>,
    /// Client addresses refused, even when `allow` lists them.
    pub deny: Vec<IpNet>,
}

/// Whether a section has connection limits (the ops listener has none: probes get through).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Limits {
    Read,
    None,
}

/// Reads the shared keys of a listener section.
pub(super) fn read(r: &mut Reader<'_>, default_bind: &str, limits: Limits) -> ListenConfig {
    let bind = r.socket_addr("bind", default_bind);
    let (max_connections, max_connections_per_ip) = match limits {
        Limits::Read => (
            r.integer("max_connections", 10_000, 1, 1_000_000) as usize,
            r.integer("max_connections_per_ip", 100, 1, 1_000_000) as usize,
        ),
        Limits::None => (usize::MAX, usize::MAX),
    };
    let proxy_protocol = proxy_mode(r, "proxy_protocol");
    ListenConfig {
        bind,
        max_connections,
        max_connections_per_ip,
        proxy_protocol,
        allow: networks(r, "allow"),
        deny: networks(r, "deny"),
    }
}

pub(super) fn proxy_mode(r: &mut Reader<'_>, key: &str) -> ProxyMode {
    let modes =
        [("off", ProxyMode::Off), ("optional", ProxyMode::Optional), ("required", ProxyMode::Required)];
    r.choice(key, ProxyMode::Off, &modes)
}

/// A list of addresses or CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`).
pub(super) fn networks(r: &mut Reader<'_>, key: &str) -> Vec<IpNet> {
    let mut out = Vec::new();
    for (i, raw) in r.strings(key, &[]).into_iter().enumerate() {
        match parse_network(&raw) {
            Some(net) => out.push(net),
            None => r.fail(
                &format!("{key}[{i}]"),
                format!("expected an address or a CIDR block such as \"10.0.0.0/8\", found `{raw}`"),
            ),
        }
    }
    out
}

fn parse_network(raw: &str) -> Option<IpNet> {
    let raw = raw.trim();
    if let Ok(net) = raw.parse::<IpNet>() {
        // `10.1.2.3/8` means the block, as every firewall reads it.
        return Some(net.trunc());
    }
    raw.parse::<IpAddr>().ok().map(IpNet::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_take_addresses_and_blocks_and_name_a_bad_entry() {
        let table: toml::Table =
            toml::from_str(r#"allow = ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "10.1.2.3/16", "nope"]"#)
                .unwrap();
        let mut errors = Vec::new();
        let mut r = Reader::new("sftp", table, &mut errors);
        let nets = networks(&mut r, "allow");
        r.finish();
        let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "10.1.0.0/16"]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].key, "sftp.allow[4]");
    }
}
