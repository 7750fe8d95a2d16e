//! The accept side of XEP-0114 (Jabber Component Protocol): what an XMPP
//! server does when a component connects.
//!
//! 1. the component opens `<stream:stream xmlns='jabber:component:accept' to='DOMAIN'>`;
//! 2. the server answers with its own stream header carrying a fresh `id`;
//! 3. the component sends `<handshake>hex(sha1(id + secret))</handshake>`;
//! 4. the server checks it and answers `<handshake/>` (or a `not-authorized`
//!    stream error). Stanzas flow from then on.

use crate::xml::{self, Event, Splitter};
use anyhow::{Context, bail};
use sha1::{Digest, Sha1};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const NS_COMPONENT: &str = "jabber:component:accept";
const NS_STREAMS: &str = "http://etherx.jabber.org/streams";

/// `hex(sha1(stream_id + secret))`, lower case (XEP-0114 §3).
pub fn handshake_digest(stream_id: &str, secret: &str) -> String {
    let mut h = Sha1::new();
    h.update(stream_id.as_bytes());
    h.update(secret.as_bytes());
    hex::encode(h.finalize())
}

/// The server's stream header in answer to the component's.
pub fn stream_header(domain: &str, stream_id: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='{NS_COMPONENT}' xmlns:stream='{NS_STREAMS}' \
         from='{}' id='{}'>",
        xml::escape(domain),
        xml::escape(stream_id)
    )
}

/// Checks a `<handshake>` element against the expected digest (case-insensitive hex).
pub fn handshake_ok(element: &str, stream_id: &str, secret: &str) -> bool {
    let is_handshake = xml::start_tag(element, "handshake").is_some_and(|t| element.starts_with(t));
    is_handshake && xml::text(element).eq_ignore_ascii_case(&handshake_digest(stream_id, secret))
}

pub fn not_authorized() -> String {
    "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"
        .to_owned()
}

/// A fresh stream id (unique enough for a bench: time + counter).
pub fn new_stream_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("bench-{t:x}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Runs the server side of the handshake on an accepted connection. Returns
/// the component's domain and the splitter (which may already hold stanzas).
pub async fn accept(
    stream: &mut TcpStream,
    secret: &str,
    limit: Duration,
) -> anyhow::Result<(String, Splitter)> {
    tokio::time::timeout(limit, accept_inner(stream, secret))
        .await
        .context("component handshake timed out")?
}

async fn accept_inner(stream: &mut TcpStream, secret: &str) -> anyhow::Result<(String, Splitter)> {
    let mut splitter = Splitter::default();
    let mut buf = vec![0u8; 16 * 1024];
    let mut domain = None;
    let id = new_stream_id();
    loop {
        while let Some(ev) = splitter.next_event() {
            match ev {
                Event::StreamOpen(tag) => {
                    let to =
                        xml::attr(&tag, "to").context("component stream header has no 'to'")?;
                    stream.write_all(stream_header(&to, &id).as_bytes()).await?;
                    domain = Some(to);
                }
                Event::Element(el) if domain.is_some() => {
                    if handshake_ok(&el, &id, secret) {
                        stream.write_all(b"<handshake/>").await?;
                        return Ok((domain.unwrap_or_default(), splitter));
                    }
                    stream.write_all(not_authorized().as_bytes()).await?;
                    bail!("bad component handshake: {el}");
                }
                Event::Element(el) => bail!("element before the stream header: {el}"),
                Event::StreamClose => bail!("component closed the stream during the handshake"),
            }
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("component closed the connection during the handshake");
        }
        splitter.push(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_hex_sha1_of_id_then_secret() {
        // `printf 3BF96D32sesame | sha1sum`
        assert_eq!(
            handshake_digest("3BF96D32", "sesame"),
            "7a98dc4c9e92493d7fd66a25364c862637789c45"
        );
    }

    #[test]
    fn handshake_checked() {
        let d = handshake_digest("id1", "s3cret");
        assert!(handshake_ok(
            &format!("<handshake>{d}</handshake>"),
            "id1",
            "s3cret"
        ));
        assert!(handshake_ok(
            &format!(
                "<handshake xmlns='jabber:component:accept'>{}</handshake>",
                d.to_uppercase()
            ),
            "id1",
            "s3cret"
        ));
        assert!(!handshake_ok(
            &format!("<handshake>{d}</handshake>"),
            "id1",
            "other"
        ));
        assert!(!handshake_ok(
            &format!("<iq><handshake>{d}</handshake></iq>"),
            "id1",
            "s3cret"
        ));
    }

    #[test]
    fn header_carries_id_and_domain() {
        let h = stream_header("sip.example.com", "abc");
        let mut s = Splitter::default();
        s.push(h.as_bytes());
        let Some(Event::StreamOpen(tag)) = s.next_event() else {
            panic!("no stream header in {h}");
        };
        assert_eq!(xml::attr(&tag, "id").as_deref(), Some("abc"));
        assert_eq!(xml::attr(&tag, "from").as_deref(), Some("sip.example.com"));
    }

    #[tokio::test]
    async fn accepts_a_component_over_tcp() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.expect("connect");
            c.write_all(b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='sip.example.com'>").await.expect("write");
            let mut s = Splitter::default();
            let mut buf = [0u8; 4096];
            let id = loop {
                let n = c.read(&mut buf).await.expect("read");
                s.push(&buf[..n]);
                if let Some(Event::StreamOpen(tag)) = s.next_event() {
                    break xml::attr(&tag, "id").expect("id");
                }
            };
            let hs = format!("<handshake>{}</handshake>", handshake_digest(&id, "pw"));
            c.write_all(hs.as_bytes()).await.expect("write");
            loop {
                if let Some(ev) = s.next_event() {
                    return ev;
                }
                let n = c.read(&mut buf).await.expect("read");
                s.push(&buf[..n]);
            }
        });
        let (mut conn, _) = listener.accept().await.expect("accept");
        let (domain, _) = accept(&mut conn, "pw", Duration::from_secs(5))
            .await
            .expect("handshake");
        assert_eq!(domain, "sip.example.com");
        assert_eq!(
            client.await.expect("client"),
            Event::Element("<handshake/>".into())
        );
    }
}
