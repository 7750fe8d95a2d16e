//! RFC 3263 for destinations named without an address.
//!
//! - §4.1, transport: [`Dns::naptr_transport`] reads the NAPTR records of a
//!   configured peer's (or the proxy's) domain when its URI names neither
//!   transport nor port: the first record, by order then preference, whose
//!   service is `SIP+D2U`, `SIP+D2T` or `SIPS+D2T` gives the transport the
//!   gateway writes into that URI at start. (The SRV name is then the
//!   conventional one for that transport.)
//! - §4.2, address: SRV records of the transport's service
//!   (`_sip._udp.example.com`, `_sip._tcp…`, `_sips._tcp…`) by priority,
//!   then weight; each target's A/AAAA; without SRV records, the name's own
//!   A/AAAA with the default port. A name given with a port is looked up by
//!   A/AAAA only.
//!
//! hickory-resolver, with the system's resolver configuration or the
//! configured name servers (`sip.dns_servers`).

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use std::net::SocketAddr;

/// The resolver the transports use.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dns")
    }
}

impl Dns {
    /// The system's configuration (/etc/resolv.conf), or these servers.
    pub fn new(servers: &[SocketAddr]) -> Result<Dns, String> {
        let resolver = if servers.is_empty() {
            match TokioResolver::builder_tokio() {
                Ok(builder) => builder.build(),
                // A machine without /etc/resolv.conf still runs a gateway
                // whose peers are addresses; a name then fails to resolve
                // with a clear error, at the call that needs it.
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "no system DNS configuration: host names in SIP URIs cannot be looked up (set [sip] dns_servers)"
                    );
                    TokioResolver::builder_with_config(
                        ResolverConfig::new(),
                        TokioConnectionProvider::default(),
                    )
                    .build()
                }
            }
        } else {
            let mut cfg = ResolverConfig::new();
            for s in servers {
                cfg.add_name_server(NameServerConfig::new(*s, Protocol::Udp));
                cfg.add_name_server(NameServerConfig::new(*s, Protocol::Tcp));
            }
            TokioResolver::builder_with_config(cfg, TokioConnectionProvider::default()).build()
        };
        Ok(Dns { resolver })
    }

    /// The address to send to for `host` (see the module docs).
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
        srv: Option<&str>,
    ) -> Result<SocketAddr, String> {
        if let Some(service) = srv {
            let name = format!("{service}.{}.", host.trim_end_matches('.'));
            if let Ok(found) = self.resolver.srv_lookup(name.as_str()).await {
                let mut records: Vec<_> = found.iter().cloned().collect();
                // Lowest priority first; among equals the heaviest (RFC 2782's
                // random pick is not needed for one gateway's few calls).
                records.sort_by_key(|r| (r.priority(), std::cmp::Reverse(r.weight())));
                for r in records {
                    let target = r.target().to_utf8();
                    if target == "." {
                        continue; // RFC 2782: the service is not offered here
                    }
                    if let Ok(addr) = self.address(&target, r.port()).await {
                        return Ok(addr);
                    }
                }
            }
        }
        self.address(host, port).await
    }

    /// RFC 3263 §4.1: the transport the NAPTR records of `domain` prefer
    /// (`udp`, `tcp` or `tls`), if any.
    pub async fn naptr_transport(&self, domain: &str) -> Option<&'static str> {
        use hickory_resolver::proto::rr::{RData, RecordType};
        let name = format!("{}.", domain.trim_end_matches('.'));
        let found = self
            .resolver
            .lookup(name.as_str(), RecordType::NAPTR)
            .await
            .ok()?;
        let mut records: Vec<_> = found
            .iter()
            .filter_map(|r| match r {
                RData::NAPTR(n) => Some(n.clone()),
                _ => None,
            })
            .collect();
        records.sort_by_key(|n| (n.order(), n.preference()));
        records.iter().find_map(|n| {
            let flags = String::from_utf8_lossy(n.flags()).to_ascii_lowercase();
            if !flags.contains('s') {
                return None; // only "s" (an SRV next) is followed here
            }
            match String::from_utf8_lossy(n.services())
                .to_ascii_uppercase()
                .as_str()
            {
                "SIP+D2U" => Some("udp"),
                "SIP+D2T" => Some("tcp"),
                "SIPS+D2T" => Some("tls"),
                _ => None,
            }
        })
    }

    async fn address(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        let ips = self
            .resolver
            .lookup_ip(host)
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?;
        ips.iter()
            .next()
            .map(|ip| SocketAddr::new(ip, port))
            .ok_or_else(|| format!("{host} has no address"))
    }
}
