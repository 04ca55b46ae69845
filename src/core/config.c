#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int config_check_ip_or_empty(const char *value, char *err, size_t errlen)
{
    struct netaddr a;
    if (*value == '\0' || netaddr_parse_ip(value, 0, &a) == 0)
        return 0;
    snprintf(err, errlen, "a numeric IPv4 or IPv6 address, or empty");
    return -EINVAL;
}

static bool config_domain_valid(const char *s);

/* A DNS name or a (specified) IP address, as a URI host; or empty. */
int config_check_host_or_empty(const char *value, char *err, size_t errlen)
{
    struct netaddr a;
    if (*value == '\0')
        return 0;
    if (netaddr_parse_ip(value, 0, &a) == 0) {
        if (strcmp(value, "0.0.0.0") != 0 && strcmp(value, "::") != 0)
            return 0;
    } else if (config_domain_valid(value)) {
        return 0;
    }
    snprintf(err, errlen, "a DNS name or a specified IP address (not 0.0.0.0 or ::), or empty");
    return -EINVAL;
}

int config_check_port_range(const char *value, char *err, size_t errlen)
{
    unsigned first, last;
    char tail;
    if (sscanf(value, "%u-%u%c", &first, &last, &tail) == 2 && first >= 1024 && first <= last &&
        last <= 65535 && last - first >= 1)
        return 0;
    snprintf(err, errlen, "FIRST-LAST with 1024 <= FIRST < LAST <= 65535, e.g. 50000-59999");
    return -EINVAL;
}

int config_check_nameservers(const char *value, char *err, size_t errlen)
{
    char copy[1024];
    snprintf(copy, sizeof(copy), "%s", value);
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && end[-1] == ' ')
            *--end = '\0';
        struct netaddr a;
        if (netaddr_parse_ip(tok, 53, &a) != 0 && netaddr_parse(tok, &a) != 0) {
            snprintf(err, errlen, "comma-separated IP or IP:PORT ([IPv6]:PORT) entries");
            return -EINVAL;
        }
    }
    return 0;
}

/* clang-format off */
/* [dns] and [log]: the rows of core's own modules */
const struct config_key dns_config_keys[] = {
    {"dns", "nameservers", CONFIG_STRING, "", NULL, 0, 0, false, false, NULL,
     "DNS servers (IP[:PORT], comma-separated) for finding federation partners; empty means "
     "those of /etc/resolv.conf.", CONFIG_FIELD(dns.nameservers), config_check_nameservers},
    {NULL, NULL, 0, NULL, NULL, 0, 0, false, false, NULL, NULL, 0, NULL},
};

const struct config_key log_config_keys[] = {
    {"log", "level", CONFIG_ENUM, "info", "debug|info|warn|error", 0, 0, true, false, NULL,
     "Least severe level written to the log (parleyd -d forces debug).", CONFIG_FIELD(log.level), NULL},
    {NULL, NULL, 0, NULL, NULL, 0, 0, false, false, NULL, NULL, 0, NULL},
};
/* clang-format on */

/* One flat table assembled from the installed rows: every key in the
 * order of its section. Written once at start (config_install_keys),
 * read-only afterwards. */
static struct config_key config_table[CONFIG_KEYS_MAX + 1];

int config_install_keys(const struct config_key *const *sets)
{
    size_t n = 0;
    for (size_t i = 0; sets[i]; i++)
        for (const struct config_key *k = sets[i]; k->section; k++)
            n++;
    if (n > CONFIG_KEYS_MAX)
        return -E2BIG;
    n = 0;
    for (size_t i = 0; sets[i]; i++)
        for (const struct config_key *k = sets[i]; k->section; k++)
            config_table[n++] = *k;
    memset(&config_table[n], 0, sizeof(config_table[n]));
    return 0;
}

static const struct config_key *config_table_get(void)
{
    return config_table;
}

const struct config_key *config_keys(void)
{
    return config_table_get();
}

const struct config_key *config_key_find(const char *dotted)
{
    const char *dot = dotted ? strchr(dotted, '.') : NULL;
    if (!dot)
        return NULL;
    size_t slen = (size_t)(dot - dotted);
    for (const struct config_key *k = config_table_get(); k->section; k++) {
        if (strlen(k->section) == slen && strncmp(k->section, dotted, slen) == 0 &&
            strcmp(k->name, dot + 1) == 0)
            return k;
    }
    return NULL;
}

static void config_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void config_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void config_describe_allowed(const struct config_key *key, struct strbuf *out)
{
    switch (key->type) {
    case CONFIG_STRING:
        strbuf_puts(out, "text");
        break;
    case CONFIG_ENUM: {
        strbuf_puts(out, "one of: ");
        for (const char *p = key->allowed; *p; p++)
            if (*p == '|')
                strbuf_puts(out, ", ");
            else
                strbuf_putc(out, *p);
        break;
    }
    case CONFIG_INT:
        strbuf_printf(out, "an integer from %lld to %lld", key->min, key->max);
        if (key->unit)
            strbuf_printf(out, " (%s)", key->unit);
        break;
    case CONFIG_BOOL:
        strbuf_puts(out, "true or false");
        break;
    case CONFIG_PATH:
        strbuf_puts(out, "a file path (relative to the configuration file's directory)");
        break;
    case CONFIG_PATH_LIST:
        strbuf_puts(out, "comma-separated file paths (may be empty)");
        break;
    case CONFIG_ADDR_LIST:
        strbuf_puts(out, "comma-separated ADDR:PORT with numeric addresses, e.g. "
                         "127.0.0.1:5061, [::1]:5061 (may be empty)");
        break;
    case CONFIG_CIDR_LIST:
        strbuf_puts(out, "comma-separated networks in CIDR form, e.g. 10.0.0.0/8, fd00::/8");
        break;
    case CONFIG_DOMAIN:
        strbuf_puts(out, "a DNS domain name, e.g. example.com");
        break;
    case CONFIG_ENUM_LIST:
        strbuf_puts(out, "a comma-separated list of one or more of: ");
        for (const char *p = key->allowed; *p; p++)
            if (*p == '|')
                strbuf_puts(out, ", ");
            else
                strbuf_putc(out, *p);
        break;
    }
}

/* --- value parsing --------------------------------------------------- */

static char *config_strdup_trim(const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    char *r = malloc(n + 1);
    if (r) {
        memcpy(r, s, n);
        r[n] = '\0';
    }
    return r;
}

static void config_str_list_free(struct config_str_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Splits "a, b ,c" into trimmed items; an empty or all-blank value is an
 * empty list; an empty item between commas is an error. */
static int config_split(const char *value, struct config_str_list *out)
{
    const char *p = value;
    out->n = 0;
    out->v = NULL;

    while (isspace((unsigned char)*p))
        p++;
    if (*p == '\0')
        return 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char *item = config_strdup_trim(p, n);
        if (!item)
            goto nomem;
        if (*item == '\0') {
            free(item);
            config_str_list_free(out);
            return -EINVAL;
        }
        char **v = realloc(out->v, (out->n + 1) * sizeof(*v));
        if (!v) {
            free(item);
            goto nomem;
        }
        out->v = v;
        out->v[out->n++] = item;
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
nomem:
    config_str_list_free(out);
    return -ENOMEM;
}

static bool config_domain_valid(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 253 || s[0] == '.' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!isalnum(c) && c != '-')
            return false;
        if (c == '-' && label == 0)
            return false;
        if (++label > 63)
            return false;
    }
    return true;
}

static int config_parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

static int config_parse_int(const char *v, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    if (*v == '\0' || isspace((unsigned char)*v))
        return -EINVAL;
    long long x = strtoll(v, &end, 10);
    if (errno || *end != '\0' || x < min || x > max)
        return -EINVAL;
    *out = x;
    return 0;
}

static bool config_enum_allows(const char *allowed, const char *v)
{
    size_t vn = strlen(v);
    const char *p = allowed;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == vn && strncmp(p, v, n) == 0)
            return true;
        if (!bar)
            break;
        p = bar + 1;
    }
    return false;
}

static char *config_resolve_path(const char *state_dir, const char *p)
{
    if (p[0] == '/' || !state_dir)
        return strdup(p);
    size_t n = strlen(state_dir) + strlen(p) + 2;
    char *r = malloc(n);
    if (r)
        snprintf(r, n, "%s/%s", state_dir, p);
    return r;
}

/* Checks a value and, when cfg is not NULL, stores it into cfg. */
static int config_apply(struct config *cfg, const struct config_key *key, const char *value,
                        char *err, size_t errlen)
{
    void *field = cfg ? (char *)cfg + key->offset : NULL;
    struct strbuf allowed = STRBUF_INIT;
    int rc = 0;

    if (strchr(value, '\n') || strchr(value, '\r')) {
        rc = -EINVAL;
        goto bad;
    }

    switch (key->type) {
    case CONFIG_STRING:
    case CONFIG_ENUM:
    case CONFIG_DOMAIN:
    case CONFIG_PATH: {
        char *v = config_strdup_trim(value, strlen(value));
        if (!v)
            return -ENOMEM;
        bool ok = true;
        if (key->type == CONFIG_ENUM)
            ok = config_enum_allows(key->allowed, v);
        else if (key->type == CONFIG_DOMAIN)
            ok = *v == '\0' || config_domain_valid(v);
        else if (key->type == CONFIG_PATH)
            ok = *v != '\0';
        if (!ok) {
            free(v);
            rc = -EINVAL;
            goto bad;
        }
        if (key->check) {
            char allowed_text[160];
            if (key->check(v, allowed_text, sizeof(allowed_text)) != 0) {
                config_err(err, errlen, "%s.%s: invalid value \"%s\"; expected %s", key->section,
                           key->name, v, allowed_text);
                free(v);
                return -EINVAL;
            }
        }
        if (key->type == CONFIG_DOMAIN)
            for (char *c = v; *c; c++)
                *c = (char)tolower((unsigned char)*c);
        if (key->type == CONFIG_PATH && cfg) {
            char *abs = config_resolve_path(cfg->config_dir, v);
            free(v);
            if (!abs)
                return -ENOMEM;
            v = abs;
        }
        if (field) {
            free(*(char **)field);
            *(char **)field = v;
        } else {
            free(v);
        }
        break;
    }
    case CONFIG_INT: {
        long long x;
        char *v = config_strdup_trim(value, strlen(value));
        if (!v)
            return -ENOMEM;
        rc = config_parse_int(v, key->min, key->max, &x);
        free(v);
        if (rc)
            goto bad;
        if (field)
            *(long long *)field = x;
        break;
    }
    case CONFIG_BOOL: {
        bool b;
        char *v = config_strdup_trim(value, strlen(value));
        if (!v)
            return -ENOMEM;
        rc = config_parse_bool(v, &b);
        free(v);
        if (rc)
            goto bad;
        if (field)
            *(bool *)field = b;
        break;
    }
    case CONFIG_PATH_LIST: {
        struct config_str_list l;
        rc = config_split(value, &l);
        if (rc == -ENOMEM)
            return rc;
        if (rc)
            goto bad;
        if (cfg) {
            for (size_t i = 0; i < l.n; i++) {
                char *abs = config_resolve_path(cfg->config_dir, l.v[i]);
                if (!abs) {
                    config_str_list_free(&l);
                    return -ENOMEM;
                }
                free(l.v[i]);
                l.v[i] = abs;
            }
        }
        if (field) {
            config_str_list_free(field);
            *(struct config_str_list *)field = l;
        } else {
            config_str_list_free(&l);
        }
        break;
    }
    case CONFIG_ENUM_LIST: {
        struct config_str_list l;
        rc = config_split(value, &l);
        if (rc == -ENOMEM)
            return rc;
        if (rc == 0 && l.n == 0)
            rc = -EINVAL;
        for (size_t i = 0; rc == 0 && i < l.n; i++) {
            if (!config_enum_allows(key->allowed, l.v[i]))
                rc = -EINVAL;
            for (size_t j = 0; j < i; j++)
                if (strcmp(l.v[i], l.v[j]) == 0)
                    rc = -EINVAL;
        }
        if (rc) {
            config_str_list_free(&l);
            goto bad;
        }
        if (field) {
            config_str_list_free(field);
            *(struct config_str_list *)field = l;
        } else {
            config_str_list_free(&l);
        }
        break;
    }
    case CONFIG_ADDR_LIST:
    case CONFIG_CIDR_LIST: {
        struct config_str_list l;
        rc = config_split(value, &l);
        if (rc == -ENOMEM)
            return rc;
        if (rc)
            goto bad;
        bool addr = key->type == CONFIG_ADDR_LIST;
        size_t elem = addr ? sizeof(struct netaddr) : sizeof(struct cidr);
        void *arr = l.n ? calloc(l.n, elem) : NULL;
        if (l.n && !arr) {
            config_str_list_free(&l);
            return -ENOMEM;
        }
        for (size_t i = 0; i < l.n; i++) {
            int r = addr ? netaddr_parse(l.v[i], (struct netaddr *)arr + i)
                         : cidr_parse(l.v[i], (struct cidr *)arr + i);
            if (r) {
                config_describe_allowed(key, &allowed);
                config_err(err, errlen, "%s.%s: \"%s\" is not valid; expected %s", key->section,
                           key->name, l.v[i], strbuf_cstr(&allowed));
                free(arr);
                config_str_list_free(&l);
                strbuf_free(&allowed);
                return -EINVAL;
            }
        }
        size_t count = l.n;
        config_str_list_free(&l);
        if (field) {
            if (addr) {
                struct config_addr_list *al = field;
                free(al->v);
                al->v = arr;
                al->n = count;
            } else {
                struct config_cidr_list *cl = field;
                free(cl->v);
                cl->v = arr;
                cl->n = count;
            }
        } else {
            free(arr);
        }
        break;
    }
    }
    return 0;

bad:
    config_describe_allowed(key, &allowed);
    config_err(err, errlen, "%s.%s: invalid value \"%s\"; expected %s", key->section, key->name,
               value, strbuf_cstr(&allowed));
    strbuf_free(&allowed);
    return rc ? rc : -EINVAL;
}

int config_validate_value(const struct config_key *key, const char *value, char *err, size_t errlen)
{
    return config_apply(NULL, key, value, err, errlen);
}

/* The row's index in the table, or -1. */
static long config_key_index(const char *dotted)
{
    const struct config_key *k = config_key_find(dotted);
    return k ? (long)(k - config_table_get()) : -1;
}

bool config_is_explicit(const struct config *cfg, const char *dotted)
{
    long i = cfg ? config_key_index(dotted) : -1;
    return i >= 0 && i < CONFIG_KEYS_MAX && cfg->explicit_keys[i];
}

int config_override(struct config *cfg, const char *dotted, const char *value, char *err,
                    size_t errlen)
{
    const struct config_key *k = config_key_find(dotted);

    if (!cfg || !k || !value) {
        config_err(err, errlen, "%s: no such key", dotted ? dotted : "(null)");
        return -ENOENT;
    }
    return config_apply(cfg, k, value, err, errlen);
}

/* --- loading ---------------------------------------------------------- */

struct config_loader {
    struct config *cfg;
    unsigned char seen[CONFIG_KEYS_MAX + 1];
    char *err;
    size_t errlen;
    int rc;
    int line; /* counted by the handler: inih reports the line only on error */
};

static int config_on_entry(void *user, const char *section, const char *name, const char *value)
{
    struct config_loader *ld = user;
    const struct config_key *key = NULL;
    size_t idx = 0;

    for (const struct config_key *k = config_table_get(); k->section; k++, idx++) {
        if (strcmp(k->section, section) == 0 && strcmp(k->name, name) == 0) {
            key = k;
            break;
        }
    }
    if (!key) {
        struct strbuf known = STRBUF_INIT;
        for (const struct config_key *k = config_table_get(); k->section; k++) {
            if (strcmp(k->section, section) == 0) {
                strbuf_puts(&known, known.len ? ", " : "");
                strbuf_puts(&known, k->name);
            }
        }
        if (known.len)
            config_err(ld->err, ld->errlen, "unknown key %s.%s (keys of [%s]: %s)", section, name,
                       section, strbuf_cstr(&known));
        else
            config_err(ld->err, ld->errlen, "unknown key %s.%s (there is no section [%s])", section,
                       name, section);
        strbuf_free(&known);
        ld->rc = -EINVAL;
        return 0;
    }
    if (ld->seen[idx]) {
        config_err(ld->err, ld->errlen, "%s.%s is set twice", section, name);
        ld->rc = -EINVAL;
        return 0;
    }
    ld->seen[idx] = 1;
    int rc = config_apply(ld->cfg, key, value, ld->err, ld->errlen);
    if (rc) {
        ld->rc = rc;
        return 0;
    }
    return 1;
}

static int config_defaults(struct config *cfg, char *err, size_t errlen)
{
    for (const struct config_key *k = config_table_get(); k->section; k++) {
        int rc = config_apply(cfg, k, k->default_value, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

static int config_check_whole(struct config *cfg, char *err, size_t errlen)
{
    if (!cfg->server.domain || !*cfg->server.domain) {
        config_err(err, errlen, "server.domain is not set; it names the SIP domain served");
        return -EINVAL;
    }
    if (cfg->registrar.min_expires > cfg->registrar.max_expires) {
        config_err(err, errlen,
                   "registrar.min_expires (%lld) is above registrar.max_expires (%lld)",
                   cfg->registrar.min_expires, cfg->registrar.max_expires);
        return -EINVAL;
    }
    if (cfg->presence.min_expires > cfg->presence.max_expires) {
        config_err(err, errlen, "presence.min_expires (%lld) is above presence.max_expires (%lld)",
                   cfg->presence.min_expires, cfg->presence.max_expires);
        return -EINVAL;
    }
    if (cfg->sip.tls_listen.n == 0 && cfg->sip.tcp_listen.n == 0) {
        config_err(err, errlen,
                   "sip.tls_listen and sip.tcp_listen are both empty: nothing to "
                   "listen on");
        return -EINVAL;
    }
    /* one address, one listener: the kinds differ in who may connect */
    const struct {
        const char *key;
        const struct config_addr_list *l;
    } lists[] = {
        {"sip.tls_listen", &cfg->sip.tls_listen},
        {"sip.mtls_listen", &cfg->sip.mtls_listen},
        {"sip.tcp_listen", &cfg->sip.tcp_listen},
        {"sip.trunk_tcp_listen", &cfg->sip.trunk_tcp_listen},
    };
    for (size_t a = 0; a < 4; a++)
        for (size_t b = a + 1; b < 4; b++)
            for (size_t i = 0; i < lists[a].l->n; i++)
                for (size_t j = 0; j < lists[b].l->n; j++)
                    if (netaddr_equal(&lists[a].l->v[i], &lists[b].l->v[j])) {
                        char s[NETADDR_STRLEN];
                        config_err(err, errlen, "%s is in both %s and %s",
                                   netaddr_format(&lists[a].l->v[i], s), lists[a].key,
                                   lists[b].key);
                        return -EINVAL;
                    }
    return 0;
}

static struct config *config_new(const char *path)
{
    struct config *cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return NULL;
    char *abs = realpath(path, NULL);
    if (!abs) {
        /* the file may not exist yet (load_string for validation) */
        if (path[0] == '/') {
            abs = strdup(path);
        } else {
            char cwd[PATH_MAX];
            if (getcwd(cwd, sizeof(cwd))) {
                size_t n = strlen(cwd) + strlen(path) + 2;
                abs = malloc(n);
                if (abs)
                    snprintf(abs, n, "%s/%s", cwd, path);
            }
        }
    }
    if (!abs) {
        free(cfg);
        return NULL;
    }
    cfg->path = abs;
    char *copy = strdup(abs);
    if (!copy) {
        free(abs);
        free(cfg);
        return NULL;
    }
    cfg->config_dir = strdup(dirname(copy));
    free(copy);
    if (!cfg->config_dir) {
        free(abs);
        free(cfg);
        return NULL;
    }
    return cfg;
}

int config_load_string(const char *path, const char *text, struct config **out, char *err,
                       size_t errlen)
{
    struct config *cfg = config_new(path);
    if (!cfg)
        return -ENOMEM;
    int rc = config_defaults(cfg, err, errlen);
    if (rc)
        goto fail;

    struct config_loader ld = {.cfg = cfg, .err = err, .errlen = errlen};
    char inner[512] = "";
    ld.err = inner;
    ld.errlen = sizeof(inner);
    int line = ini_parse_string(text, config_on_entry, &ld);
    if (line != 0) {
        if (ld.rc == 0)
            config_err(inner, sizeof(inner), "syntax error (expected [section] or key = value)");
        config_err(err, errlen, "%s:%d: %s", path, line, inner);
        rc = ld.rc ? ld.rc : -EINVAL;
        goto fail;
    }
    _Static_assert(sizeof(cfg->explicit_keys) >= CONFIG_KEYS_MAX, "explicit_keys too small");
    memcpy(cfg->explicit_keys, ld.seen, CONFIG_KEYS_MAX);
    /* server.state_dir: a relative one against the file's directory, like
     * every path of the file; empty is the file's directory (as before) */
    const char *sd = cfg->server.state_dir;
    cfg->state_dir = sd && *sd ? config_resolve_path(cfg->config_dir, sd) : strdup(cfg->config_dir);
    if (!cfg->state_dir) {
        rc = -ENOMEM;
        goto fail;
    }
    rc = config_check_whole(cfg, inner, sizeof(inner));
    if (rc) {
        config_err(err, errlen, "%s: %s", path, inner);
        goto fail;
    }
    *out = cfg;
    return 0;
fail:
    config_free(cfg);
    return rc;
}

static int config_read_file(const char *path, char **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        config_err(err, errlen, "%s: cannot open: %s", path, strerror(e));
        return -e;
    }
    struct strbuf b = STRBUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        strbuf_append(&b, chunk, n);
        if (b.len > 1024 * 1024) {
            fclose(f);
            strbuf_free(&b);
            config_err(err, errlen, "%s: larger than 1 MiB; not a configuration file", path);
            return -EFBIG;
        }
    }
    int failed = ferror(f);
    fclose(f);
    if (failed || b.err) {
        strbuf_free(&b);
        config_err(err, errlen, "%s: read failed", path);
        return -EIO;
    }
    strbuf_putc(&b, '\0'); /* make an empty file a valid C string */
    *out = strbuf_take(&b, NULL);
    return 0;
}

int config_load(const char *path, struct config **out, char *err, size_t errlen)
{
    char *text;
    int rc = config_read_file(path, &text, err, errlen);
    if (rc)
        return rc;
    rc = config_load_string(path, text, out, err, errlen);
    free(text);
    return rc;
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (const struct config_key *k = config_table_get(); k->section; k++) {
        void *field = (char *)cfg + k->offset;
        switch (k->type) {
        case CONFIG_STRING:
        case CONFIG_ENUM:
        case CONFIG_DOMAIN:
        case CONFIG_PATH:
            free(*(char **)field);
            break;
        case CONFIG_PATH_LIST:
        case CONFIG_ENUM_LIST:
            config_str_list_free(field);
            break;
        case CONFIG_ADDR_LIST:
            free(((struct config_addr_list *)field)->v);
            break;
        case CONFIG_CIDR_LIST:
            free(((struct config_cidr_list *)field)->v);
            break;
        case CONFIG_INT:
        case CONFIG_BOOL:
            break;
        }
    }
    free(cfg->path);
    free(cfg->config_dir);
    free(cfg->state_dir);
    free(cfg);
}

void config_format_value(const struct config *cfg, const struct config_key *key, struct strbuf *out)
{
    const void *field = (const char *)cfg + key->offset;
    char buf[NETADDR_STRLEN];

    switch (key->type) {
    case CONFIG_STRING:
    case CONFIG_ENUM:
    case CONFIG_DOMAIN:
    case CONFIG_PATH: {
        const char *s = *(char *const *)field;
        strbuf_puts(out, s ? s : "");
        break;
    }
    case CONFIG_INT:
        strbuf_printf(out, "%lld", *(const long long *)field);
        break;
    case CONFIG_BOOL:
        strbuf_puts(out, *(const bool *)field ? "true" : "false");
        break;
    case CONFIG_PATH_LIST:
    case CONFIG_ENUM_LIST: {
        const struct config_str_list *l = field;
        for (size_t i = 0; i < l->n; i++) {
            strbuf_puts(out, i ? ", " : "");
            strbuf_puts(out, l->v[i]);
        }
        break;
    }
    case CONFIG_ADDR_LIST: {
        const struct config_addr_list *l = field;
        for (size_t i = 0; i < l->n; i++) {
            strbuf_puts(out, i ? ", " : "");
            strbuf_puts(out, netaddr_format(&l->v[i], buf));
        }
        break;
    }
    case CONFIG_CIDR_LIST: {
        const struct config_cidr_list *l = field;
        for (size_t i = 0; i < l->n; i++) {
            strbuf_puts(out, i ? ", " : "");
            strbuf_puts(out, cidr_format(&l->v[i], buf));
        }
        break;
    }
    }
}

/* --- editing ---------------------------------------------------------- */

/* One line of the file, without its end. */
struct config_line {
    const char *p;
    size_t n;
};

static bool config_line_is_section(struct config_line l, char *name, size_t cap)
{
    size_t i = 0;
    while (i < l.n && isspace((unsigned char)l.p[i]))
        i++;
    if (i >= l.n || l.p[i] != '[')
        return false;
    const char *close = memchr(l.p + i, ']', l.n - i);
    if (!close)
        return false;
    size_t n = (size_t)(close - (l.p + i + 1));
    struct strview v = strview_trim(strview_make(l.p + i + 1, n));
    strview_copy(v, name, cap);
    return true;
}

/* Does the line set `key` (optionally only as a comment "# key = ...")? */
static bool config_line_sets(struct config_line l, const char *key, bool commented)
{
    size_t i = 0;
    while (i < l.n && isspace((unsigned char)l.p[i]))
        i++;
    if (commented) {
        if (i >= l.n || (l.p[i] != '#' && l.p[i] != ';'))
            return false;
        i++;
        while (i < l.n && isspace((unsigned char)l.p[i]))
            i++;
    }
    size_t klen = strlen(key);
    if (l.n - i < klen || strncmp(l.p + i, key, klen) != 0)
        return false;
    i += klen;
    while (i < l.n && (l.p[i] == ' ' || l.p[i] == '\t'))
        i++;
    return i < l.n && (l.p[i] == '=' || l.p[i] == ':');
}

static int config_write_atomic(const char *path, const char *text, size_t len, char *err,
                               size_t errlen)
{
    struct stat st;
    mode_t mode = 0640;
    bool had = stat(path, &st) == 0;
    if (had)
        mode = st.st_mode & 0777;

    size_t tlen = strlen(path) + 16;
    char *tmp = malloc(tlen);
    if (!tmp)
        return -ENOMEM;
    snprintf(tmp, tlen, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    int rc = 0;
    if (fd < 0) {
        rc = -errno;
        config_err(err, errlen, "%s: cannot create a temporary file: %s", path, strerror(-rc));
        goto out;
    }
    if (fchmod(fd, mode) != 0) {
        rc = -errno;
        goto fail_write;
    }
    /* root editing a file server.user reads keeps it that user's (or
     * group's): the replacement has the original's owner */
    if (had && geteuid() == 0 && (st.st_uid != 0 || st.st_gid != 0) &&
        fchown(fd, st.st_uid, st.st_gid) != 0) {
        rc = -errno;
        goto fail_write;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = w < 0 ? -errno : -EIO;
            goto fail_write;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) {
        rc = -errno;
        goto fail_write;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = -errno;
        goto fail_write;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = -errno;
        goto fail_write;
    }
    /* make the rename itself durable */
    char *dcopy = strdup(path);
    if (dcopy) {
        int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            if (fsync(dfd) != 0)
                rc = -errno;
            close(dfd);
        }
        free(dcopy);
    }
    if (rc)
        config_err(err, errlen, "%s: written, but syncing its directory failed: %s", path,
                   strerror(-rc));
    goto out;

fail_write:
    config_err(err, errlen, "%s: cannot write: %s (the file is unchanged)", path, strerror(-rc));
    if (fd >= 0)
        close(fd);
    unlink(tmp);
out:
    free(tmp);
    return rc;
}

int config_set(const char *path, const char *dotted_key, const char *value, char *err,
               size_t errlen)
{
    const struct config_key *key = config_key_find(dotted_key);
    char *text = NULL;
    struct config *check = NULL;
    struct strbuf out = STRBUF_INIT;
    struct config_line *lines = NULL;
    int rc;

    if (!key) {
        config_err(err, errlen, "unknown key \"%s\" (see `parleyctl config list`)", dotted_key);
        return -ENOENT;
    }
    rc = config_validate_value(key, value, err, errlen);
    if (rc)
        return rc;
    rc = config_read_file(path, &text, err, errlen);
    if (rc)
        return rc;

    /* split into lines */
    size_t nlines = 0, cap = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (nlines == cap) {
            cap = cap ? cap * 2 : 64;
            struct config_line *nl2 = realloc(lines, cap * sizeof(*lines));
            if (!nl2) {
                rc = -ENOMEM;
                goto out;
            }
            lines = nl2;
        }
        lines[nlines].p = p;
        lines[nlines].n = (n && p[n - 1] == '\r') ? n - 1 : n;
        nlines++;
        p += n + (nl ? 1 : 0);
    }

    /* find where the key is set, commented, or where its section ends */
    char section[64] = "";
    ssize_t set_at = -1, comment_at = -1, section_end = -1;
    bool in_section = false;
    for (size_t i = 0; i < nlines; i++) {
        char name[64];
        if (config_line_is_section(lines[i], name, sizeof(name))) {
            snprintf(section, sizeof(section), "%s", name);
            in_section = strcmp(section, key->section) == 0;
            if (in_section)
                section_end = (ssize_t)i;
            continue;
        }
        if (!in_section)
            continue;
        struct strview t = strview_trim(strview_make(lines[i].p, lines[i].n));
        if (t.n)
            section_end = (ssize_t)i;
        if (set_at < 0 && config_line_sets(lines[i], key->name, false))
            set_at = (ssize_t)i;
        if (comment_at < 0 && config_line_sets(lines[i], key->name, true))
            comment_at = (ssize_t)i;
    }

    char *trimmed = config_strdup_trim(value, strlen(value));
    if (!trimmed) {
        rc = -ENOMEM;
        goto out;
    }
    ssize_t insert_after = set_at >= 0 ? -1 : (comment_at >= 0 ? comment_at : section_end);
    for (size_t i = 0; i < nlines; i++) {
        if ((ssize_t)i == set_at) {
            strbuf_printf(&out, "%s = %s\n", key->name, trimmed);
            continue;
        }
        strbuf_append(&out, lines[i].p, lines[i].n);
        strbuf_putc(&out, '\n');
        if ((ssize_t)i == insert_after)
            strbuf_printf(&out, "%s = %s\n", key->name, trimmed);
    }
    if (set_at < 0 && insert_after < 0)
        strbuf_printf(&out, "%s[%s]\n%s = %s\n", out.len ? "\n" : "", key->section, key->name,
                      trimmed);
    free(trimmed);
    if (out.err) {
        rc = out.err;
        goto out;
    }

    /* the whole file must still load */
    rc = config_load_string(path, strbuf_cstr(&out), &check, err, errlen);
    if (rc)
        goto out;
    rc = config_write_atomic(path, out.p, out.len, err, errlen);
out:
    config_free(check);
    strbuf_free(&out);
    free(lines);
    free(text);
    return rc;
}

int config_template(const char *const *values, struct strbuf *out)
{
    const char *section = NULL;

    strbuf_puts(out, "# parley.conf — Parley server configuration.\n"
                     "# Every key is documented in docs/parley.conf.md. Lines starting with '#'\n"
                     "# show a key's default; set a key with\n"
                     "#   parleyctl -c parley.conf config set SECTION.KEY VALUE\n"
                     "# then `parleyctl reload` (keys marked \"restart\" need a restart).\n"
                     "# Relative paths are relative to this file's directory.\n");
    for (const struct config_key *k = config_table_get(); k->section; k++) {
        if (!section || strcmp(section, k->section) != 0) {
            section = k->section;
            strbuf_printf(out, "\n[%s]\n", section);
        }
        const char *value = NULL;
        size_t dlen = strlen(k->section) + 1 + strlen(k->name);
        for (const char *const *v = values; v && *v; v++) {
            if (strncmp(*v, k->section, strlen(k->section)) == 0 &&
                (*v)[strlen(k->section)] == '.' &&
                strncmp(*v + strlen(k->section) + 1, k->name, strlen(k->name)) == 0 &&
                (*v)[dlen] == '=')
                value = *v + dlen + 1;
        }
        strbuf_printf(out, "\n# %s\n# Applied by: %s.%s%s\n", k->help,
                      k->reloadable ? "reload" : "restart", k->unit ? " Unit: " : "",
                      k->unit ? k->unit : "");
        if (value)
            strbuf_printf(out, "%s = %s\n", k->name, value);
        else if (k->in_template)
            strbuf_printf(out, "%s = %s\n", k->name, k->default_value);
        else
            strbuf_printf(out, "# %s = %s\n", k->name, k->default_value);
    }
    return out->err;
}
