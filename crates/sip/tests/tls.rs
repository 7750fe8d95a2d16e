//! SIP over TLS (RFC 3261 §26.2) and secure WebSocket (RFC 7118) against
//! real loopback sockets, with a test CA made here (rcgen): accepted
//! connections carry SIP bytes, the gateway's own TLS connections check the
//! peer's certificate, and a certificate for another name fails the send.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use stox_sip::{IoConfig, IoEvent, SipIo, TlsConfig};
use stox_sipcore::{Dest, Transmit, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::Receiver;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

struct Pki {
    dir: PathBuf,
    ca_pem: String,
}

/// A CA and a leaf for `names` (IP addresses or DNS names), as PEM files.
fn pki(tag: &str, names: &[&str]) -> Pki {
    let dir = std::env::temp_dir().join(format!("stox-tls-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "stox test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let leaf = params.signed_by(&leaf_key, &issuer).unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    Pki {
        dir,
        ca_pem: ca.pem(),
    }
}

impl Pki {
    fn server(&self) -> TlsConfig {
        TlsConfig::load(
            Some(&self.dir.join("cert.pem")),
            Some(&self.dir.join("key.pem")),
            Some(&self.dir.join("ca.pem")),
        )
        .expect("loads")
    }

    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                #[allow(deprecated)]
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
        )
    }
}

use rustls_pki_types::pem::PemObject;

fn lo() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn start(tls: TlsConfig) -> (SipIo, Receiver<IoEvent>, CancellationToken) {
    let cancel = CancellationToken::new();
    let (io, rx) = SipIo::start(
        IoConfig {
            tls_listen: Some(lo()),
            wss: Some(lo()),
            tls: Some(tls),
            ..IoConfig::default()
        },
        cancel.clone(),
    )
    .await
    .expect("binds");
    (io, rx, cancel)
}

fn addr(io: &SipIo, t: Transport) -> SocketAddr {
    io.local_addrs()
        .into_iter()
        .find(|(x, _)| *x == t)
        .unwrap()
        .1
}

async fn next(rx: &mut Receiver<IoEvent>) -> IoEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event in time")
        .expect("open")
}

const OPTIONS: &[u8] = b"OPTIONS sip:gw SIP/2.0\r\nContent-Length: 0\r\n\r\n";

#[tokio::test]
async fn rfc3261_26_2_an_accepted_tls_connection_carries_sip_both_ways() {
    let pki = pki("accept", &["127.0.0.1"]);
    let (io, mut rx, _c) = start(pki.server()).await;
    let tcp = tokio::net::TcpStream::connect(addr(&io, Transport::Tls))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(pki.client_config())
        .connect(name, tcp)
        .await
        .expect("handshake with the gateway's certificate");
    tls.write_all(OPTIONS).await.unwrap();
    let IoEvent::Opened {
        conn, transport, ..
    } = next(&mut rx).await
    else {
        panic!("opened first")
    };
    assert_eq!(transport, Transport::Tls);
    let IoEvent::Stream { data, .. } = next(&mut rx).await else {
        panic!("bytes")
    };
    assert_eq!(data, OPTIONS);
    io.transmit(Transmit {
        transport: Transport::Tls,
        dest: Dest::Conn(conn),
        data: b"SIP/2.0 200 OK\r\n\r\n".to_vec(),
        call: None,
    })
    .unwrap();
    let mut buf = [0u8; 64];
    let n = tls.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"SIP/2.0 200 OK\r\n\r\n");
}

#[tokio::test]
async fn the_gateways_tls_connections_check_the_peers_certificate() {
    let ours = pki("connect", &["127.0.0.1"]);
    let (server, mut server_rx, _c1) = start(ours.server()).await;
    let (client, mut client_rx, _c2) = start(ours.server()).await;
    client
        .transmit(Transmit {
            transport: Transport::Tls,
            dest: Dest::Addr(addr(&server, Transport::Tls)),
            data: OPTIONS.to_vec(),
            call: None,
        })
        .unwrap();
    assert!(matches!(
        next(&mut server_rx).await,
        IoEvent::Opened {
            transport: Transport::Tls,
            ..
        }
    ));
    assert!(matches!(next(&mut server_rx).await, IoEvent::Stream { .. }));
    assert!(matches!(
        next(&mut client_rx).await,
        IoEvent::Opened {
            transport: Transport::Tls,
            ..
        }
    ));

    // A server whose certificate names someone else: the send fails.
    let other = pki("other", &["sip.example.org"]);
    let (impostor, _irx, _c3) = start(other.server()).await;
    client
        .transmit(Transmit {
            transport: Transport::Tls,
            dest: Dest::Addr(addr(&impostor, Transport::Tls)),
            data: OPTIONS.to_vec(),
            call: None,
        })
        .unwrap();
    loop {
        match next(&mut client_rx).await {
            IoEvent::SendFailed { reason, .. } => {
                assert!(reason.contains("TLS handshake"), "{reason}");
                break;
            }
            IoEvent::Opened { .. } | IoEvent::Stream { .. } | IoEvent::Closed { .. } => {}
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn rfc7118_wss_carries_sip_over_tls() {
    let pki = pki("wss", &["127.0.0.1"]);
    let (io, mut rx, _c) = start(pki.server()).await;
    let tcp = tokio::net::TcpStream::connect(addr(&io, Transport::Wss))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(pki.client_config())
        .connect(name, tcp)
        .await
        .unwrap();
    let mut req = format!("wss://{}/", addr(&io, Transport::Wss))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "sip".parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "sip");
    ws.send(Message::text(String::from_utf8_lossy(OPTIONS).into_owned()))
        .await
        .unwrap();
    let IoEvent::Opened {
        conn, transport, ..
    } = next(&mut rx).await
    else {
        panic!("opened")
    };
    assert_eq!(transport, Transport::Wss);
    let IoEvent::Frame { data, .. } = next(&mut rx).await else {
        panic!("a message")
    };
    assert_eq!(data, OPTIONS);
    io.transmit(Transmit {
        transport: Transport::Wss,
        dest: Dest::Conn(conn),
        data: b"SIP/2.0 200 OK\r\n\r\n".to_vec(),
        call: None,
    })
    .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        answer.into_text().unwrap().as_str(),
        "SIP/2.0 200 OK\r\n\r\n"
    );
}
