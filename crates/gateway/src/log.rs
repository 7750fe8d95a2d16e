//! Log lines cannot be forged by what a peer sends: every field value is
//! written with its control characters escaped (`\0`, `\n`, `\u{1b}` …), so
//! a Call-ID with a line break or a terminal escape in it stays on one line
//! and shows as text. Call sites also cut long peer text
//! (`stox_mapping::lograte::escaped`); this is the net under everything,
//! dependencies' own lines included.
//!
//! Lines about peer faults are rate-limited per source where they are
//! written (`stox_mapping::lograte::LogGate`).

use std::fmt::{self, Write};
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;

/// The gateway's subscriber: `filter` for the whole subscriber, then one
/// line per event with [`escaping_fields`].
///
/// The filter is global, not a per-layer filter (`Layer::with_filter`):
/// with a per-layer filter, a library asking whether a level is enabled
/// without then logging (sqlx does, on every PostgreSQL query) leaves the
/// filter's per-thread state set, and the next event on that thread is
/// dropped (tracing-subscriber issue #2519). Lines went missing that way.
pub fn subscriber<W>(
    filter: tracing_subscriber::EnvFilter,
    ansi: bool,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::registry().with(filter).with(
        tracing_subscriber::fmt::layer()
            .fmt_fields(escaping_fields())
            .with_ansi(ansi)
            .with_writer(writer),
    )
}

/// The field formatter for the gateway's subscriber.
pub fn escaping_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    tracing_subscriber::fmt::format::debug_fn(|w: &mut Writer<'_>, field, value| {
        let mut out = Escape(w);
        if field.name() == "message" {
            write!(out, "{value:?}")
        } else {
            write!(out, "{field}={value:?}")
        }
    })
    .delimited(" ")
}

/// Forwards text with control characters escaped.
struct Escape<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escape<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(|c: char| c.is_control()) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            write!(self.0, "{}", c.escape_default())?;
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A level check that does not log (as sqlx makes before each query)
    /// must not cost the next line on that thread.
    #[test]
    fn a_level_check_without_an_event_loses_no_line() {
        let buf = Buf::default();
        let writer = buf.clone();
        let filter = tracing_subscriber::EnvFilter::new("info,stox=debug");
        tracing::subscriber::with_default(
            subscriber(filter, false, move || writer.clone()),
            || {
                // What `log::log_enabled!` reaches once tracing-subscriber's
                // init() installed the LogTracer: a check with metadata of no
                // callsite, then no event.
                let bridge = tracing_log::LogTracer::new();
                for level in [log::Level::Debug, log::Level::Info, log::Level::Trace] {
                    let metadata = log::Metadata::builder()
                        .level(level)
                        .target("sqlx::query")
                        .build();
                    let _ = log::Log::enabled(&bridge, &metadata);
                    tracing::info!(target: "stox_gateway", "a line after a level check");
                }
                tracing::debug!(target: "sqlx::query", "not shown");
            },
        );
        let text = String::from_utf8(buf.0.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .expect("utf-8");
        assert_eq!(
            text.matches("a line after a level check").count(),
            3,
            "{text}"
        );
        assert!(!text.contains("not shown"), "{text}");
    }

    #[test]
    fn control_characters_in_fields_and_messages_are_escaped() {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(escaping_fields())
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let call_id = "abc\0def\r\nINFO forged line";
            tracing::warn!(call_id = %call_id, other = call_id, "bad \u{1b}[31m {}", call_id);
        });
        let text = String::from_utf8(buf.0.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .expect("utf-8");
        assert_eq!(text.matches('\n').count(), 1, "one line: {text:?}");
        assert!(!text.contains('\0') && !text.contains('\u{1b}') && !text.contains('\r'));
        assert!(
            text.contains("call_id=abc\\u{0}def\\r\\nINFO forged line"),
            "{text}"
        );
    }
}
