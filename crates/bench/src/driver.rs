//! The XMPP side of a load run: the component connection's read/write loop
//! and the two call profiles that run on it.
//!
//! The loop is small and IO-only: it reads bytes, splits them into stanzas,
//! hands each stanza to a [`Profile`] with the time it arrived, and writes
//! whatever the profile queued. The profiles hold all the call logic.

use crate::jingle;
use crate::xml::{Event, Splitter};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

/// A load profile on the component stream.
pub trait Profile {
    /// A stanza from the gateway, received at `now`. Answers go into `out`.
    fn on_element(&mut self, now: Instant, el: &str, out: &mut String);
    /// When the profile next wants to send on its own (a new call, a hang-up).
    fn next_due(&self) -> Option<Instant>;
    fn on_due(&mut self, now: Instant, out: &mut String);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Stopped,
    Deadline,
    Closed,
}

/// The accepted component connection after the handshake.
pub struct Conn {
    reader: OwnedReadHalf,
    splitter: Splitter,
    tx: mpsc::UnboundedSender<String>,
    writer: tokio::task::JoinHandle<()>,
    buf: Vec<u8>,
}

impl Conn {
    pub fn new(stream: TcpStream, splitter: Splitter) -> Conn {
        let _ = stream.set_nodelay(true);
        let (reader, mut write) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let writer = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = first;
                while let Ok(more) = rx.try_recv() {
                    batch.push_str(&more);
                }
                if write.write_all(batch.as_bytes()).await.is_err() {
                    return;
                }
            }
            let _ = write.shutdown().await;
        });
        Conn {
            reader,
            splitter,
            tx,
            writer,
            buf: vec![0; 256 * 1024],
        }
    }

    /// Runs `p` until `stop(p)` holds, the deadline passes or the gateway
    /// closes the connection. Cancel-safe: state lives in `self` and `p`.
    pub async fn run_until<P: Profile>(
        &mut self,
        p: &mut P,
        deadline: Instant,
        stop: impl Fn(&P) -> bool,
    ) -> Outcome {
        let mut out = String::new();
        loop {
            // Elements already buffered (e.g. left over from the handshake).
            let now = Instant::now();
            while let Some(ev) = self.splitter.next_event() {
                match ev {
                    Event::Element(el) => p.on_element(now, &el, &mut out),
                    Event::StreamClose => return Outcome::Closed,
                    Event::StreamOpen(_) => {}
                }
            }
            if let Some(due) = p.next_due()
                && due <= now
            {
                p.on_due(now, &mut out);
            }
            if !out.is_empty() {
                let _ = self.tx.send(std::mem::take(&mut out));
            }
            if stop(p) {
                return Outcome::Stopped;
            }
            if now >= deadline {
                return Outcome::Deadline;
            }
            let wake = p.next_due().map_or(deadline, |d| d.min(deadline));
            tokio::select! {
                n = self.reader.read(&mut self.buf) => match n {
                    Ok(0) | Err(_) => return Outcome::Closed,
                    Ok(n) => self.splitter.push(&self.buf[..n]),
                },
                () = sleep_until(wake) => {}
            }
        }
    }

    /// Closes the stream politely and waits for the writer to drain.
    pub async fn close(self) {
        let _ = self.tx.send("</stream:stream>".to_owned());
        drop(self.tx);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.writer).await;
    }
}

/// Answers an IQ get/set nobody else handles (keepalive pings) with a result.
pub fn answer_other(el: &str, out: &mut String) -> bool {
    let Some(head) = crate::xml::start_tag(el, "iq") else {
        return false;
    };
    let ty = crate::xml::attr(head, "type");
    if matches!(ty.as_deref(), Some("get" | "set")) {
        let id = crate::xml::attr(head, "id").unwrap_or_default();
        let from = crate::xml::attr(head, "from").unwrap_or_default();
        let to = crate::xml::attr(head, "to").unwrap_or_default();
        out.push_str(&jingle::result(&id, &to, &from));
        return true;
    }
    false
}
