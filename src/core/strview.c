#include "core/strview.h"

#include <errno.h>
#include <stdlib.h>

int strview_copy(struct strview v, char *dst, size_t cap)
{
    if (cap == 0)
        return -ENOSPC;
    size_t n = v.n < cap - 1 ? v.n : cap - 1;
    if (n)
        memcpy(dst, v.p, n);
    dst[n] = '\0';
    return n == v.n ? 0 : -ENOSPC;
}

char *strview_dup(struct strview v)
{
    char *s = malloc(v.n + 1);
    if (s) {
        if (v.n)
            memcpy(s, v.p, v.n);
        s[v.n] = '\0';
    }
    return s;
}

struct strview strview_trim(struct strview v)
{
    while (v.n && (v.p[0] == ' ' || v.p[0] == '\t')) {
        v.p++;
        v.n--;
    }
    while (v.n && (v.p[v.n - 1] == ' ' || v.p[v.n - 1] == '\t'))
        v.n--;
    return v;
}

int strview_to_u64(struct strview v, unsigned long long max, unsigned long long *out)
{
    unsigned long long x = 0;

    if (v.n == 0)
        return -EINVAL;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -EINVAL;
        unsigned d = (unsigned)(v.p[i] - '0');
        if (x > (max - d) / 10)
            return -ERANGE;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}
