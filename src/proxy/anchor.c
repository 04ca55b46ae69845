/*
 * proxy/anchor — anchored media: offers and answers rewritten so that the
 * media of every call between users passes through the media engine (see
 * anchor.h).
 *
 * Per media section and leg Parley decides the protection: toward the
 * party that answers, SRTP with Parley's key whenever the encryption level
 * allows it and the hop is TLS (keys never cross a plain hop); toward the
 * party that offered, what it offered. The suite of a leg is the one its
 * party uses: the first allowed suite of the offer (for both legs when the
 * offerer offered SRTP, else the first allowed suite of the policy).
 */
#include "proxy/anchor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <sys/socket.h>

#include "anchor/anchor.h"
#include "core/log.h"
#include "media/sdp.h"
#include "proxy/media.h"
#include "proxy/state.h"

#define ANCHOR_SECTIONS_MAX 8

struct anchor_section {
    unsigned index; /* of the media section in the SDP */
    uint64_t stream;
    bool prot_set[2];
    enum anchor_protection prot[2];
    enum rtp_srtp_suite suite[2];
    enum sdp_proto offer_proto; /* the last offer's, for the answer toward its maker */
    unsigned long offer_tag;    /* its a=crypto chosen: the answer toward it uses the tag */
    bool offer_mux;
    bool have_remote[2];
    struct anchor_remote remote[2]; /* the parties, as they last described themselves */
    bool opportunistic[2];          /* SRTP offered as RTP/AVP with a=crypto (RFC 8643) */
};

struct proxy_anchor_set {
    /* whom its streams are counted against (media.max_streams_per_user):
     * the call's caller, fixed by the first offer */
    char call_id[128];
    char user[PROXY_ADDR_MAX];
    size_t n;
    int offerer; /* leg of the last offer */
    /* how each leg is protected: by the media policy (a user's leg), or
     * by a trunk's srtp_mode (a gateway's leg) */
    enum proxy_anchor_leg mode[2];
    /* the connection each party last described itself over: an answer
     * carrying Parley's key goes back there, and only if it is TLS */
    uint64_t conn[2];
    struct anchor_section s[ANCHOR_SECTIONS_MAX];
};

int proxy_anchor_new(struct proxy_anchor_set **out, const char *call_id, const char *user)
{
    struct proxy_anchor_set *set = calloc(1, sizeof(*set));
    if (!set)
        return -ENOMEM;
    snprintf(set->call_id, sizeof(set->call_id), "%s", call_id);
    snprintf(set->user, sizeof(set->user), "%s", user);
    *out = set;
    return 0;
}

void proxy_anchor_set_leg(struct proxy_anchor_set *set, int leg, enum proxy_anchor_leg mode)
{
    if (set && (leg == 0 || leg == 1))
        set->mode[leg] = mode;
}

size_t proxy_anchor_describe_leg(const struct proxy_anchor_set *set, int leg, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; set && (leg == 0 || leg == 1) && i < set->n && n + 1 < cap; i++) {
        const struct anchor_section *s = &set->s[i];
        if (!s->prot_set[leg])
            continue;
        int w = snprintf(out + n, cap - n, "%s%s%s%s", n ? ", " : "",
                         s->prot[leg] == ANCHOR_SRTP ? "SRTP " : "RTP",
                         s->prot[leg] == ANCHOR_SRTP ? rtp_srtp_suite_name(s->suite[leg]) : "",
                         s->prot[leg] == ANCHOR_SRTP && s->opportunistic[leg] ? " (RFC 8643)" : "");
        if (w < 0 || (size_t)w >= cap - n)
            break;
        n += (size_t)w;
    }
    return n;
}

int proxy_anchor_reset_leg(struct proxy *p, struct proxy_anchor_set *set, int leg)
{
    if (!set || (leg != 0 && leg != 1))
        return 0;
    int rc = 0;
    for (size_t i = 0; i < set->n; i++) {
        struct anchor_section *s = &set->s[i];
        s->prot_set[leg] = false;
        s->opportunistic[leg] = false;
        s->have_remote[leg] = false;
        OPENSSL_cleanse(&s->remote[leg], sizeof(s->remote[leg]));
        /* Parley's key for the leg goes: its next party gets a new one */
        struct anchor_local l;
        if (anchor_leg_local(p->env.anchor, s->stream, leg, ANCHOR_PLAIN, s->suite[leg], &l) != 0)
            rc = -EIO;
        OPENSSL_cleanse(&l, sizeof(l));
    }
    set->conn[leg] = 0;
    return rc;
}

bool proxy_anchor_enabled(const struct proxy *p)
{
    return p->cfg.anchor_media && p->env.anchor;
}

bool proxy_anchor_has_stream(const struct proxy_anchor_set *set, uint64_t stream)
{
    for (size_t i = 0; set && i < set->n; i++)
        if (set->s[i].stream == stream)
            return true;
    return false;
}

char *proxy_anchor_figures(struct proxy *p, const struct proxy_anchor_set *set)
{
    if (!set)
        return NULL;
    json_t *sections = json_array();
    for (size_t i = 0; sections && i < set->n; i++) {
        json_t *legs = anchor_stream_legs(p->env.anchor, set->s[i].stream);
        if (legs)
            json_array_append_new(sections, json_pack("{s:I, s:o}", "section",
                                                      (json_int_t)set->s[i].index, "legs", legs));
    }
    char *text = json_array_size(sections) ? json_dumps(sections, JSON_COMPACT) : NULL;
    json_decref(sections);
    return text;
}

void proxy_anchor_release(struct proxy *p, struct proxy_anchor_set *set, const char *reason)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++)
        anchor_stream_end(p->env.anchor, set->s[i].stream, reason);
    OPENSSL_cleanse(set, sizeof(*set));
    free(set);
}

static bool anchor_proto_rtp(enum sdp_proto pr)
{
    return pr == SDP_PROTO_RTP_AVP || pr == SDP_PROTO_RTP_AVPF || pr == SDP_PROTO_RTP_SAVP ||
           pr == SDP_PROTO_RTP_SAVPF;
}

static bool anchor_proto_feedback(enum sdp_proto pr)
{
    return pr == SDP_PROTO_RTP_AVPF || pr == SDP_PROTO_RTP_SAVPF;
}

/* The suite of a leg whose party offered none: the policy's first. */
static bool anchor_default_suite(const struct proxy *p, enum rtp_srtp_suite *out)
{
    for (size_t i = 0; i < p->media.nsuites; i++)
        if (rtp_srtp_suite_parse(strview_cstr(p->media.suites[i]), out) == 0)
            return true;
    return false;
}

static bool anchor_suite_allowed(const struct proxy *p, struct strview name)
{
    for (size_t i = 0; i < p->media.nsuites; i++)
        if (strview_eq(name, p->media.suites[i]))
            return true;
    return false;
}

/* Where and how a party said it receives a section. */
static int anchor_read_party(const struct proxy *p, const struct sdp *sdp,
                             const struct sdp_media *m, struct anchor_remote *r, unsigned long *tag,
                             char *warning, size_t cap)
{
    memset(r, 0, sizeof(*r));
    const struct sdp_conn *c = sdp_media_conn(sdp, m);
    char host[NETADDR_STRLEN];
    if (!c || strview_copy(c->address, host, sizeof(host)) != 0 ||
        netaddr_parse_ip(host, (uint16_t)m->port, &r->rtp) != 0) {
        snprintf(warning, cap, "a media section without an IP address Parley can send to");
        return -EINVAL;
    }
    const char *refused = anchor_remote_refused(p->env.anchor, &r->rtp);
    if (refused) {
        snprintf(warning, cap, "media at %s cannot be anchored", refused);
        return -EINVAL;
    }
    r->rtcp = r->rtp;
    netaddr_set_port(&r->rtcp, (uint16_t)(m->port + 1));
    const struct sdp_attr *a = sdp_level_attr_find(sdp, &m->lv, "rtcp");
    if (a) {
        /* a=rtcp:PORT [IN IP4 ADDR] (RFC 3605) */
        unsigned port = 0;
        char addr[NETADDR_STRLEN] = "";
        char text[128];
        strview_copy(a->value, text, sizeof(text));
        if (sscanf(text, "%u IN IP%*c %45s", &port, addr) < 1 || port == 0 || port > 65535) {
            snprintf(warning, cap, "an a=rtcp attribute Parley cannot read");
            return -EINVAL;
        }
        if (!addr[0] || netaddr_parse_ip(addr, (uint16_t)port, &r->rtcp) != 0)
            netaddr_set_port(&r->rtcp, (uint16_t)port);
        if ((refused = anchor_remote_refused(p->env.anchor, &r->rtcp)) != NULL) {
            snprintf(warning, cap, "RTCP at %s cannot be anchored", refused);
            return -EINVAL;
        }
    }
    r->rtcp_mux = m->lv.rtcp_mux;
    enum sdp_direction dir = sdp_media_direction(sdp, m);
    char any[NETADDR_STRLEN];
    r->on_hold = dir == SDP_DIR_SENDONLY || dir == SDP_DIR_RECVONLY || dir == SDP_DIR_INACTIVE ||
                 strcmp(netaddr_format_ip(&r->rtp, any), "0.0.0.0") == 0;
    r->protection = ANCHOR_PLAIN;
    for (size_t i = 0; i < m->lv.ncrypto; i++) {
        const struct sdp_crypto *cr = sdp_level_crypto(sdp, &m->lv, i);
        enum rtp_srtp_suite suite;
        if (!anchor_suite_allowed(p, cr->suite) || rtp_srtp_suite_parse(cr->suite, &suite) != 0 ||
            cr->nkeys != 1 || cr->keys[0].has_mki || cr->unencrypted_srtp ||
            cr->unencrypted_srtcp || cr->unauthenticated_srtp || (cr->has_kdr && cr->kdr != 0))
            continue;
        if (rtp_srtp_inline_decode(cr->keys[0].key_salt, suite, r->key, r->salt) != 0)
            continue;
        r->protection = ANCHOR_SRTP;
        r->suite = suite;
        *tag = cr->tag;
        break;
    }
    if (sdp_proto_is_sdes(m->proto) && r->protection != ANCHOR_SRTP) {
        snprintf(warning, cap, "no SDES key of an allowed suite Parley can use");
        return -EINVAL;
    }
    return 0;
}

/* Attributes that describe a party's own transport: ICE candidates and
 * credentials, DTLS fingerprints and roles. Through the engine, they would
 * tell one party where the other is (or how to reach it around the
 * engine); none of them is true of Parley's side. */
static bool anchor_transport_attr(struct strview name)
{
    static const char *const names[] = {
        "candidate", "remote-candidates", "end-of-candidates",
        "ice-ufrag", "ice-pwd",           "ice-options",
        "ice-lite",  "ice-mismatch",      "fingerprint",
        "setup",     "connection",        "tls-id",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strview_eq_nocase(name, names[i]))
            return true;
    return false;
}

/* Attributes that name the party's user in a gateway's leg: a=ssrc
 * (its cname is often the user's SIP URI, RFC 5576), a=ssrc-group, a=msid,
 * a=tool. A gateway learns the caller's number and nothing else. */
static void anchor_remove_identity_attrs(struct sdp *sdp, const struct sdp_level *lv)
{
    /* a=extmap too: RFC 7941 puts the CNAME into RTP header extensions */
    static const char *const names[] = {"ssrc",          "ssrc-group", "msid",
                                        "msid-semantic", "tool",       "extmap"};
    for (size_t i = 0; i < lv->nattrs; i++) {
        const struct sdp_attr *a = sdp_level_attr(sdp, lv, i);
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
            if (strview_eq_nocase(a->name, names[k]))
                sdp_line_remove(sdp, a->line);
    }
}

static void anchor_remove_transport_attrs(struct sdp *sdp, const struct sdp_level *lv,
                                          bool rtcp_too)
{
    for (size_t i = 0; i < lv->nattrs; i++) {
        const struct sdp_attr *a = sdp_level_attr(sdp, lv, i);
        if (anchor_transport_attr(a->name) || (rtcp_too && strview_eq_nocase(a->name, "rtcp")))
            sdp_line_remove(sdp, a->line);
    }
}

/* Rewrites section m toward the party of a leg: Parley's address and
 * ports, proto, Parley's key (tag), no ICE candidates. */
static int anchor_write_section(struct sdp *sdp, const struct sdp_media *m,
                                const struct anchor_local *l, enum sdp_proto proto,
                                unsigned long tag)
{
    char addr[NETADDR_STRLEN], line[1024];
    netaddr_format_ip(&l->rtp, addr);
    const char *ipv = netaddr_family(&l->rtp) == AF_INET6 ? "IP6" : "IP4";
    int rc = 0;
    /* m=MEDIA PORT PROTO FORMATS */
    int n = snprintf(line, sizeof(line), "m=%.*s %u %s", (int)m->media.n, m->media.p,
                     (unsigned)netaddr_port(&l->rtp), sdp_proto_name(proto));
    for (size_t i = 0; i < m->nformats && n > 0 && (size_t)n < sizeof(line); i++)
        n += snprintf(line + n, sizeof(line) - (size_t)n, " %.*s", (int)m->formats[i].n,
                      m->formats[i].p);
    if (n < 0 || (size_t)n + 3 > sizeof(line))
        return -ENOSPC;
    memcpy(line + n, "\r\n", 3);
    rc = sdp_line_set(sdp, m->lv.line_first, strview_cstr(line));
    /* the section's own c= (the session's is rewritten by the caller) */
    if (rc == 0 && m->lv.conn.present) {
        snprintf(line, sizeof(line), "c=IN %s %s\r\n", ipv, addr);
        rc = sdp_line_set(sdp, m->lv.conn.line, strview_cstr(line));
    }
    size_t last = m->lv.line_end - 1;
    for (size_t i = 0; rc == 0 && i < m->lv.nattrs; i++) {
        const struct sdp_attr *a = sdp_level_attr(sdp, &m->lv, i);
        if (strview_eq_nocase(a->name, "rtcp")) {
            snprintf(line, sizeof(line), "a=rtcp:%u\r\n", (unsigned)netaddr_port(&l->rtcp));
            rc = sdp_line_set(sdp, a->line, strview_cstr(line));
        }
    }
    anchor_remove_transport_attrs(sdp, &m->lv, false);
    if (rc)
        return rc;
    sdp_level_remove_crypto(sdp, &m->lv);
    if (l->protection == ANCHOR_SRTP) {
        snprintf(line, sizeof(line), "a=crypto:%lu %s inline:%s\r\n", tag,
                 rtp_srtp_suite_name(l->suite), l->inline_key);
        rc = sdp_line_add_after(sdp, last, strview_cstr(line));
        OPENSSL_cleanse(line, sizeof(line));
    }
    return rc;
}

/* A section that carries no media (port 0) still names its party in its
 * own c=, a=rtcp and candidates: it names Parley instead, or nothing. */
static int anchor_hide_section(struct proxy *p, struct sdp *sdp, const struct sdp_media *m)
{
    anchor_remove_transport_attrs(sdp, &m->lv, true);
    if (!m->lv.conn.present)
        return 0;
    const struct netaddr *at = anchor_public_address(p->env.anchor);
    char addr[NETADDR_STRLEN], line[128];
    netaddr_format_ip(at, addr);
    snprintf(line, sizeof(line), "c=IN %s %s\r\n", netaddr_family(at) == AF_INET6 ? "IP6" : "IP4",
             addr);
    return sdp_line_set(sdp, m->lv.conn.line, strview_cstr(line));
}

/* Where the party's signalling came from (in_conn's peer), for the
 * engine's latching. (For a partner's user that is the partner's server,
 * which sends no media: its media is latched by the engine's other rule.) */
static void anchor_signal_ip(struct proxy *p, uint64_t in_conn, struct anchor_remote *r)
{
    const struct conn_info *ci = in_conn ? p->env.conn_info(p->env.arg, in_conn) : NULL;
    if (!ci)
        return;
    r->have_signal_ip = true;
    r->signal_ip = ci->peer;
}

static struct anchor_section *anchor_section_find(struct proxy_anchor_set *set, unsigned index)
{
    for (size_t i = 0; i < set->n; i++)
        if (set->s[i].index == index)
            return &set->s[i];
    return NULL;
}

static bool anchor_conn_tls(struct proxy *p, uint64_t conn)
{
    const struct conn_info *ci = conn ? p->env.conn_info(p->env.arg, conn) : NULL;
    return ci && ci->tls;
}

/* The body of m is sdp (rewritten): the session's c= too, when there is
 * one, names Parley. */
static int anchor_finish(struct proxy *p, struct sip_msg *m, struct sdp *sdp,
                         const struct sip_body_sdp *found, bool toward_gateway, char *warning,
                         size_t cap)
{
    const struct netaddr *at = anchor_public_address(p->env.anchor);
    char addr[NETADDR_STRLEN], line[512];
    netaddr_format_ip(at, addr);
    const char *ipv = netaddr_family(at) == AF_INET6 ? "IP6" : "IP4";
    /* the origin names Parley too: the parties learn nothing of each other's
     * addresses; session-level ICE attributes go with the candidates */
    for (size_t i = 0; i < sdp->nlines; i++) {
        if (sdp->lines[i].type != 'o')
            continue;
        /* toward a gateway the origin names no user either ("-", RFC 8866) */
        struct strview user = toward_gateway ? strview_cstr("-") : sdp->origin_user;
        snprintf(line, sizeof(line), "o=%.*s %.*s %.*s IN %s %s\r\n", (int)user.n, user.p,
                 (int)sdp->origin_sess_id.n, sdp->origin_sess_id.p, (int)sdp->origin_sess_version.n,
                 sdp->origin_sess_version.p, ipv, addr);
        if (sdp_line_set(sdp, i, strview_cstr(line)) != 0) {
            snprintf(warning, cap, "the session description could not be rewritten");
            return 500;
        }
        break;
    }
    anchor_remove_transport_attrs(sdp, &sdp->session, false);
    if (toward_gateway) {
        anchor_remove_identity_attrs(sdp, &sdp->session);
        /* the session's name, information, URI, e-mail and phone (RFC 8866
         * §5.3-5.6) are the user's words about themself: none of them */
        for (size_t i = 0; i < sdp->nlines; i++) {
            char t = sdp->lines[i].type;
            if (t == 'i' || t == 'u' || t == 'e' || t == 'p')
                sdp_line_remove(sdp, i);
            else if (t == 's' && sdp_line_set(sdp, i, strview_cstr("s=-\r\n")) != 0) {
                snprintf(warning, cap, "the session description could not be rewritten");
                return 500;
            }
        }
    }
    if (sdp->session.conn.present) {
        snprintf(line, sizeof(line), "c=IN %s %s\r\n", ipv, addr);
        if (sdp_line_set(sdp, sdp->session.conn.line, strview_cstr(line)) != 0) {
            snprintf(warning, cap, "the session description could not be rewritten");
            return 500;
        }
    }
    struct strbuf out = STRBUF_INIT;
    int rc = sdp_write(sdp, &out) == 0 ? proxy_media_replace_sdp(m, found, &out) : -ENOMEM;
    OPENSSL_cleanse(out.p, out.cap);
    strbuf_free(&out);
    if (rc) {
        snprintf(warning, cap, "the session description could not be rewritten");
        return 500;
    }
    return 0;
}

static int anchor_parse(struct sip_msg *m, struct sip_body_sdp *found, struct sdp **sdp,
                        char *warning, size_t cap)
{
    *sdp = NULL;
    if (proxy_media_find_sdp(m, found, warning, cap) != 0)
        return 400;
    if (!found->sdp.n)
        return 0;
    char err[160];
    if (sdp_parse(found->sdp, sdp, err, sizeof(err)) != 0) {
        snprintf(warning, cap, "malformed SDP: %s", err);
        return 400;
    }
    return 0;
}

int proxy_anchor_offer(struct proxy *p, struct proxy_anchor_set **setp, bool from_caller,
                       struct sip_msg *m, uint64_t in_conn, uint64_t out_conn, const char *call_id,
                       const char *user, char *warning, size_t cap)
{
    struct sip_body_sdp found;
    struct sdp *sdp = NULL;
    int status = anchor_parse(m, &found, &sdp, warning, cap);
    if (status || !sdp)
        return status;
    int from = from_caller ? 0 : 1, to = 1 - from;
    struct proxy_anchor_set *set = *setp;
    bool made = false;
    if (!set) {
        set = calloc(1, sizeof(*set));
        if (!set) {
            sdp_free(sdp);
            snprintf(warning, cap, "out of memory");
            return 500;
        }
        snprintf(set->call_id, sizeof(set->call_id), "%s", call_id);
        snprintf(set->user, sizeof(set->user), "%s", user);
        made = true;
    }
    bool tls_out = anchor_conn_tls(p, out_conn);
    set->conn[from_caller ? 0 : 1] = in_conn;
    /* the offerer's key material goes wherever it is written — a=crypto at
     * any level, k=, a=acap capabilities (RFC 5939) — before Parley's keys
     * are added; the typed views still hold what the offerer said */
    sdp_remove_keys(sdp);
    for (size_t i = 0; i < sdp->nmedia && status == 0; i++) {
        const struct sdp_media *sm = &sdp->media[i];
        if (!sdp_media_active(sm)) {
            if (anchor_hide_section(p, sdp, sm) != 0)
                status = 500;
            continue;
        }
        if (!anchor_proto_rtp(sm->proto)) {
            snprintf(warning, cap, "only RTP media can be anchored (%.*s)", (int)sm->proto_text.n,
                     sm->proto_text.p);
            status = 488;
            break;
        }
        struct anchor_section *s = anchor_section_find(set, (unsigned)i);
        if (!s) {
            if (set->n == ANCHOR_SECTIONS_MAX) {
                snprintf(warning, cap, "more media sections than Parley anchors");
                status = 488;
                break;
            }
            s = &set->s[set->n];
            memset(s, 0, sizeof(*s));
            s->index = (unsigned)i;
            int rc = anchor_stream_new(p->env.anchor, set->call_id, set->user, &s->stream);
            if (rc != 0) {
                snprintf(warning, cap,
                         rc == -EAGAIN ? "too many anchored media streams" : "no media port free");
                status = 503;
                break;
            }
            set->n++;
        }
        struct anchor_remote r;
        unsigned long tag = 1;
        if (anchor_read_party(p, sdp, sm, &r, &tag, warning, cap) != 0) {
            status = 488;
            break;
        }
        anchor_signal_ip(p, in_conn, &r);
        r.private_party = set->mode[from] != PROXY_ANCHOR_LEG_POLICY;
        if (set->mode[from] == PROXY_ANCHOR_LEG_SRTP_REQUIRED && r.protection != ANCHOR_SRTP) {
            snprintf(warning, cap, "the trunk requires SRTP and the gateway offered plain RTP");
            status = 488;
            break;
        }
        if (set->mode[from] == PROXY_ANCHOR_LEG_PLAIN && r.protection == ANCHOR_SRTP) {
            /* a trunk whose srtp_mode is not_supported: its gateway's leg is
             * plain, and Parley's answer carries no key of its own */
            OPENSSL_cleanse(&r, sizeof(r));
            if (sdp_proto_is_sdes(sm->proto)) {
                snprintf(warning, cap,
                         "the trunk takes plain RTP only (srtp_mode not_supported) and the "
                         "gateway offered SRTP");
                status = 488;
                break;
            }
            /* RTP/AVP with a=crypto (RFC 8643): the key is left unused */
            if (anchor_read_party(p, sdp, sm, &r, &tag, warning, cap) != 0) {
                status = 488;
                break;
            }
            OPENSSL_cleanse(r.key, sizeof(r.key));
            OPENSSL_cleanse(r.salt, sizeof(r.salt));
            r.protection = ANCHOR_PLAIN;
            anchor_signal_ip(p, in_conn, &r);
            r.private_party = true;
        }
        s->offer_proto = sm->proto;
        s->offer_tag = tag;
        s->offer_mux = r.rtcp_mux;
        s->prot[from] = r.protection;
        s->suite[from] = r.suite;
        s->prot_set[from] = true;
        s->remote[from] = r;
        s->have_remote[from] = true;
        OPENSSL_cleanse(&r, sizeof(r));
        if (anchor_leg_remote(p->env.anchor, s->stream, from, &s->remote[from]) != 0) {
            snprintf(warning, cap, "the media engine refused the stream");
            status = 500;
            break;
        }
        /* toward the answerer: SRTP with a key of Parley's where the level
         * and the hop allow, the suite the offerer uses if it used one */
        if (!s->prot_set[to] && set->mode[to] != PROXY_ANCHOR_LEG_POLICY) {
            /* a gateway's leg: the trunk's srtp_mode, whatever the level */
            bool srtp = set->mode[to] != PROXY_ANCHOR_LEG_PLAIN;
            enum rtp_srtp_suite suite = s->suite[from];
            if (srtp && s->prot[from] != ANCHOR_SRTP && !anchor_default_suite(p, &suite)) {
                snprintf(warning, cap, "the trunk wants SRTP and no SRTP suite is allowed");
                status = 488;
                break;
            }
            s->prot[to] = srtp ? ANCHOR_SRTP : ANCHOR_PLAIN;
            s->suite[to] = suite;
            s->opportunistic[to] = set->mode[to] == PROXY_ANCHOR_LEG_SRTP_OPTIONAL;
            s->prot_set[to] = true;
        }
        if (!s->prot_set[to]) {
            if (p->media.level == MEDIA_LEVEL_REQUIRED && !tls_out) {
                /* keys never cross a plain hop, and plain media is refused */
                snprintf(warning, cap, "media encryption required, and the hop is not TLS");
                status = 488;
                break;
            }
            bool srtp = p->media.level != MEDIA_LEVEL_NOT_SUPPORTED && tls_out;
            enum rtp_srtp_suite suite = s->suite[from];
            if (s->prot[from] != ANCHOR_SRTP && !anchor_default_suite(p, &suite))
                srtp = false;
            s->prot[to] = srtp ? ANCHOR_SRTP : ANCHOR_PLAIN;
            s->suite[to] = suite;
            s->prot_set[to] = true;
        }
        if (s->prot[to] == ANCHOR_SRTP && !tls_out) {
            /* the leg is SRTP since its first offer, and this one would
             * carry Parley's key for it over a plain hop (a device of the
             * party's on TCP, a binding that moved): never */
            snprintf(warning, cap, "the leg's media is SRTP and this hop is not TLS");
            status = 488;
            break;
        }
        struct anchor_local l;
        if (anchor_leg_local(p->env.anchor, s->stream, to, s->prot[to], s->suite[to], &l) != 0) {
            snprintf(warning, cap, "the media engine could not make a key");
            status = 500;
            break;
        }
        if (set->mode[to] != PROXY_ANCHOR_LEG_POLICY)
            anchor_remove_identity_attrs(sdp, &sm->lv);
        enum sdp_proto proto =
            s->prot[to] == ANCHOR_SRTP && !s->opportunistic[to]
                ? (anchor_proto_feedback(sm->proto) ? SDP_PROTO_RTP_SAVPF : SDP_PROTO_RTP_SAVP)
                : (anchor_proto_feedback(sm->proto) ? SDP_PROTO_RTP_AVPF : SDP_PROTO_RTP_AVP);
        if (anchor_write_section(sdp, sm, &l, proto, 1) != 0) {
            snprintf(warning, cap, "the session description could not be rewritten");
            status = 500;
        }
        OPENSSL_cleanse(&l, sizeof(l));
    }
    if (status == 0)
        status = anchor_finish(p, m, sdp, &found, set->mode[to] != PROXY_ANCHOR_LEG_POLICY, warning,
                               cap);
    sdp_free(sdp);
    set->offerer = from;
    if (status && made) {
        proxy_anchor_release(p, set, "offer refused");
        return status;
    }
    *setp = set;
    return status;
}

int proxy_anchor_answer(struct proxy *p, struct proxy_anchor_set *set, bool from_caller,
                        struct sip_msg *m, uint64_t in_conn, char *warning, size_t cap)
{
    struct sip_body_sdp found;
    struct sdp *sdp = NULL;
    int status = anchor_parse(m, &found, &sdp, warning, cap);
    if (status || !sdp || !set)
        return status;
    int from = from_caller ? 0 : 1, to = set->offerer;
    sdp_remove_keys(sdp); /* as in the offer: only Parley's keys go out */
    set->conn[from] = in_conn;
    if (from == to) {
        /* the offerer's own side answers nothing: never forwarded as is */
        sdp_free(sdp);
        snprintf(warning, cap, "an answer from the side that made the offer");
        return 488;
    }
    for (size_t i = 0; i < sdp->nmedia && status == 0; i++) {
        const struct sdp_media *sm = &sdp->media[i];
        struct anchor_section *s = anchor_section_find(set, (unsigned)i);
        if (!sdp_media_active(sm)) {
            if (anchor_hide_section(p, sdp, sm) != 0)
                status = 500;
            continue; /* refused by the answerer */
        }
        if (!s) {
            /* an answer cannot make a section active the offer did not */
            snprintf(warning, cap, "an answer with a media section Parley did not anchor");
            status = 488;
            break;
        }
        struct anchor_remote r;
        unsigned long tag = 0;
        if (anchor_read_party(p, sdp, sm, &r, &tag, warning, cap) != 0) {
            status = 488;
            break;
        }
        anchor_signal_ip(p, in_conn, &r);
        r.private_party = set->mode[from] != PROXY_ANCHOR_LEG_POLICY;
        if (s->opportunistic[from] &&
            (r.protection == ANCHOR_PLAIN ||
             (r.protection == ANCHOR_SRTP && r.suite == s->suite[from]))) {
            /* RFC 8643: the gateway took the key or left it; Parley's side
             * of its leg follows (plain: Parley's key for it is dropped) */
            s->prot[from] = r.protection;
            s->opportunistic[from] = r.protection == ANCHOR_SRTP;
            struct anchor_local lf;
            int rc = anchor_leg_local(p->env.anchor, s->stream, from, s->prot[from], s->suite[from],
                                      &lf);
            OPENSSL_cleanse(&lf, sizeof(lf));
            if (rc != 0) {
                snprintf(warning, cap, "the media engine could not make a key");
                OPENSSL_cleanse(&r, sizeof(r));
                status = 500;
                break;
            }
        }
        if (r.protection != s->prot[from] ||
            (r.protection == ANCHOR_SRTP && r.suite != s->suite[from])) {
            snprintf(warning, cap, "%s",
                     set->mode[from] == PROXY_ANCHOR_LEG_SRTP_REQUIRED &&
                             r.protection != ANCHOR_SRTP
                         ? "the trunk requires SRTP and the gateway answered plain RTP"
                         : "an answer that does not take the protection offered");
            OPENSSL_cleanse(&r, sizeof(r));
            status = 488;
            break;
        }
        /* rtcp-mux is on for both legs only if offered and accepted */
        bool mux = s->offer_mux && r.rtcp_mux;
        r.rtcp_mux = mux;
        s->remote[from] = r;
        s->have_remote[from] = true;
        s->remote[to].rtcp_mux = mux;
        OPENSSL_cleanse(&r, sizeof(r));
        if (s->prot[to] == ANCHOR_SRTP && !anchor_conn_tls(p, set->conn[to])) {
            /* the offerer's leg is SRTP and its hop is not TLS (any more):
             * Parley's key for it never goes there */
            snprintf(warning, cap, "the offerer's leg is SRTP and its hop is not TLS");
            status = 488;
            break;
        }
        /* Parley's key for the offerer's leg first: the engine sends
         * nothing toward a leg before it has one */
        struct anchor_local l;
        if (anchor_leg_local(p->env.anchor, s->stream, to, s->prot[to], s->suite[to], &l) != 0) {
            snprintf(warning, cap, "the media engine could not make a key");
            status = 500;
            break;
        }
        if (anchor_leg_remote(p->env.anchor, s->stream, from, &s->remote[from]) != 0 ||
            (s->have_remote[to] &&
             anchor_leg_remote(p->env.anchor, s->stream, to, &s->remote[to]) != 0)) {
            snprintf(warning, cap, "the media engine refused the stream");
            OPENSSL_cleanse(&l, sizeof(l));
            status = 500;
            break;
        }
        if (set->mode[to] != PROXY_ANCHOR_LEG_POLICY)
            anchor_remove_identity_attrs(sdp, &sm->lv);
        if (anchor_write_section(sdp, sm, &l, s->offer_proto, s->offer_tag) != 0) {
            snprintf(warning, cap, "the session description could not be rewritten");
            status = 500;
        }
        OPENSSL_cleanse(&l, sizeof(l));
    }
    if (status == 0)
        status = anchor_finish(p, m, sdp, &found, set->mode[to] != PROXY_ANCHOR_LEG_POLICY, warning,
                               cap);
    sdp_free(sdp);
    return status;
}

int proxy_anchor_again(struct proxy *p, struct proxy_anchor_set *set, bool from_caller,
                       struct sip_msg *m, uint64_t in_conn, uint64_t out_conn, char *warning,
                       size_t cap)
{
    if (!set)
        return 0;
    if (set->offerer == (from_caller ? 0 : 1))
        return proxy_anchor_offer(p, &set, from_caller, m, in_conn, out_conn, "", "", warning, cap);
    return proxy_anchor_answer(p, set, from_caller, m, in_conn, warning, cap);
}
