//! A listener's `allow` and `deny` lists, checked on the real client address (after the PROXY
//! header) before any protocol byte is sent: a partner network can be fenced to its own ranges.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

#[derive(Clone, Debug, Default)]
pub struct AddressFilter {
    /// Empty: every address not denied.
    allow: Arc<[IpNet]>,
    deny: Arc<[IpNet]>,
    /// When set, an address must be in it too (the plain-HTTP listener: trusted proxies only).
    only: Option<Arc<[IpNet]>>,
}

impl AddressFilter {
    pub fn new(allow: &[IpNet], deny: &[IpNet]) -> Self {
        Self { allow: Arc::from(allow.to_vec()), deny: Arc::from(deny.to_vec()), only: None }
    }

    /// This filter, and besides it only addresses in `nets`.
    pub fn only(mut self, nets: &[IpNet]) -> Self {
        self.only = Some(Arc::from(nets.to_vec()));
        self
    }

    /// Deny wins over allow, as in OpenSSH's `Match`/`DenyUsers` and every firewall.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let listed = |nets: &[IpNet]| nets.iter().any(|net| net.contains(&ip));
        !listed(&self.deny)
            && (self.allow.is_empty() || listed(&self.allow))
            && self.only.as_ref().is_none_or(|only| listed(only))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_wins_and_an_empty_allow_list_allows_all() {
        let nets = |list: &[&str]| list.iter().map(|n| n.parse().unwrap()).collect::<Vec<IpNet>>();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let open = AddressFilter::default();
        assert!(open.permits(ip("192.0.2.7")) && open.permits(ip("2001:db8::1")));
        let fenced = AddressFilter::new(&nets(&["10.0.0.0/8", "2001:db8::/32"]), &nets(&["10.9.0.0/16"]));
        assert!(fenced.permits(ip("10.1.2.3")));
        assert!(fenced.permits(ip("::ffff:10.1.2.3")), "a v4-mapped address is its v4 address");
        assert!(!fenced.permits(ip("10.9.1.1")), "deny wins over allow");
        assert!(!fenced.permits(ip("192.0.2.7")));
        assert!(fenced.permits(ip("2001:db8:5::1")));
        let proxies_only = AddressFilter::default().only(&nets(&["10.0.0.5/32"]));
        assert!(proxies_only.permits(ip("10.0.0.5")) && !proxies_only.permits(ip("10.0.0.6")));
        assert!(!AddressFilter::default().only(&[]).permits(ip("10.0.0.5")), "no proxy, nobody");
    }
}
