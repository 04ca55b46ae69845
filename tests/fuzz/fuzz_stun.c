/*
 * libFuzzer target for media/stun: the decoder, every attribute accessor,
 * the integrity and fingerprint checks, stream framing, and building a
 * response from what was decoded. Seeds: the RFC 5769 and RFC 8489 B.1
 * messages in corpus/stun/.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "stun/stun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key16[16] = "0123456789abcdef";
static const uint8_t key32[32] = "0123456789abcdef0123456789abcdef";

static void accessors(const struct stun_msg *m)
{
    for (size_t i = 0; i < m->nattrs; i++) {
        const struct stun_attr *a = &m->attrs[i];
        struct netaddr addr;
        uint32_t v;
        int code;
        struct strview reason;
        uint16_t algs[8], alg;
        (void)stun_attr_xor_addr(m, a, &addr);
        (void)stun_attr_addr(m, a, &addr);
        (void)stun_attr_u32(m, a, &v);
        (void)stun_attr_error_code(m, a, &code, &reason);
        (void)stun_attr_password_alg(m, a, &alg);
        (void)stun_attr_password_algs(m, a, algs, 8);
        struct strview s = stun_attr_string(m, a);
        /* touch every byte the view claims, so ASan checks the bounds */
        volatile uint8_t sum = 0;
        for (size_t k = 0; k < s.n; k++)
            sum ^= (uint8_t)s.p[k];
        (void)sum;
    }
    static const uint16_t known[] = {STUN_ATTR_USERNAME, STUN_ATTR_REALM, STUN_ATTR_NONCE};
    uint16_t unknown[8];
    (void)stun_msg_unknown_required(m, known, 3, unknown, 8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct stun_msg m;
    long flen = stun_frame_length(data, size);
    (void)flen;
    (void)stun_is_channel_data(data, size);

    int rc = stun_msg_parse(data, size, &m);
    if (rc != 0)
        return 0;
    accessors(&m);
    (void)stun_msg_check_fingerprint(&m);
    (void)stun_msg_check_integrity(&m, STUN_INTEGRITY_SHA1, key16, sizeof(key16));
    (void)stun_msg_check_integrity(&m, STUN_INTEGRITY_SHA256, key32, sizeof(key32));

    /* What a server does with it: derive a key from its USERNAME/REALM and
     * answer with the attributes echoed, integrity and fingerprint. */
    const struct stun_attr *un = stun_msg_find(&m, STUN_ATTR_USERNAME);
    const struct stun_attr *realm = stun_msg_find(&m, STUN_ATTR_REALM);
    uint8_t key[STUN_KEY_MAX];
    size_t keylen = 0;
    if (un && realm)
        (void)stun_long_term_key(STUN_PASSWORD_MD5, stun_attr_string(&m, un),
                                 stun_attr_string(&m, realm), strview_make("pw", 2), key, &keylen);
    uint8_t out[2048];
    struct stun_builder b;
    stun_build_start(&b, out, sizeof(out), m.method, STUN_CLASS_SUCCESS, m.tid);
    for (size_t i = 0; i < m.nattrs && i < 8; i++) {
        uint16_t t = m.attrs[i].type;
        if (t == STUN_ATTR_MESSAGE_INTEGRITY || t == STUN_ATTR_MESSAGE_INTEGRITY_SHA256 ||
            t == STUN_ATTR_FINGERPRINT)
            continue;
        stun_build_attr(&b, t, stun_attr_value(&m, &m.attrs[i]), m.attrs[i].len);
    }
    stun_build_integrity(&b, STUN_INTEGRITY_SHA1, key16, sizeof(key16));
    stun_build_fingerprint(&b);
    size_t len = 0;
    if (stun_build_finish(&b, &len) == 0) {
        struct stun_msg back;
        /* our own output must parse and verify */
        if (stun_msg_parse(out, len, &back) != 0 || stun_msg_check_fingerprint(&back) != 0 ||
            stun_msg_check_integrity(&back, STUN_INTEGRITY_SHA1, key16, sizeof(key16)) != 0)
            __builtin_trap();
    }
    return 0;
}
