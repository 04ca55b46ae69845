#!/usr/bin/python3
"""Trunks to PSTN gateways (issue 16): Parley as a back-to-back user agent
between its users (TLS, SRTP) and gateways, each gateway a program nobody
here wrote.

TCP trunk, sipp (Debian's sip-tester, no TLS) as the gateway, scenarios in
tests/integration/sipp/gw_*.xml (see GATEWAY.md there):

- baresip (srtp-mand over TLS, G.711 from an 8 kHz WAV) dials a number the
  route sends to the TCP trunk: sipp gets plain RTP/AVP, echoes the media,
  and baresip hears its own tone come back; the G.711 payloads captured on
  the gateway leg occur nowhere on the user leg (SRTP there), and the call
  log says "user leg SRTP ... / gateway leg RTP (trunk gw1: not_supported)".
- The gateway's early media (183 with SDP, RTP before the 200) reaches the
  user before the answer.
- sipp calls a user's number in over the trunk listener: baresip rings,
  answers, and receives the RFC 4733 DTMF sipp plays.
- Failover: a first trunk answering 503 hands the call to the second; 486
  and 603 do not fail over and reach the caller as they are. A gateway
  that asks for credentials makes no user answer a challenge (403).
- Refusals: a gateway's INVITE for a number nobody owns gets 404; a user
  without outbound rights gets 403; a TCP connection from an address that
  is no trunk's is refused on the trunk listener; `trunk add --transport
  tcp --srtp-mode required` is refused with the reason.

One server (and its trunks) is shared by the tests of the file; each sipp
run gets its own ports and directory.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from harness import (TIMEOUT_SCALE, Baresip, Parley, free_port, free_ports, issue_cert, make_ca,
                     make_crl)
from linphone import make_tone, tone_ratio

try:
    from capture import (Capture, CaptureUnavailable, appears_in, informative_chunks,
                         rtp_packets, rtp_payloads)
except ImportError:  # pragma: no cover
    Capture = None

SIPP = os.environ.get("SIPP") or shutil.which("sipp") or "/usr/bin/sipp"
SCENARIOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp")
DOMAIN = "example.test"
USERS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}
ALICE_NUMBER = "+14255550101"
GW_NUMBER = "+15550001111"  # the TLS gateway's "line": baresip answers calls to its account only
CRYPTO = re.compile(r"a=crypto:\d+ \S+ inline:([A-Za-z0-9+/=]+)")
CAROL_NUMBER = "+14255550103"


def ctl_ok(p: Parley, *args: str) -> None:
    """parleyctl ARGS, which must succeed (set-up)."""
    res = p.ctl(*args)
    assert res.returncode == 0, res.stderr


def scaled(t: float) -> float:
    return t * TIMEOUT_SCALE


class Sipp:
    """One sipp run as a gateway: a UAS listening on its own TCP port, or a
    UAC calling Parley's trunk listener. Its logs stay in its directory."""

    def __init__(self, name: str, scenario: str, args: list[str], *, port: int | None = None,
                 remote: str | None = None):
        self.dir = tempfile.mkdtemp(prefix=f"sipp-{name}-", dir=os.environ.get("PARLEY_TEST_TMP"))
        self.port = port or free_port("tcp")
        self.media_port = free_ports(4, "udp", consecutive=True)[0]
        cmd = [SIPP]
        if remote:
            cmd.append(remote)
        cmd += ["-sf", os.path.join(SCENARIOS, scenario), "-t", "t1", "-i", "127.0.0.1",
                "-p", str(self.port), "-mi", "127.0.0.1", "-mp", str(self.media_port), "-m", "1",
                "-trace_msg", "-trace_err", "-trace_logs", "-nostdin",
                "-timeout", str(int(scaled(40))), "-timeout_error"] + args
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, cwd=self.dir, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"sipp did not finish in {timeout}s: {self.logs()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def logs(self) -> str:
        out = []
        for f in sorted(os.listdir(self.dir)):
            if f.endswith((".log",)):
                with open(os.path.join(self.dir, f), errors="replace") as fh:
                    out.append(f"--- {f}\n" + fh.read()[-6000:])
        return "\n".join(out)

    def messages(self) -> str:
        for f in os.listdir(self.dir):
            if f.endswith("_messages.log"):
                with open(os.path.join(self.dir, f), errors="replace") as fh:
                    return fh.read()
        return ""

    def wait_listening(self, timeout: float = 5) -> None:
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"sipp never listened on {self.port}: {self.logs()}")


@unittest.skipUnless(os.path.exists(SIPP), "sipp is not installed")
class TestTcpTrunk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.trunk_port = free_port("tcp")
        cls.gw1_port, cls.gw2_port = free_port("tcp"), free_port("tcp")
        ports = free_ports(64, "udp", consecutive=True)
        cls.media_ports = range(ports[0], ports[-1] + 1)
        cls.p = p = Parley(name="trunks", users=USERS, config={
            "sip.trunk_tcp_listen": f"127.0.0.1:{cls.trunk_port}",
            "media.port_range": f"{ports[0]}-{ports[-1]}",
        })
        for args in (("user", "set", "alice", "--number", ALICE_NUMBER),
                     ("user", "set", "alice", "--outbound", "all"),
                     ("user", "set", "carol", "--number", CAROL_NUMBER),
                     ("dialplan", "national", r"^\+1\d{10}$"),
                     ("trunk", "add", "gw1", "--gateway", f"127.0.0.1:{cls.gw1_port}",
                      "--transport", "tcp", "--srtp-mode", "not_supported"),
                     ("trunk", "add", "gw2", "--gateway", f"127.0.0.1:{cls.gw2_port}",
                      "--transport", "tcp", "--srtp-mode", "not_supported"),
                     ("route", "add", "direct", r"^\+1555\d{7}$", "--trunks", "gw1"),
                     ("route", "add", "failover", r"^\+1666\d{7}$", "--trunks", "gw1,gw2")):
            ctl_ok(p, *args)
        p.start()

    @classmethod
    def tearDownClass(cls):
        cls.p.__exit__(None, None, None)

    def gateway(self, scenario: str, args: list[str], port: int) -> Sipp:
        gw = Sipp(self.id().rsplit(".", 1)[1], scenario, args, port=port)
        self.addCleanup(gw.stop)
        gw.wait_listening()
        return gw

    def client_call(self, uri: str):
        with self.p.client("alice") as a:
            resp, dlg = a.invite(uri, timeout=scaled(20))
            if dlg:
                time.sleep(0.5)  # sipp takes the BYE once past its ACK
                a.bye(dlg)
            return resp

    # -- outbound ----------------------------------------------------------

    @unittest.skipIf(shutil.which("baresip") is None, "baresip is not installed")
    def test_baresip_calls_out_and_hears_its_tone_echoed(self):
        # 2 s of early media (183 with SDP, then RTP) before the 200
        gw = self.gateway("gw_uas_answer.xml", ["-rtp_echo", "-set", "early_ms", "2000"],
                          self.gw1_port)
        tone = make_tone(os.path.join(gw.dir, "tone-8k.wav"), 1000.0, seconds=30, rate=8000)
        a = self.p.baresip("alice", mediaenc="srtp-mand",
                           config={"audio_source": f"aufile,{tone}"})
        a.wait_registered(timeout=15)
        before = len(self.p.find_log("b2bua.answered"))
        ev = len(a.events)
        a.dial("+15550001111")
        # ringing, and the gateway's early media reaches alice through the
        # engine before anyone answered
        a.wait_event("CALL_PROGRESS", timeout=20, since=ev)
        deadline = time.monotonic() + scaled(5)
        early = 0
        while time.monotonic() < deadline and not early:
            streams = self.p.ctl("media", "status", json=True).stdout["streams"]
            if streams and not any(e.get("type") == "CALL_ESTABLISHED" for e in a.events[ev:]):
                early = streams[0]["legs"][0]["out"]["packets"]
            time.sleep(0.1)
        self.assertGreater(early, 0, "no early media reached alice before the answer")
        a.wait_event("CALL_ESTABLISHED", timeout=20, since=ev)
        self.p.wait_log("b2bua.answered", timeout=10)
        self.assertGreater(len(self.p.find_log("b2bua.answered")), before)
        streams = self.p.ctl("media", "status", json=True).stdout["streams"]
        [leg0, leg1] = streams[0]["legs"]
        user_port = int(leg0["local"].rsplit(":", 1)[1])
        gw_port = int(leg1["local"].rsplit(":", 1)[1])
        cap = None
        try:
            cap = Capture([user_port, user_port + 1, gw_port, gw_port + 1]).start() \
                if Capture else None
        except CaptureUnavailable as e:  # pragma: no cover
            print(f"no packet capture: {e}")
        # the early media pcap plays for 7 s: what follows it is the echo
        time.sleep(scaled(3))
        # RFC 4733 DTMF from alice: SRTP in on her leg, plain telephone-event
        # out on the gateway's
        a.cmd("sndcode", "5")
        time.sleep(scaled(7))
        ev = len(a.events)
        a.hangup()
        a.wait_event("CALL_CLOSED", timeout=10, since=ev)
        if cap is not None:
            cap.stop()
        self.p.wait_log("call.ended", callee="+15550001111", timeout=10)
        self.assertEqual(gw.wait(20), 0, gw.logs())
        a.stop()
        # the gateway leg is plain RTP/AVP, the user leg SRTP
        invite = gw.messages()
        self.assertRegex(invite, r"m=audio \d+ RTP/AVP ")
        self.assertNotIn("a=crypto", invite)
        self.assertNotIn("alice", invite.split("SIP/2.0 100")[0])
        self.assertEqual(leg0["protection"], "SRTP", streams)
        self.assertEqual(leg1["protection"], "RTP", streams)
        log = self.p.ctl("calls").stdout
        self.assertIn("user leg SRTP AES_CM_128_HMAC_SHA1_80 / gateway leg RTP "
                      "(trunk gw1: not_supported)", log)
        heard = a.heard()
        self.assertIsNotNone(heard, "alice recorded nothing")
        ratio = tone_ratio(heard, 1000.0, tail=2.0)
        print(f"\nalice heard her 1000 Hz tone echoed: {ratio:.2f}")
        self.assertGreater(ratio, 0.5, "the echo of alice's own tone did not come back")
        if cap is not None:
            self.assertEqual(cap.drops, 0)
            gw_audio = rtp_payloads(cap.payloads(port=gw_port))
            user_leg = cap.payloads(port=user_port)
            self.assertTrue(informative_chunks(gw_audio), "no G.711 audio on the gateway leg")
            self.assertTrue(user_leg, "nothing captured on the user leg")
            self.assertFalse(appears_in(gw_audio, user_leg),
                             "plain audio of the gateway leg appears on the user leg")
            # nothing toward the gateway names alice (baresip's RTCP CNAME is
            # her SIP URI: the engine scrubs it, test_anchor shows how; sipp
            # sends no RTCP, so the engine sends it none either)
            to_gw_all = cap.payloads(sport=gw_port) + cap.payloads(sport=gw_port + 1)
            self.assertFalse([d for d in to_gw_all if b"alice" in d],
                             "alice's name reached the gateway's leg")
            # the digit reached the gateway as telephone-event (event 5)
            to_gw = rtp_packets(cap.payloads(sport=gw_port))
            events = {p[3][0] for p in to_gw if p[0] == 101 and p[3]}
            self.assertIn(5, events, "alice's DTMF did not reach the gateway")

    # -- failover and failures ---------------------------------------------

    def test_failover_on_503_to_the_second_trunk(self):
        first = self.gateway("gw_uas_status.xml", ["-set", "status", "503"], self.gw1_port)
        second = self.gateway("gw_uas_answer.xml", [], self.gw2_port)
        resp = self.client_call("sip:+16660001111@example.test;user=phone")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(first.wait(10), 0, first.logs())
        self.assertEqual(second.wait(10), 0, second.logs())
        self.p.wait_log("b2bua.next_trunk", trunk="gw1", status="503")

    def test_no_failover_on_486_and_603(self):
        for status in (486, 603):
            with self.subTest(status=status):
                first = self.gateway("gw_uas_status.xml", ["-set", "status", str(status)],
                                     self.gw1_port)
                resp = self.client_call("sip:+16660002222@example.test;user=phone")
                self.assertEqual(resp.status, status, resp)
                self.assertEqual(first.wait(10), 0, first.logs())
                # gw2 was never tried: nothing listens there, and the call
                # log names the gateway's answer
                self.p.wait_log("call.ended", reason=re.compile(f"{status} .*"))

    def test_gateway_requiring_100rel_gets_prack(self):
        """A reliable 183 with the answer: Parley sends PRACK (RAck checked
        by the scenario), alice gets the 183 unreliably, and the 200
        without SDP completes the call with the 183's answer."""
        gw = self.gateway("gw_uas_prack.xml", [], self.gw1_port)
        resp = self.client_call("sip:+15550004444@example.test;user=phone")
        self.assertEqual(resp.status, 200, resp)
        self.assertIn("m=audio", resp.body.decode() if isinstance(resp.body, bytes) else resp.body)
        self.assertEqual(gw.wait(15), 0, gw.logs())

    def test_gateway_answering_422_gets_its_min_se(self):
        gw = self.gateway("gw_uas_422.xml", [], self.gw1_port)
        resp = self.client_call("sip:+15550005555@example.test;user=phone")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(gw.wait(15), 0, gw.logs())

    def test_gateway_without_a_common_codec_gets_488_naming_the_codecs(self):
        gw = self.gateway("gw_uas_status.xml", ["-set", "status", "488"], self.gw1_port)
        with self.p.client("alice") as a:
            resp, _ = a.invite("sip:+15550006666@example.test;user=phone", timeout=scaled(10))
        self.assertEqual(resp.status, 488, resp)
        warning = resp.header("Warning") or ""
        self.assertIn("the gateway refused the offer: codecs ", warning)
        self.assertIn("media RTP (trunk gw1: srtp_mode not_supported)", warning)
        self.assertIn("does not transcode", warning)
        self.assertEqual(gw.wait(10), 0, gw.logs())

    def test_trunk_calls_per_user_bounded(self):
        """limits.trunk_calls_per_user: with 1, alice's second call while
        the first is up gets 503 (logged sip.overload), and is allowed
        again once the first ended."""
        self.p.config_set("limits.trunk_calls_per_user", 1)
        self.assertEqual(self.p.ctl("reload").returncode, 0)
        self.addCleanup(lambda: (self.p.config_set("limits.trunk_calls_per_user", 4),
                                 self.p.ctl("reload")))
        gw = self.gateway("gw_uas_answer.xml", [], self.gw1_port)
        with self.p.client("alice") as a:
            resp, dlg = a.invite("sip:+15550007777@example.test;user=phone", timeout=scaled(10))
            self.assertEqual(resp.status, 200, resp)
            resp2, _ = a.invite("sip:+15550008888@example.test;user=phone", timeout=scaled(10))
            self.assertEqual(resp2.status, 503, resp2)
            self.p.wait_log("sip.overload", bound="limits.trunk_calls_per_user")
            time.sleep(0.5)
            self.assertEqual(a.bye(dlg).status, 200)
        self.assertEqual(gw.wait(10), 0, gw.logs())

    def test_user_without_outbound_rights_gets_403(self):
        with self.p.client("bob") as b:
            resp, _ = b.invite("sip:+15550003333@example.test;user=phone", timeout=scaled(10))
        self.assertEqual(resp.status, 403, resp)
        self.assertIn("outbound calls none", resp.reason)

    # -- inbound -----------------------------------------------------------

    @unittest.skipIf(shutil.which("baresip") is None, "baresip is not installed")
    def test_gateway_calls_a_users_number_with_dtmf(self):
        # G.711 needs a source at 8 kHz (ausine makes 48 kHz only)
        tone = make_tone(os.path.join(self.p.dir, "carol-tone-8k.wav"), 440.0, seconds=30,
                         rate=8000)
        c = self.p.baresip("carol", mediaenc="srtp-mand", answermode="auto",
                           config={"audio_source": f"aufile,{tone}"})
        c.wait_registered(timeout=15)
        mark, ev = c.mark(), len(c.events)
        gw = Sipp("uac", "gw_uac_call.xml", ["-s", CAROL_NUMBER, "-d", "1000"],
                  remote=f"127.0.0.1:{self.trunk_port}")
        self.addCleanup(gw.stop)
        c.wait_event("CALL_ESTABLISHED", timeout=20, since=ev)
        # the digit sipp played (RFC 4733, through the engine: plain in on
        # the gateway leg, SRTP out on carol's)
        dtmf = c.wait_event("CALL_DTMF_START", timeout=10, since=ev)
        self.assertEqual(dtmf.get("param"), "1", dtmf)
        self.assertEqual(gw.wait(30), 0, gw.logs())
        # carol saw the caller's number, not a user of the domain
        self.assertRegex(c.output[mark:], r"From: .*\+14255550100")
        c.stop()

    def test_gateway_call_for_a_number_nobody_owns_is_404(self):
        gw = Sipp("uac404", "gw_uac_call.xml", ["-s", "+14255559999", "-set", "expect", "404"],
                  remote=f"127.0.0.1:{self.trunk_port}")
        self.addCleanup(gw.stop)
        self.assertEqual(gw.wait(20), 0, gw.logs())

    def test_trunk_listener_refuses_other_addresses(self):
        with socket.socket() as s:
            s.bind(("127.0.0.2", 0))
            s.settimeout(scaled(5))
            s.connect(("127.0.0.1", self.trunk_port))
            # closed before a byte is read
            self.assertEqual(s.recv(10), b"")
        self.p.wait_log("conn.refused", reason="source is no TCP trunk's address")

    def test_status_shows_trunks_and_the_mediation_rows(self):
        res = self.p.ctl("trunk", "status", json=True)
        self.assertEqual(res.returncode, 0, res.stderr)
        trunks = {t["name"]: t for t in res.stdout["trunks"]}
        self.assertEqual(set(trunks), {"gw1", "gw2"})
        self.assertEqual(trunks["gw1"]["transport"], "tcp")
        self.assertEqual(trunks["gw1"]["srtp_mode"], "not_supported")
        self.assertEqual(trunks["gw1"]["address"], "127.0.0.1")
        text = self.p.ctl("trunk", "status").stdout
        self.assertIn("gw1", text)
        status = self.p.ctl("status", json=True).stdout
        self.assertEqual({t["name"] for t in status["trunks"]}, {"gw1", "gw2"})
        rows = {r["traffic"]: r for r in status["protection"]}
        self.assertIn("mediation: server <-> PSTN gateway signalling", rows)
        self.assertIn("mediation: media toward PSTN gateways", rows)
        listeners = [l for l in status["listeners"] if l["transport"] == "trunk-tcp"]
        self.assertEqual(len(listeners), 1, status["listeners"])

    def test_trunk_connection_carries_calls_only(self):
        """From a trunk's own address on the trunk listener, a REGISTER (a
        binding over plain TCP from outside the internal networks) or a
        MESSAGE is refused: a gateway's connection carries calls only."""
        from sipclient import SipClient
        with SipClient.connect("127.0.0.1", self.trunk_port, transport="tcp", user="alice",
                               password=USERS["alice"]) as c:
            r = c.register(expires=600)
            self.assertEqual(r.status, 403, r)
            self.assertIn("calls only", r.reason)
            r = c.message("sip:bob@example.test", "hello")
            self.assertEqual(r.status, 403, r)
        self.assertFalse([b for b in self.p.ctl("registrations", json=True).stdout["registrations"]
                          if b["transport"] == "TCP"])

    def test_tcp_trunk_with_srtp_is_refused(self):
        res = self.p.ctl("trunk", "add", "gwbad", "--gateway", "127.0.0.1:5999", "--transport",
                         "tcp", "--srtp-mode", "required")
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("unencrypted hop", res.stderr + res.stdout)


def pem_bundle(cert: str, key: str) -> str:
    """cert + key in one file, as baresip's sip_certificate wants them."""
    out = os.path.splitext(cert)[0] + "-bundle.pem"
    with open(out, "w") as f:
        f.write(open(cert).read() + open(key).read())
    os.chmod(out, 0o600)
    return out


@unittest.skipIf(shutil.which("baresip") is None, "baresip is not installed")
class TestTlsTrunk(unittest.TestCase):
    """baresip with a certificate of its own as a gateway over mutual TLS,
    srtp_mode required: SRTP on both legs, each with keys of its own; and
    the same gateway with a certificate Parley must not accept."""

    @classmethod
    def setUpClass(cls):
        ports = free_ports(64, "udp", consecutive=True)
        cls.p = p = Parley(name="tls-trunk", users=USERS,
                           config={"media.port_range": f"{ports[0]}-{ports[-1]}"})
        ca, ca_key = os.path.join(p.dir, "pki", "ca.pem"), os.path.join(p.dir, "pki", "ca.key")
        gwdir = os.path.join(p.dir, "gateways")
        os.makedirs(gwdir)
        # the gateway is 127.0.0.1 (its certificate names it by IP);
        # the impostors: a stranger's CA, and Parley's CA for another name
        good = issue_cert(ca, ca_key, os.path.join(gwdir, "good.pem"), cn="gw.example.net",
                          ips=["127.0.0.1"])
        other_ca, other_key = make_ca(os.path.join(gwdir, "other-ca"), "Other CA")
        stranger = issue_cert(other_ca, other_key, os.path.join(gwdir, "stranger.pem"),
                              cn="gw.example.net", ips=["127.0.0.1"])
        misnamed = issue_cert(ca, ca_key, os.path.join(gwdir, "misnamed.pem"),
                              cn="other.example.net", dns=["other.example.net"])
        revoked = issue_cert(ca, ca_key, os.path.join(gwdir, "revoked.pem"), cn="gw.example.net",
                             ips=["127.0.0.1"], serial=777001)
        make_crl(ca, ca_key, os.path.join(p.dir, "pki", "crl.pem"), revoked=[777001])
        plain = issue_cert(ca, ca_key, os.path.join(gwdir, "plain.pem"), cn="gw.example.net",
                           ips=["127.0.0.1"])
        cls.gw = {}
        for name, (cert, key) in (("good", good), ("stranger", stranger),
                                  ("misnamed", misnamed), ("revoked", revoked),
                                  ("plain", plain)):
            # "plain": a gateway without SRTP (no media encryption at all)
            # (baresip answers calls for its account's user only)
            cls.gw[name] = Baresip("+19990001111" if name == "plain" else GW_NUMBER, None,
                                   name=f"gateway-{name}", domain="127.0.0.1",
                                   proxy=None, mediaenc=None if name == "plain" else "srtp-mand",
                                   answermode="auto",
                                   regint=0, certfile=pem_bundle(cert, key), cafile=ca,
                                   config={"audio_source": "ausine,700",
                                           # Parley's Contact names sip.example.test
                                           "dns_server": p.dns().nameserver})
        for args in (("user", "set", "alice", "--number", ALICE_NUMBER),
                     ("user", "set", "alice", "--outbound", "all"),
                     ("trunk", "add", "gwtls", "--gateway",
                      f"127.0.0.1:{cls.gw['good'].tls_port}", "--transport", "tls",
                      "--srtp-mode", "required"),
                     ("trunk", "add", "gwstranger", "--gateway",
                      f"127.0.0.1:{cls.gw['stranger'].tls_port}", "--transport", "tls",
                      "--srtp-mode", "required"),
                     ("trunk", "add", "gwmisnamed", "--gateway",
                      f"127.0.0.1:{cls.gw['misnamed'].tls_port}", "--transport", "tls",
                      "--srtp-mode", "required"),
                     ("trunk", "add", "gwrevoked", "--gateway",
                      f"127.0.0.1:{cls.gw['revoked'].tls_port}", "--transport", "tls",
                      "--srtp-mode", "required"),
                     ("route", "add", "revoked", r"^\+1888\d{7}$", "--trunks", "gwrevoked"),
                     ("trunk", "add", "gwplain", "--gateway",
                      f"127.0.0.1:{cls.gw['plain'].tls_port}", "--transport", "tls",
                      "--srtp-mode", "required"),
                     ("route", "add", "plain", r"^\+1999\d{7}$", "--trunks", "gwplain"),
                     ("route", "add", "good", r"^\+1555\d{7}$", "--trunks", "gwtls"),
                     ("route", "add", "stranger", r"^\+1666\d{7}$", "--trunks", "gwstranger"),
                     ("route", "add", "misnamed", r"^\+1777\d{7}$", "--trunks", "gwmisnamed")):
            ctl_ok(p, *args)
        p.start()

    @classmethod
    def tearDownClass(cls):
        for g in cls.gw.values():
            g.cleanup()
        cls.p.__exit__(None, None, None)

    def test_srtp_on_both_legs_with_keys_of_their_own(self):
        gw = self.gw["good"]
        a = self.p.baresip("alice", mediaenc="srtp-mand", config={"audio_source": "ausine,1000"})
        a.wait_registered(timeout=15)
        ev, gev = len(a.events), len(gw.events)
        a.dial(GW_NUMBER)
        a.wait_event("CALL_ESTABLISHED", timeout=15, since=ev)
        gw.wait_event("CALL_ESTABLISHED", timeout=15, since=gev)
        deadline = time.monotonic() + scaled(10)
        while True:
            streams = self.p.ctl("media", "status", json=True).stdout["streams"]
            if streams and all(l["in"]["packets"] > 50 for l in streams[0]["legs"]):
                break
            self.assertLess(time.monotonic(), deadline, streams)
            time.sleep(0.2)
        self.assertEqual([l["protection"] for l in streams[0]["legs"]], ["SRTP", "SRTP"])
        a.hangup()
        gw.wait_event("CALL_CLOSED", timeout=10, since=gev)
        rec = self.p.wait_log("b2bua.answered", trunk="gwtls")
        self.assertIn("gateway leg SRTP AES_CM_128_HMAC_SHA1_80 (trunk gwtls: required)",
                      rec["media"])
        self.p.wait_log("trunk.connected", trunk="gwtls", subject="CN=gw.example.net")
        # no key crosses from one leg to the other
        keys_a, keys_g = set(CRYPTO.findall(a.output)), set(CRYPTO.findall(gw.output))
        self.assertGreaterEqual(len(keys_a), 2)
        self.assertGreaterEqual(len(keys_g), 2)
        self.assertEqual(keys_a & keys_g, set(), "a key crossed from one leg to the other")
        # nothing of alice's reached the gateway but her number
        invite = gw.output[gw.output.index("INVITE sip:"):]
        self.assertNotIn("alice", invite.split("SIP/2.0 1")[0])
        self.assertIn(f"P-Asserted-Identity: <sip:{ALICE_NUMBER}@", invite)
        a.stop()

    def refused(self, trunk: str, number: str, subject: str, why: str) -> None:
        """alice's call to number gets 503 naming the trunk; the handshake
        failed, logged with the gateway's certificate and OpenSSL's reason;
        the gateway never saw an INVITE."""
        with self.p.client("alice") as a:
            resp, _ = a.invite(f"sip:{number}@example.test;user=phone", timeout=scaled(15))
        self.assertEqual(resp.status, 503, resp)
        self.assertIn(f"trunk {trunk}", resp.reason)
        rec = self.p.wait_log("trunk.connect_failed", trunk=trunk)
        self.assertIn(why, rec["reason"])
        self.p.wait_log("tls.connect_failed", subject=subject,
                        reason=re.compile(f".*{re.escape(why)}.*"))

    def test_gateway_with_a_strangers_certificate_is_refused(self):
        mark = self.gw["stranger"].mark()
        self.refused("gwstranger", "+16660001111", "CN=gw.example.net",
                     "unable to get local issuer certificate")
        self.assertNotIn("INVITE sip:", self.gw["stranger"].output[mark:])

    def test_gateway_certificate_for_another_name_is_refused(self):
        mark = self.gw["misnamed"].mark()
        self.refused("gwmisnamed", "+17770001111", "CN=other.example.net", "IP address mismatch")
        self.assertNotIn("INVITE sip:", self.gw["misnamed"].output[mark:])

    def test_required_srtp_and_a_gateway_without_it(self):
        """srtp_mode required toward a gateway that has no SRTP: it never
        gets a call with plain media; the user gets 488 with a Warning."""
        gw = self.gw["plain"]
        mark = gw.mark()
        with self.p.client("alice") as a:
            resp, _ = a.invite("sip:+19990001111@example.test;user=phone", timeout=scaled(15))
        self.assertEqual(resp.status, 488, resp)
        self.assertIn("media SRTP", resp.header("Warning") or "")
        out = gw.output[mark:]
        self.assertIn("INVITE sip:", out)
        self.assertIn("RTP/SAVP", out)  # only SRTP was offered to it
        if re.search(r"SIP/2.0 200 OK", out):
            # it answered (plain): Parley ended its leg at once
            self.assertIn("ACK sip:", out)
            self.assertIn("BYE sip:", out)
        self.p.wait_log("call.ended", callee="+19990001111", reason=re.compile("488 .*"))

    def test_revoked_gateway_certificate_is_refused(self):
        mark = self.gw["revoked"].mark()
        self.refused("gwrevoked", "+18880001111", "CN=gw.example.net", "certificate revoked")
        self.assertNotIn("INVITE sip:", self.gw["revoked"].output[mark:])

    def test_impostors_cannot_call_in(self):
        """The same three certificates calling alice's number in on the
        mutual-TLS listener: refused at the handshake (a stranger's CA,
        revoked) or as no trunk (a trusted certificate for another name);
        alice's phone never rings."""
        a = self.p.baresip("alice", mediaenc="srtp-mand", answermode="auto",
                           config={"audio_source": "ausine,1000"})
        a.wait_registered(timeout=15)
        ev = len(a.events)
        for name in ("stranger", "revoked", "misnamed"):
            with self.subTest(gateway=name):
                gw = self.gw[name]
                gev, mark = len(gw.events), self.p.log_mark()
                gw.dial(f"sip:{ALICE_NUMBER}@127.0.0.1:{self.p.mtls_port};transport=tls")
                if name == "misnamed":
                    # a trusted certificate, but no trunk's: a stranger
                    # asking for a user, who must authenticate and cannot
                    rec = self.p.wait_log("sip.rejected", since=mark, method="INVITE")
                    self.assertIn(rec["status"], ("403", "407"), rec)
                    gw.wait_event("CALL_CLOSED", timeout=15, since=gev)
                else:
                    rec = self.p.wait_log("tls.refused", since=mark)
                    self.assertEqual(rec["subject"], "CN=gw.example.net", rec)
                    self.assertIn("unable to get local issuer" if name == "stranger"
                                  else "certificate revoked", rec["reason"])
                    gw.hangup()
        time.sleep(0.5)
        self.assertFalse([e for e in a.events[ev:] if e.get("type") == "CALL_INCOMING"],
                         "an impostor's call reached alice")
        a.stop()

    def test_gateway_calls_in_over_mutual_tls(self):
        a = self.p.baresip("alice", mediaenc="srtp-mand", answermode="auto",
                           config={"audio_source": "ausine,1000"})
        a.wait_registered(timeout=15)
        gw = self.gw["good"]
        ev, gev = len(a.events), len(gw.events)
        gw.dial(f"sip:{ALICE_NUMBER}@127.0.0.1:{self.p.mtls_port};transport=tls")
        a.wait_event("CALL_ESTABLISHED", timeout=15, since=ev)
        gw.wait_event("CALL_ESTABLISHED", timeout=15, since=gev)
        # recognised by its certificate, media both ways through the engine
        self.p.wait_log("call.started", caller=GW_NUMBER, callee=f"alice@{DOMAIN}")
        deadline = time.monotonic() + scaled(10)
        while True:
            streams = self.p.ctl("media", "status", json=True).stdout["streams"]
            if streams and all(l["in"]["packets"] > 20 and l["out"]["packets"] > 20
                               for l in streams[0]["legs"]):
                break
            self.assertLess(time.monotonic(), deadline, streams)
            time.sleep(0.2)
        self.assertRegex(a.output, r"From: .*\+15550001111@example\.test")
        gw.hangup()
        a.wait_event("CALL_CLOSED", timeout=10, since=ev)
        self.p.wait_log("call.ended", caller=GW_NUMBER, callee=f"alice@{DOMAIN}")
        a.stop()

    def test_no_client_certificate_no_mutual_tls(self):
        with socket.create_connection(("127.0.0.1", self.p.mtls_port), timeout=scaled(5)) as raw:
            import ssl
            ctx = ssl.create_default_context(cafile=self.p.ca_file)
            ctx.check_hostname = False
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                with ctx.wrap_socket(raw, server_hostname="sip.example.test") as s:
                    s.sendall(b"OPTIONS sip:example.test SIP/2.0\r\n\r\n")
                    if not s.recv(100):
                        raise ConnectionError("closed")


if __name__ == "__main__":
    unittest.main()
