#!/usr/bin/python3
"""The SIP parser on the wire: malformed input answered 400 naming the
fault, 505 for a wrong version, 513 and a close past the size limit, a
truncated body waited for until the idle timeout; odd but valid forms
accepted."""
import time
import unittest

from harness import Parley
import sipclient


def options(branch, *, version="SIP/2.0", extra="", eol="\r\n", body="", drop=()):
    lines = [f"OPTIONS sip:example.test {version}",
             f"Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK{branch}",
             "From: <sip:probe@example.test>;tag=p1",
             "To: <sip:example.test>",
             f"Call-ID: {branch}@probe",
             "CSeq: 1 OPTIONS",
             "Max-Forwards: 70"]
    lines = [l for l in lines if not any(l.startswith(d) for d in drop)]
    if extra:
        lines.append(extra)
    lines.append(f"Content-Length: {len(body.encode())}")
    return (eol.join(lines) + eol + eol + body).encode()


class TestSipOnTheWire(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Parley(name="parse", config={"sip.max_message_size": 2048,
                                               "sip.idle_timeout": 2})
        cls.p.start()

    @classmethod
    def tearDownClass(cls):
        cls.p.__exit__(None, None, None)

    def conn(self):
        return self.p.connect()

    def test_malformed_header_gets_400_naming_it(self):
        with self.conn() as c:
            c.send(options("a1").replace(b"To: <sip:example.test>", b"To: <sip:example.test"))
            r = c.recv(timeout=5)
            self.assertEqual(r.status, 400)
            self.assertIn("To", r.reason)
            # framing was sound: the connection still works
            c.send(options("a2"))
            self.assertEqual(c.recv(timeout=5).status, 200)

    def test_unanswerable_request_closes_the_connection(self):
        # without a Call-ID no response can be formed: close and log why
        mark = self.p.log_mark()
        with self.conn() as c:
            c.send(options("a3", drop=("Call-ID",)))
            self.assertEqual(c.expect_closed(timeout=5), [])
        rec = self.p.wait_log("sip.bad_message", since=mark)
        self.assertIn("Call-ID", rec["reason"])

    def test_bad_cseq_and_max_forwards(self):
        with self.conn() as c:
            c.send(options("b1", extra="X: y").replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE"))
            r = c.recv(timeout=5)
            self.assertEqual(r.status, 400)
            self.assertIn("CSeq", r.reason)
            c.send(options("b2").replace(b"Max-Forwards: 70", b"Max-Forwards: 300"))
            r = c.recv(timeout=5)
            self.assertEqual(r.status, 400)
            self.assertIn("Max-Forwards", r.reason)

    def test_wrong_version_gets_505(self):
        with self.conn() as c:
            c.send(options("v1", version="SIP/3.0"))
            r = c.recv(timeout=5)
            self.assertEqual(r.status, 505)

    def test_too_large_gets_513_and_close(self):
        mark = self.p.log_mark()
        with self.conn() as c:
            c.send(options("big", body="x" * 3000))
            r = c.recv(timeout=5)
            self.assertEqual(r.status, 513)
            c.expect_closed(timeout=5)
        self.p.wait_log("sip.bad_message", since=mark, status="513")

    def test_truncated_body_waits_for_idle_timeout(self):
        with self.conn() as c:
            msg = options("t1", body="hello")
            c.send(msg[:-2])  # two bytes of the body never come
            start = time.monotonic()
            closed = c.expect_closed(timeout=10)
            waited = time.monotonic() - start
            self.assertEqual(closed, [], "nothing is answered for an unfinished message")
            self.assertGreater(waited, 1.0)

    def test_bare_lf_folding_and_compact_forms(self):
        with self.conn() as c:
            c.send(options("lf1", eol="\n"))
            self.assertEqual(c.recv(timeout=5).status, 200)
            folded = (b"OPTIONS sip:example.test SIP/2.0\r\n"
                      b"v: SIP/2.0/TLS 127.0.0.1:5999\r\n ;branch=z9hG4bKfold1\r\n"
                      b"f: <sip:probe@example.test>\r\n\t;tag=p1\r\n"
                      b"t: <sip:example.test>\r\n"
                      b"i: fold1@probe\r\n"
                      b"CSeq: 1 OPTIONS\r\n"
                      b"l: 0\r\n\r\n")
            c.send(folded)
            r = c.recv(timeout=5)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.call_id, "fold1@probe")

    def test_garbage_is_not_fatal_to_the_server(self):
        with self.conn() as c:
            c.send(b"\x00\x01\x02 this is not SIP at all\r\n\r\n")
            try:
                c.recv(timeout=3)
            except (sipclient.ConnectionClosed, sipclient.SipTimeout):
                pass
        with self.conn() as c:
            c.send(options("after"))
            self.assertEqual(c.recv(timeout=5).status, 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
