//! A two-sided test harness for the core: feed it stanzas and SIP events on a
//! virtual clock, inspect what it asks for. No sockets, no sleeping.

#![allow(dead_code)]

use minidom::Element;
use std::collections::HashMap;
use stox_call::{
    CallKey, CallState, Core, CoreConfig, Input, IqOutcome, Millis, Output, RequestId,
    SessionRecord, SipCommand, SipEvent, TimerKey,
};
use stox_mapping::ids::CallId;

pub const JULIET: &str = "juliet@example.com/balcony";

pub fn config() -> CoreConfig {
    CoreConfig {
        component: "sip.example.com".into(),
        domains: vec!["example.com".into()],
        ring_timeout_ms: 60_000,
        candidate_window_ms: 300,
        token_salt: 7,
        retry_after_secs: 10,
        // Off unless a test turns them on (`Harness::with_config`).
        peer_ping_ms: 0,
        max_duration_ms: 0,
        jingle_limits: stox_mapping::jingle::JingleLimits::default(),
        policy: None,
        max_calls: 0,
        media: Default::default(),
    }
}
pub const ROMEO_GW: &str = "romeo\\40example.net@sip.example.com";

pub struct Harness {
    pub core: Core,
    pub now: Millis,
    pub out: Vec<Output>,
    /// Every row written, in order.
    pub rows: Vec<SessionRecord>,
    pub timers: Vec<(TimerKey, Millis)>,
    /// Keys of the calls the core placed, by Call-ID (from its INVITEs).
    pub placed: HashMap<CallId, CallKey>,
    next_request: u64,
}

impl Harness {
    /// A core whose component is online (as after the first handshake).
    pub fn new() -> Self {
        let mut h = Self::offline();
        h.feed(Input::XmppLink { online: true });
        h
    }

    /// An online core with this configuration.
    pub fn with_config(cfg: CoreConfig) -> Self {
        let mut h = Self::offline();
        h.core = Core::new(cfg, 1);
        h.feed(Input::XmppLink { online: true });
        h
    }

    /// A core that has not heard from the component yet.
    pub fn offline() -> Self {
        Harness {
            core: Core::new(config(), 1),
            now: Millis(1_795_296_363_000),
            out: Vec::new(),
            rows: Vec::new(),
            timers: Vec::new(),
            placed: HashMap::new(),
            next_request: 0,
        }
    }

    /// The SIP-side key of the call with this Call-ID: the core's own for
    /// calls it placed, [`incoming_key`] for INVITEs the test delivered.
    pub fn key(&self, call_id: &CallId) -> CallKey {
        self.placed
            .get(call_id)
            .copied()
            .unwrap_or_else(|| incoming_key(call_id.as_str()))
    }

    /// An in-dialog request from the SIP peer (the core must answer it).
    pub fn request(
        &mut self,
        call_id: &CallId,
        method: &str,
        content_type: Option<&str>,
        body: Option<&str>,
    ) -> (RequestId, Vec<Output>) {
        self.next_request += 1;
        let request = RequestId(self.next_request);
        let event = SipEvent::Request {
            call: self.key(call_id),
            request,
            method: method.into(),
            content_type: content_type.map(str::to_owned),
            body: body.map(str::to_owned),
        };
        (request, self.feed(Input::Sip(event)))
    }

    pub fn input(&mut self, input: Input) -> Vec<Output> {
        self.feed(input)
    }

    pub fn advance(&mut self, ms: u64) {
        self.now = self.now.plus_ms(ms);
    }

    fn feed(&mut self, input: Input) -> Vec<Output> {
        let out = self.core.handle(self.now, input);
        for o in &out {
            match o {
                Output::Persist { record, .. } => self.rows.push(record.clone()),
                Output::Sip(SipCommand::Invite { call, call_id, .. }) => {
                    self.placed.insert(call_id.clone(), *call);
                }
                Output::SetTimer { key, at } => self.timers.push((*key, *at)),
                _ => {}
            }
        }
        self.out.extend(out.iter().cloned());
        out
    }

    /// Sends a stanza written as XML text (default namespace jabber:component:accept).
    pub fn stanza(&mut self, xml: &str) -> Vec<Output> {
        let el: Element = xml.parse().expect("test stanza is well-formed");
        self.feed(Input::Stanza(el))
    }

    pub fn sip(&mut self, input: SipEvent) -> Vec<Output> {
        self.feed(Input::Sip(input))
    }

    pub fn iq_response(&mut self, id: &str, outcome: IqOutcome) -> Vec<Output> {
        self.feed(Input::IqResponse {
            id: id.to_owned(),
            outcome,
        })
    }

    /// Fires every timer due at the current time.
    pub fn fire_timers(&mut self) -> Vec<Output> {
        let due: Vec<TimerKey> = self
            .timers
            .iter()
            .filter(|(_, at)| *at <= self.now)
            .map(|(k, _)| *k)
            .collect();
        self.timers.retain(|(_, at)| *at > self.now);
        let mut out = Vec::new();
        for key in due {
            out.extend(self.feed(Input::Timer(key)));
        }
        out
    }

    pub fn last_row(&self) -> &SessionRecord {
        self.rows.last().expect("a row was written")
    }

    pub fn last_state(&self) -> CallState {
        self.last_row().state
    }
}

pub fn stanzas(out: &[Output]) -> Vec<&Element> {
    out.iter()
        .filter_map(|o| match o {
            Output::Xmpp(el) => Some(el),
            _ => None,
        })
        .collect()
}

pub fn sip_commands(out: &[Output]) -> Vec<&SipCommand> {
    out.iter()
        .filter_map(|o| match o {
            Output::Sip(c) => Some(c),
            _ => None,
        })
        .collect()
}

/// The one IQ of `kind` in `out`.
pub fn iq<'a>(out: &'a [Output], kind: &str) -> &'a Element {
    let found: Vec<_> = stanzas(out)
        .into_iter()
        .filter(|e| e.name() == "iq" && e.attr("type") == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "exactly one iq type={kind} in {out:#?}");
    found[0]
}

pub const NS_JINGLE: &str = "urn:xmpp:jingle:1";

/// The `<jingle/>` of the one IQ set in `out`.
pub fn jingle_set(out: &[Output]) -> &Element {
    iq(out, "set")
        .get_child("jingle", NS_JINGLE)
        .expect("iq set carries <jingle/>")
}

/// The error condition (first child of `<error/>` in the stanzas namespace).
pub fn error_of(iq: &Element) -> (String, Option<String>) {
    let error = iq
        .children()
        .find(|c| c.name() == "error")
        .expect("<error/> child");
    let cond = error
        .children()
        .find(|c| c.ns() == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name() != "text")
        .map(|c| c.name().to_owned())
        .expect("defined condition");
    let app = error
        .children()
        .find(|c| c.ns() != "urn:ietf:params:xml:ns:xmpp-stanzas")
        .map(|c| c.name().to_owned());
    (cond, app)
}

pub fn reason_of(jingle: &Element) -> String {
    jingle
        .get_child("reason", NS_JINGLE)
        .and_then(|r| {
            r.children()
                .find(|c| c.ns() == NS_JINGLE && c.name() != "text")
        })
        .map(|c| c.name().to_owned())
        .expect("<reason/> with a condition")
}

pub fn one_sip(out: &[Output]) -> &SipCommand {
    let cmds = sip_commands(out);
    assert_eq!(cmds.len(), 1, "exactly one SIP command in {out:#?}");
    cmds[0]
}

pub fn respond_status(cmd: &SipCommand) -> u16 {
    match cmd {
        SipCommand::Respond { status, .. } => *status,
        other => panic!("expected a response, got {other:?}"),
    }
}

pub fn cid(s: &str) -> CallId {
    CallId::new(s)
}

/// A plain audio session-initiate from Juliet to Romeo's gateway address.
pub fn session_initiate(sid: &str) -> String {
    format!(
        "<iq xmlns='jabber:component:accept' type='set' id='si-{sid}' from='{JULIET}' to='{ROMEO_GW}'>\
           <jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='{sid}' initiator='{JULIET}'>\
             <content creator='initiator' name='audio'>\
               <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
                 <payload-type id='0' name='PCMU' clockrate='8000'/>\
                 <payload-type id='8' name='PCMA' clockrate='8000'/>\
                 <payload-type id='101' name='telephone-event' clockrate='8000'/>\
               </description>\
               <transport xmlns='urn:xmpp:jingle:transports:raw-udp:1'>\
                 <candidate component='1' generation='0' id='c1' ip='127.0.0.1' port='40000'/>\
               </transport>\
             </content>\
           </jingle>\
         </iq>"
    )
}

/// A Jingle action from Juliet about `sid`, with optional inner XML.
pub fn juliet_action(id: &str, sid: &str, action: &str, inner: &str) -> String {
    format!(
        "<iq xmlns='jabber:component:accept' type='set' id='{id}' from='{JULIET}' to='{ROMEO_GW}'>\
           <jingle xmlns='urn:xmpp:jingle:1' action='{action}' sid='{sid}'>{inner}</jingle>\
         </iq>"
    )
}

pub const OFFER_SDP: &str = "v=0\r\no=romeo 123 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n";

pub const ANSWER_SDP: &str = "v=0\r\no=romeo 456 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\na=sendrecv\r\n";

/// The key the SIP side gives an INVITE with this Call-ID in these tests.
pub fn incoming_key(call_id: &str) -> CallKey {
    CallKey(call_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }))
}

pub fn incoming_invite(call_id: &str, request_uri: &str, sdp: Option<&str>) -> SipEvent {
    SipEvent::IncomingInvite {
        call: incoming_key(call_id),
        call_id: cid(call_id),
        request_uri: request_uri.into(),
        from: "sip:romeo@example.net".into(),
        to: request_uri.into(),
        sdp: sdp.map(str::to_owned),
        transport: stox_sipcore::Transport::Udp,
        source: "127.0.0.1:5060".parse().expect("address"),
        supported: Vec::new(),
    }
}

/// session-accept contents from Juliet answering the OFFER_SDP (PCMA + DTMF).
pub const ACCEPT_CONTENT: &str = "<content creator='initiator' name='audio'>\
   <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
     <payload-type id='8' name='PCMA' clockrate='8000'/>\
     <payload-type id='101' name='telephone-event' clockrate='8000'/>\
   </description>\
   <transport xmlns='urn:xmpp:jingle:transports:raw-udp:1'>\
     <candidate component='1' generation='0' id='a1' ip='127.0.0.1' port='42000'/>\
   </transport>\
 </content>";
