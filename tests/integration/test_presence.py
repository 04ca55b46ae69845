#!/usr/bin/python3
"""Presence (issue #4) with the test client: PUBLISH (RFC 3903) with entity
tags, refresh, modify, removal and expiry; SUBSCRIBE / NOTIFY for the
presence package (RFC 6665, RFC 3856) with refresh, un-subscribe, expiry
and throttling; composed state across devices; refusals (400, 403, 412,
415, 423, 489, 503); authorization by policy and by `parleyctl presence`
rules.

Every NOTIFY the server sends is answered with 200 at once (a NOTIFY left
unanswered holds back the next one for that watcher). Timers are shortened
by configuration: presence.min_expires=1 lets a test publish or subscribe
for 2 s; presence.min_notify_interval is 0 except where throttling is the
subject.
"""
import re
import time
import unittest

from harness import Parley
import sipclient
from sipclient import Dialog, SipMessage, SipTimeout

DOMAIN = "example.test"
PIDF_CT = "application/pidf+xml"
SCALE = sipclient.TIMEOUT_SCALE
USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "dave": "dave-pw"}
BASE = {"presence.min_notify_interval": 0, "presence.min_expires": 1,
        "registrar.min_expires": 10}


def T(seconds: float) -> float:
    """A timeout for something the server should do, scaled for slow builds."""
    return seconds * SCALE


def pidf(user: str, basic: str = "open", activity: str | None = None, tuple_id: str = "t1",
         entity: str | None = None, extra: str = "", note: str | None = None) -> str:
    """A PIDF document as clients send it: a tuple with <basic>, and an
    RPID activity in a data-model person element when given."""
    ent = entity if entity is not None else f"sip:{user}@{DOMAIN}"
    person = ""
    if activity is not None:
        person = (f'<dm:person id="p-{tuple_id}"><rpid:activities><rpid:{activity}/>'
                  f'</rpid:activities></dm:person>\r\n')
    n = f"<note>{note}</note>" if note else ""
    return ('<?xml version="1.0" encoding="UTF-8"?>\r\n'
            '<presence xmlns="urn:ietf:params:xml:ns:pidf" '
            'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" '
            f'xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="{ent}">\r\n'
            f'<tuple id="{tuple_id}"><status><basic>{basic}</basic></status>'
            f'<contact>sip:{user}@{DOMAIN}</contact>{n}</tuple>\r\n'
            f'{person}{extra}</presence>\r\n')


def basic_of(body: bytes | str) -> str | None:
    """open / closed, read the way simple clients read it (by text)."""
    text = body.decode() if isinstance(body, bytes) else body
    m = re.search(r"<(?:\w+:)?basic>\s*(open|closed)\s*</(?:\w+:)?basic>", text)
    return m.group(1) if m else None


def activity_of(body: bytes | str) -> str | None:
    text = body.decode() if isinstance(body, bytes) else body
    m = re.search(r"<rpid:activities>\s*<rpid:([\w-]+)\s*/>", text)
    return m.group(1) if m else None


def sub_state(notify: SipMessage) -> tuple[str, dict[str, str]]:
    """Subscription-State as (state, {param: value})."""
    v = notify.header("Subscription-State") or ""
    parts = [p.strip() for p in v.split(";")]
    params = {}
    for p in parts[1:]:
        k, _, val = p.partition("=")
        params[k.strip().lower()] = val.strip()
    return parts[0].lower(), params


def raw_header_lines(msg: SipMessage, name: str) -> list[str]:
    """The header lines of `name` exactly as they were on the wire."""
    raw = (msg.raw or b"").split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    return [l for l in raw.split("\r\n")[1:] if l.split(":", 1)[0].strip().lower() == name.lower()]


class Subscription:
    """One presence subscription of a SipClient: waits for its NOTIFYs (by
    Call-ID), answers each with 200, and sends in-dialog SUBSCRIBEs."""

    def __init__(self, client: sipclient.SipClient, response: SipMessage) -> None:
        self.c = client
        self.response = response
        assert response.request is not None
        self.call_id = response.request.call_id
        self.dialog = Dialog.from_uac(response.request, response)
        self.notifies: list[SipMessage] = []

    def _is_mine(self, m: SipMessage) -> bool:
        return m.is_request and m.method == "NOTIFY" and m.call_id == self.call_id

    def notify(self, timeout: float = 5.0, answer: int | None = 200) -> SipMessage:
        """The next NOTIFY of this subscription (answered with `answer`)."""
        n = self.c._wait(self._is_mine, T(timeout), f"NOTIFY for {self.call_id}")
        if answer:
            self.c.respond(n, answer)
        if n.contacts:
            self.dialog.remote_target = n.contacts[0].uri
        self.notifies.append(n)
        return n

    def no_notify(self, wait: float) -> SipMessage | None:
        """None if no NOTIFY of this subscription arrives within `wait`
        seconds (not scaled: the server must not send one), else it."""
        try:
            return self.notify(timeout=wait / SCALE)
        except SipTimeout:
            return None

    def notify_until(self, pred, timeout: float = 5.0) -> SipMessage:
        """NOTIFYs until one satisfies pred (the others are kept in notifies)."""
        deadline = time.monotonic() + T(timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no NOTIFY matching the condition within {timeout}s; got: "
                                     + " | ".join(f"{n.header('Subscription-State')} "
                                                  f"{basic_of(n.body)}/{activity_of(n.body)}"
                                                  for n in self.notifies))
            n = self.notify(timeout=left / SCALE)
            if pred(n):
                return n

    def resubscribe(self, expires: int) -> SipMessage:
        """An in-dialog SUBSCRIBE (refresh, or un-subscribe with 0)."""
        return self.c.request_in_dialog(self.dialog, "SUBSCRIBE", contact=True,
                                        headers={"Event": "presence", "Expires": str(expires),
                                                 "Accept": PIDF_CT})


def subscribe(c: sipclient.SipClient, target: str, expires: int | None = 600,
              accept: str | None = PIDF_CT, headers: dict | None = None) -> SipMessage:
    h = {"Event": "presence"}
    if accept is not None:
        h["Accept"] = accept
    h.update(headers or {})
    return c.request_with_auth("SUBSCRIBE", f"sip:{target}@{DOMAIN}", expires=expires, headers=h)


def watch(c: sipclient.SipClient, target: str, expires: int = 600) -> tuple[Subscription, SipMessage]:
    """Subscribe, expect 200 (2xx), and return the subscription and its first NOTIFY."""
    r = subscribe(c, target, expires)
    if not (200 <= (r.status or 0) < 300):
        raise AssertionError(f"SUBSCRIBE to {target} got {r.summary()}")
    s = Subscription(c, r)
    return s, s.notify()


def publish(c: sipclient.SipClient, body: str | bytes | None = None, *, etag: str | None = None,
            expires: int | None = 600, content_type: str | None = PIDF_CT,
            event: str | None = "presence", uri: str | None = None,
            headers: dict | None = None) -> SipMessage:
    h: dict = {}
    if event is not None:
        h["Event"] = event
    if etag is not None:
        h["SIP-If-Match"] = etag
    h.update(headers or {})
    return c.request_with_auth("PUBLISH", uri or c.aor, expires=expires, headers=h,
                               body=body or b"", content_type=content_type if body else None,
                               contact=False)


def register(c: sipclient.SipClient, expires: int = 600) -> SipMessage:
    r = c.register(expires=expires)
    if r.status != 200:
        raise AssertionError(f"REGISTER of {c.user} got {r.summary()}")
    return r


def server(name: str, **config) -> Parley:
    cfg = dict(BASE)
    cfg.update(config)
    return Parley(name=name, config=cfg, users=USERS)


class TestSubscribeNotify(unittest.TestCase):
    def test_subscribe_notify_flow(self):
        """SUBSCRIBE (Event: presence, Accept: PIDF) → 200 and a NOTIFY with
        the state; bob registering and publishing each produce one NOTIFY."""
        with server("pres-flow") as p:
            p.start()
            with p.client("alice") as alice, p.client("bob") as bob:
                r = subscribe(alice, "bob", expires=600)
                self.assertEqual(r.status, 200, r)
                self.assertIsNotNone(r.to_tag, "200 to SUBSCRIBE needs a To tag")
                self.assertTrue(0 < int(r.header("Expires")) <= 600, r)
                s = Subscription(alice, r)
                n = s.notify()
                self.assertEqual(n.header("Event").split(";")[0].strip(), "presence")
                self.assertEqual(n.call_id, r.request.call_id)
                self.assertEqual(n.from_tag, r.to_tag, "NOTIFY's From tag is the 200's To tag")
                self.assertEqual(n.to_tag, r.request.from_tag)
                state, params = sub_state(n)
                self.assertEqual(state, "active", n)
                self.assertTrue(0 < int(params["expires"]) <= 600, n)
                self.assertEqual(n.header("Content-Type"), PIDF_CT)
                self.assertEqual(basic_of(n.body), "closed", "no device registered: offline")
                self.assertIn(f"bob@{DOMAIN}", n.body.decode())
                cseq1 = n.cseq.number

                register(bob)
                n = s.notify()
                self.assertEqual(sub_state(n)[0], "active")
                self.assertEqual(basic_of(n.body), "open", "registered, nothing published: open")
                self.assertGreater(n.cseq.number, cseq1)

                r = publish(bob, pidf("bob", "open", "busy", tuple_id="bobdesk"))
                self.assertEqual(r.status, 200, r)
                n = s.notify()
                self.assertEqual(basic_of(n.body), "open")
                self.assertEqual(activity_of(n.body), "busy")
                self.assertIn('id="bobdesk"', n.body.decode())
                # one NOTIFY per change: nothing more follows
                self.assertIsNone(s.no_notify(1.0))

    def test_subscribe_200_has_contact(self):
        """RFC 6665 §4.2.1.1 / RFC 3261 §12.1.1: a 2xx to a dialog-creating
        SUBSCRIBE carries a Contact (the watcher's remote target)."""
        with server("pres-contact") as p:
            p.start()
            with p.client("alice") as alice:
                r = subscribe(alice, "bob")
                self.assertEqual(r.status, 200, r)
                Subscription(alice, r).notify()
                self.assertTrue(r.contacts, f"200 to SUBSCRIBE without Contact:\n{r}")

    def test_notify_content_type_exactly_pidf(self):
        """Content-Type is exactly application/pidf+xml (no parameters),
        whatever the publisher's Content-Type said."""
        with server("pres-ctype") as p:
            p.start()
            with p.client("alice") as alice, p.client("bob") as bob:
                register(bob)
                s, n = watch(alice, "bob")
                self.assertEqual(raw_header_lines(n, "Content-Type"),
                                 ["Content-Type: application/pidf+xml"], n)
                # a publisher's parameters (and case) do not leak into NOTIFYs
                r = publish(bob, pidf("bob", "open", "away"),
                            content_type="Application/PIDF+XML; charset=UTF-8")
                self.assertEqual(r.status, 200, f"PIDF with a charset parameter refused: {r}")
                n = s.notify()
                self.assertEqual(raw_header_lines(n, "Content-Type"),
                                 ["Content-Type: application/pidf+xml"], n)
                self.assertEqual(activity_of(n.body), "away")

    def test_published_extensions_pass_through(self):
        """Extensions in a published document reach watchers unchanged."""
        with server("pres-ext") as p:
            p.start()
            with p.client("alice") as alice, p.client("bob") as bob:
                register(bob)
                extra = ('<dm:device id="d1"><dm:deviceID>urn:uuid:0c8f</dm:deviceID></dm:device>\r\n'
                         '<caps:servcaps xmlns:caps="urn:ietf:params:xml:ns:pidf:caps">'
                         '<caps:audio>true</caps:audio></caps:servcaps>\r\n'
                         '<x:mood xmlns:x="urn:example:private">sunny &amp; warm</x:mood>\r\n')
                body = pidf("bob", "open", "on-the-phone", extra=extra, note="In a call")
                self.assertEqual(publish(bob, body).status, 200)
                s, n = watch(alice, "bob")
                self.assertEqual(n.body.decode(), body)

    def test_accept_without_pidf_refused(self):
        with server("pres-accept") as p:
            p.start()
            with p.client("alice") as alice:
                r = subscribe(alice, "bob", accept="application/cpim-pidf+xml")
                self.assertEqual(r.status, 406, r)
                self.assertIsNone(alice.conn.try_recv(T(0.5)))

    def test_subscribe_unknown_user_404(self):
        with server("pres-404") as p:
            p.start()
            with p.client("alice") as alice:
                r = subscribe(alice, "nosuchuser")
                self.assertEqual(r.status, 404, r)

    def test_unauthenticated_subscribe_yields_no_state(self):
        """Without (valid) credentials: a challenge, and never a NOTIFY."""
        with server("pres-unauth") as p:
            p.start()
            with p.client("bob") as bob:
                register(bob)
                publish(bob, pidf("bob", "open", "busy"))
            with p.client("alice") as alice:
                r = alice.request("SUBSCRIBE", f"sip:bob@{DOMAIN}", expires=600,
                                  headers={"Event": "presence", "Accept": PIDF_CT})
                self.assertIn(r.status, (401, 407), r)
                r = alice.request_with_auth("SUBSCRIBE", f"sip:bob@{DOMAIN}", expires=600,
                                            password="wrong",
                                            headers={"Event": "presence", "Accept": PIDF_CT})
                self.assertIn(r.status, (401, 403, 407), r)
                self.assertIsNone(alice.conn.try_recv(T(1.0)), "something arrived anyway")

    def test_in_dialog_refresh_sends_current_state(self):
        """An in-dialog SUBSCRIBE refreshes (200 with Expires) and brings a
        NOTIFY with the current state (RFC 6665 §4.2.1.2)."""
        with server("pres-refresh") as p:
            p.start()
            with p.client("alice") as alice, p.client("bob") as bob:
                register(bob)
                self.assertEqual(publish(bob, pidf("bob", "open", "away")).status, 200)
                s, n = watch(alice, "bob", expires=60)
                r = s.resubscribe(300)
                self.assertEqual(r.status, 200, r)
                self.assertTrue(0 < int(r.header("Expires")) <= 300, r)
                n = s.notify()
                state, params = sub_state(n)
                self.assertEqual(state, "active")
                self.assertGreater(int(params["expires"]), 60)
                self.assertEqual(activity_of(n.body), "away")

    def test_in_dialog_refresh_from_another_users_connection_refused(self):
        """A subscription's dialog identifiers are no credential: carol, who
        learnt them, cannot refresh (or end) alice's subscription from her
        own connection; alice, after re-registering on a new connection, can."""
        with server("pres-steal") as p:
            p.start()
            with p.client("alice") as alice, p.client("bob") as bob, \
                    p.client("carol") as carol:
                register(bob)
                register(carol)
                s, n = watch(alice, "bob")
                stolen = Subscription.__new__(Subscription)
                stolen.__dict__.update(s.__dict__)
                stolen.c = carol
                stolen.notifies = []
                r = stolen.resubscribe(0)
                self.assertEqual(r.status, 403, r)
                # alice's subscription is untouched: bob's news still reach her
                self.assertEqual(publish(bob, pidf("bob", "open", "busy")).status, 200)
                n = s.notify_until(lambda m: activity_of(m.body) == "busy")
                self.assertEqual(sub_state(n)[0], "active")
                # a second device of alice's may refresh it
                with p.client("alice") as alice2:
                    register(alice2)
                    s.c = alice2
                    r = s.resubscribe(300)
                    self.assertEqual(r.status, 200, r)

    def test_in_dialog_unsubscribe(self):
        """In-dialog SUBSCRIBE Expires: 0 → 200, a final NOTIFY terminated;
        afterwards the dialog is gone (481) and changes send nothing."""
        with server("pres-unsub") as p:
            p.start()
            with p.client("alice") as alice, p.client("bob") as bob:
                register(bob)
                s, n = watch(alice, "bob")
                r = s.resubscribe(0)
                self.assertEqual(r.status, 200, r)
                n = s.notify()
                state, params = sub_state(n)
                self.assertEqual(state, "terminated", n)
                p.wait_log("presence.subscription_ended", presentity="bob",
                           watcher=f"alice@{DOMAIN}")
                self.assertEqual(s.resubscribe(600).status, 481)
                publish(bob, pidf("bob", "open", "busy"))
                self.assertIsNone(s.no_notify(1.0))

    def test_subscription_expiry(self):
        """A subscription that is not refreshed ends with
        terminated;reason=timeout when it expires."""
        with server("pres-subexp") as p:
            p.start()
            with p.client("alice") as alice:
                r = subscribe(alice, "bob", expires=2)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(int(r.header("Expires")), 2)
                s = Subscription(alice, r)
                n = s.notify()
                self.assertEqual(sub_state(n)[0], "active")
                start = time.monotonic()
                n = s.notify(timeout=4)
                took = time.monotonic() - start
                state, params = sub_state(n)
                self.assertEqual(state, "terminated", n)
                self.assertEqual(params.get("reason"), "timeout", n)
                self.assertGreater(took, 1.0, "terminated long before the expiry")
                p.wait_log("presence.subscription_ended", presentity="bob", reason="timeout")

    def test_in_dialog_subscribe_after_expiry_481(self):
        """Once a subscription has ended, an in-dialog SUBSCRIBE gets 481."""
        with server("pres-481-after") as p:
            p.start()
            with p.client("alice") as alice:
                s, n = watch(alice, "bob", expires=1)
                n = s.notify(timeout=3)
                self.assertEqual(sub_state(n)[0], "terminated")
                r = s.resubscribe(600)
                self.assertEqual(r.status, 481, r)

    def test_in_dialog_refresh_too_brief_423(self):
        with server("pres-423-refresh", **{"presence.min_expires": 30}) as p:
            p.start()
            with p.client("alice") as alice:
                s, n = watch(alice, "bob", expires=60)
                r = s.resubscribe(5)
                self.assertEqual(r.status, 423, r)
                self.assertEqual(r.header("Min-Expires"), "30")

    def test_subscription_too_brief_423(self):
        with server("pres-423", **{"presence.min_expires": 30}) as p:
            p.start()
            with p.client("alice") as alice, p.client("bob") as bob:
                r = subscribe(alice, "bob", expires=5)
                self.assertEqual(r.status, 423, r)
                self.assertEqual(r.header("Min-Expires"), "30")
                self.assertIsNone(alice.conn.try_recv(T(0.5)))
                register(bob)
                r = publish(bob, pidf("bob"), expires=5)
                self.assertEqual(r.status, 423, r)
                self.assertEqual(r.header("Min-Expires"), "30")

    def test_long_subscription_shortened(self):
        with server("pres-maxexp", **{"presence.max_expires": 120}) as p:
            p.start()
            with p.client("alice") as alice:
                r = subscribe(alice, "bob", expires=100000)
                self.assertEqual(r.status, 200, r)
                self.assertLessEqual(int(r.header("Expires")), 120)
                n = Subscription(alice, r).notify()
                self.assertLessEqual(int(sub_state(n)[1]["expires"]), 120)

    def test_fetch_with_expires_zero(self):
        """An initial SUBSCRIBE with Expires: 0 is a fetch: the state once,
        then the subscription is over."""
        with server("pres-fetch") as p:
            p.start()
            with p.client("alice") as alice, p.client("bob") as bob:
                register(bob)
                publish(bob, pidf("bob", "open", "busy"))
                r = subscribe(alice, "bob", expires=0)
                self.assertEqual(r.status, 200, r)
                s = Subscription(alice, r)
                n = s.notify_until(lambda n: sub_state(n)[0] == "terminated")
                with_state = [m for m in s.notifies if activity_of(m.body) == "busy"]
                self.assertTrue(with_state, "the fetch never carried bob's state")
                p.wait_log("presence.subscription_ended", presentity="bob",
                           watcher=f"alice@{DOMAIN}")

    def test_watcher_connection_closes(self):
        """A watcher's subscription ends with its connection."""
        with server("pres-wclose") as p:
            p.start()
            with p.client("bob") as bob:
                register(bob)
                alice = p.client("alice")
                s, n = watch(alice, "bob")
                alice.close()
                p.wait_log("presence.subscription_ended", presentity="bob",
                           reason="connection closed")
                # bob's next change has nobody to go to, and nothing breaks
                self.assertEqual(publish(bob, pidf("bob", "open", "away")).status, 200)

    def test_watcher_answers_481(self):
        """A watcher that answers a NOTIFY with 481 has forgotten the
        subscription: the server drops it."""
        with server("pres-481") as p:
            p.start()
            with p.client("alice") as alice, p.client("bob") as bob:
                s, n = watch(alice, "bob")
                register(bob)
                n = s.notify(answer=481)
                p.wait_log("presence.subscription_ended", presentity="bob",
                           reason="watcher answered 481")
                publish(bob, pidf("bob", "open", "away"))
                self.assertIsNone(s.no_notify(1.0))


class TestPublish(unittest.TestCase):
    def test_publish_etag_refresh_modify_remove(self):
        with server("pres-etag") as p:
            p.start()
            with p.client("alice") as alice, p.client("bob") as bob:
                register(bob)
                s, n = watch(alice, "bob")
                self.assertEqual(basic_of(n.body), "open")

                r = publish(bob, pidf("bob", "open", "away", tuple_id="e"), expires=600)
                self.assertEqual(r.status, 200, r)
                e1 = r.header("SIP-ETag")
                self.assertTrue(e1, "200 to PUBLISH without SIP-ETag")
                self.assertTrue(0 < int(r.header("Expires")) <= 600)
                self.assertEqual(activity_of(s.notify().body), "away")

                # refresh: SIP-If-Match, no body → a new entity tag, no NOTIFY
                r = publish(bob, None, etag=e1, expires=600)
                self.assertEqual(r.status, 200, r)
                e2 = r.header("SIP-ETag")
                self.assertTrue(e2)
                self.assertNotEqual(e2, e1, "a refresh must get a new entity tag")
                self.assertIsNone(s.no_notify(0.7), "a refresh changed nothing to notify")
                # the old tag is gone
                self.assertEqual(publish(bob, None, etag=e1).status, 412)

                # modify: SIP-If-Match with a body
                r = publish(bob, pidf("bob", "open", "busy", tuple_id="e"), etag=e2)
                self.assertEqual(r.status, 200, r)
                e3 = r.header("SIP-ETag")
                self.assertNotIn(e3, (e1, e2))
                self.assertEqual(activity_of(s.notify().body), "busy")
                p.wait_log("presence.published", user="bob", activity="busy")

                # an entity tag nobody issued
                r = publish(bob, pidf("bob", "closed"), etag="nosuchetag0000")
                self.assertEqual(r.status, 412, r)
                self.assertIsNone(s.no_notify(0.5))

                # Expires: 0 removes the publication; bob is still registered
                r = publish(bob, None, etag=e3, expires=0)
                self.assertEqual(r.status, 200, r)
                n = s.notify()
                self.assertEqual(basic_of(n.body), "open")
                self.assertIsNone(activity_of(n.body))
                self.assertNotIn('id="e"', n.body.decode())
                self.assertEqual(publish(bob, None, etag=e3).status, 412)
                p.wait_log("presence.unpublished", user="bob", reason="removed by the device")

    def test_publication_expiry(self):
        """A publication that is not refreshed goes when it expires."""
        with server("pres-pubexp") as p:
            p.start()
            with p.client("alice") as alice, p.client("bob") as bob:
                register(bob)
                s, n = watch(alice, "bob")
                r = publish(bob, pidf("bob", "open", "away"), expires=2)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(int(r.header("Expires")), 2)
                etag = r.header("SIP-ETag")
                self.assertEqual(activity_of(s.notify().body), "away")
                start = time.monotonic()
                n = s.notify(timeout=4)
                self.assertGreater(time.monotonic() - start, 1.0)
                self.assertEqual(basic_of(n.body), "open")
                self.assertIsNone(activity_of(n.body))
                p.wait_log("presence.unpublished", user="bob", reason="expired")
                self.assertEqual(publish(bob, None, etag=etag).status, 412)

    def test_publication_refresh_keeps_it_alive(self):
        with server("pres-pubrefresh") as p:
            p.start()
            with p.client("bob") as bob:
                register(bob)
                r = publish(bob, pidf("bob", "open", "away"), expires=3)
                etag = r.header("SIP-ETag")
                for _ in range(4):  # 4 s in all: longer than the first expiry
                    time.sleep(1.0)
                    r = publish(bob, None, etag=etag, expires=3)
                    self.assertEqual(r.status, 200, r)
                    etag = r.header("SIP-ETag")
                p.assert_no_log("presence.unpublished", user="bob")
                with p.client("alice") as alice:
                    s, n = watch(alice, "bob")
                    self.assertEqual(activity_of(n.body), "away")

    def test_malformed_pidf_400_keeps_state(self):
        """Malformed PIDF → 400, and the state published before is still
        what watchers get (checked with a fresh SUBSCRIBE's first NOTIFY)."""
        good = pidf("bob", "open", "away", tuple_id="good")
        ns = 'xmlns="urn:ietf:params:xml:ns:pidf"'
        ent = f'entity="sip:bob@{DOMAIN}"'
        bad = {
            "not XML": "this is not xml",
            "unclosed": f'<presence {ns} {ent}><tuple id="t"><status><basic>open</basic></status></tuple>',
            "mismatched end tag": f'<presence {ns} {ent}><tuple id="t"><status><basic>open</status></basic></tuple></presence>',
            "DOCTYPE with entities": ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                                      '<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
                                      f'<presence {ns} {ent}><tuple id="t"><status><basic>&lol2;'
                                      '</basic></status></tuple></presence>'),
            "unknown entity": f'<presence {ns} {ent}><tuple id="t"><status><basic>open</basic></status><note>&bogus;</note></tuple></presence>',
            "undeclared prefix": f'<presence {ns} {ent}><tuple id="t"><status><basic>open</basic></status></tuple><rpid:activities/></presence>',
            "not PIDF": f'<presence xmlns="urn:example:notpidf" {ent}><tuple id="t"><status><basic>open</basic></status></tuple></presence>',
            "no entity": f'<presence {ns}><tuple id="t"><status><basic>open</basic></status></tuple></presence>',
            "someone else's entity": pidf("bob", entity=f"sip:alice@{DOMAIN}"),
            "tuple without id": f'<presence {ns} {ent}><tuple><status><basic>open</basic></status></tuple></presence>',
            "tuple without status": f'<presence {ns} {ent}><tuple id="t"><contact>sip:x@y</contact></tuple></presence>',
            "basic neither open nor closed": pidf("bob", basic="maybe"),
            "attribute twice": f'<presence {ns} {ent} {ent}><tuple id="t"><status><basic>open</basic></status></tuple></presence>',
            "two roots": pidf("bob") + pidf("bob"),
            "NUL byte": pidf("bob").replace("<status>", "<status>\x00"),
        }
        with server("pres-400") as p:
            p.start()
            with p.client("bob") as bob:
                register(bob)
                r = publish(bob, good)
                self.assertEqual(r.status, 200, r)
                etag = r.header("SIP-ETag")
                for why, body in bad.items():
                    with self.subTest(why):
                        r = publish(bob, body.encode("utf-8", "surrogateescape"))
                        self.assertEqual(r.status, 400, f"{why}: {r.summary()}")
                        r = publish(bob, body.encode(), etag=etag)
                        self.assertEqual(r.status, 400, f"{why} (as a modify): {r.summary()}")
                # an initial PUBLISH must carry a document
                r = publish(bob, None)
                self.assertEqual(r.status, 400, r)
                # the published state is unchanged, and its entity tag still valid
                with p.client("alice") as alice:
                    s, n = watch(alice, "bob")
                    self.assertEqual(n.body.decode(), good)
                    self.assertIsNone(s.no_notify(0.5))
                r = publish(bob, None, etag=etag)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(len(p.find_log("presence.published", user="bob")), 1)

    def test_publish_for_someone_else_403(self):
        with server("pres-403") as p:
            p.start()
            with p.client("alice") as alice, p.client("bob") as bob:
                register(bob)
                register(alice)
                s, n = watch(bob, "bob")
                r = publish(alice, pidf("bob", "closed"), uri=f"sip:bob@{DOMAIN}")
                self.assertEqual(r.status, 403, r)
                # From naming bob while authenticated as alice
                r = publish(alice, pidf("bob", "closed"), uri=f"sip:bob@{DOMAIN}",
                            headers={"From": f"<sip:bob@{DOMAIN}>;tag=forged1"})
                self.assertEqual(r.status, 403, r)
                self.assertIsNone(s.no_notify(0.7), "bob's state changed")

    def test_non_pidf_content_type_415(self):
        with server("pres-415") as p:
            p.start()
            with p.client("bob") as bob:
                register(bob)
                for ct, body in (("text/plain", "I am here"),
                                 ("application/xml", pidf("bob")),
                                 ("application/cpim-pidf+xml", pidf("bob"))):
                    with self.subTest(ct):
                        r = publish(bob, body, content_type=ct)
                        self.assertEqual(r.status, 415, r)
                        self.assertIn(PIDF_CT, r.header("Accept") or "", r)

    def test_publish_other_event_489(self):
        with server("pres-489") as p:
            p.start()
            with p.client("bob") as bob:
                register(bob)
                for ev in ("dialog", "message-summary", "presence.winfo"):
                    with self.subTest(ev):
                        r = publish(bob, pidf("bob"), event=ev)
                        self.assertEqual(r.status, 489, r)
                        self.assertIn("presence", r.header("Allow-Events") or "", r)
                r = publish(bob, pidf("bob"), event=None)
                self.assertIn(r.status, (400, 489), r)


class TestComposedState(unittest.TestCase):
    def _two_devices(self, p):
        """bob on two devices: A publishes away, B publishes open (available)."""
        a = p.client("bob", name="bob-A")
        b = p.client("bob", name="bob-B")
        register(a)
        register(b)
        ra = publish(a, pidf("bob", "open", "away", tuple_id="devA"))
        self.assertEqual(ra.status, 200, ra)
        rb = publish(b, pidf("bob", "open", None, tuple_id="devB"))
        self.assertEqual(rb.status, 200, rb)
        return a, b, ra.header("SIP-ETag"), rb.header("SIP-ETag")

    def test_most_available_wins_and_falls_back_on_disconnect(self):
        with server("pres-compose") as p:
            p.start()
            with p.client("alice") as alice:
                a, b, ea, eb = self._two_devices(p)
                s, n = watch(alice, "bob")
                self.assertIn('id="devB"', n.body.decode(), "available beats away")
                self.assertEqual(basic_of(n.body), "open")
                self.assertIsNone(activity_of(n.body))
                # busy beats away
                r = publish(b, pidf("bob", "open", "busy", tuple_id="devB"), etag=eb)
                self.assertEqual(r.status, 200, r)
                eb = r.header("SIP-ETag")
                n = s.notify()
                self.assertEqual(activity_of(n.body), "busy")
                # a device has one publication: B's new initial PUBLISH
                # (baresip sends two at start-up) replaces its busy one, and
                # away beats closed
                r = publish(b, pidf("bob", "closed", None, tuple_id="devB"), etag=None)
                self.assertEqual(r.status, 200)
                n = s.notify_until(lambda n: 'id="devA"' in n.body.decode())
                self.assertEqual(activity_of(n.body), "away")
                self.assertNotIn("devB", n.body.decode())
                p.wait_log("presence.replaced", user="bob", etag=eb)
                old, eb = eb, r.header("SIP-ETag")
                r = publish(b, pidf("bob", "open", "busy", tuple_id="devB"), etag=old)
                self.assertEqual(r.status, 412, r)  # the replaced ETag is gone
                # B disconnects: its publication goes; away still shows
                b.conn.abort()
                p.wait_log("presence.unpublished", user="bob", etag=eb)
                # the last device un-registers: offline
                r = a.unregister()
                self.assertEqual(r.status, 200, r)
                n = s.notify_until(lambda n: basic_of(n.body) == "closed")
                self.assertNotIn("devA", n.body.decode())
                a.close()

    def test_state_removed_when_device_unregisters(self):
        """A device that un-registers (its connection stays open) loses what
        it published at once; its entity tag is gone."""
        with server("pres-unreg") as p:
            p.start()
            with p.client("alice") as alice:
                a, b, ea, eb = self._two_devices(p)
                s, n = watch(alice, "bob")
                self.assertIn('id="devB"', n.body.decode())
                r = b.unregister()
                self.assertEqual(r.status, 200, r)
                n = s.notify()
                self.assertIn('id="devA"', n.body.decode())
                self.assertEqual(activity_of(n.body), "away")
                p.wait_log("presence.unpublished", user="bob", etag=eb,
                           reason="device binding ended")
                self.assertTrue(b.conn.is_open(0.2), "the connection itself stays")
                self.assertEqual(publish(b, None, etag=eb).status, 412)
                # device A's state is untouched
                self.assertEqual(publish(a, None, etag=ea).status, 200)
                a.close()
                b.close()

    def test_state_removed_when_connection_closes(self):
        with server("pres-connclose") as p:
            p.start()
            with p.client("alice") as alice:
                a, b, ea, eb = self._two_devices(p)
                s, n = watch(alice, "bob")
                a.close()  # the away device goes; B (available) still wins: no change
                p.wait_log("presence.unpublished", user="bob", etag=ea)
                self.assertIsNone(s.no_notify(0.7))
                b.close()
                n = s.notify_until(lambda n: basic_of(n.body) == "closed")
                self.assertNotIn("devB", n.body.decode())
                self.assertNotIn("devA", n.body.decode())

    def test_state_removed_when_binding_expires(self):
        """A device whose registration runs out loses what it published
        (its connection stays open)."""
        with server("pres-bindexp", **{"registrar.min_expires": 1}) as p:
            p.start()
            with p.client("alice") as alice, p.client("bob") as bob:
                register(bob, expires=2)
                r = publish(bob, pidf("bob", "open", "away", tuple_id="short"), expires=600)
                etag = r.header("SIP-ETag")
                s, n = watch(alice, "bob")
                self.assertEqual(activity_of(n.body), "away")
                n = s.notify(timeout=5)
                self.assertEqual(basic_of(n.body), "closed", n)
                self.assertNotIn("short", n.body.decode())
                p.wait_log("presence.unpublished", user="bob", etag=etag)
                self.assertEqual(publish(bob, None, etag=etag).status, 412)

    def test_unregistered_publisher_is_offline(self):
        """A user with no registered device is offline, whatever was
        published."""
        with server("pres-noreg") as p:
            p.start()
            with p.client("alice") as alice, p.client("bob") as bob:
                r = publish(bob, pidf("bob", "open", None))
                self.assertEqual(r.status, 200, r)
                s, n = watch(alice, "bob")
                self.assertEqual(basic_of(n.body), "closed")


class TestThrottling(unittest.TestCase):
    def test_changes_within_interval_make_one_notify(self):
        """presence.min_notify_interval=2: several changes within 2 s reach
        each watcher as one NOTIFY with the latest state."""
        with server("pres-throttle", **{"presence.min_notify_interval": 2}) as p:
            p.start()
            with p.client("alice") as alice, p.client("carol") as carol, \
                    p.client("bob") as bob:
                register(bob)
                r = publish(bob, pidf("bob", "open", "away"))
                etag = r.header("SIP-ETag")
                # each watcher's interval starts with its first NOTIFY
                sa, _ = watch(alice, "bob")
                ta = time.monotonic()
                sc, _ = watch(carol, "bob")
                tc = time.monotonic()
                for act in ("busy", "meeting", "on-the-phone"):
                    r = publish(bob, pidf("bob", "open", act), etag=etag)
                    self.assertEqual(r.status, 200)
                    etag = r.header("SIP-ETag")
                for s, t0 in ((sa, ta), (sc, tc)):
                    early = s.no_notify(max(0.0, 1.7 - (time.monotonic() - t0)))
                    self.assertIsNone(early, f"NOTIFY within the 2 s interval: {early}")
                for s, t0 in ((sa, ta), (sc, tc)):
                    n = s.notify(timeout=3)
                    self.assertEqual(activity_of(n.body), "on-the-phone", "not the latest state")
                    self.assertGreater(time.monotonic() - t0, 1.7)
                for s in (sa, sc):
                    self.assertIsNone(s.no_notify(1.0), "more than one NOTIFY for the burst")
                # after a quiet interval a change goes out at once
                time.sleep(2.2)
                t1 = time.monotonic()
                publish(bob, pidf("bob", "open", "away"), etag=etag)
                n = sa.notify(timeout=1.0)
                self.assertEqual(activity_of(n.body), "away")
                self.assertLess(time.monotonic() - t1, T(1.0))


class TestAuthorization(unittest.TestCase):
    def test_domain_policy_same_domain_sees(self):
        """Default policy (domain): users of our domain see each other."""
        with server("pres-domain") as p:
            p.start()
            with p.client("carol") as carol, p.client("bob") as bob:
                register(bob)
                publish(bob, pidf("bob", "open", "busy"))
                s, n = watch(carol, "bob")
                self.assertEqual(sub_state(n)[0], "active")
                self.assertEqual(activity_of(n.body), "busy")

    def test_watcher_identity_cannot_be_another_domain(self):
        """The watcher is the authenticated user of our domain: a From
        naming another domain is refused, so no foreign watcher gets in
        through the domain policy. (Watchers of other domains come through
        federation: see TestFederatedWatcher, and the unit test
        tests/unit/presence/test_presence.c.)"""
        with server("pres-foreign") as p:
            p.start()
            with p.client("alice") as alice:
                r = alice.request_with_auth(
                    "SUBSCRIBE", f"sip:bob@{DOMAIN}", expires=600,
                    headers={"Event": "presence", "Accept": PIDF_CT,
                             "From": "<sip:alice@other.test>;tag=f1"})
                self.assertEqual(r.status, 403, r)
                self.assertIsNone(alice.conn.try_recv(T(0.5)))

    def test_contacts_policy_pending_then_allowed(self):
        """contacts: carol, not on bob's allow list, gets a pending
        subscription and learns nothing; `presence allow bob carol` makes
        it active with bob's state."""
        with server("pres-contacts", **{"presence.policy": "contacts"}) as p:
            r = p.ctl("presence", "allow", "bob", "alice")
            self.assertEqual(r.returncode, 0, r)
            p.start()
            with p.client("alice") as alice, p.client("carol") as carol, \
                    p.client("bob") as bob:
                register(bob)
                etag = publish(bob, pidf("bob", "open", "busy")).header("SIP-ETag")
                sa, n = watch(alice, "bob")
                self.assertEqual(sub_state(n)[0], "active")
                self.assertEqual(activity_of(n.body), "busy")

                r = subscribe(carol, "bob")
                self.assertTrue(200 <= r.status < 300, r)
                sc = Subscription(carol, r)
                n = sc.notify()
                self.assertEqual(sub_state(n)[0], "pending", n)
                self.assertEqual(n.body, b"", "a pending NOTIFY carries no state")
                self.assertIsNone(n.header("Content-Type"))
                p.wait_log("presence.subscribed", presentity="bob", watcher=f"carol@{DOMAIN}",
                           state="pending")

                # bob changes: alice hears of it, carol does not
                etag = publish(bob, pidf("bob", "open", "away"), etag=etag).header("SIP-ETag")
                self.assertEqual(activity_of(sa.notify().body), "away")
                late = sc.no_notify(1.0)
                self.assertTrue(late is None or (late.body == b"" and
                                                 sub_state(late)[0] == "pending"), late)
                # nor from a second subscription
                r = subscribe(carol, "bob")
                self.assertTrue(200 <= r.status < 300, r)
                n = Subscription(carol, r).notify()
                self.assertEqual(sub_state(n)[0], "pending")
                self.assertEqual(n.body, b"")

                r = p.ctl("presence", "allow", "bob", "carol")
                self.assertEqual(r.returncode, 0, r)
                n = sc.notify(timeout=3)
                self.assertEqual(sub_state(n)[0], "active", n)
                self.assertEqual(activity_of(n.body), "away")
                self.assertEqual(n.header("Content-Type"), PIDF_CT)

                r = p.ctl("presence", "list", "bob", json=True)
                self.assertEqual(r.returncode, 0, r)
                rules = {x["watcher"]: x["rule"] for x in r.stdout["rules"]}
                self.assertEqual(rules, {f"alice@{DOMAIN}": "allow", f"carol@{DOMAIN}": "allow"})
                self.assertEqual(r.stdout["policy"], "contacts")

                # unset: carol is no longer allowed; her subscription ends
                r = p.ctl("presence", "unset", "bob", "carol")
                self.assertEqual(r.returncode, 0, r)
                n = sc.notify(timeout=3)
                state, params = sub_state(n)
                self.assertEqual(state, "terminated", n)
                self.assertEqual(n.body, b"")

    def test_in_dialog_refresh_of_pending_learns_nothing(self):
        """contacts policy: a pending watcher's refresh brings a pending
        NOTIFY without state."""
        with server("pres-pending-refresh", **{"presence.policy": "contacts"}) as p:
            p.start()
            with p.client("carol") as carol, p.client("bob") as bob:
                register(bob)
                publish(bob, pidf("bob", "open", "busy"))
                r = subscribe(carol, "bob")
                sc = Subscription(carol, r)
                self.assertEqual(sub_state(sc.notify())[0], "pending")
                r = sc.resubscribe(600)
                self.assertEqual(r.status, 200, r)
                n = sc.notify()
                self.assertEqual(sub_state(n)[0], "pending")
                self.assertEqual(n.body, b"")

    def test_allow_activates_at_once_despite_throttle(self):
        """`presence allow` reaches a pending watcher at once: the change of
        authorization is not held back by presence.min_notify_interval."""
        with server("pres-allow-now", **{"presence.policy": "contacts",
                                         "presence.min_notify_interval": 10}) as p:
            p.start()
            with p.client("carol") as carol, p.client("bob") as bob:
                register(bob)
                publish(bob, pidf("bob", "open", "busy"))
                r = subscribe(carol, "bob")
                sc = Subscription(carol, r)
                self.assertEqual(sub_state(sc.notify())[0], "pending")
                start = time.monotonic()
                self.assertEqual(p.ctl("presence", "allow", "bob", "carol").returncode, 0)
                n = sc.notify(timeout=3)
                self.assertEqual(sub_state(n)[0], "active")
                self.assertEqual(activity_of(n.body), "busy")
                self.assertLess(time.monotonic() - start, T(3))

    def test_block_terminates_with_rejected(self):
        """`presence block bob alice` (domain policy): alice's subscription
        ends with terminated;reason=rejected; a new one learns nothing;
        carol is unaffected."""
        with server("pres-block") as p:
            p.start()
            with p.client("alice") as alice, p.client("carol") as carol, \
                    p.client("bob") as bob:
                register(bob)
                etag = publish(bob, pidf("bob", "open", "busy")).header("SIP-ETag")
                sa, n = watch(alice, "bob")
                self.assertEqual(activity_of(n.body), "busy")
                sc, n = watch(carol, "bob")

                r = p.ctl("presence", "block", "bob", "alice", json=True)
                self.assertEqual(r.returncode, 0, r)
                self.assertTrue(r.stdout["applied_live"], r)
                n = sa.notify(timeout=3)
                state, params = sub_state(n)
                self.assertEqual(state, "terminated", n)
                self.assertEqual(params.get("reason"), "rejected", n)
                self.assertEqual(n.body, b"")

                # a new subscription of alice learns nothing
                r = subscribe(alice, "bob")
                if 200 <= r.status < 300:
                    s2 = Subscription(alice, r)
                    n = s2.notify()
                    self.assertIn(sub_state(n)[0], ("terminated", "pending"), n)
                    self.assertEqual(n.body, b"")
                else:
                    self.assertEqual(r.status, 403, r)

                # carol still hears of bob
                publish(bob, pidf("bob", "open", "away"), etag=etag)
                self.assertEqual(activity_of(sc.notify().body), "away")
                self.assertIsNone(sa.no_notify(0.5))

                # unblock: a new subscription of alice works again
                self.assertEqual(p.ctl("presence", "unset", "bob", "alice").returncode, 0)
                s3, n = watch(alice, "bob")
                self.assertEqual(sub_state(n)[0], "active")
                self.assertEqual(activity_of(n.body), "away")

    def test_policy_change_on_reload(self):
        """Switching presence.policy to contacts (reload) cuts off watchers
        not on the allow list."""
        with server("pres-reload") as p:
            p.start()
            with p.client("alice") as alice, p.client("carol") as carol, \
                    p.client("bob") as bob:
                register(bob)
                publish(bob, pidf("bob", "open", "busy"))
                self.assertEqual(p.ctl("presence", "allow", "bob", "carol").returncode, 0)
                sa, _ = watch(alice, "bob")
                sc, _ = watch(carol, "bob")
                p.config_set("presence.policy", "contacts")
                p.reload()
                n = sa.notify(timeout=5)
                self.assertEqual(sub_state(n)[0], "terminated", n)
                self.assertEqual(sub_state(n)[1].get("reason"), "rejected")
                self.assertIsNone(sc.no_notify(0.7), "carol is allowed: nothing changes")

    def test_ctl_presence_usage(self):
        with server("pres-ctl") as p:
            self.assertEqual(p.ctl("presence", "allow", "bob").returncode, 2)
            self.assertEqual(p.ctl("presence", "frob", "bob", "alice").returncode, 2)
            self.assertEqual(p.ctl("presence", "allow", "nosuch", "alice").returncode, 1)
            self.assertEqual(p.ctl("presence", "allow", "bob", "a b@c").returncode, 2)
            r = p.ctl("presence", "allow", "bob", "mallory@other.test", json=True)
            self.assertEqual(r.returncode, 0, r)
            self.assertFalse(r.stdout["applied_live"])
            r = p.ctl("presence", "list", "bob")
            self.assertEqual(r.returncode, 0, r)
            self.assertIn("mallory@other.test", r.stdout)


class TestFederatedWatcher(unittest.TestCase):
    """A watcher of another domain, reaching us through a federated partner
    (a second Parley for partner.test, mutual TLS both ways)."""

    def _pair(self, **config):
        cfg = dict(BASE)
        cfg.update(config)
        a = Parley(name="pres-fedA", domain=DOMAIN, config=cfg, users=USERS)
        b = Parley(name="pres-fedB", domain="partner.test", config=BASE,
                   users={"carol": "carol-pw"})
        for x, y in ((a, b), (b, a)):
            r = x.ctl("trust", "add", y.ca_file)
            self.assertEqual(r.returncode, 0, r)
            r = x.ctl("partner", "add", y.domain, "--server", f"sip.{y.domain}:{y.mtls_port}",
                      "--address", "127.0.0.1")
            self.assertEqual(r.returncode, 0, r)
        return a, b

    def test_domain_policy_never_covers_other_domains(self):
        """Under the domain policy carol@partner.test is pending and learns
        nothing; `presence allow bob carol@partner.test` lets her see bob;
        `block` cuts her off."""
        a, b = self._pair()
        with a, b:
            a.start()
            b.start()
            with a.client("bob") as bob, b.client("carol") as carol:
                register(bob)
                register(carol)
                etag = publish(bob, pidf("bob", "open", "busy")).header("SIP-ETag")
                r = subscribe(carol, "bob")
                self.assertTrue(200 <= r.status < 300, r)
                s = Subscription(carol, r)
                n = s.notify()
                self.assertEqual(sub_state(n)[0], "pending", n)
                self.assertEqual(n.body, b"")
                a.wait_log("presence.subscribed", presentity="bob",
                           watcher="carol@partner.test", state="pending")
                etag = publish(bob, pidf("bob", "open", "away"), etag=etag).header("SIP-ETag")
                late = s.no_notify(1.0)
                self.assertTrue(late is None or late.body == b"", late)

                r = a.ctl("presence", "allow", "bob", "carol@partner.test")
                self.assertEqual(r.returncode, 0, r)
                n = s.notify(timeout=3)
                self.assertEqual(sub_state(n)[0], "active", n)
                self.assertEqual(activity_of(n.body), "away")

                r = a.ctl("presence", "block", "bob", "carol@partner.test")
                self.assertEqual(r.returncode, 0, r)
                n = s.notify(timeout=3)
                state, params = sub_state(n)
                self.assertEqual(state, "terminated", n)
                self.assertEqual(params.get("reason"), "rejected", n)


class TestBounds(unittest.TestCase):
    def test_max_per_user_watchers_503(self):
        with server("pres-bound", **{"presence.max_per_user": 2}) as p:
            p.start()
            with p.client("alice") as alice, p.client("carol") as carol, \
                    p.client("dave") as dave:
                s1, _ = watch(alice, "bob")
                s2, _ = watch(carol, "bob")
                r = subscribe(dave, "bob")
                self.assertEqual(r.status, 503, r)
                self.assertIsNone(dave.conn.try_recv(T(0.5)))
                # other presentities are not affected
                watch(dave, "carol")
                # a watcher leaving frees its place
                alice.close()
                p.wait_log("presence.subscription_ended", presentity="bob",
                           watcher=f"alice@{DOMAIN}")
                s3, n = watch(dave, "bob")
                self.assertEqual(sub_state(n)[0], "active")

    def test_max_per_watcher_503(self):
        # one watcher cannot take the table: its third subscription is
        # refused, another watcher's first is not
        with server("pres-watcher", **{"presence.max_per_watcher": 2}) as p:
            p.start()
            with p.client("alice") as alice, p.client("carol") as carol:
                watch(alice, "bob")
                s2, _ = watch(alice, "carol")
                r = subscribe(alice, "dave")
                self.assertEqual(r.status, 503, r)
                self.assertEqual(r.header("Retry-After"), "60", r)
                p.wait_log("presence.subscription_refused", watcher=f"alice@{DOMAIN}",
                           presentity="dave", reason="presence.max_per_watcher")
                watch(carol, "dave")
                # an unsubscribe frees a place
                r = s2.resubscribe(0)
                self.assertEqual(r.status, 200, r)
                s2.notify()
                p.wait_log("presence.subscription_ended", presentity="carol",
                           watcher=f"alice@{DOMAIN}")
                watch(alice, "dave")

    def test_max_subscriptions_in_total_503(self):
        with server("pres-total", **{"presence.max_subscriptions": 3}) as p:
            p.start()
            with p.client("alice") as alice, p.client("carol") as carol:
                watch(alice, "bob")
                watch(alice, "carol")
                watch(carol, "bob")
                r = subscribe(carol, "alice")
                self.assertEqual(r.status, 503, r)

    def test_max_per_user_publications(self):
        with server("pres-pubbound", **{"presence.max_per_user": 2}) as p:
            p.start()
            # one publication per device: three devices of bob's
            with p.client("bob", name="bob-1") as b1, p.client("bob", name="bob-2") as b2, \
                    p.client("bob", name="bob-3") as b3, p.client("alice") as alice:
                for b in (b1, b2, b3):
                    register(b)
                self.assertEqual(publish(b1, pidf("bob", "open", "away", tuple_id="x1")).status, 200)
                self.assertEqual(publish(b2, pidf("bob", "open", "busy", tuple_id="x2")).status, 200)
                r = publish(b3, pidf("bob", "open", None, tuple_id="x3"))
                self.assertIn(r.status, (403, 503), r)
                s, n = watch(alice, "bob")
                self.assertIn('id="x2"', n.body.decode())


if __name__ == "__main__":
    unittest.main(verbosity=2)
