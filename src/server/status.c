#include "server/status.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proxy/federation.h"
#include "registrar/throttle.h"
#include "crypto/fips.h"
#include "server/runtime.h"
#include "web/web.h"
#include "tls/cert.h"
#include "tls/context.h"

#ifndef PARLEY_VERSION
#define PARLEY_VERSION "unknown"
#endif

static void status_time(int64_t t, char *buf, size_t cap)
{
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *status_certificate(const struct config *cfg)
{
    struct cert_summary s;
    char err[256];
    char when[32];

    if (cert_summarize_file(cfg->tls.certificate, &s, err, sizeof(err)) != 0)
        return json_pack("{s:s, s:s}", "file", cfg->tls.certificate, "error", err);
    status_time(s.not_after, when, sizeof(when));
    long long days = (s.not_after - (int64_t)time(NULL)) / 86400;
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s}", "file", cfg->tls.certificate, "subject",
                     s.subject, "issuer", s.issuer, "names", s.sans, "not_after", when, "days_left",
                     (json_int_t)days, "key", s.key_type);
}

static json_t *status_cidrs(const struct config *cfg)
{
    json_t *a = json_array();
    char buf[NETADDR_STRLEN];
    for (size_t i = 0; i < cfg->sip.internal_networks.n; i++)
        json_array_append_new(a, json_string(cidr_format(&cfg->sip.internal_networks.v[i], buf)));
    return a;
}

static json_t *status_listeners(const struct config *cfg, const struct tls_context_facts *facts,
                                const char *tls_error)
{
    json_t *arr = json_array();
    char a[NETADDR_STRLEN];

    enum tls_client_certs client_policy = TLS_CLIENT_CERTS_NONE;
    tls_client_certs_parse(cfg->sip.client_certificates, &client_policy);
    for (size_t k = 0; k < 2; k++) {
        bool mtls = k == 1;
        const struct config_addr_list *addrs = mtls ? &cfg->sip.mtls_listen : &cfg->sip.tls_listen;
        enum tls_client_certs policy = mtls ? TLS_CLIENT_CERTS_REQUIRE : client_policy;
        for (size_t i = 0; i < addrs->n; i++) {
            json_t *l = json_pack(
                "{s:s, s:s, s:s, s:s}", "address", netaddr_format(&addrs->v[i], a), "transport",
                mtls ? "mtls" : "tls", "key", mtls ? "sip.mtls_listen" : "sip.tls_listen",
                "client_cert_policy", tls_client_certs_name(policy));
            if (facts) {
                json_object_set_new(l, "tls_versions", json_string(facts->versions));
                json_object_set_new(l, "tls_suites",
                                    json_string(facts->suites ? facts->suites : ""));
                json_object_set_new(l, "tls_groups", json_string(facts->groups));
                json_object_set_new(
                    l, "tls_sigalgs",
                    json_string(*facts->sigalgs ? facts->sigalgs : "OpenSSL's defaults"));
                json_object_set_new(l, "revocation", json_string(facts->crl_policy));
            } else {
                json_object_set_new(l, "tls_error", json_string(tls_error));
            }
            json_object_set_new(l, "client_certificates",
                                json_string(policy == TLS_CLIENT_CERTS_REQUIRE
                                                ? "required, verified against "
                                                  "the trusted CAs and CRLs"
                                            : policy == TLS_CLIENT_CERTS_REQUEST
                                                ? "requested; verified when presented"
                                                : "none asked (no CertificateRequest)"));
            json_t *carries = json_array();
            if (!mtls)
                json_array_append_new(carries,
                                      json_string("client signalling, IM and presence (TLS)"));
            if (mtls || policy != TLS_CLIENT_CERTS_NONE)
                json_array_append_new(carries,
                                      json_string("server-to-server signalling (mutual TLS)"));
            json_object_set_new(l, "carries", carries);
            json_object_set_new(l, "certificate", status_certificate(cfg));
            json_array_append_new(arr, l);
        }
    }
    if (cfg->relay.enabled) {
        for (size_t i = 0; i < cfg->relay.listen.n; i++) {
            json_t *l =
                json_pack("{s:s, s:s, s:o}", "address", netaddr_format(&cfg->relay.listen.v[i], a),
                          "transport", "turn (udp, tcp)", "carries",
                          json_pack("[s]", "relayed media (SRTP the relay cannot "
                                           "decrypt), with time-limited credentials"));
            json_array_append_new(arr, l);
        }
        for (size_t i = 0; i < cfg->relay.tls_listen.n; i++) {
            json_t *l =
                json_pack("{s:s, s:s}", "address", netaddr_format(&cfg->relay.tls_listen.v[i], a),
                          "transport", "turn (tls)");
            if (facts) {
                json_object_set_new(l, "tls_versions", json_string(facts->versions));
                json_object_set_new(l, "tls_suites",
                                    json_string(facts->suites ? facts->suites : ""));
                json_object_set_new(l, "tls_groups", json_string(facts->groups));
                json_object_set_new(
                    l, "tls_sigalgs",
                    json_string(*facts->sigalgs ? facts->sigalgs : "OpenSSL's defaults"));
            }
            json_object_set_new(l, "carries",
                                json_pack("[s]", "relayed media over TLS, with time-limited "
                                                 "credentials"));
            json_object_set_new(l, "certificate", status_certificate(cfg));
            json_array_append_new(arr, l);
        }
    }
    for (size_t i = 0; i < cfg->https.listen.n; i++) {
        json_t *l =
            json_pack("{s:s, s:s, s:s, s:s}", "address", netaddr_format(&cfg->https.listen.v[i], a),
                      "transport", "https", "key", "https.listen", "client_certificates",
                      "none asked (no CertificateRequest)");
        if (facts) {
            json_object_set_new(l, "tls_versions", json_string(facts->versions));
            json_object_set_new(l, "tls_suites", json_string(facts->suites ? facts->suites : ""));
            json_object_set_new(l, "tls_groups", json_string(facts->groups));
        } else {
            json_object_set_new(l, "tls_error", json_string(tls_error));
        }
        json_object_set_new(l, "carries",
                            json_pack("[s, s, s, s, s, s]", "web tickets (POST /auth/ticket)",
                                      "address book (CardDAV, /dav/)", "group expansion (/groups/)",
                                      "relay credentials (/turn/credentials)",
                                      "meeting content (/content/)",
                                      "metrics (/metrics: https.metrics_networks, the metrics "
                                      "token, administrators)"));
        json_object_set_new(l, "refuses",
                            json_pack("[s]", "plain HTTP (no answer: TLS only, with HSTS)"));
        json_object_set_new(l, "certificate", status_certificate(cfg));
        json_array_append_new(arr, l);
    }
    for (size_t i = 0; i < cfg->sip.trunk_tcp_listen.n; i++) {
        json_t *l = json_pack(
            "{s:s, s:s, s:o, s:o, s:o}", "address",
            netaddr_format(&cfg->sip.trunk_tcp_listen.v[i], a), "transport", "trunk-tcp",
            "allowed_sources",
            json_pack("[s]", "the addresses of TCP trunks (parleyctl trunk list)"), "carries",
            json_pack("[s]", "calls from PSTN gateways of TCP trunks (unencrypted; plain RTP)"),
            "refuses",
            json_pack("[s, s, s]", "every other source", "anything but calls to users' numbers",
                      "SDES media keys"));
        json_array_append_new(arr, l);
    }
    for (size_t i = 0; i < cfg->sip.tcp_listen.n; i++) {
        json_t *l = json_pack("{s:s, s:s, s:o, s:o, s:o}", "address",
                              netaddr_format(&cfg->sip.tcp_listen.v[i], a), "transport", "tcp",
                              "allowed_sources", status_cidrs(cfg), "carries",
                              json_pack("[s]", "client signalling, IM and presence from the "
                                               "internal networks (unencrypted)"),
                              "refuses",
                              json_pack("[s, s, s]", "sources outside the internal networks",
                                        "server-to-server traffic", "SDES media keys"));
        json_array_append_new(arr, l);
    }
    return arr;
}

/* The protection table's web rows (https.*). */
static void status_web_rows(const struct config *cfg, json_t *rows)
{
    char buf[512];
    bool on = cfg->https.listen.n > 0;
    const char *off = "no https.listen: not served on this node";
    snprintf(buf, sizeof(buf),
             "HTTPS only (TLS %s+, HSTS) on https.listen; tickets are JWTs signed ES256 with "
             "STATE_DIR/https-ticket.keys (0600; parleyctl https rotate-key), bound to the "
             "account (its uid) and domain, valid %lld s and ended by a change to the account; "
             "issued for a user's password (Basic or Digest), failed logins throttled with SIP's",
             cfg->tls.min_version, cfg->https.ticket_lifetime);
    json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "traffic", "web tickets", "protection",
                                          "HTTPS, authenticated", "enforced", on ? buf : off));
    snprintf(buf, sizeof(buf),
             "CardDAV over HTTPS only (/dav/addressbooks/global/), read-only, for users of %s "
             "with their password (Basic or Digest) or a web ticket; delta sync (RFC 6578)",
             cfg->server.domain);
    json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "traffic", "address-book download",
                                          "protection", "HTTPS, authenticated", "enforced",
                                          on ? buf : off));
    json_array_append_new(
        rows, json_pack("{s:s, s:s, s:s}", "traffic", "distribution-group expansion", "protection",
                        "HTTPS, authenticated", "enforced",
                        on ? "GET /groups/NAME/members over HTTPS only, for web-ticket holders "
                             "of the domain; nested groups expanded once each, cycle-safe"
                           : off));
    snprintf(buf, sizeof(buf),
             "HTTPS only, web-ticket holders the meeting allows (organizer writes); stored "
             "encrypted: AES-256-GCM in 64 KiB authenticated segments, a key per file wrapped "
             "by STATE_DIR/content.key (0600); at most %lld bytes a file, %lld a meeting",
             cfg->https.content_max_file, cfg->https.content_quota_meeting);
    json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "traffic", "conference content",
                                          "protection", "HTTPS; encrypted at rest", "enforced",
                                          on ? buf : off));
}

/* The cryptographic mode (security.fips): the running daemon's context,
 * or, without one, what the configuration resolves to on this machine. */
static json_t *status_fips(const struct config *cfg, const struct runtime *rt)
{
    if (rt && rt->fips) {
        const struct fips_ctx *f = rt->fips;
        json_t *o = json_pack("{s:s, s:s, s:b, s:s, s:i}", "mode", fips_mode_name(fips_mode(f)),
                              "description", fips_describe(f), "validated_module",
                              fips_validated_module(f), "self_test", "passed", "self_tests",
                              fips_self_tests(f) + 2 /* the server's SRTP and STUN ones */);
        if (fips_provider(f))
            json_object_set_new(o, "provider", json_string(fips_provider(f)));
        return o;
    }
    enum fips_setting setting = FIPS_SETTING_AUTO;
    (void)fips_setting_parse(cfg->security.fips, &setting);
    enum fips_mode mode = fips_resolve(setting, cfg->security.fips_enabled_file, NULL);
    char d[128];
    snprintf(d, sizeof(d), "%s (as configured; checked when parleyd starts)",
             mode == FIPS_MODE_APPROVED ? "approved-only (no validated module)"
                                        : fips_mode_name(mode));
    return json_pack("{s:s, s:s, s:b, s:s}", "mode", fips_mode_name(mode), "description", d,
                     "validated_module", mode == FIPS_MODE_ON, "self_test", "not run");
}

/* The protection table's FIPS row: the mode and what it narrows. */
static void status_fips_row(json_t *fips, json_t *rows)
{
    char buf[640];
    const char *desc = json_string_value(json_object_get(fips, "description"));
    bool restricted = strcmp(json_string_value(json_object_get(fips, "mode")), "off") != 0;

    if (restricted)
        snprintf(buf, sizeof(buf),
                 "%s; narrows TLS to 1.2/1.3 AES-GCM suites over P-256/P-384, SIP and HTTP digest "
                 "to SHA-256, TURN long-term credentials to PASSWORD-ALGORITHM SHA-256, keys made "
                 "to EC P-256/P-384 or RSA >= 2048; secrets from the context's DRBG",
                 desc);
    else
        snprintf(buf, sizeof(buf), "%s; no restriction beyond Parley's defaults", desc);
    json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "traffic", "FIPS 140", "protection",
                                          "FIPS-approved algorithms only", "enforced", buf));
}

/* The TLS rows under a restricted FIPS mode say what the context narrowed
 * to (the groups; the suites are in each listener's row). */
static void status_tls_fips(const struct tls_context_facts *facts, char *buf, size_t cap)
{
    if (!facts || !facts->fips_restricted)
        return;
    size_t len = strlen(buf);
    snprintf(buf + len, cap - len, "; FIPS-approved suites and groups only (AES-GCM over %s)",
             facts->groups);
}

static json_t *status_protection(const struct config *cfg, const struct tls_context_facts *facts)
{
    json_t *rows = json_array();
    char buf[512];

    char where[160] = "";
    size_t at = 0;
    for (size_t i = 0; i < cfg->sip.mtls_listen.n && at + NETADDR_STRLEN + 3 < sizeof(where); i++) {
        char a[NETADDR_STRLEN];
        at += (size_t)snprintf(where + at, sizeof(where) - at, "%s%s", i ? ", " : "",
                               netaddr_format(&cfg->sip.mtls_listen.v[i], a));
    }
    if (cfg->sip.mtls_listen.n)
        snprintf(buf, sizeof(buf),
                 "on sip.mtls_listen (%s): client certificates required, verified against the "
                 "trusted CAs, the peer's name checked against its domain; revocation %s; "
                 "outgoing links verify the partner's certificate and name",
                 where,
                 cfg->tls.require_crl ? "required for every issuer"
                                      : "checked where the issuer has a CRL");
    else
        snprintf(buf, sizeof(buf),
                 "no sip.mtls_listen: partners can reach this node only where "
                 "sip.client_certificates asks for certificates (now: %s)",
                 cfg->sip.client_certificates);
    status_tls_fips(facts, buf, sizeof(buf));
    json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "traffic", "server <-> server",
                                          "protection", "mutual TLS", "enforced", buf));
    if (cfg->sip.tcp_listen.n)
        snprintf(buf, sizeof(buf),
                 "TLS %s+ on %zu listener(s); plain TCP on %zu listener(s), "
                 "internal networks only",
                 cfg->tls.min_version, cfg->sip.tls_listen.n, cfg->sip.tcp_listen.n);
    else
        snprintf(buf, sizeof(buf), "TLS %s+ on %zu listener(s); plain TCP off",
                 cfg->tls.min_version, cfg->sip.tls_listen.n);
    status_tls_fips(facts, buf, sizeof(buf));
    json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "traffic",
                                          "client <-> server signalling, IM and presence",
                                          "protection", "TLS 1.2+", "enforced", buf));
    struct strbuf suites = STRBUF_INIT;
    for (size_t i = 0; i < cfg->media.srtp_suites.n; i++) {
        strbuf_puts(&suites, i ? ", " : "");
        strbuf_puts(&suites, cfg->media.srtp_suites.v[i]);
    }
    snprintf(buf, sizeof(buf),
             "media.encryption_level %s on every offer and answer; SDES suites %s; SDES keys "
             "only over TLS hops",
             cfg->media.encryption_level, strbuf_cstr(&suites));
    strbuf_free(&suites);
    json_array_append_new(rows,
                          json_pack("{s:s, s:s, s:s, s:s}", "traffic",
                                    "audio, video and desktop-sharing media", "protection", "SRTP",
                                    "enforced", buf, "level", cfg->media.encryption_level));
    if (cfg->relay.enabled)
        snprintf(buf, sizeof(buf),
                 "HMAC credentials (relay.secrets) lasting at most %lld s, issued to authenticated "
                 "users over TLS (SERVICE), over HTTPS to web-ticket holders (GET "
                 "/turn/credentials) and by parleyctl; the relay verifies them without "
                 "shared state and forwards media it cannot decrypt",
                 cfg->relay.max_lifetime);
    else
        snprintf(buf, sizeof(buf), "no relay on this node (relay.enabled = false)");
    json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "traffic", "media relay credentials",
                                          "protection", "issued only over TLS-protected channels",
                                          "enforced", buf));
    if (strcmp(cfg->media.anchor, "always") == 0)
        snprintf(buf, sizeof(buf),
                 "media.anchor always: calls between users pass through the media engine "
                 "(%s, ports %s); each leg SRTP with a key Parley generated for it (or plain "
                 "where the level allows), every packet authenticated on its leg, no key "
                 "crosses legs; a leg follows its party only where packets authenticate",
                 *cfg->media.public_address ? cfg->media.public_address
                 : *cfg->media.address      ? cfg->media.address
                                            : "the first sip.tls_listen address",
                 cfg->media.port_range);
    else
        snprintf(buf, sizeof(buf),
                 "media.anchor never: media flows between the clients, each with the other's "
                 "SDES key (carried over TLS hops only)");
    json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "traffic", "anchored media",
                                          "protection", "SRTP re-keyed per leg", "enforced", buf));
    snprintf(buf, sizeof(buf),
             "TLS trunks: mutual TLS both ways (the gateway's certificate chains to a trusted CA "
             "and names it, RFC 5922; Parley presents its own); TCP trunks: only from the "
             "trunk's address on sip.trunk_tcp_listen (%s); a gateway is trusted for the "
             "caller's number, never for a user's identity",
             cfg->sip.trunk_tcp_listen.n ? "open" : "off");
    json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "traffic",
                                          "mediation: server <-> PSTN gateway signalling",
                                          "protection", "TCP or mutual TLS", "enforced", buf));
    snprintf(buf, sizeof(buf),
             "every trunk call anchored: the user's leg under media.encryption_level %s with "
             "Parley's own key; the gateway's leg by the trunk's srtp_mode (required: SRTP "
             "only; optional: RTP/AVP offering a=crypto, RFC 8643; not_supported: plain RTP, "
             "the only mode a TCP trunk may have)",
             cfg->media.encryption_level);
    json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "traffic",
                                          "mediation: media toward PSTN gateways", "protection",
                                          "SRTP when the gateway supports it", "enforced", buf));
    status_web_rows(cfg, rows);
    return rows;
}

static bool status_one_partner(const struct federation_partner_info *info, void *arg)
{
    json_t *arr = arg;
    json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:s}", "domain", info->domain, "server",
                          info->server[0] ? info->server : "(DNS SRV)", "port",
                          info->port ? info->port : 5061, "state", info->state, "last_error",
                          info->last_error);
    if (info->have_cert) {
        char when[32];
        status_time(info->cert.not_after, when, sizeof(when));
        json_object_set_new(o, "certificate",
                            json_pack("{s:s, s:s, s:s, s:s}", "subject", info->cert.subject,
                                      "issuer", info->cert.issuer, "names", info->cert.sans,
                                      "not_after", when));
    }
    json_array_append_new(arr, o);
    return true;
}

/* What the SIP core holds and what it answered without holding anything. */
static json_t *status_sip(const struct runtime *rt)
{
    struct proxy_stats ps;
    memset(&ps, 0, sizeof(ps));
    if (rt->proxy)
        proxy_stats(rt->proxy, &ps);
    const struct config *cfg = rt->cfg;
    return json_pack("{s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:I, s:I, s:I, s:I}", "transactions",
                     "held", (json_int_t)ps.held_transactions, "server",
                     (json_int_t)ps.server_transactions, "client",
                     (json_int_t)ps.client_transactions, "max_per_connection",
                     (json_int_t)cfg->limits.transactions_per_connection, "max_per_source",
                     (json_int_t)cfg->limits.transactions_per_source, "max_total",
                     (json_int_t)cfg->limits.transactions_total, "stateless_answers",
                     (json_int_t)ps.stateless_answers, "acks_absorbed",
                     (json_int_t)ps.acks_absorbed, "acks_dropped", (json_int_t)ps.acks_dropped,
                     "overload_refused", (json_int_t)ps.overload_refused);
}

static json_t *status_authentication(const struct runtime *rt)
{
    struct throttle_stats ts;
    memset(&ts, 0, sizeof(ts));
    if (rt->throttle)
        throttle_stats(rt->throttle, &ts);
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "throttled_refusals",
                     (json_int_t)ts.refused, "blocks", (json_int_t)ts.blocks, "pairs_blocked",
                     (json_int_t)ts.pairs_blocked, "sources_blocked",
                     (json_int_t)ts.sources_blocked, "users_blocked", (json_int_t)ts.users_blocked,
                     "records", (json_int_t)ts.records, "trusted", (json_int_t)ts.trusted);
}

json_t *status_build(const struct config *cfg, SSL_CTX *ctx, const struct fips_ctx *fc,
                     const struct runtime *rt)
{
    struct tls_context_facts facts;
    bool have_facts = false;
    char tls_error[512] = "";
    SSL_CTX *own = NULL;

    if (!ctx) {
        if (tls_init() == 0 && tls_context_new(cfg, fc, &own, tls_error, sizeof(tls_error)) == 0)
            ctx = own;
    }
    if (ctx) {
        tls_context_facts(ctx, cfg, &facts);
        have_facts = true;
    }

    json_t *doc = json_object();
    json_t *daemon = json_object();
    json_object_set_new(daemon, "running", json_boolean(rt != NULL));
    json_object_set_new(daemon, "version", json_string(PARLEY_VERSION));
    json_object_set_new(daemon, "config", json_string(cfg->path));
    if (rt) {
        char when[32];
        status_time(rt->started, when, sizeof(when));
        json_object_set_new(daemon, "pid", json_integer(getpid()));
        json_object_set_new(daemon, "started", json_string(when));
        json_object_set_new(daemon, "uptime_s", json_integer(time(NULL) - rt->started));
        json_object_set_new(daemon, "workers", json_integer(worker_pool_size(rt->workers)));
        json_object_set_new(daemon, "connections", json_integer((json_int_t)rt->nconns));
        json_object_set_new(daemon, "connections_evicted",
                            json_integer((json_int_t)rt->conns_evicted));
        json_object_set_new(
            daemon, "registrations",
            json_integer(rt->registrar ? (json_int_t)registrar_count(rt->registrar) : 0));
        struct proxy_stats ps = {0};
        if (rt->proxy)
            proxy_stats(rt->proxy, &ps);
        json_object_set_new(daemon, "dialogs", json_integer((json_int_t)ps.dialogs));
        json_object_set_new(daemon, "sip", status_sip(rt));
        json_object_set_new(daemon, "authentication", status_authentication(rt));
        if (rt->web)
            json_object_set_new(daemon, "https", web_status(rt->web));
    }
    json_object_set_new(doc, "ok", json_true());
    json_object_set_new(doc, "daemon", daemon);
    json_object_set_new(doc, "domain", json_string(cfg->server.domain));
    json_object_set_new(doc, "listeners",
                        status_listeners(cfg, have_facts ? &facts : NULL, tls_error));
    json_t *fips = status_fips(cfg, rt);
    json_t *rows = status_protection(cfg, have_facts ? &facts : NULL);
    status_fips_row(fips, rows);
    json_object_set_new(doc, "fips", fips);
    json_object_set_new(doc, "protection", rows);
    if (rt && rt->proxy) {
        json_t *partners = json_array();
        proxy_federation_foreach(rt->proxy, status_one_partner, partners);
        json_object_set_new(doc, "partners", partners);
        json_object_set_new(doc, "trunks", proxy_trunks_status(rt->proxy));
    }

    if (have_facts)
        tls_context_facts_free(&facts);
    SSL_CTX_free(own);
    return doc;
}

static bool status_one_binding(const struct binding *b, void *arg)
{
    json_t *arr = arg;
    char src[NETADDR_STRLEN], when[32];
    status_time(b->expires_at, when, sizeof(when));
    json_array_append_new(arr,
                          json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "user", b->user,
                                    "contact", b->contact, "transport", b->transport, "source",
                                    netaddr_format(&b->source, src), "tls_version", b->tls_version,
                                    "user_agent", b->user_agent, "expires", when, "expires_in_s",
                                    (json_int_t)(b->expires_at - (int64_t)time(NULL))));
    return true;
}

json_t *status_registrations(const struct runtime *rt)
{
    json_t *arr = json_array();
    if (rt->registrar)
        registrar_foreach(rt->registrar, status_one_binding, arr);
    return json_pack("{s:b, s:o}", "ok", 1, "registrations", arr);
}
