#!/usr/bin/python3
"""Foundation: init, OPTIONS over TLS, TLS and TCP refusals, reload of
certificates, one parleyd per state directory and port, status, config and
user management, connection limits, clean stop."""
import hashlib
import os
import socket
import sqlite3
import ssl
import stat
import subprocess
import tempfile
import time
import unittest

from harness import Parley, free_port, run_peer
import sipclient


def openssl(*args, input=None):
    res = subprocess.run(["openssl", *args], input=input, capture_output=True, timeout=30)
    if res.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)}: {res.stderr.decode()}")
    return res.stdout


def s_client(port, *extra, timeout=10, linger=0.0):
    """openssl s_client against the server; returns (status, output). With
    linger, the connection stays open that long first (a TLS 1.3 session
    ticket arrives after the handshake)."""
    proc = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *extra],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    if linger:
        time.sleep(linger)
    out, err = proc.communicate(b"", timeout=timeout)
    return proc.returncode, out.decode(errors="replace") + err.decode(errors="replace")


class TestInit(unittest.TestCase):
    def test_init_creates_everything_once(self):
        ctl = os.environ.get("PARLEYCTL", "build/src/ctl/parleyctl")
        with tempfile.TemporaryDirectory() as tmp:
            d = os.path.join(tmp, "state")
            r = run_peer([ctl, "init", "--dir", d, "--domain", "corp.test", "--address",
                          "127.0.0.1"], timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            for f in ["parley.conf", "parley.db", "pki/ca.pem", "pki/ca.key", "pki/crl.pem",
                      "pki/server.pem", "pki/server.key"]:
                self.assertTrue(os.path.exists(os.path.join(d, f)), f)
            for key in ["pki/ca.key", "pki/server.key", "parley.db"]:
                mode = stat.S_IMODE(os.stat(os.path.join(d, key)).st_mode)
                self.assertEqual(mode, 0o600, f"{key} has mode {mode:o}")
            text = openssl("x509", "-in", os.path.join(d, "pki/server.pem"), "-noout", "-text")
            text = text.decode()
            for name in ["DNS:sip.corp.test", "DNS:corp.test", "IP Address:127.0.0.1",
                         "TLS Web Server Authentication", "TLS Web Client Authentication",
                         "ASN1 OID: prime256v1"]:
                self.assertIn(name, text)
            out = openssl("verify", "-CAfile", os.path.join(d, "pki/ca.pem"), "-crl_check",
                          "-CRLfile", os.path.join(d, "pki/crl.pem"),
                          os.path.join(d, "pki/server.pem"))
            self.assertIn(b"OK", out)
            with open(os.path.join(d, "parley.conf")) as f:
                conf = f.read()
            self.assertIn("domain = corp.test", conf)
            self.assertIn("tls_listen = 127.0.0.1:5061", conf)
            self.assertIn("# tcp_listen", conf.replace("tcp_listen = \n", "# tcp_listen"))

            before = {f: os.stat(os.path.join(d, f)).st_mtime_ns
                      for f in ["parley.conf", "pki/server.pem", "pki/ca.key"]}
            r = run_peer([ctl, "init", "--dir", d, "--domain", "other.test"], timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn("already initialised", r.stderr)
            self.assertIn("parley.conf", r.stderr)
            after = {f: os.stat(os.path.join(d, f)).st_mtime_ns for f in before}
            self.assertEqual(before, after)

            r = run_peer([ctl, "init", "--dir", os.path.join(tmp, "rsa"), "--domain", "r.test",
                          "--key-type", "rsa2048"], timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            text = openssl("x509", "-in", os.path.join(tmp, "rsa/pki/server.pem"), "-noout",
                           "-text").decode()
            self.assertIn("Public-Key: (2048 bit)", text)

            r = run_peer([ctl, "init", "--dir", os.path.join(tmp, "x")], timeout=30)
            self.assertEqual(r.returncode, 2, "missing --domain is a usage error")


class TestServer(unittest.TestCase):
    def test_options_over_tls(self):
        with Parley(name="options") as p:
            p.start()
            with p.connect() as conn:
                self.assertIn(conn.tls_version, ("TLSv1.2", "TLSv1.3"))
                c = sipclient.SipClient(conn, user="nobody", domain=p.domain)
                r = c.request("OPTIONS", f"sip:{p.domain}")
                self.assertEqual(r.status, 200, r)
                for h in ("Allow", "Supported", "Accept"):
                    self.assertIsNotNone(r.header(h), f"{h} missing")
                self.assertIn("OPTIONS", r.header("Allow"))
                # also by host name and by address, and a keep-alive ping is answered
                self.assertEqual(c.request("OPTIONS", f"sip:sip.{p.domain}").status, 200)
                self.assertEqual(c.request("OPTIONS", f"sip:127.0.0.1:{p.tls_port}").status, 200)
                conn.send(b"\r\n\r\n")
                self.assertGreaterEqual(conn.wait_keepalive(timeout=3), 1)
                # an unknown method addressed to the server
                r = c.request("FOOBAR", f"sip:{p.domain}")
                self.assertEqual(r.status, 501, r)
            self.assertEqual(p.stop(), 0)
            p.wait_log("server.stopped")

    def test_reload_raises_max_message_size_on_open_connections(self):
        # a connection opened under the old limit takes a message the new
        # one allows (it used to stall on its read buffer until the idle
        # timeout closed it)
        with Parley(name="msgsize", config={"sip.max_message_size": 4096}) as p:
            p.start()
            with p.connect() as conn:
                c = sipclient.SipClient(conn, user="nobody", domain=p.domain)
                big = "x" * 20000
                r = c.request("OPTIONS", f"sip:{p.domain}", body=big, content_type="text/plain")
                self.assertEqual(r.status, 513, r)
            with p.connect() as conn:
                c = sipclient.SipClient(conn, user="nobody", domain=p.domain)
                self.assertEqual(c.request("OPTIONS", f"sip:{p.domain}").status, 200)
                p.config_set("sip.max_message_size", 65535)
                p.wait_log("config.reloaded", since=p.reload())
                r = c.request("OPTIONS", f"sip:{p.domain}", body=big, content_type="text/plain",
                              timeout=5)
                self.assertEqual(r.status, 200, r)
                # half of a 60 kB message is buffered when the limit drops back to
                # 4096: the server says 513 at once instead of waiting on it
                req = c.build_request("OPTIONS", f"sip:{p.domain}", body="y" * 60000,
                                      content_type="text/plain")
                raw = req.to_bytes()
                conn.send(raw[:30000])
                time.sleep(0.3)
                p.config_set("sip.max_message_size", 4096)
                p.wait_log("config.reloaded", since=p.reload())
                self.assertEqual(c.wait_response(req, timeout=5).status, 513)

    def test_certificates_asked_only_of_servers(self):
        """The client listener and the relay's TLS listener send no
        CertificateRequest (openssl s_client says so), under TLS 1.2 and
        1.3; the server-to-server listener asks for one and refuses a peer
        without it; sip.client_certificates = request asks again, on reload."""
        with Parley(name="certreq") as p:
            p.start()
            for port in (p.tls_port, p.relay_tls_port):
                for flag in ("-tls1_2", "-tls1_3"):
                    rc, out = s_client(port, flag, "-CAfile", p.ca_file, linger=0.3)
                    self.assertIn("No client certificate CA names sent", out, (port, flag))
            for flag in ("-tls1_2", "-tls1_3"):
                mark = p.log_mark()
                rc, out = s_client(p.mtls_port, flag, "-CAfile", p.ca_file, linger=0.3)
                self.assertIn("Acceptable client certificate CA names", out)
                rec = p.wait_log("tls.refused", since=mark)
                self.assertEqual(rec["reason"], "no client certificate (this listener requires one)",
                                 flag)
                time.sleep(1.1)  # one line a second per source and reason
            # other failures keep their own reason there
            mark = p.log_mark()
            s_client(p.mtls_port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
            rec = p.wait_log("tls.refused", since=mark)
            self.assertIn("protocol version", rec["reason"])
            # with the server's own certificate (issued for client use too) it works
            rc, out = s_client(p.mtls_port, "-tls1_3", "-CAfile", p.ca_file, "-cert",
                               os.path.join(p.dir, "pki", "server.pem"), "-key",
                               os.path.join(p.dir, "pki", "server.key"), linger=0.3)
            self.assertIn("Verify return code: 0 (ok)", out)
            p.config_set("sip.client_certificates", "request")
            p.wait_log("config.reloaded", since=p.reload())
            rc, out = s_client(p.tls_port, "-tls1_2", "-CAfile", p.ca_file)
            self.assertIn("Acceptable client certificate CA names", out)
            self.assertEqual(rc, 0, out)  # asked, not required

    def test_old_tls_and_plain_text_refused(self):
        with Parley(name="tlsrefuse") as p:
            p.start()
            for flag in ("-tls1", "-tls1_1"):
                mark = p.log_mark()
                rc, out = s_client(p.tls_port, flag, "-cipher", "DEFAULT:@SECLEVEL=0")
                self.assertNotEqual(rc, 0, out)
                self.assertNotIn("BEGIN CERTIFICATE", out)
                rec = p.wait_log("tls.refused", since=mark)
                self.assertIn("protocol version", rec["reason"])
            # TLS 1.2 and 1.3 work with the same tool
            for flag in ("-tls1_2", "-tls1_3"):
                rc, out = s_client(p.tls_port, flag, "-CAfile", p.ca_file, "-verify_return_error",
                                   "-servername", f"sip.{p.domain}")
                self.assertIn("Verify return code: 0 (ok)", out)
            # plain text on the TLS port: no SIP answer, the connection closes
            mark = p.log_mark()
            s = socket.create_connection(("127.0.0.1", p.tls_port), timeout=5)
            s.sendall(b"OPTIONS sip:example.test SIP/2.0\r\nContent-Length: 0\r\n\r\n")
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            s.close()
            self.assertNotIn(b"SIP/2.0", data)
            p.wait_log("tls.refused", since=mark)
            # suites: ECDHE + AEAD only by default; a CBC suite is refused
            rc, out = s_client(p.tls_port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256")
            self.assertNotEqual(rc, 0, out)

    def test_session_resumption_and_handshake_timeout(self):
        with Parley(name="resume", config={"tls.handshake_timeout": 2}) as p:
            p.start()
            sess = os.path.join(p.dir, "sess.pem")
            for flag in ("-tls1_2", "-tls1_3"):
                rc, out = s_client(p.tls_port, flag, "-sess_out", sess, "-CAfile", p.ca_file,
                                   linger=0.5)
                self.assertIn("Verify return code: 0", out)
                rc, out = s_client(p.tls_port, flag, "-sess_in", sess, "-CAfile", p.ca_file)
                self.assertIn("Reused,", out, f"{flag}: the session was not resumed")
            # a client that connects and says nothing is dropped after the timeout
            mark = p.log_mark()
            s = socket.create_connection(("127.0.0.1", p.tls_port), timeout=10)
            start = time.monotonic()
            try:
                data = s.recv(100)
            except ConnectionResetError:
                data = b""
            waited = time.monotonic() - start
            s.close()
            self.assertEqual(data, b"")
            self.assertGreater(waited, 1.5)
            self.assertLess(waited, 8)
            rec = p.wait_log("tls.refused", since=mark)
            self.assertEqual(rec["reason"], "handshake timeout")

    def test_pipelined_flood_stays_bounded(self):
        # Clients that pipeline requests and never read their answers: the
        # server stops reading from them (rather than queueing answers and
        # work without bound), its memory stays small, and another client is
        # still answered at once.
        import threading
        # Under AddressSanitizer freed memory waits in a quarantine (256 MB
        # by default) before reuse, which would show as growth here: keep
        # it small so the measure is of memory the server holds.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"),
                                                     "quarantine_size_mb=4"]))
        with Parley(name="flood", env=env) as p:
            p.start()
            def rss_kb():
                with open(f"/proc/{p.proc.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            return int(line.split()[1])
                return 0
            before = rss_kb()
            req = (b"OPTIONS sip:example.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1;branch=z9hG4bK"
                   b"%d\r\nFrom: <sip:f@example.test>;tag=1\r\nTo: <sip:example.test>\r\n"
                   b"Call-ID: flood%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
            stop = time.monotonic() + 4
            sent = [0]

            def flood():
                conn = p.connect()
                conn.sock.settimeout(0.2)
                i = 0
                while time.monotonic() < stop:
                    try:
                        conn.sock.sendall(req % (i, i))
                        i += 1
                    except (TimeoutError, ssl.SSLWantWriteError, socket.timeout):
                        continue  # the server stopped reading us: as it should
                    except OSError:
                        break
                sent[0] += i
                conn.abort()

            threads = [threading.Thread(target=flood) for _ in range(4)]
            for t in threads:
                t.start()
            time.sleep(2)
            with p.connect() as other:
                c = sipclient.SipClient(other, user="x")
                t0 = time.monotonic()
                r = c.request("OPTIONS", "sip:example.test", timeout=5)
                answered_in = time.monotonic() - t0
            peak = rss_kb()
            for t in threads:
                t.join()
            print(f"flood: {sent[0]} requests sent, RSS {before} -> {peak} kB, "
                  f"other client answered in {answered_in:.3f} s")
            self.assertEqual(r.status, 200)
            self.assertLess(answered_in, 2.0, "a flood from others delayed this client")
            self.assertGreater(sent[0], 1000, "the flood did not flood")
            self.assertLess(peak - before, 48 * 1024,
                            f"memory grew by {(peak - before) // 1024} MB under the flood")

    def test_tcp_listener_only_for_internal_networks(self):
        tcp = free_port()
        with Parley(name="tcp", config={"sip.tcp_listen": f"127.0.0.1:{tcp}",
                                         "sip.internal_networks": "127.0.0.5/32"}) as p:
            p.start()
            mark = p.log_mark()
            conn = sipclient.SipConnection("127.0.0.1", tcp, transport="tcp")
            conn.send(b"OPTIONS sip:example.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK1"
                      b"\r\nFrom: <sip:a@example.test>;tag=1\r\nTo: <sip:example.test>\r\n"
                      b"Call-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
            conn.expect_closed(timeout=5)
            rec = p.wait_log("conn.refused", since=mark)
            self.assertIn("internal_networks", rec["reason"])
            self.assertEqual(rec["transport"], "tcp")
            # from inside the internal network the same request is answered
            inside = sipclient.SipClient(sipclient.SipConnection(
                "127.0.0.1", tcp, transport="tcp", source_address="127.0.0.5"), user="x")
            r = inside.request("OPTIONS", "sip:example.test")
            self.assertEqual(r.status, 200, r)
            inside.close()
            st = p.ctl("status", json=True).stdout
            tcp_l = [l for l in st["listeners"] if l["transport"] == "tcp"][0]
            self.assertEqual(tcp_l["allowed_sources"], ["127.0.0.5/32"])
            self.assertIn("SDES media keys", tcp_l["refuses"])

    def test_reload_serves_renewed_certificate(self):
        with Parley(name="reload") as p:
            p.start()
            old = p.connect()
            old_der = old.peer_certificate(binary=True)
            pki = os.path.join(p.dir, "pki")
            # a renewed certificate for the same names, from the same CA
            ext = os.path.join(p.dir, "ext.cnf")
            with open(ext, "w") as f:
                f.write("subjectAltName=DNS:sip.example.test,DNS:example.test,IP:127.0.0.1\n"
                        "extendedKeyUsage=serverAuth,clientAuth\n")
            openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", os.path.join(p.dir, "new.key"), "-subj",
                    "/CN=sip.example.test", "-out", os.path.join(p.dir, "new.csr"))
            openssl("x509", "-req", "-in", os.path.join(p.dir, "new.csr"), "-CA",
                    os.path.join(pki, "ca.pem"), "-CAkey", os.path.join(pki, "ca.key"),
                    "-set_serial", "4242", "-days", "30", "-extfile", ext, "-out",
                    os.path.join(p.dir, "new.pem"))
            os.chmod(os.path.join(p.dir, "new.key"), 0o600)
            os.replace(os.path.join(p.dir, "new.key"), os.path.join(pki, "server.key"))
            os.replace(os.path.join(p.dir, "new.pem"), os.path.join(pki, "server.pem"))
            mark = p.reload()
            p.wait_log("config.reloaded", since=mark)
            new_der = openssl("x509", "-in", os.path.join(pki, "server.pem"), "-outform", "DER")
            with p.connect() as fresh:
                self.assertEqual(fresh.peer_certificate(binary=True), new_der)
            self.assertNotEqual(old_der, new_der)
            # the old connection is still up and still served
            c = sipclient.SipClient(old, user="x")
            self.assertEqual(c.request("OPTIONS", "sip:example.test").status, 200)
            self.assertEqual(old.peer_certificate(binary=True), old_der)
            old.close()

            # a broken certificate on reload is refused and the running one kept
            with open(os.path.join(pki, "server.pem"), "w") as f:
                f.write("garbage\n")
            mark = p.reload()
            rec = p.wait_log("config.reload_failed", since=mark)
            self.assertIn("server.pem", rec["reason"])
            with p.connect() as again:
                self.assertEqual(again.peer_certificate(binary=True), new_der)
            # parleyctl reload reports the same failure and exits 1
            r = p.ctl("reload")
            self.assertEqual(r.returncode, 1)
            self.assertIn("server.pem", r.stderr)

    def test_second_instance_refused(self):
        with Parley(name="twice") as p:
            p.start()
            # the same state directory: the lock
            second = subprocess.run([p.parleyd, "-c", p.conf], capture_output=True, timeout=20)
            self.assertEqual(second.returncode, 1)
            err = second.stderr.decode()
            self.assertIn("event=server.start_failed", err)
            self.assertIn("another parleyd", err)
            self.assertIn("parleyd.lock", err)
            # another state directory, same port
            with Parley(name="twice2", tls_port=p.tls_port) as q:
                res = subprocess.run([q.parleyd, "-c", q.conf], capture_output=True, timeout=20)
                self.assertEqual(res.returncode, 1)
                err = res.stderr.decode()
                self.assertIn(f"127.0.0.1:{p.tls_port}", err)
                self.assertIn("Address already in use", err)
            # the first one is unaffected
            with p.connect() as conn:
                c = sipclient.SipClient(conn, user="x")
                self.assertEqual(c.request("OPTIONS", "sip:example.test").status, 200)

    def test_stop_with_a_control_client_connected(self):
        # a parleyctl caught mid-request by a stop: its connection is freed
        # with the control socket (under LeakSanitizer, a leak fails here)
        with Parley(name="ctl-stop") as p:
            p.start()
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(os.path.join(p.dir, "parleyd.sock"))
            s.sendall(b'{"command":')  # no end of line: the request never completes
            time.sleep(0.2)
            self.assertEqual(p.stop(), 0)
            s.close()
            self.assertEqual(p.sanitizer_reports(), [])

    def test_status_running_and_offline(self):
        with Parley(name="status") as p:
            r = p.ctl("status", json=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertFalse(r.stdout["daemon"]["running"])
            self.assertIn("not running", r.stdout["daemon"]["reason"])
            text = p.ctl("status")
            self.assertIn("not running", text.stdout)
            self.assertIn("configured view", text.stdout)
            p.start()
            r = p.ctl("status", json=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            doc = r.stdout
            self.assertTrue(doc["daemon"]["running"])
            self.assertEqual(doc["domain"], "example.test")
            [l] = [x for x in doc["listeners"] if x["transport"] == "tls"]
            relay = {x["transport"]: x for x in doc["listeners"] if x["transport"].startswith("turn")}
            self.assertEqual(relay["turn (udp, tcp)"]["address"], f"127.0.0.1:{p.relay_port}")
            self.assertEqual(relay["turn (tls)"]["address"], f"127.0.0.1:{p.relay_tls_port}")
            self.assertEqual(l["address"], f"127.0.0.1:{p.tls_port}")
            self.assertEqual(l["transport"], "tls")
            self.assertEqual(l["tls_versions"], "TLSv1.2, TLSv1.3")
            self.assertIn("ECDHE-ECDSA-AES128-GCM-SHA256", l["tls_suites"])
            self.assertNotIn("CBC", l["tls_suites"])
            # clients are not asked for certificates; servers are, elsewhere
            self.assertEqual(l["client_cert_policy"], "none")
            self.assertIn("no CertificateRequest", l["client_certificates"])
            [m] = [x for x in doc["listeners"] if x["transport"] == "mtls"]
            self.assertEqual(m["address"], f"127.0.0.1:{p.mtls_port}")
            self.assertEqual(m["client_cert_policy"], "require")
            self.assertEqual(l["certificate"]["subject"], "CN=sip.example.test")
            self.assertIn("Parley development CA", l["certificate"]["issuer"])
            self.assertGreater(l["certificate"]["days_left"], 300)
            traffic = [row["traffic"] for row in doc["protection"]]
            self.assertTrue(any("server <-> server" in t for t in traffic))
            self.assertTrue(any("signalling" in t for t in traffic))
            self.assertIn("media relay credentials", traffic)
            self.assertIn("audio, video and desktop-sharing media", traffic)
            text = p.ctl("status").stdout
            self.assertIn("TLSv1.2, TLSv1.3", text)
            self.assertIn("protection", text)

    def test_config_and_user_management(self):
        with Parley(name="manage") as p:
            r = p.ctl("config", "set", "sip.idle_timeout", "120")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(p.ctl("config", "get", "sip.idle_timeout").stdout.strip(), "120")
            r = p.ctl("config", "set", "sip.nonsense", "1")
            self.assertEqual(r.returncode, 1)
            self.assertIn("sip.nonsense", r.stderr)
            r = p.ctl("config", "set", "tls.min_version", "1.0")
            self.assertEqual(r.returncode, 1)
            self.assertIn("tls.min_version", r.stderr)
            self.assertIn("1.2, 1.3", r.stderr)
            r = p.ctl("config", "set", "sip.tls_listen", "127.0.0.1:5062", json=True)
            self.assertEqual(r.stdout["applies"], "restart")
            r = p.ctl("config", "frobnicate")
            self.assertEqual(r.returncode, 2)
            r = p.ctl("config", "get", "nope.nope", json=True)
            self.assertEqual(r.returncode, 1)
            self.assertFalse(r.stdout["ok"])
            with open(p.conf) as f:
                self.assertIn("# ", f.read(), "comments are kept")

            r = p.ctl("user", "add", "carol", "--password-stdin", input="s3cret pass\n")
            self.assertEqual(r.returncode, 0, r.stderr)
            r = p.ctl("user", "add", "carol", "--password-stdin", input="x\n")
            self.assertEqual(r.returncode, 1)
            r = p.ctl("user", "add", "Bad Name", "--password-stdin", input="x\n")
            self.assertEqual(r.returncode, 1)
            r = p.ctl("user", "list", json=True)
            self.assertEqual([u["user"] for u in r.stdout["users"]], ["carol"])
            # only digests are stored, never the password
            db = sqlite3.connect(os.path.join(p.dir, "parley.db"))
            raw = b"".join(open(os.path.join(p.dir, f), "rb").read()
                           for f in os.listdir(p.dir) if f.startswith("parley.db"))
            self.assertNotIn(b"s3cret pass", raw)
            md5, sha = db.execute("SELECT ha1_md5, ha1_sha256 FROM users WHERE name='carol'").fetchone()
            db.close()
            self.assertEqual(md5, hashlib.md5(b"carol:example.test:s3cret pass").hexdigest())
            self.assertEqual(sha, hashlib.sha256(b"carol:example.test:s3cret pass").hexdigest())
            r = p.ctl("user", "passwd", "carol", "--password-stdin", input="new\n")
            self.assertEqual(r.returncode, 0, r.stderr)
            r = p.ctl("user", "remove", "carol")
            self.assertEqual(r.returncode, 0, r.stderr)
            r = p.ctl("user", "remove", "carol")
            self.assertEqual(r.returncode, 1)
            r = p.ctl("user", "add", "dave", "--generate-password", json=True)
            self.assertEqual(r.returncode, 0)
            self.assertGreaterEqual(len(r.stdout["password"]), 16)

    def test_connection_limits(self):
        with Parley(name="limits", config={"limits.connections_per_source": 2}) as p:
            p.start()
            a = p.connect()
            b = p.connect()
            mark = p.log_mark()
            try:
                c = p.connect()
                c.expect_closed(timeout=5)
            except (ssl.SSLError, OSError):
                pass  # refused before or during the handshake
            rec = p.wait_log("conn.refused", since=mark)
            self.assertIn("connections_per_source", rec["reason"])
            # another source address is not affected
            other = p.connect(source_address="127.0.0.9")
            cl = sipclient.SipClient(other, user="x")
            self.assertEqual(cl.request("OPTIONS", "sip:example.test").status, 200)
            other.close()
            a.close()
            # once one closes, a new connection from the first source works
            deadline = time.monotonic() + 5
            while True:
                try:
                    d = p.connect()
                    cl = sipclient.SipClient(d, user="x")
                    self.assertEqual(cl.request("OPTIONS", "sip:example.test", timeout=2).status, 200)
                    d.close()
                    break
                except (sipclient.ConnectionClosed, OSError, ssl.SSLError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            b.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
