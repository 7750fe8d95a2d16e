//! A toy UAS for manual interop checks: answers every INVITE with 180 then
//! 200 (echoing the offer as the answer) and logs every event.
//!
//! `cargo run -p stox-sip --example answer -- 127.0.0.1:5062` then e.g.
//! `sipp -sn uac -m 1 127.0.0.1:5062`.

use std::net::SocketAddr;
use stox_sip::{SipConfig, SipEndpoint, SipEvent};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5062".into())
        .parse()?;
    let config = SipConfig {
        udp: Some(addr),
        tcp: Some(addr),
        user_agent: "stox-sip-example".into(),
        ..Default::default()
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let (sip, mut events) = SipEndpoint::start(config, cancel).await?;
    println!("listening on {:?}", sip.local_addrs());
    while let Some(event) = events.recv().await {
        println!("{event:?}");
        if let SipEvent::IncomingInvite { call_id, sdp, .. } = event {
            sip.respond(&call_id, 180, None, None, None)?;
            let answer = sdp.unwrap_or_default();
            sip.respond(&call_id, 200, None, Some(answer), None)?;
        }
    }
    Ok(())
}
