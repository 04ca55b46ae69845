/*
 * parleyctl diag [--json]: what is wrong with this deployment, one check a
 * line: ok, warn or fail, and for the last two what to do. Exit 1 when a
 * check fails.
 *
 * The checks, in order: parleyd answers on its control socket; the store
 * is sound (integrity_check) and of this build's schema; the server
 * certificate loads, matches its key, chains to the configured CAs and is
 * valid now and for 30 more days (and the CAs too); private keys and
 * secret files are 0600 and owned by the daemon's user (server.user when
 * this build has it, else the owner of the state directory), the state
 * directory 0700; the clock is not before this program was built and the
 * kernel says it is synchronised; the domain's DNS SRV records that
 * clients, partners and TURN clients look up exist; and every federation
 * partner and trunk answers a TCP connect and, over TLS, a handshake whose
 * certificate parleyd would accept (the same TLS context, the same
 * identity checks), each within a few seconds.
 */
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timex.h>
#include <time.h>
#include <unistd.h>

#include "core/dns.h"
#include "core/netaddr.h"
#include "core/strbuf.h"
#include "crypto/fips.h"
#include "crypto/pki.h"
#include "ctl/ctl.h"
#include "relay/relay_cred.h"
#include "store/store.h"
#include "tls/cert.h"
#include "tls/context.h"
#include "tls/expiry.h"
#include "web/ticket.h"

#define DIAG_TIMEOUT_S   4 /* per connect, per handshake, per DNS lookup */
#define DIAG_PEERS_MAX   32
#define DIAG_CONTENT_KEY "content.key"

struct diag {
    struct ctl *ctl;
    json_t *checks;
    int fails;
    SSL_CTX *tls; /* parleyd's context, for the handshakes with peers */
    char tls_err[512];
    int64_t now;
};

static void diag_add(struct diag *d, const char *check, const char *status, const char *hint,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void diag_add(struct diag *d, const char *check, const char *status, const char *hint,
                     const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    if (strcmp(status, "fail") == 0)
        d->fails++;
    char h[1024];
    snprintf(h, sizeof(h), "%s", strcmp(status, "ok") == 0 || !hint ? "" : hint);
    json_t *row = json_pack("{s:s, s:s, s:s, s:s}", "check", check, "status", status, "detail",
                            detail, "hint", h);
    if (!row) {
        /* not UTF-8 (a path, a name, or cut inside a character): shown as
         * ASCII rather than the check lost */
        for (char *t[] = {detail, h}, **c = t; c < t + 2; c++)
            for (char *b = *c; *b; b++)
                if ((unsigned char)*b >= 0x80)
                    *b = '?';
        row = json_pack("{s:s, s:s, s:s, s:s}", "check", check, "status", status, "detail", detail,
                        "hint", h);
    }
    json_array_append_new(d->checks, row);
}

/* --- parleyd and the store --- */

static void diag_daemon(struct diag *d)
{
    char err[512];
    json_t *reply = NULL;
    if (ctl_control_request(d->ctl->cfg, "status", &reply, err, sizeof(err)) != 0) {
        diag_add(d, "parleyd", "fail",
                 "start it: parleyd -c CONF (or see its log for why it stopped)", "%s", err);
        return;
    }
    json_t *dm = json_object_get(reply, "daemon");
    if (json_is_true(json_object_get(reply, "ok")) || dm)
        diag_add(d, "parleyd", "ok", NULL, "running (pid %lld, up %lld s)",
                 json_integer_value(json_object_get(dm, "pid")),
                 json_integer_value(json_object_get(dm, "uptime_s")));
    else
        diag_add(d, "parleyd", "fail", "look at parleyd's log", "the control socket answered: %s",
                 json_string_value(json_object_get(reply, "error")));
    json_decref(reply);
}

static void diag_store(struct diag *d)
{
    char path[4200], err[1024], integrity[512];
    int64_t version = -1;
    snprintf(path, sizeof(path), "%s/parley.db", d->ctl->cfg->state_dir);
    if (store_check(path, &version, integrity, sizeof(integrity), err, sizeof(err)) != 0) {
        diag_add(d, "store", "fail",
                 "restore the store from a backup (parleyctl restore), or fix what the message "
                 "says",
                 "%s", err);
        return;
    }
    if (strcmp(integrity, "ok") != 0)
        diag_add(d, "store", "fail",
                 "stop parleyd and restore the store from a backup (parleyctl restore)",
                 "%s: integrity_check: %s", path, integrity);
    else if (version > STORE_SCHEMA_VERSION)
        diag_add(d, "store", "fail", "use the parleyctl of the parleyd that wrote it",
                 "%s: schema %lld is newer than this parleyctl's %d", path, (long long)version,
                 STORE_SCHEMA_VERSION);
    else if (version < STORE_SCHEMA_VERSION)
        diag_add(d, "store", "warn",
                 "parleyd migrates it when it starts; take a backup first (parleyctl backup)",
                 "%s: schema %lld, this build's is %d", path, (long long)version,
                 STORE_SCHEMA_VERSION);
    else
        diag_add(d, "store", "ok", NULL, "%s: integrity ok, schema %lld", path, (long long)version);
}

/* --- certificates --- */

static STACK_OF(X509) * diag_read_certs(const char *path)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    BIO *bio = BIO_new_file(path, "r");
    X509 *x;
    while (bio && sk && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
        sk_X509_push(sk, x);
    BIO_free(bio);
    ERR_clear_error();
    return sk;
}

static int diag_add_trust(X509_STORE *store, const char *path)
{
    STACK_OF(X509) *sk = diag_read_certs(path);
    int n = sk_X509_num(sk);
    for (int i = 0; i < n; i++)
        X509_STORE_add_cert(store, sk_X509_value(sk, i));
    sk_X509_pop_free(sk, X509_free);
    ERR_clear_error();
    return n;
}

/* Validity of one certificate: fail outside it, warn within 30 days. */
static void diag_expiry(struct diag *d, const char *check, const char *what, X509 *x)
{
    struct cert_summary s;
    if (cert_summarize(x, &s) != 0) {
        diag_add(d, check, "fail", "replace the file", "%s: unreadable dates", what);
        return;
    }
    int64_t days = cert_days_left(x, d->now);
    if (s.not_before > d->now)
        diag_add(d, check, "fail",
                 "check the clock (parleyctl diag's clock line); else the certificate was issued "
                 "for later: install one valid now",
                 "%s (%s) is not valid before %lld (now %lld)", what, s.subject,
                 (long long)s.not_before, (long long)d->now);
    else if (s.not_after < d->now)
        diag_add(d, check, "fail",
                 "renew it: parleyctl cert request, have it signed, parleyctl cert install; "
                 "then parleyctl reload",
                 "%s (%s) expired %lld days ago", what, s.subject, (long long)-days);
    else if (days < TLS_EXPIRY_WARN_DAYS)
        diag_add(d, check, "warn", "renew it before it expires (parleyctl cert request/install)",
                 "%s (%s) expires in %lld days", what, s.subject, (long long)days);
    else
        diag_add(d, check, "ok", NULL, "%s (%s): %lld days left", what, s.subject, (long long)days);
}

static void diag_listeners(const struct config *cfg, struct strbuf *out)
{
    const struct config_addr_list *lists[] = {&cfg->sip.tls_listen, &cfg->sip.mtls_listen,
                                              &cfg->https.listen, &cfg->relay.tls_listen};
    for (size_t l = 0; l < sizeof(lists) / sizeof(lists[0]); l++)
        for (size_t i = 0; i < lists[l]->n; i++) {
            char a[NETADDR_STRLEN];
            strbuf_printf(out, "%s%s", out->len ? ", " : "", netaddr_format(&lists[l]->v[i], a));
        }
}

static void diag_certificates(struct diag *d)
{
    const struct config *cfg = d->ctl->cfg;
    char err[1024];
    struct strbuf where = STRBUF_INIT;
    diag_listeners(cfg, &where);
    const char *listeners = where.len ? strbuf_cstr(&where) : "no TLS listener";

    int rc = cert_check_keypair(cfg->tls.certificate, cfg->tls.private_key, err, sizeof(err));
    if (rc == -EKEYEXPIRED) {
        /* said below with its dates, by diag_expiry */
    } else if (rc != 0) {
        diag_add(
            d, "certificate", "fail",
            rc == -EPERM ? "chmod 600 the key (and chown it to the daemon's user)"
            : rc == -EKEYREJECTED
                ? "install the certificate issued for this key (parleyctl cert install)"
                : "fix tls.certificate / tls.private_key (parleyctl config get tls.certificate)",
            "%s (listeners %s)", err, listeners);
        strbuf_free(&where);
        return;
    }

    /* the chain against tls.ca_files and pki/trusted, as peers would */
    STACK_OF(X509) *chain = diag_read_certs(cfg->tls.certificate);
    X509 *leaf = sk_X509_num(chain) > 0 ? sk_X509_value(chain, 0) : NULL;
    X509_STORE *store = X509_STORE_new();
    int anchors = 0;
    for (size_t i = 0; store && i < cfg->tls.ca_files.n; i++)
        anchors += diag_add_trust(store, cfg->tls.ca_files.v[i]);
    char tdir[4200];
    snprintf(tdir, sizeof(tdir), "%s/%s", cfg->state_dir, TLS_TRUSTED_DIR);
    DIR *dir = opendir(tdir);
    struct dirent *de;
    while (dir && store && (de = readdir(dir))) {
        size_t n = strlen(de->d_name);
        if (n > 4 && strcmp(de->d_name + n - 4, ".pem") == 0) {
            char f[4500];
            snprintf(f, sizeof(f), "%s/%s", tdir, de->d_name);
            anchors += diag_add_trust(store, f);
        }
    }
    if (dir)
        closedir(dir);
    X509_STORE_CTX *vctx =
        X509_STORE_CTX_new_ex(fips_libctx(d->ctl->fips), fips_propq(d->ctl->fips));
    if (!leaf) {
        diag_add(d, "certificate", "fail", "fix tls.certificate", "%s: no certificate",
                 cfg->tls.certificate);
    } else if (anchors == 0) {
        diag_add(d, "certificate", "fail", "set tls.ca_files (or parleyctl trust add)",
                 "no CA certificate in tls.ca_files or %s to verify %s against", tdir,
                 cfg->tls.certificate);
    } else if (vctx && X509_STORE_CTX_init(vctx, store, leaf, chain) == 1) {
        /* dates are said one by one below, with their own advice */
        X509_STORE_CTX_set_flags(vctx, X509_V_FLAG_NO_CHECK_TIME);
        if (X509_verify_cert(vctx) == 1)
            diag_add(d, "certificate", "ok", NULL, "%s chains to a configured CA (listeners %s)",
                     cfg->tls.certificate, listeners);
        else
            diag_add(d, "certificate", "fail",
                     "put the intermediate certificates after the server's in tls.certificate, "
                     "and the issuing CA in tls.ca_files",
                     "%s does not verify: %s", cfg->tls.certificate,
                     X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
    }
    X509_STORE_CTX_free(vctx);
    X509_STORE_free(store);
    ERR_clear_error();

    for (int i = 0; i < sk_X509_num(chain); i++) {
        char what[4200];
        snprintf(what, sizeof(what), "%s%s", cfg->tls.certificate, i ? " (chain)" : "");
        diag_expiry(d, "certificate expiry", what, sk_X509_value(chain, i));
    }
    sk_X509_pop_free(chain, X509_free);
    for (size_t f = 0; f < cfg->tls.ca_files.n; f++) {
        STACK_OF(X509) *cas = diag_read_certs(cfg->tls.ca_files.v[f]);
        for (int i = 0; i < sk_X509_num(cas); i++)
            diag_expiry(d, "ca expiry", cfg->tls.ca_files.v[f], sk_X509_value(cas, i));
        sk_X509_pop_free(cas, X509_free);
    }
    strbuf_free(&where);
}

/* --- permissions --- */

/* The daemon's user: server.user where this build knows the key and it is
 * set, else whoever owns the state directory. */
static int diag_daemon_uid(struct diag *d, uid_t *uid, char *who, size_t cap)
{
    const struct config_key *k = config_key_find("server.user");
    if (k) {
        struct strbuf v = STRBUF_INIT;
        config_format_value(d->ctl->cfg, k, &v);
        const char *name = strbuf_cstr(&v);
        if (name && *name) {
            struct passwd *pw = getpwnam(name);
            snprintf(who, cap, "%s (server.user)", name);
            strbuf_free(&v);
            if (!pw)
                return -ENOENT;
            *uid = pw->pw_uid;
            return 0;
        }
        strbuf_free(&v);
    }
    struct stat sb;
    if (stat(d->ctl->cfg->state_dir, &sb) != 0)
        return -errno;
    struct passwd *pw = getpwuid(sb.st_uid);
    snprintf(who, cap, "%s (owner of %s)", pw ? pw->pw_name : "?", d->ctl->cfg->state_dir);
    *uid = sb.st_uid;
    return 0;
}

static void diag_secret(struct diag *d, const char *path, uid_t uid, const char *who, bool required)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        if (required || errno != ENOENT)
            diag_add(d, "permissions", "fail", "restore the file from a backup", "%s: %s", path,
                     strerror(errno));
        return;
    }
    char hint[600];
    if (!S_ISREG(sb.st_mode)) {
        diag_add(d, "permissions", "fail", "replace it with a regular file",
                 "%s is not a regular file (a link is not followed for secrets)", path);
    } else if (sb.st_mode & 077) {
        snprintf(hint, sizeof(hint), "chmod 600 %s", path);
        diag_add(d, "permissions", "fail", hint,
                 "%s has mode %04o: group or others may read or change a secret", path,
                 (unsigned)(sb.st_mode & 07777));
    } else if (sb.st_uid != uid) {
        struct passwd *pw = getpwuid(sb.st_uid);
        snprintf(hint, sizeof(hint), "chown %.*s %s", (int)strcspn(who, " "), who, path);
        diag_add(d, "permissions", "fail", hint, "%s is owned by %s, not by the daemon's user %s",
                 path, pw ? pw->pw_name : "?", who);
    } else {
        diag_add(d, "permissions", "ok", NULL, "%s: 0%03o, owner %s", path,
                 (unsigned)(sb.st_mode & 0777), who);
    }
}

static void diag_permissions(struct diag *d)
{
    const struct config *cfg = d->ctl->cfg;
    uid_t uid = 0;
    char who[300], p[4200];
    if (diag_daemon_uid(d, &uid, who, sizeof(who)) != 0) {
        diag_add(d, "permissions", "fail", "create the user or fix server.user",
                 "the daemon's user %s does not exist", who);
        return;
    }
    struct stat sb;
    if (stat(cfg->state_dir, &sb) != 0) {
        diag_add(d, "state directory", "fail", NULL, "%s: %s", cfg->state_dir, strerror(errno));
    } else if (sb.st_mode & 022) {
        snprintf(p, sizeof(p), "chmod 700 %s", cfg->state_dir);
        diag_add(d, "state directory", "fail", p, "%s has mode %04o: others may replace its files",
                 cfg->state_dir, (unsigned)(sb.st_mode & 07777));
    } else if (sb.st_mode & 077) {
        snprintf(p, sizeof(p), "chmod 700 %s", cfg->state_dir);
        diag_add(d, "state directory", "warn", p,
                 "%s has mode %04o: others may list it (parleyctl init makes it 0700)",
                 cfg->state_dir, (unsigned)(sb.st_mode & 07777));
    } else if (sb.st_uid != uid) {
        snprintf(p, sizeof(p), "chown %.*s %s", (int)strcspn(who, " "), who, cfg->state_dir);
        diag_add(d, "state directory", "fail", p, "%s is not owned by the daemon's user %s",
                 cfg->state_dir, who);
    } else {
        diag_add(d, "state directory", "ok", NULL, "%s: 0%03o, owner %s", cfg->state_dir,
                 (unsigned)(sb.st_mode & 0777), who);
    }

    diag_secret(d, cfg->tls.private_key, uid, who, true);
    snprintf(p, sizeof(p), "%s/parley.db", cfg->state_dir);
    diag_secret(d, p, uid, who, true);
    static const struct {
        const char *dir, *name;
    } optional[] = {{"pki/", PKI_CA_KEY_FILE},
                    {"", RELAY_SECRETS_FILE},
                    {"", TICKET_KEYS_FILE},
                    {"", DIAG_CONTENT_KEY}};
    for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s%s", cfg->state_dir, optional[i].dir, optional[i].name);
        if (strcmp(p, cfg->tls.private_key) != 0)
            diag_secret(d, p, uid, who, false);
    }
}

/* --- the clock --- */

/* PARLEY_BUILD_EPOCH (src/ctl/meson.build): SOURCE_DATE_EPOCH or the last
 * commit's time, 0 when the build could tell neither. */
static void diag_clock(struct diag *d)
{
    const time_t built = (time_t)PARLEY_BUILD_EPOCH;
    char when[32] = "unknown";
    struct tm tm;
    if (built > 0 && gmtime_r(&built, &tm))
        strftime(when, sizeof(when), "%Y-%m-%d", &tm);
    if (built > 0 && (time_t)d->now < built - 86400) {
        diag_add(d, "clock", "fail",
                 "set the clock (timedatectl set-ntp true, or an NTP client): certificates and "
                 "nonces depend on it",
                 "the system clock says %lld, before this program was built (%s)",
                 (long long)d->now, when);
        return;
    }
    struct timex tx = {0};
    int state = adjtimex(&tx);
    if (state == TIME_ERROR)
        diag_add(d, "clock", "warn",
                 "run an NTP client (timedatectl set-ntp true, chrony); in a container, on the "
                 "host",
                 "the kernel says the clock is not synchronised (no NTP?); it is after the build "
                 "date (%s)",
                 when);
    else
        diag_add(d, "clock", "ok", NULL,
                 "after the build date (%s); the kernel says it is synchronised (estimated error "
                 "%ld us)",
                 when, (long)tx.esterror);
}

/* --- DNS --- */

struct diag_lookup {
    struct event_base *base;
    bool done;
    int status;
    struct dns_srv srv[8];
    size_t nsrv;
    struct netaddr addr[8];
    size_t naddr;
};

static void diag_on_srv(void *arg, int status, const struct dns_srv *recs, size_t n)
{
    struct diag_lookup *l = arg;
    l->done = true;
    l->status = status;
    l->nsrv = n < 8 ? n : 8;
    if (status == 0)
        memcpy(l->srv, recs, l->nsrv * sizeof(*recs));
    event_base_loopbreak(l->base);
}

static void diag_on_addr(void *arg, int status, const struct netaddr *addrs, size_t n)
{
    struct diag_lookup *l = arg;
    l->done = true;
    l->status = status;
    l->naddr = n < 8 ? n : 8;
    if (status == 0)
        memcpy(l->addr, addrs, l->naddr * sizeof(*addrs));
    event_base_loopbreak(l->base);
}

/* One lookup on a resolver of its own, waited for at most DIAG_TIMEOUT_S
 * (freeing the resolver cancels it, answering while l is still here). */
static int diag_lookup(struct diag *d, const char *name, uint16_t port, bool srv,
                       struct diag_lookup *l, char *err, size_t errlen)
{
    memset(l, 0, sizeof(*l));
    l->base = event_base_new();
    struct dns_resolver *r = NULL;
    if (!l->base || dns_resolver_new(l->base, d->ctl->cfg->dns.nameservers, &r, err, errlen) != 0) {
        if (l->base)
            event_base_free(l->base);
        return -EIO;
    }
    if (srv)
        dns_resolve_srv(r, name, diag_on_srv, l);
    else
        dns_resolve_addr(r, name, port, diag_on_addr, l);
    struct timeval tv = {DIAG_TIMEOUT_S, 0};
    if (!l->done) {
        event_base_loopexit(l->base, &tv);
        event_base_dispatch(l->base);
    }
    bool answered = l->done;
    dns_resolver_free(r);
    event_base_free(l->base);
    l->base = NULL;
    if (!answered)
        l->status = -ETIMEDOUT;
    return l->status;
}

static void diag_srv(struct diag *d, const char *service, const char *why, const char *hint)
{
    char name[600], err[256], check[640];
    snprintf(name, sizeof(name), "%s.%s", service, d->ctl->cfg->server.domain);
    snprintf(check, sizeof(check), "dns %s", name);
    struct diag_lookup l;
    int rc = diag_lookup(d, name, 0, true, &l, err, sizeof(err));
    if (rc == 0 && l.nsrv > 0)
        diag_add(d, check, "ok", NULL, "%s:%u (and %zu more)", l.srv[0].target, l.srv[0].port,
                 l.nsrv - 1);
    else
        diag_add(d, check, "warn", hint, "no SRV record (%s): %s",
                 rc == -ETIMEDOUT ? "timed out"
                 : rc == -ENOENT  ? "none"
                                  : "lookup failed",
                 why);
}

static void diag_dns(struct diag *d)
{
    const struct config *cfg = d->ctl->cfg;
    if (cfg->sip.tls_listen.n)
        diag_srv(d, "_sips._tcp", "clients that follow RFC 3263 find the server by it",
                 "publish _sips._tcp.DOMAIN SRV 0 0 PORT HOST for sip.tls_listen");
    if (cfg->sip.mtls_listen.n)
        diag_srv(d, "_sipfederationtls._tcp", "partners without --server find this server by it",
                 "publish _sipfederationtls._tcp.DOMAIN SRV for sip.mtls_listen, or give "
                 "partners --server HOST:PORT");
    if (cfg->relay.enabled && cfg->relay.tls_listen.n)
        diag_srv(d, "_turns._tcp", "TURN clients (RFC 7065) find the relay over TLS by it",
                 "publish _turns._tcp.DOMAIN SRV for relay.tls_listen");
    if (cfg->relay.enabled && cfg->relay.listen.n)
        diag_srv(d, "_turn._udp", "TURN clients find the relay by it",
                 "publish _turn._udp.DOMAIN SRV for relay.listen");
}

/* --- partners and trunks --- */

static int diag_connect(const struct netaddr *a, char *err, size_t errlen)
{
    int fd = socket(a->u.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, &a->u.sa, a->len) != 0 && errno != EINPROGRESS) {
        int e = errno;
        snprintf(err, errlen, "connect: %s", strerror(e));
        close(fd);
        return -e;
    }
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int n = poll(&p, 1, DIAG_TIMEOUT_S * 1000);
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (n <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr) {
        snprintf(err, errlen, "connect: %s",
                 n == 0 ? "no answer within a few seconds" : strerror(soerr ? soerr : errno));
        close(fd);
        return n == 0 ? -ETIMEDOUT : -ECONNREFUSED;
    }
    /* still non-blocking: the handshake has one deadline (a timeout per
     * read would let a peer that sends a byte now and then hold us) */
    return fd;
}

/* A handshake with parleyd's context: its client certificate, its trust
 * store and CRLs, its verify callback. *peer gets the peer's certificate. */
static int diag_handshake(struct diag *d, int fd, const char *sni, X509 **peer, char *err,
                          size_t errlen)
{
    *peer = NULL;
    if (!d->tls) {
        snprintf(err, errlen, "no TLS context: %s", d->tls_err);
        return -EINVAL;
    }
    SSL *ssl = SSL_new(d->tls);
    if (!ssl)
        return -ENOMEM;
    SSL_set_fd(ssl, fd);
    if (sni)
        SSL_set_tlsext_host_name(ssl, sni);
    int rc = 0, r;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while ((r = SSL_connect(ssl)) != 1) {
        int want = SSL_get_error(ssl, r);
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = DIAG_TIMEOUT_S * 1000L - (now.tv_sec - start.tv_sec) * 1000L -
                    (now.tv_nsec - start.tv_nsec) / 1000000L;
        if ((want != SSL_ERROR_WANT_READ && want != SSL_ERROR_WANT_WRITE) || left <= 0)
            break;
        struct pollfd p = {.fd = fd, .events = want == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT};
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
            break;
    }
    if (r != 1) {
        long v = SSL_get_verify_result(ssl);
        unsigned long e = ERR_peek_last_error();
        if (v != X509_V_OK)
            snprintf(err, errlen, "TLS handshake: certificate refused: %s",
                     X509_verify_cert_error_string(v));
        else
            snprintf(err, errlen, "TLS handshake failed: %s",
                     e ? ERR_reason_error_string(e) : "connection closed or timed out");
        rc = -EPROTO;
    } else {
        *peer = SSL_get1_peer_certificate(ssl);
        SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    ERR_clear_error();
    return rc;
}

struct diag_target {
    char check[300];
    char host[256];    /* who the certificate must name */
    char domain[256];  /* a partner's SIP domain ("" for trunks) */
    char connect[256]; /* where to connect (a host or an IP) */
    uint16_t port;
    bool tls;
};

static void diag_reach(struct diag *d, const struct diag_target *t)
{
    char err[512] = "", a[NETADDR_STRLEN];
    struct netaddr addr;
    const char *hint = "check that the peer runs and that a firewall lets this node reach it";
    if (netaddr_parse_ip(t->connect, t->port, &addr) != 0) {
        struct diag_lookup l;
        int rc = diag_lookup(d, t->connect, t->port, false, &l, err, sizeof(err));
        if (rc != 0 || l.naddr == 0) {
            diag_add(d, t->check, "fail", "check the name (and dns.nameservers)",
                     "%s: no address (%s)", t->connect,
                     rc == -ETIMEDOUT ? "timed out"
                     : rc == -ENOENT  ? "no such name"
                                      : "lookup failed");
            return;
        }
        addr = l.addr[0];
    }
    netaddr_format(&addr, a);
    int fd = diag_connect(&addr, err, sizeof(err));
    if (fd < 0) {
        diag_add(d, t->check, "fail", hint, "%s (%s): %s", a, t->connect, err);
        return;
    }
    if (!t->tls) {
        close(fd);
        diag_add(d, t->check, "ok", NULL, "%s: TCP connect answered (plain TCP: no certificate)",
                 a);
        return;
    }
    X509 *peer = NULL;
    int rc = diag_handshake(d, fd, t->host, &peer, err, sizeof(err));
    close(fd);
    if (rc != 0) {
        diag_add(d, t->check, "fail",
                 "the peer's CA must be trusted (tls.ca_files, parleyctl trust add), its "
                 "certificate valid, and ours acceptable to it",
                 "%s: %s", a, err);
        return;
    }
    bool named = t->domain[0] ? cert_proves_sip_domain(peer, t->domain) ||
                                    (t->host[0] && cert_matches_host(peer, t->host))
                              : cert_matches_host(peer, t->host);
    struct cert_summary s = {0};
    cert_summarize(peer, &s);
    int64_t days = cert_days_left(peer, d->now);
    X509_free(peer);
    if (!named)
        diag_add(d, t->check, "fail",
                 "the peer's certificate must name its domain or host (subjectAltName)",
                 "%s: the certificate (%s, %s) names neither %s nor %s", a, s.subject, s.sans,
                 t->domain[0] ? t->domain : t->host, t->host);
    else if (days < TLS_EXPIRY_WARN_DAYS)
        diag_add(d, t->check, "warn", "tell the peer's administrator",
                 "%s: reachable, certificate %s expires in %lld days", a, s.subject,
                 (long long)days);
    else
        diag_add(d, t->check, "ok", NULL,
                 "%s: TLS handshake, certificate %s accepted (%lld days "
                 "left)",
                 a, s.subject, (long long)days);
}

struct diag_peers {
    struct diag_target v[DIAG_PEERS_MAX];
    size_t n;
    size_t more;
};

/* The next free target, zeroed; NULL (and counted) when the list is full. */
static struct diag_target *diag_peers_next(struct diag_peers *ps)
{
    if (ps->n == DIAG_PEERS_MAX) {
        ps->more++;
        return NULL;
    }
    struct diag_target *t = &ps->v[ps->n++];
    memset(t, 0, sizeof(*t));
    return t;
}

static int diag_partner_one(const struct store_partner *p, void *arg)
{
    struct diag_target *t = diag_peers_next(arg);
    if (!t)
        return 0;
    snprintf(t->check, sizeof(t->check), "partner %s", p->domain);
    snprintf(t->domain, sizeof(t->domain), "%s", p->domain);
    snprintf(t->host, sizeof(t->host), "%s", p->server);
    snprintf(t->connect, sizeof(t->connect), "%s", p->address[0] ? p->address : p->server);
    t->port = (uint16_t)(p->port ? p->port : 5061);
    t->tls = true;
    return 0;
}

static int diag_trunk_one(const struct store_trunk *tr, void *arg)
{
    struct diag_target *t = diag_peers_next(arg);
    if (!t)
        return 0;
    snprintf(t->check, sizeof(t->check), "trunk %s", tr->name);
    const char *colon = strrchr(tr->gateway, ':');
    size_t hl = colon ? (size_t)(colon - tr->gateway) : 0;
    if (hl >= sizeof(t->host))
        hl = 0;
    memcpy(t->host, tr->gateway, hl);
    t->host[hl] = '\0';
    if (t->host[0] == '[' && hl > 2 && t->host[hl - 1] == ']') {
        memmove(t->host, t->host + 1, hl - 2);
        t->host[hl - 2] = '\0';
    }
    memcpy(t->connect, t->host,
           sizeof(t->connect) < sizeof(t->host) ? sizeof(t->connect) : sizeof(t->host));
    t->connect[sizeof(t->connect) - 1] = '\0';
    t->port = colon ? (uint16_t)atoi(colon + 1) : 0;
    t->tls = strcmp(tr->transport, "tls") == 0;
    return 0;
}

static void diag_peers(struct diag *d)
{
    struct store *st = NULL;
    char path[4200], err[1024];
    snprintf(path, sizeof(path), "%s/parley.db", d->ctl->cfg->state_dir);
    if (store_open(path, STORE_READONLY, &st, err, sizeof(err)) != 0) {
        diag_add(d, "partners and trunks", "warn", "see the store line",
                 "not checked: the store cannot be read (%s)", err);
        return;
    }
    struct diag_peers *ps = calloc(1, sizeof(*ps));
    if (!ps) {
        store_close(st);
        return;
    }
    store_partner_list(st, diag_partner_one, ps);
    store_trunk_list(st, diag_trunk_one, ps);
    store_close(st);
    for (size_t i = 0; i < ps->n; i++) {
        struct diag_target *t = &ps->v[i];
        if (t->domain[0] && !t->connect[0]) {
            /* found through DNS, as parleyd finds it */
            char name[600];
            snprintf(name, sizeof(name), "_sipfederationtls._tcp.%s", t->domain);
            struct diag_lookup l;
            int rc = diag_lookup(d, name, 0, true, &l, err, sizeof(err));
            if (rc != 0 || l.nsrv == 0) {
                diag_add(d, t->check, "fail",
                         "the partner must publish the SRV record, or add it with --server",
                         "%s: no SRV record (%s)", name, rc == -ETIMEDOUT ? "timed out" : "none");
                continue;
            }
            snprintf(t->host, sizeof(t->host), "%s", l.srv[0].target);
            snprintf(t->connect, sizeof(t->connect), "%s", l.srv[0].target);
            t->port = l.srv[0].port;
        }
        diag_reach(d, t);
    }
    if (ps->more)
        diag_add(d, "partners and trunks", "warn", NULL, "%zu more not checked (at most %d)",
                 ps->more, DIAG_PEERS_MAX);
    free(ps);
}

/* --- the report --- */

static void diag_render(struct diag *d, struct strbuf *t)
{
    size_t i;
    json_t *c;
    json_array_foreach(d->checks, i, c)
    {
        const char *status = json_string_value(json_object_get(c, "status"));
        const char *hint = json_string_value(json_object_get(c, "hint"));
        strbuf_printf(t, "%-4s  %-22s %s\n", status, json_string_value(json_object_get(c, "check")),
                      json_string_value(json_object_get(c, "detail")));
        if (hint && *hint)
            strbuf_printf(t, "      %-22s -> %s\n", "", hint);
    }
    strbuf_printf(t, "%zu checks, %d failed\n", json_array_size(d->checks), d->fails);
}

int cmd_diag(struct ctl *ctl)
{
    if (ctl->argc)
        return ctl_usage(ctl, "usage: diag [--json]");
    int rc = ctl_load_config(ctl);
    if (rc)
        return rc;
    struct diag d = {.ctl = ctl, .checks = json_array(), .now = (int64_t)time(NULL)};

    /* Parley's library context: the chain is verified, and the peers'
     * handshakes made, on it, as parleyd does */
    bool crypto = ctl_open_crypto(ctl) == CTL_OK;
    diag_daemon(&d);
    diag_store(&d);
    diag_certificates(&d);
    diag_permissions(&d);
    diag_clock(&d);
    /* parleyd's own context for the peers: made as parleyd makes it */
    if (!crypto)
        snprintf(d.tls_err, sizeof(d.tls_err), "the cryptographic context cannot be opened");
    else if (tls_init() != 0 ||
             tls_context_new(ctl->cfg, ctl->fips, &d.tls, d.tls_err, sizeof(d.tls_err)) != 0)
        d.tls = NULL;
    diag_dns(&d);
    diag_peers(&d);
    SSL_CTX_free(d.tls);

    if (ctl->json) {
        json_dumpf(d.checks, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    } else {
        struct strbuf t = STRBUF_INIT;
        diag_render(&d, &t);
        fputs(strbuf_cstr(&t), stdout);
        strbuf_free(&t);
    }
    json_decref(d.checks);
    return d.fails ? CTL_FAIL : CTL_OK;
}
