//! The socket as tokio-xmpp's XML stream sees it: every byte read goes
//! through a [`StanzaFilter`] first, so a stanza over a limit never reaches
//! the parser (see [`crate::limits`]). Writes pass through untouched.

use crate::limits::{Rejected, StanzaFilter, StanzaLimits};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

/// How many dropped stanzas may wait for the loop to report them; more are
/// counted and logged as a number (the filter never blocks on them).
pub(crate) const REJECTED_QUEUE: usize = 256;

pub(crate) struct FilteredIo<S> {
    inner: S,
    filter: StanzaFilter,
    raw: Box<[u8]>,
    out: Vec<u8>,
    out_pos: usize,
    rejected: mpsc::Sender<Rejected>,
    scratch: Vec<Rejected>,
    /// Dropped stanzas that could not be reported (queue full).
    unreported: u64,
}

impl<S> FilteredIo<S> {
    /// Wraps `inner`; dropped stanzas are reported on the returned receiver.
    pub fn new(inner: S, limits: StanzaLimits) -> (FilteredIo<S>, mpsc::Receiver<Rejected>) {
        let (tx, rx) = mpsc::channel(REJECTED_QUEUE);
        let io = FilteredIo {
            inner,
            filter: StanzaFilter::new(limits),
            raw: vec![0; 16 * 1024].into_boxed_slice(),
            out: Vec::new(),
            out_pos: 0,
            rejected: tx,
            scratch: Vec::new(),
            unreported: 0,
        };
        (io, rx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FilteredIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.out_pos < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.out_pos);
                buf.put_slice(&this.out[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.out.len() {
                    this.out.clear();
                    this.out_pos = 0;
                    if this.out.capacity() > 64 * 1024 {
                        this.out.shrink_to(64 * 1024);
                    }
                }
                return Poll::Ready(Ok(()));
            }
            let mut raw = ReadBuf::new(&mut this.raw);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut raw))?;
            let n = raw.filled().len();
            if n == 0 {
                return Poll::Ready(Ok(())); // end of stream
            }
            this.filter
                .feed(&this.raw[..n], &mut this.out, &mut this.scratch)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            for rejected in this.scratch.drain(..) {
                if let Err(mpsc::error::TrySendError::Full(r)) = this.rejected.try_send(rejected) {
                    this.unreported += 1;
                    // 1, 2, 4, 8 … : a flood logs a few lines, not one each.
                    if this.unreported.is_power_of_two() {
                        tracing::warn!(
                            unreported = this.unreported,
                            last_violation = %r.violation,
                            "xmpp: stanzas over a limit dropped faster than they can be answered; these are not answered"
                        );
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FilteredIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
