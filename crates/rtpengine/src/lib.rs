//! rtpengine's NG control protocol, sans IO.
//!
//! A request is a bencoded dictionary after a cookie and a space
//! (`<cookie> d7:command5:offer…e`); the reply carries the same cookie.
//! Over UDP a request unanswered for [`RETRY`] is sent again with the same
//! cookie (rtpengine answers a repeated cookie from its cache, so an offer
//! is never applied twice), [`ATTEMPTS`] times in all; then it has failed.
//!
//! [`Ng`] keeps the requests in flight: [`Ng::request`] gives the bytes to
//! send, [`Ng::on_datagram`] matches a reply, [`Ng::on_timeout`] gives the
//! retransmissions and the failures due at a time, [`Ng::poll_timeout`]
//! when to call it next. No socket, no clock, no task: the gateway's driver
//! moves the bytes (the gateway's `media.rs`; the call core builds the
//! requests and reads the answers).

use serde_bencode::value::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// A request unanswered this long is sent again.
pub const RETRY: Duration = Duration::from_millis(1000);
/// Sends of one request at most (the first and the repeats).
pub const ATTEMPTS: u32 = 3;
/// Requests in flight at most; past it a new one fails at once.
pub const MAX_PENDING: usize = 4096;
/// The largest reply read (an SDP with many candidates fits easily).
pub const MAX_REPLY: usize = 65_507;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NgError {
    #[error("not an NG message: {0}")]
    Malformed(String),
    #[error("rtpengine refused {command}: {reason}")]
    Refused { command: String, reason: String },
    #[error("rtpengine did not answer {command} ({attempts} attempts)")]
    Timeout { command: String, attempts: u32 },
    #[error("{0} NG requests already in flight")]
    Busy(usize),
}

/// One NG command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// `ping`, `offer`, `answer`, `delete`, `query`, …
    pub command: String,
    pub call_id: Option<String>,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
    pub sdp: Option<String>,
    /// `flags` (e.g. `trust-address`).
    pub flags: Vec<String>,
    /// Other keys with a string value (`ICE`: `remove`, `DTLS`: `off`,
    /// `transport-protocol`: `RTP/AVP`, …).
    pub options: Vec<(String, String)>,
    /// Keys whose value is a list of strings (`rtcp-mux`: `["demux"]`, …).
    pub lists: Vec<(String, Vec<String>)>,
}

/// A reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub cookie: String,
    /// `ok`, `pong`, or what rtpengine said.
    pub result: String,
    pub sdp: Option<String>,
    /// The whole dictionary (statistics of a `delete` or `query`).
    pub body: BTreeMap<Vec<u8>, Value>,
}

impl Reply {
    /// Packets rtpengine counted in total for the call (the `totals` of a
    /// `delete` or `query`), RTP then RTCP, when it said.
    pub fn total_packets(&self) -> Option<(i64, i64)> {
        let totals = dict(self.body.get(b"totals".as_slice())?)?;
        let packets = |k: &[u8]| {
            dict(totals.get(k)?)?
                .get(b"packets".as_slice())
                .and_then(int)
        };
        Some((packets(b"RTP")?, packets(b"RTCP").unwrap_or(0)))
    }
}

/// What rtpengine counted on one leg (a tag) of a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegStats {
    /// Packets received from that leg's endpoint, RTP and RTCP.
    pub packets: i64,
    pub bytes: i64,
    /// Packets it could not handle (bad SRTP, wrong source, …).
    pub errors: i64,
}

impl Reply {
    /// The figures of the leg named `tag` (the `tags` section of a `delete`
    /// or `query`: the `stats` of every stream of every media summed);
    /// zero when the reply has none.
    pub fn tag_stats(&self, tag: &str) -> LegStats {
        let mut sum = LegStats::default();
        let streams = self
            .body
            .get(b"tags".as_slice())
            .and_then(dict)
            .and_then(|tags| tags.get(tag.as_bytes()))
            .and_then(dict)
            .and_then(|t| t.get(b"medias".as_slice()))
            .and_then(list)
            .into_iter()
            .flatten()
            .filter_map(dict)
            .filter_map(|m| m.get(b"streams".as_slice()).and_then(list))
            .flatten()
            .filter_map(dict)
            .filter_map(|s| s.get(b"stats".as_slice()).and_then(dict));
        for stats in streams {
            let get = |k: &[u8]| stats.get(k).and_then(int).unwrap_or(0);
            sum.packets += get(b"packets");
            sum.bytes += get(b"bytes");
            sum.errors += get(b"errors");
        }
        sum
    }
}

fn list(v: &Value) -> Option<&Vec<Value>> {
    match v {
        Value::List(l) => Some(l),
        _ => None,
    }
}

fn dict(v: &Value) -> Option<&HashMap<Vec<u8>, Value>> {
    match v {
        Value::Dict(d) => Some(d),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn bytes(v: &Value) -> Option<String> {
    match v {
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// `<cookie> <bencoded request>`.
pub fn encode(cookie: &str, req: &Request) -> Vec<u8> {
    let mut d: HashMap<Vec<u8>, Value> = HashMap::new();
    let s = |t: &str| Value::Bytes(t.as_bytes().to_vec());
    d.insert(b"command".to_vec(), s(&req.command));
    for (k, v) in [
        ("call-id", &req.call_id),
        ("from-tag", &req.from_tag),
        ("to-tag", &req.to_tag),
        ("sdp", &req.sdp),
    ] {
        if let Some(v) = v {
            d.insert(k.as_bytes().to_vec(), s(v));
        }
    }
    if !req.flags.is_empty() {
        d.insert(
            b"flags".to_vec(),
            Value::List(req.flags.iter().map(|f| s(f)).collect()),
        );
    }
    for (k, v) in &req.options {
        d.insert(k.as_bytes().to_vec(), s(v));
    }
    for (k, v) in &req.lists {
        d.insert(
            k.as_bytes().to_vec(),
            Value::List(v.iter().map(|x| s(x)).collect()),
        );
    }
    let mut out = format!("{cookie} ").into_bytes();
    // Encoding a Value built here cannot fail (bytes, lists, dicts only).
    out.extend(serde_bencode::to_bytes(&Value::Dict(d)).unwrap_or_default());
    out
}

/// Reads a reply datagram.
pub fn decode(data: &[u8]) -> Result<Reply, NgError> {
    if data.len() > MAX_REPLY {
        return Err(NgError::Malformed(format!("{} bytes", data.len())));
    }
    let space = data
        .iter()
        .position(|b| *b == b' ')
        .ok_or_else(|| NgError::Malformed("no cookie".into()))?;
    let cookie = String::from_utf8_lossy(&data[..space]).into_owned();
    let value: Value = serde_bencode::from_bytes(&data[space + 1..])
        .map_err(|e| NgError::Malformed(e.to_string()))?;
    let Value::Dict(d) = value else {
        return Err(NgError::Malformed("not a dictionary".into()));
    };
    let result = d
        .get(b"result".as_slice())
        .and_then(bytes)
        .ok_or_else(|| NgError::Malformed("no result".into()))?;
    let sdp = d.get(b"sdp".as_slice()).and_then(bytes);
    let mut body = BTreeMap::new();
    for (k, v) in d {
        body.insert(k, v);
    }
    Ok(Reply {
        cookie,
        result,
        sdp,
        body,
    })
}

struct Pending {
    command: String,
    data: Vec<u8>,
    sends: u32,
    due: Instant,
}

/// What [`Ng::on_timeout`] asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Send these bytes again (same cookie).
    Resend { cookie: String, data: Vec<u8> },
    /// The request has failed.
    Failed { cookie: String, error: NgError },
}

/// The requests in flight to one rtpengine.
#[derive(Default)]
pub struct Ng {
    pending: HashMap<String, Pending>,
    next: u64,
    /// Mixed into cookies so that two gateways never share one.
    salt: u64,
}

impl Ng {
    pub fn new(salt: u64) -> Ng {
        Ng {
            salt,
            ..Ng::default()
        }
    }

    /// Starts `req` at `now`: its cookie and the bytes to send.
    pub fn request(&mut self, now: Instant, req: &Request) -> Result<(String, Vec<u8>), NgError> {
        if self.pending.len() >= MAX_PENDING {
            return Err(NgError::Busy(self.pending.len()));
        }
        self.next += 1;
        let cookie = format!("{:x}_{}", self.salt, self.next);
        let data = encode(&cookie, req);
        self.pending.insert(
            cookie.clone(),
            Pending {
                command: req.command.clone(),
                data: data.clone(),
                sends: 1,
                due: now + RETRY,
            },
        );
        Ok((cookie, data))
    }

    /// A datagram from rtpengine: the reply to a request in flight (`Ok`
    /// with `result` `ok`/`pong`, `Err(Refused)` for an error result), or
    /// `None` for a stray or repeated reply.
    pub fn on_datagram(&mut self, data: &[u8]) -> Option<(String, Result<Reply, NgError>)> {
        let reply = decode(data).ok()?;
        let pending = self.pending.remove(&reply.cookie)?;
        let outcome = match reply.result.as_str() {
            "ok" | "pong" => Ok(reply.clone()),
            _ => Err(NgError::Refused {
                command: pending.command,
                reason: reply
                    .body
                    .get(b"error-reason".as_slice())
                    .and_then(bytes)
                    .unwrap_or_else(|| reply.result.clone()),
            }),
        };
        Some((reply.cookie, outcome))
    }

    /// Retransmissions and failures due at `now`.
    pub fn on_timeout(&mut self, now: Instant) -> Vec<Due> {
        let mut due: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(c, _)| c.clone())
            .collect();
        due.sort();
        let mut out = Vec::new();
        for cookie in due {
            let Some(p) = self.pending.get_mut(&cookie) else {
                continue;
            };
            if p.sends >= ATTEMPTS {
                let attempts = p.sends;
                let command = p.command.clone();
                self.pending.remove(&cookie);
                out.push(Due::Failed {
                    cookie,
                    error: NgError::Timeout { command, attempts },
                });
            } else {
                p.sends += 1;
                p.due = now + RETRY;
                out.push(Due::Resend {
                    cookie,
                    data: p.data.clone(),
                });
            }
        }
        out
    }

    /// When [`Ng::on_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.due).min()
    }

    /// Requests in flight.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leg_figures_sum_the_streams_of_a_tag() {
        // Shaped as rtpengine 10.5 answers a delete (two streams: RTP, RTCP).
        let reply = b"c1 d6:result2:ok4:tagsd3:sipd6:mediasld7:streamsld5:statsd7:packetsi54e5:bytesi9288e6:errorsi1eeed5:statsd7:packetsi3e5:bytesi120e6:errorsi0eeeeeee4:xmppd6:mediasld7:streamsld5:statsd7:packetsi50e5:bytesi8000e6:errorsi0eeeeeeeee";
        let reply = decode(reply).expect("a well-formed reply");
        assert_eq!(
            reply.tag_stats("sip"),
            LegStats {
                packets: 57,
                bytes: 9408,
                errors: 1
            }
        );
        assert_eq!(reply.tag_stats("xmpp").packets, 50);
        assert_eq!(reply.tag_stats("none"), LegStats::default());
    }

    #[test]
    fn a_request_is_a_cookie_and_a_bencoded_dictionary() {
        let req = Request {
            command: "offer".into(),
            call_id: Some("c1".into()),
            from_tag: Some("t1".into()),
            sdp: Some("v=0\r\n".into()),
            flags: vec!["trust-address".into()],
            options: vec![("ICE".into(), "remove".into())],
            ..Request::default()
        };
        let data = encode("k1", &req);
        assert!(data.starts_with(b"k1 d"));
        let text = String::from_utf8_lossy(&data);
        // Bencode dictionaries are sorted by key.
        assert!(
            text.contains("3:ICE6:remove7:call-id2:c17:command5:offer5:flagsl13:trust-addresse8:from-tag2:t13:sdp5:v=0\r\n"),
            "{text}"
        );
    }

    #[test]
    fn replies_are_matched_by_cookie_and_errors_are_refusals() {
        let t0 = Instant::now();
        let mut ng = Ng::new(7);
        let (cookie, _) = ng
            .request(
                t0,
                &Request {
                    command: "ping".into(),
                    ..Request::default()
                },
            )
            .expect("sent");
        assert!(
            ng.on_datagram(b"other d6:result4:ponge").is_none(),
            "a stranger"
        );
        let (c, ok) = ng
            .on_datagram(format!("{cookie} d6:result4:ponge").as_bytes())
            .expect("matched");
        assert_eq!(c, cookie);
        assert_eq!(ok.expect("pong").result, "pong");
        assert!(
            ng.on_datagram(format!("{cookie} d6:result4:ponge").as_bytes())
                .is_none(),
            "once"
        );

        let (cookie, _) = ng
            .request(
                t0,
                &Request {
                    command: "answer".into(),
                    ..Request::default()
                },
            )
            .expect("sent");
        let (_, refused) = ng
            .on_datagram(
                format!("{cookie} d12:error-reason12:Unknown call6:result5:errore").as_bytes(),
            )
            .expect("matched");
        assert_eq!(
            refused,
            Err(NgError::Refused {
                command: "answer".into(),
                reason: "Unknown call".into()
            })
        );
        assert!(decode(b"no-space").is_err());
        assert!(decode(b"c1 i3e").is_err());
    }

    #[test]
    fn an_unanswered_request_is_sent_again_with_its_cookie_then_fails() {
        let t0 = Instant::now();
        let mut ng = Ng::new(1);
        let (cookie, first) = ng
            .request(
                t0,
                &Request {
                    command: "delete".into(),
                    ..Request::default()
                },
            )
            .expect("sent");
        assert_eq!(ng.poll_timeout(), Some(t0 + RETRY));
        assert!(ng.on_timeout(t0 + Duration::from_millis(500)).is_empty());
        let again = ng.on_timeout(t0 + RETRY);
        assert_eq!(
            again,
            [Due::Resend {
                cookie: cookie.clone(),
                data: first.clone()
            }]
        );
        assert_eq!(ng.on_timeout(t0 + RETRY * 2).len(), 1);
        let failed = ng.on_timeout(t0 + RETRY * 3);
        assert_eq!(
            failed,
            [Due::Failed {
                cookie,
                error: NgError::Timeout {
                    command: "delete".into(),
                    attempts: ATTEMPTS
                }
            }]
        );
        assert_eq!(ng.pending(), 0);
        assert_eq!(ng.poll_timeout(), None);
    }

    #[test]
    fn requests_in_flight_and_reply_sizes_are_bounded() {
        let t0 = Instant::now();
        let mut ng = Ng::new(3);
        let ping = Request {
            command: "ping".into(),
            ..Request::default()
        };
        for _ in 0..MAX_PENDING {
            ng.request(t0, &ping).expect("room");
        }
        assert_eq!(ng.request(t0, &ping), Err(NgError::Busy(MAX_PENDING)));
        let huge = vec![b'x'; MAX_REPLY + 1];
        assert!(matches!(decode(&huge), Err(NgError::Malformed(_))));
        assert!(ng.on_datagram(&huge).is_none());
    }
}
