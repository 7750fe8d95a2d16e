//! Bytes → the SIP layer (`stox_sipcore::Sip`) as UDP datagrams, TCP stream
//! chunks and WebSocket messages, with time moving and the core's usual
//! answers fed back (180/200 to an INVITE, 200 to an in-dialog request, BYE
//! on a timer step): the parser, the RFC 3261 checks, the framing, the
//! transactions and the dialogs never panic, and every transaction ends
//! once the clock has run past timer H/J/K.
//!
//! Input: chunks separated by 0xFF; a chunk's first byte picks what it is
//! (0: datagram, 1: stream bytes, 2: WebSocket message, 3: time passes and
//! the oldest live call is hung up), the rest is its payload.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use stox_sipcore::{CallKey, Config, ConnId, Input, Output, Sip, SipCommand, SipEvent, Transport};

const ANSWER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n";

fuzz_target!(|data: &[u8]| {
    let local: SocketAddr = "127.0.0.1:5060".parse().expect("literal");
    let peer: SocketAddr = "127.0.0.2:5060".parse().expect("literal");
    let cfg = Config {
        local: vec![(Transport::Udp, local), (Transport::Tcp, local), (Transport::Ws, local)],
        seed: 7,
        ..Config::default()
    };
    let t0 = Instant::now();
    let Ok(mut sip) = Sip::new(cfg, t0) else {
        return;
    };
    let (tcp, ws) = (ConnId(1), ConnId(2));
    sip.handle_input(t0, Input::Opened { conn: tcp, transport: Transport::Tcp, peer });
    sip.handle_input(t0, Input::Opened { conn: ws, transport: Transport::Ws, peer });
    let mut now = t0;
    let mut live: Vec<CallKey> = Vec::new();
    for chunk in data.split(|b| *b == 0xFF) {
        let Some((&op, payload)) = chunk.split_first() else {
            continue;
        };
        match op % 4 {
            0 => sip.handle_input(now, Input::Datagram { source: peer, data: payload }),
            1 => sip.handle_input(now, Input::Stream { conn: tcp, data: payload }),
            2 => sip.handle_input(now, Input::Frame { conn: ws, data: payload }),
            _ => {
                now += Duration::from_millis(u64::from(op) * 50);
                sip.handle_timeout(now);
                if !live.is_empty() {
                    let call = live.remove(0);
                    sip.handle_input(now, Input::Command(SipCommand::Bye { call, reason: None }));
                }
            }
        }
        drain(&mut sip, now, &mut live);
    }
    // Hang up what is left and let every timer run out.
    for call in std::mem::take(&mut live) {
        sip.handle_input(now, Input::Command(SipCommand::Bye { call, reason: None }));
    }
    for _ in 0..4 {
        now += Duration::from_secs(40);
        sip.handle_timeout(now);
        drain(&mut sip, now, &mut live);
        for call in std::mem::take(&mut live) {
            sip.handle_input(now, Input::Command(SipCommand::Bye { call, reason: None }));
        }
    }
    now += Duration::from_secs(40);
    sip.handle_timeout(now);
    while sip.poll_output().is_some() {}
    assert_eq!(sip.transactions(), (0, 0), "a transaction outlived its timers");
});

/// Plays the core: rings and answers every INVITE, answers every in-dialog
/// request 200, forgets ended calls.
fn drain(sip: &mut Sip, now: Instant, live: &mut Vec<CallKey>) {
    let mut commands = Vec::new();
    while let Some(out) = sip.poll_output() {
        let Output::Event(event) = out else { continue };
        match event {
            SipEvent::IncomingInvite { call, .. } => {
                for status in [180, 200] {
                    commands.push(SipCommand::Respond {
                        call,
                        status,
                        reason: None,
                        sdp: (status == 200).then(|| ANSWER.to_owned()),
                        retry_after: None,
                    });
                }
                live.push(call);
            }
            SipEvent::Request { call, request, .. } => commands.push(SipCommand::Reply {
                call,
                request,
                status: 200,
                reason: None,
                sdp: None,
            }),
            SipEvent::Bye { call }
            | SipEvent::Cancelled { call }
            | SipEvent::Terminated { call, .. }
            | SipEvent::CommandFailed { call, .. } => live.retain(|c| *c != call),
            _ => {}
        }
    }
    for cmd in commands {
        sip.handle_input(now, Input::Command(cmd));
    }
}
