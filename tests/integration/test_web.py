#!/usr/bin/python3
"""The HTTPS web services (issue 17), driven by programs nobody here wrote:
curl, openssl s_client and vdirsyncer.

- The listener: TLS only (plain HTTP gets no HTTP answer), TLS 1.2+ (TLS 1.1
  refused), no CertificateRequest (the mutual-TLS SIP port, asked the same
  way, shows one: the check can fail), HSTS and nosniff on every answer.
- Web tickets: a password gets one, a wrong password 401, guessing is
  throttled (429); every ticket endpoint refuses a missing, expired,
  tampered and other-domain token.
- The address book over CardDAV: vdirsyncer syncs it, and after a user is
  added and another removed its second sync brings exactly those changes;
  REPORT sync-collection with the first token gives exactly the added href
  and a 404 for the removed one; PUT is refused.
- Group expansion: nested groups with a cycle give each member once.
- Meeting content: upload, list, download byte-identical, a range, 403 for
  a user the meeting does not allow, 413 past the size limit, 400 for names
  that could escape; encrypted at rest (no 16-byte window of a marker file
  anywhere under the state directory) and a flipped or truncated file is
  refused, not served.
- Relay credentials for ticket holders work with turnutils_uclient.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET

from harness import Parley, free_ports, run_peer

DAV = "{DAV:}"
BOOK = "/dav/addressbooks/global/"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TestWeb(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="parley-web-peers-")
        relay_ports = free_ports(16, "udp", consecutive=True)
        cls.p = Parley(name="web", users={"alice": "alice-pw", "bob": "bob-pw",
                                           "dave": "dave-pw", "frank": "frank-pw",
                                           "hank": "hank-pw", "eve": "eve-pw"},
                       config={"auth.max_failures": 3, "auth.max_source_failures": 1000,
                               "https.content_max_file": 300000,
                               "relay.allowed_peers": "127.0.0.0/8",
                               "relay.port_range": f"{relay_ports[0]}-{relay_ports[-1]}"})
        p = cls.p
        p.ctl("user", "set", "alice", "--name", "Alice Liddell", "--email",
              "alice@example.test", "--number", "+14255550101")
        p.start()
        cls.base = f"https://127.0.0.1:{p.https_port}"
        cls.ticket = cls.get_ticket("alice", "alice-pw")

    @classmethod
    def tearDownClass(cls):
        cls.p.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- curl ----------------------------------------------------------------

    @classmethod
    def curl(cls, path: str, *args: str, method: str | None = None, data: bytes | None = None,
             user: str | None = None, token: str | None = None,
             headers: dict[str, str] | None = None, upload: str | None = None
             ) -> tuple[int, dict[str, str], bytes]:
        fd, body_path = tempfile.mkstemp(dir=cls.tmp)
        os.close(fd)
        cmd = ["curl", "-sS", "--path-as-is", "--cacert", cls.p.ca_file, "-o", body_path,
               "-D", "-", "-w", "\n%{http_code}"]
        if method:
            cmd += ["-X", method]
        if user:
            cmd += ["-u", user]
        if token is not None:
            cmd += ["-H", f"Authorization: Bearer {token}"]
        for k, v in (headers or {}).items():
            cmd += ["-H", f"{k}: {v}"]
        if data is not None:
            cmd += ["--data-binary", "@-"]
        if upload:
            cmd += ["-T", upload]
        cmd += [*args, cls.base + path]
        res = subprocess.run(cmd, input=data, capture_output=True, timeout=60)
        out = res.stdout.decode(errors="replace")
        if res.returncode != 0:
            raise AssertionError(f"curl failed ({res.returncode}): {res.stderr.decode()}")
        head, _, code = out.rpartition("\n")
        hdrs: dict[str, str] = {}
        for line in head.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        with open(body_path, "rb") as f:
            body = f.read()
        os.unlink(body_path)
        return int(code), hdrs, body

    @classmethod
    def get_ticket(cls, user: str, password: str) -> str:
        status, _, body = cls.curl("/auth/ticket", method="POST", user=f"{user}:{password}")
        assert status == 200, (status, body)
        return json.loads(body)["ticket"]

    def forge(self, claims: dict) -> str:
        """A ticket signed with the server's own current key (read from its
        state directory): only the claims differ from a real one."""
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, utils
        text = open(os.path.join(self.p.dir, "https-ticket.keys")).read()
        pem = re.search(r"^key \d+ 0\n(-----BEGIN PRIVATE KEY-----.*?-----END PRIVATE KEY-----)",
                        text, re.S | re.M).group(1)
        key = serialization.load_pem_private_key(pem.encode(), None)
        real = self.ticket.split(".")
        header = real[0]
        payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
        der = key.sign(f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
        r, s = utils.decode_dss_signature(der)
        return f"{header}.{payload}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def claims(self, **over) -> dict:
        now = int(time.time())
        c = {"iss": "parley", "sub": "alice", "dom": "example.test", "iat": now,
             "exp": now + 600, "jti": "forged"}
        c.update(over)
        return c

    # -- the listener ----------------------------------------------------------

    def test_listener_tls_only(self):
        # plain HTTP: no HTTP answer
        with socket.create_connection(("127.0.0.1", self.p.https_port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
            got = b""
            try:
                while len(got) < 4096:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
            except (ConnectionResetError, socket.timeout):
                pass
        self.assertNotIn(b"HTTP/", got)
        # TLS 1.1 at any security level: refused
        res = run_peer(["openssl", "s_client", "-connect", f"127.0.0.1:{self.p.https_port}",
                        "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"], input="", timeout=20)
        self.assertNotEqual(res.returncode, 0, res.stdout)
        self.assertIn("Cipher is (NONE)", res.stdout)

    def test_no_certificate_request(self):
        for version in ("-tls1_2", "-tls1_3"):
            https = run_peer(["openssl", "s_client", "-connect",
                              f"127.0.0.1:{self.p.https_port}", version, "-msg", "-CAfile",
                              self.p.ca_file], input="", timeout=20)
            self.assertIn("Verify return code: 0", https.stdout)
            self.assertNotIn("CertificateRequest", https.stdout, version)
            # the same question to the mutual-TLS SIP port shows one
            mtls = run_peer(["openssl", "s_client", "-connect", f"127.0.0.1:{self.p.mtls_port}",
                             version, "-msg", "-CAfile", self.p.ca_file], input="", timeout=20)
            self.assertIn("CertificateRequest", mtls.stdout, version)

    def test_security_headers_and_log(self):
        status, h, _ = self.curl("/dav/", method="PROPFIND", token=self.ticket,
                                 headers={"Depth": "0"})
        self.assertEqual(status, 207)
        self.assertEqual(h["strict-transport-security"], "max-age=31536000")
        self.assertEqual(h["x-content-type-options"], "nosniff")
        rec = self.p.wait_log("http.request", method="PROPFIND", path="/dav/", status="207")
        self.assertEqual(rec.get("user"), "alice")
        text = self.p.log_text()
        self.assertNotIn(self.ticket, text)
        self.assertNotIn("alice-pw", text)

    # -- tickets -----------------------------------------------------------------

    def test_ticket_with_password(self):
        status, h, body = self.curl("/auth/ticket", method="POST", user="bob:bob-pw")
        self.assertEqual(status, 200, body)
        doc = json.loads(body)
        self.assertEqual((doc["user"], doc["token_type"], doc["expires_in"]),
                         ("bob", "Bearer", 28800))
        self.assertEqual(h["cache-control"], "no-store")
        header = json.loads(base64.urlsafe_b64decode(doc["ticket"].split(".")[0] + "=="))
        self.assertEqual(header["alg"], "ES256")
        status, h, _ = self.curl("/auth/ticket", method="POST", user="bob:wrong")
        self.assertEqual(status, 401)
        self.assertIn("Basic", h["www-authenticate"])
        status, _, _ = self.curl("/auth/ticket", method="POST")
        self.assertEqual(status, 401)
        status, _, _ = self.curl("/auth/ticket", method="POST", user="nobody:x")
        self.assertEqual(status, 401)
        status, _, _ = self.curl("/auth/ticket", user="bob:bob-pw")  # GET
        self.assertEqual(status, 405)
        # HTTP Digest (RFC 7616) as curl speaks it: the same nonces and checks as SIP's
        status, _, body = self.curl("/auth/ticket", "--digest", method="POST", user="bob:bob-pw")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["user"], "bob")
        status, _, _ = self.curl("/auth/ticket", "--digest", method="POST", user="bob:nope")
        self.assertEqual(status, 401)

    def test_guessing_throttled(self):
        for _ in range(3):
            self.assertEqual(self.curl("/auth/ticket", method="POST", user="eve:guess")[0], 401)
        status, h, _ = self.curl("/auth/ticket", method="POST", user="eve:eve-pw")
        self.assertEqual(status, 429)  # even the right password, while blocked
        self.assertIn("retry-after", h)
        self.p.wait_log("auth.blocked", user="eve")
        self.p.wait_log("http.auth_failed", reason="wrong user name or password")

    def test_every_ticket_endpoint_refuses_bad_tokens(self):
        expired = self.forge(self.claims(iat=int(time.time()) - 900,
                                         exp=int(time.time()) - 300))
        other_domain = self.forge(self.claims(dom="other.test"))
        h, pl, sig = self.ticket.split(".")
        body = json.loads(base64.urlsafe_b64decode(pl + "=" * (-len(pl) % 4)))
        body["sub"] = "bob"
        tampered = f"{h}.{b64url(json.dumps(body).encode())}.{sig}"
        control = self.forge(self.claims())  # the forger is right when all is in order
        for path, method in (("/turn/credentials", "GET"), ("/groups/eng/members", "GET"),
                             ("/content/m1/", "GET"), (BOOK, "PROPFIND")):
            self.assertNotEqual(self.curl(path, method=method, token=control)[0], 401, path)
            for name, token in (("missing", None), ("expired", expired),
                                ("tampered", tampered), ("other domain", other_domain)):
                status, hdr, _ = self.curl(path, method=method, token=token)
                self.assertEqual(status, 401, f"{path} {name}")
                self.assertIn("Bearer", hdr.get("www-authenticate", ""), f"{path} {name}")

    # -- the address book ------------------------------------------------------------

    def vdirsyncer(self, home: str, *args: str) -> str:
        res = run_peer(["vdirsyncer", "-c", os.path.join(home, "config"), *args], timeout=120,
                       input="y\n" * 4)
        out = res.stdout + res.stderr
        self.assertEqual(res.returncode, 0, out)
        return out

    def cards(self, folder: str) -> dict[str, str]:
        out = {}
        for f in os.listdir(folder):
            text = open(os.path.join(folder, f)).read()
            nick = re.search(r"^NICKNAME:(.*)$", text, re.M)
            fn = re.search(r"^FN:(.*)$", text, re.M).group(1).strip()
            out[nick.group(1).strip() if nick else fn] = text
        return out

    def test_vdirsyncer_sync_and_delta(self):
        home = tempfile.mkdtemp(dir=self.tmp)
        local = os.path.join(home, "contacts")
        os.makedirs(local)
        with open(os.path.join(home, "config"), "w") as f:
            f.write(f"""[general]
status_path = "{home}/status/"

[pair book]
a = "book_remote"
b = "book_local"
collections = null
conflict_resolution = "a wins"

[storage book_remote]
type = "carddav"
url = "{self.base}{BOOK}"
username = "alice"
password = "alice-pw"
verify = "{self.p.ca_file}"
read_only = true

[storage book_local]
type = "filesystem"
path = "{local}/"
fileext = ".vcf"
""")
        self.vdirsyncer(home, "discover")
        self.vdirsyncer(home, "sync")
        first = self.cards(local)
        self.assertIn("alice", first)
        self.assertIn("frank", first)
        self.assertRegex(first["alice"], r"(?m)^FN:Alice Liddell\r?$")
        self.assertRegex(first["alice"], r"(?m)^EMAIL;[^:]*:alice@example.test\r?$")
        self.assertRegex(first["alice"], r"(?m)^TEL;[^:]*:\+14255550101\r?$")
        self.assertRegex(first["alice"], r"(?m)^X-SIP:sip:alice@example.test\r?$")
        self.assertRegex(first["alice"], r"(?m)^VERSION:3.0\r?$")

        self.assertEqual(self.p.ctl("user", "add", "carol", "--password-stdin",
                                    input="carol-pw\n").returncode, 0)
        self.assertEqual(self.p.ctl("user", "remove", "frank").returncode, 0)
        out = self.vdirsyncer(home, "sync")
        second = self.cards(local)
        self.assertEqual(set(second) - set(first), {"carol"}, out)
        self.assertEqual(set(first) - set(second), {"frank"}, out)
        self.assertEqual(len(re.findall(r"Copying \(uploading\) item", out)), 1, out)
        self.assertEqual(len(re.findall(r"Deleting item", out)), 1, out)
        for name in first.keys() & second.keys():
            self.assertEqual(first[name], second[name])

    def report_sync(self, token: str) -> tuple[int, ET.Element]:
        body = ('<?xml version="1.0" encoding="utf-8"?>'
                '<D:sync-collection xmlns:D="DAV:"><D:sync-token>' + token + '</D:sync-token>'
                '<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop>'
                '</D:sync-collection>').encode()
        status, _, out = self.curl(BOOK, method="REPORT", data=body, user="alice:alice-pw",
                                   headers={"Depth": "0", "Content-Type": "application/xml"})
        return status, ET.fromstring(out)

    def test_sync_collection_delta(self):
        status, doc = self.report_sync("")
        self.assertEqual(status, 207)
        token = doc.findtext(f"{DAV}sync-token")
        self.assertTrue(doc.findall(f"{DAV}response"))  # the first sync: every card
        hrefs = self.hrefs_by_nick()
        self.p.ctl("user", "add", "gina", "--password-stdin", input="gina-pw\n")
        self.p.ctl("user", "remove", "hank")
        status, doc = self.report_sync(token)
        self.assertEqual(status, 207)
        got = {r.findtext(f"{DAV}href"): r for r in doc.findall(f"{DAV}response")}
        gina = self.hrefs_by_nick()["gina"]
        self.assertEqual(set(got), {gina, hrefs["hank"]})
        self.assertIn("404", got[hrefs["hank"]].findtext(f"{DAV}status"))
        self.assertIsNotNone(got[gina].find(f"{DAV}propstat/{DAV}prop/{DAV}getetag"))
        self.assertNotEqual(doc.findtext(f"{DAV}sync-token"), token)
        # nothing changed since: nothing
        status, again = self.report_sync(doc.findtext(f"{DAV}sync-token"))
        self.assertEqual((status, again.findall(f"{DAV}response")), (207, []))
        # a token from elsewhere
        status, err = self.report_sync("https://example.test/dav/sync/999999")
        self.assertEqual(status, 403)
        self.assertIsNotNone(err.find(f"{DAV}valid-sync-token"))

    def hrefs_by_nick(self) -> dict[str, str]:
        body = ('<?xml version="1.0"?><C:addressbook-query xmlns:D="DAV:" '
                'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><C:address-data/></D:prop>'
                '</C:addressbook-query>').encode()
        status, _, out = self.curl(BOOK, method="REPORT", data=body, user="alice:alice-pw",
                                   headers={"Depth": "1"})
        self.assertEqual(status, 207)
        res = {}
        for r in ET.fromstring(out).findall(f"{DAV}response"):
            card = r.findtext(".//{urn:ietf:params:xml:ns:carddav}address-data") or ""
            m = re.search(r"^NICKNAME:(.*)$", card, re.M) or re.search(r"^FN:(.*)$", card, re.M)
            res[m.group(1).strip()] = r.findtext(f"{DAV}href")
        return res

    def test_card_get_etag_gzip_and_read_only(self):
        href = self.hrefs_by_nick()["alice"]
        status, h, body = self.curl(href, user="alice:alice-pw")
        self.assertEqual(status, 200)
        self.assertIn(b"FN:Alice Liddell", body)
        etag = h["etag"]
        status, _, _ = self.curl(href, user="alice:alice-pw", headers={"If-None-Match": etag})
        self.assertEqual(status, 304)
        status, h, body = self.curl(href, user="alice:alice-pw",
                                    headers={"Accept": "text/vcard; version=4.0"})
        self.assertIn(b"VERSION:4.0", body)
        status, h, body = self.curl(BOOK, "--compressed", method="PROPFIND", user="alice:alice-pw",
                                    headers={"Depth": "1"})
        self.assertEqual((status, h.get("content-encoding")), (207, "gzip"))
        self.assertIn(b"multistatus", body)
        for method in ("PUT", "DELETE"):
            status, _, _ = self.curl(href, method=method, data=b"BEGIN:VCARD\r\nEND:VCARD\r\n",
                                     user="alice:alice-pw")
            self.assertEqual(status, 403, method)
        self.assertEqual(self.curl(BOOK, method="PROPFIND", user="alice:wrong")[0], 401)

    # -- groups ----------------------------------------------------------------------

    def test_group_expansion_with_cycle(self):
        for args in (("group", "add", "eng", "--name", "Engineering"), ("group", "add", "team"),
                     ("group", "member", "add", "eng", "alice"),
                     ("group", "member", "add", "eng", "team"),
                     ("group", "member", "add", "team", "dave"),
                     ("group", "member", "add", "team", "eng")):
            res = self.p.ctl(*args)
            self.assertEqual(res.returncode, 0, res.stderr)
        status, _, body = self.curl("/groups/eng/members", token=self.ticket)
        self.assertEqual(status, 200, body)
        doc = json.loads(body)
        self.assertEqual(sorted(m["user"] for m in doc["members"]), ["alice", "dave"])
        self.assertEqual(doc["name"], "Engineering")
        self.assertIn({"user": "alice", "uri": "sip:alice@example.test", "name": "Alice Liddell"},
                      doc["members"])
        self.assertEqual(self.curl("/groups/nosuch/members", token=self.ticket)[0], 404)

    # -- content -----------------------------------------------------------------------

    def content_setup(self):
        res = self.p.ctl("conference", "create", "m1", "--organizer", "alice")
        if res.returncode == 0:
            self.assertEqual(self.p.ctl("conference", "allow", "m1", "dave").returncode, 0)

    def test_content(self):
        self.content_setup()
        dave = self.get_ticket("dave", "dave-pw")
        bob = self.get_ticket("bob", "bob-pw")
        data = os.urandom(200000)
        path = os.path.join(self.tmp, "slides.bin")
        open(path, "wb").write(data)
        status, h, _ = self.curl("/content/m1/slides%20v1.bin", token=self.ticket, upload=path)
        self.assertEqual(status, 201)
        status, _, body = self.curl("/content/m1/", token=dave)
        self.assertEqual(status, 200)
        files = {f["name"]: f for f in json.loads(body)["files"]}
        self.assertEqual(files["slides v1.bin"]["size"], len(data))
        status, h, body = self.curl("/content/m1/slides%20v1.bin", token=dave)
        self.assertEqual((status, body), (200, data))
        self.assertTrue(h["content-disposition"].startswith("attachment"))
        status, h, body = self.curl("/content/m1/slides%20v1.bin", token=dave,
                                    headers={"Range": "bytes=65530-131080"})
        self.assertEqual((status, body), (206, data[65530:131081]))
        self.assertEqual(h["content-range"], f"bytes 65530-131080/{len(data)}")
        # a reader may not write; one not allowed may not read
        self.assertEqual(self.curl("/content/m1/x.bin", token=dave, upload=path)[0], 403)
        self.assertEqual(self.curl("/content/m1/slides%20v1.bin", token=bob)[0], 403)
        self.assertEqual(self.curl("/content/m1/", token=bob)[0], 403)
        # over https.content_max_file
        big = os.path.join(self.tmp, "big.bin")
        open(big, "wb").write(os.urandom(300001))
        self.assertEqual(self.curl("/content/m1/big.bin", token=self.ticket, upload=big)[0], 413)
        # names that could escape the store
        # (sent with -X PUT: curl's -T would rewrite a path ending in "..")
        for name in ("../x", "..%2Fx", "..", "a%2Fb", "a%00b", ".hidden", "x" * 121, "%ff"):
            status = self.curl(f"/content/m1/{name}", method="PUT", data=b"x",
                               token=self.ticket)[0]
            self.assertEqual(status, 400, name)

    def test_content_encrypted_at_rest_and_tamper_evident(self):
        self.content_setup()
        marker = b"PARLEY-MARKER-0123456789abcdefghijklmnopqrstuvwxyz-ENDMARKER!!!!"
        self.assertEqual(len(marker), 64)
        data = marker * 3000
        path = os.path.join(self.tmp, "marker.bin")
        open(path, "wb").write(data)
        self.assertIn(self.curl("/content/m1/marker.bin", token=self.ticket, upload=path)[0],
                      (201, 204))
        windows = {marker[i:i + 16] for i in range(64 - 15)}
        doubled = marker + marker
        windows |= {doubled[i:i + 16] for i in range(64)}
        for root, _, names in os.walk(self.p.dir):
            for n in names:
                if not os.path.isfile(os.path.join(root, n)):
                    continue  # the control socket
                blob = open(os.path.join(root, n), "rb").read()
                for w in windows:
                    self.assertNotIn(w, blob, os.path.join(root, n))
        status, _, body = self.curl("/content/m1/marker.bin", token=self.ticket)
        self.assertEqual((status, body), (200, data))
        sealed = [os.path.join(r, n) for r, _, ns in os.walk(os.path.join(self.p.dir, "content"))
                  for n in ns if n == b"marker.bin".hex() + ".sealed"]
        self.assertEqual(len(sealed), 1)
        original = open(sealed[0], "rb").read()
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0x01
        open(sealed[0], "wb").write(bytes(flipped))
        status, _, body = self.curl("/content/m1/marker.bin", token=self.ticket)
        self.assertEqual(status, 500)
        self.assertNotIn(marker, body)
        open(sealed[0], "wb").write(original[:len(original) - 70000])
        status, _, body = self.curl("/content/m1/marker.bin", token=self.ticket)
        self.assertEqual(status, 500)
        self.p.wait_log("content.corrupt", file="marker.bin")
        open(sealed[0], "wb").write(original)
        self.assertEqual(self.curl("/content/m1/marker.bin", token=self.ticket)[0], 200)

    # -- status and key rotation --------------------------------------------------------

    def test_status_shows_the_web_rows(self):
        doc = self.p.ctl("status", json=True).stdout
        https = [l for l in doc["listeners"] if l["transport"] == "https"]
        self.assertEqual(len(https), 1, doc["listeners"])
        self.assertEqual(https[0]["address"], f"127.0.0.1:{self.p.https_port}")
        self.assertIn("no CertificateRequest", https[0]["client_certificates"])
        rows = {r["traffic"]: r for r in doc["protection"]}
        for traffic in ("web tickets", "address-book download", "distribution-group expansion",
                        "conference content"):
            self.assertIn(traffic, rows)
            self.assertIn("HTTPS", rows[traffic]["protection"])
        self.assertIn("encrypted at rest", rows["conference content"]["protection"])
        self.assertIn("/turn/credentials", rows["media relay credentials"]["enforced"])
        self.assertGreater(doc["daemon"]["https"]["tickets_issued"], 0)

    def test_rotate_key(self):
        old = self.get_ticket("dave", "dave-pw")
        old_kid = json.loads(base64.urlsafe_b64decode(old.split(".")[0] + "=="))["kid"]
        res = self.p.ctl("https", "rotate-key", json=True)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(self.p.ctl("reload").returncode, 0)
        self.p.wait_log("https.ticket_keys_loaded")
        new = self.get_ticket("dave", "dave-pw")
        new_kid = json.loads(base64.urlsafe_b64decode(new.split(".")[0] + "=="))["kid"]
        self.assertNotEqual(old_kid, new_kid)
        # the retired key still verifies, within its grace
        for t in (old, new):
            self.assertEqual(self.curl("/turn/credentials", token=t)[0], 200)
        self.assertEqual(os.stat(os.path.join(self.p.dir, "https-ticket.keys")).st_mode & 0o777,
                         0o600)
        self.ticket = TestWeb.ticket = self.get_ticket("alice", "alice-pw")

    # -- relay credentials -------------------------------------------------------------

    def test_turn_credentials_work(self):
        status, _, body = self.curl("/turn/credentials", token=self.ticket)
        self.assertEqual(status, 200, body)
        g = json.loads(body)
        self.assertRegex(g["username"], r"^\d+:alice$")
        self.assertLessEqual(g["ttl"], 28800)
        self.assertIn(f"turn:127.0.0.1:{self.p.relay_port}?transport=udp", g["uris"])
        self.assertTrue(any(u.startswith("turns:") for u in g["uris"]), g["uris"])
        peer_port = free_ports(2, "udp", consecutive=True)[0]
        peer = self.p.spawn_peer(["turnutils_peer", "-L", "127.0.0.1", "-p", str(peer_port)])
        try:
            time.sleep(0.3)
            res = run_peer(["turnutils_uclient", "-u", g["username"], "-w", g["password"],
                            "-p", str(self.p.relay_port), "-e", "127.0.0.1", "-r", str(peer_port),
                            "-n", "20", "-c", "127.0.0.1"], timeout=60)
        finally:
            peer.stop()
        out = res.stdout + res.stderr
        self.assertEqual(res.returncode, 0, out[-2000:])
        self.assertRegex(out, r"Total lost packets 0", out[-2000:])
        self.assertNotIn(g["password"], self.p.log_text())


if __name__ == "__main__":
    unittest.main()
