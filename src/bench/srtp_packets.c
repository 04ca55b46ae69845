/*
 * bench/srtp_packets — the streams file and the packets of parley-bench's
 * SRTP stream mode (see srtp_packets.h).
 */
#include "bench/srtp_packets.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SUITE and BASE64 of one party; "RTP" names a plain party. */
static int parse_party(const char *suite, const char *key, bool plain_allowed,
                       struct bench_srtp_party *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (plain_allowed && strcmp(suite, "RTP") == 0) {
        if (key[0]) {
            snprintf(err, errlen, "a plain (RTP) party has no key");
            return -EINVAL;
        }
        out->plain = true;
        return 0;
    }
    if (rtp_srtp_suite_parse(strview_cstr(suite), &out->suite) != 0) {
        snprintf(err, errlen, "unknown suite %s", suite[0] ? suite : "(missing)");
        return -EINVAL;
    }
    if (rtp_srtp_inline_decode(strview_cstr(key), out->suite, out->key, out->salt) != 0) {
        snprintf(err, errlen, "a key that is not %s's inline key||salt",
                 rtp_srtp_suite_name(out->suite));
        return -EINVAL;
    }
    return 0;
}

int srtp_packets_parse_line(const char *line, struct bench_srtp_stream_spec *out, char *err,
                            size_t errlen)
{
    static const char *const names[] = {"a_to", "a_from", "a_suite", "a_key",
                                        "b_to", "b_at",   "b_suite", "b_key"};
    enum { A_TO, A_FROM, A_SUITE, A_KEY, B_TO, B_AT, B_SUITE, B_KEY, NFIELDS };
    char value[NFIELDS][128] = {{0}};
    bool seen[NFIELDS] = {false};
    const char *p = line;
    int rc = -EINVAL;

    memset(out, 0, sizeof(*out));
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '\0' || *p == '#')
        return 1;
    while (*p && *p != '#') {
        const char *word = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        size_t wlen = (size_t)(p - word);
        const char *eq = memchr(word, '=', wlen);
        size_t f = NFIELDS;
        for (size_t i = 0; eq && i < NFIELDS; i++)
            if (strlen(names[i]) == (size_t)(eq - word) && memcmp(word, names[i], eq - word) == 0)
                f = i;
        if (f == NFIELDS) {
            snprintf(err, errlen, "unknown word %.*s", (int)wlen, word);
            goto out;
        }
        size_t vlen = wlen - (size_t)(eq + 1 - word);
        if (seen[f] || vlen >= sizeof(value[f])) {
            snprintf(err, errlen, "%s given twice or too long", names[f]);
            goto out;
        }
        memcpy(value[f], eq + 1, vlen);
        seen[f] = true;
        while (isspace((unsigned char)*p))
            p++;
    }
    for (size_t i = 0; i < NFIELDS; i++) {
        /* b_key may be left out for a plain B */
        if (!seen[i] && !(i == B_KEY && strcmp(value[B_SUITE], "RTP") == 0)) {
            snprintf(err, errlen, "%s missing", names[i]);
            goto out;
        }
    }
    struct netaddr *addrs[] = {&out->a_to, &out->a_from, NULL, NULL, &out->b_to, &out->b_at};
    for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
        if (addrs[i] && (netaddr_parse(value[i], addrs[i]) != 0 || netaddr_port(addrs[i]) == 0)) {
            snprintf(err, errlen, "%s=%s is not IP:PORT", names[i], value[i]);
            goto out;
        }
    }
    if (parse_party(value[A_SUITE], value[A_KEY], false, &out->a, err, errlen) != 0 ||
        parse_party(value[B_SUITE], value[B_KEY], true, &out->b, err, errlen) != 0)
        goto out;
    rc = 0;
out:
    memset(value, 0, sizeof(value)); /* keys */
    return rc;
}

int srtp_packets_load(const char *path, struct bench_srtp_stream_spec **out, size_t *n, char *err,
                      size_t errlen)
{
    FILE *f = fopen(path, "r");
    struct bench_srtp_stream_spec *specs = NULL;
    size_t count = 0, cap = 0;
    char line[2048], why[160];
    unsigned lineno = 0;
    int rc = 0;

    *out = NULL;
    *n = 0;
    if (!f) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return rc;
    }
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct bench_srtp_stream_spec *grown = realloc(specs, ncap * sizeof(*specs));
            if (!grown) {
                rc = -ENOMEM;
                snprintf(err, errlen, "out of memory");
                goto out;
            }
            specs = grown;
            cap = ncap;
        }
        int got = srtp_packets_parse_line(line, &specs[count], why, sizeof(why));
        if (got < 0) {
            rc = got;
            snprintf(err, errlen, "%s:%u: %s", path, lineno, why);
            goto out;
        }
        if (got == 0 && ++count > BENCH_SRTP_STREAMS_MAX) {
            rc = -E2BIG;
            snprintf(err, errlen, "%s: more than %u streams", path, BENCH_SRTP_STREAMS_MAX);
            goto out;
        }
    }
    if (count == 0) {
        rc = -EINVAL;
        snprintf(err, errlen, "%s: no stream", path);
    }
out:
    fclose(f);
    if (rc) {
        free(specs);
        return rc;
    }
    *out = specs;
    *n = count;
    return 0;
}

void srtp_packets_make_rtp(uint8_t *buf, uint32_t ssrc, uint64_t index, uint64_t k)
{
    /* network order, field by field: V=2 without padding, extension or
     * CSRC; PCMU; SEQ; timestamp; SSRC; then G.711 silence (0xff in
     * mu-law) with the SSRC and k written over its start, so that a test
     * that unprotects can tell packets apart */
    uint16_t seq = htons((uint16_t)index);
    uint32_t words[] = {htonl((uint32_t)(k * BENCH_SRTP_PAYLOAD_LEN)), htonl(ssrc), htonl(ssrc),
                        htonl((uint32_t)(k >> 32)), htonl((uint32_t)k)};
    buf[0] = 0x80;
    buf[1] = BENCH_SRTP_PT;
    memcpy(buf + 2, &seq, sizeof(seq));
    memset(buf + 12, 0xff, BENCH_SRTP_PAYLOAD_LEN);
    memcpy(buf + 4, words, sizeof(words));
}

int srtp_packets_session(struct rtp_srtp_crypto *c, const struct bench_srtp_party *p, uint32_t ssrc,
                         uint64_t first_index, struct rtp_srtp **out)
{
    struct rtp_srtp *s = NULL;
    int rc = rtp_srtp_new(c, p->suite, p->key, p->salt, 0, &s);
    /* the sender's state as if first_index - 1 had gone out: the first
     * packet then gets the right ROC, and a later run on the same stream
     * never reuses an index of an earlier one */
    if (rc == 0 && first_index > 0)
        rc = rtp_srtp_set_index(s, ssrc, first_index - 1);
    if (rc) {
        rtp_srtp_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int srtp_packets_protect(struct rtp_srtp *s, uint32_t ssrc, uint64_t first_index, uint64_t k,
                         uint8_t *slot, uint16_t *len)
{
    size_t out_len = BENCH_SRTP_RTP_LEN;
    srtp_packets_make_rtp(slot, ssrc, first_index + k, k);
    if (s) {
        int rc = rtp_srtp_protect(s, slot, BENCH_SRTP_RTP_LEN, BENCH_SRTP_SLOT, &out_len);
        if (rc)
            return rc;
    }
    *len = (uint16_t)out_len;
    return 0;
}

uint64_t srtp_packets_k_from_seq(uint16_t seq, uint64_t first_index, uint64_t highest_k)
{
    /* the index nearest to the highest seen with these low 16 bits */
    uint64_t highest = first_index + highest_k;
    uint64_t guess = (highest & ~UINT64_C(0xffff)) | seq;
    if (guess > highest && guess - highest > 0x8000 && guess >= 0x10000)
        guess -= 0x10000;
    else if (guess < highest && highest - guess > 0x8000)
        guess += 0x10000;
    return guess >= first_index ? guess - first_index : UINT64_MAX;
}
