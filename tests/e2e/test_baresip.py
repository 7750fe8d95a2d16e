"""baresip, a real SIP phone, against the gateway (issue 13): it calls an
XMPP user and puts the call on hold and resumes it (RFC 3264 §8.4 ⇄
XEP-0167 §7), over UDP and TCP; and, called by an XMPP user, it answers the
re-INVITEs that user's hold and resume become."""

import pytest

from harness import jingle
from harness.baresip import Baresip
from harness.calls import ROMEO_JID, accept, assert_result, new_sid

pytestmark = pytest.mark.gateway


@pytest.fixture
def phone(tmp_path, gateway, attach):
    made = []

    def make(transport: str = "udp", **options) -> Baresip:
        bs = Baresip(tmp_path, "sip:romeo@example.net", gateway.sip_addr(), transport,
                     **options).start()
        attach("baresip log", bs.log)
        made.append(bs)
        return bs
    yield make
    for bs in made:
        bs.stop()


def infos(juliet, sid) -> list[str]:
    return [name for st in juliet.received()
            if st.sid == sid and st.action == "session-info"
            for name in jingle.info_names(st.xml) if name != "ringing"]


def direction(sdp: str | None) -> str | None:
    lines = (sdp or "").splitlines()
    found = [l[2:] for l in lines
             if l in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")]
    return found[-1] if found else "sendrecv"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_rfc3264_8_4_baresip_holds_and_resumes_a_call_to_xmpp(gateway, juliet, phone, transport):
    bs = phone(transport)
    bs.command("dial", "sip:juliet@example.com;gr=balcony")
    init = juliet.expect("session-initiate", 10)
    accept(juliet, init)
    bs.expect_event("CALL_ESTABLISHED")

    bs.command("hold")
    row = gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["hold"] == "sip",
                           timeout=10)
    assert direction(row["remote_sdp"]) == "sendonly", row["remote_sdp"]
    assert direction(row["local_sdp"]) == "recvonly", "the 200 answers a hold with recvonly"
    assert infos(juliet, init.sid) == ["hold"]

    bs.command("resume")
    row = gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["hold"] is None
                           and direction(r["remote_sdp"]) == "sendrecv", timeout=10)
    assert direction(row["local_sdp"]) == "sendrecv", row["local_sdp"]
    juliet.expect("session-info", 10, sid=init.sid)
    assert infos(juliet, init.sid) == ["hold", "active"]
    assert row["state"] == "active", row

    bs.command("hangup")
    term = juliet.expect("session-terminate", 10, sid=init.sid)
    assert jingle.reason(term.xml)[0] == "success", term.text()
    row = gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "ended")
    assert row["ended_by"] == "sip", row


def test_xep0167_7_an_xmpp_users_hold_reaches_baresip(gateway, juliet, phone):
    # baresip is the gateway's outbound proxy here, and answers by itself.
    bs = phone(port=gateway.uas_port, auto_answer=True)
    sid = new_sid("hold")
    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_initiate(sid, juliet.full_jid)))
    juliet.expect("session-accept", 10, sid=sid)
    bs.expect_event("CALL_ESTABLISHED")

    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_info(sid, "hold")), "hold")
    row = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["hold"] == "xmpp", timeout=10)
    assert direction(row["local_sdp"]) == "sendonly", row["local_sdp"]
    assert direction(row["remote_sdp"]) == "recvonly", "baresip answered the hold"

    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_info(sid, "active")), "active")
    row = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["hold"] is None
                           and direction(r["remote_sdp"]) == "sendrecv", timeout=10)
    assert direction(row["local_sdp"]) == "sendrecv", row["local_sdp"]

    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_terminate(sid)), "terminate")
    bs.expect_event("CALL_CLOSED")
    row = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended")
    assert row["ended_by"] == "xmpp", row
