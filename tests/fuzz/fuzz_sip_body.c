/*
 * libFuzzer target for sip/body: the input is a Content-Type value, a NUL,
 * then the body (no NUL: the whole input is the body of a multipart with
 * boundary "b"). Whatever the input, the answer is either an error with a
 * reason, or an SDP view inside the body at the offset it names.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sip/body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    const char *nul = size ? memchr(p, '\0', size) : NULL;
    struct strview ct =
        nul ? strview_make(p, (size_t)(nul - p)) : strview_cstr("multipart/mixed;boundary=b");
    struct strview body = nul ? strview_make(nul + 1, size - ct.n - 1) : strview_make(p, size);
    struct sip_body_sdp f;
    char err[128];

    int rc = sip_body_find_sdp(ct, body, &f, err, sizeof(err));
    CHECK(rc == 0 || rc == -EINVAL);
    if (rc) {
        CHECK(err[0] != '\0' && f.sdp.n == 0);
        return 0;
    }
    if (f.sdp.n) {
        CHECK(f.offset + f.sdp.n <= body.n && f.sdp.p == body.p + f.offset);
        CHECK(!f.whole || (f.offset == 0 && f.sdp.n == body.n));
    }
    return 0;
}
