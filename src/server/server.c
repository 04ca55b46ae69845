/*
 * parleyd's life: start-up checks and refusals, the core thread's loop,
 * SIGHUP reload, SIGTERM stop.
 */
#include "server/server.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "anchor/anchor.h"
#include "core/log.h"
#include "core/log_limit.h"
#include "core/mbox.h"
#include "server/confine.h"
#include "server/control.h"
#include "server/notify.h"
#include "server/privdrop.h"
#include "core/random.h"
#include "crypto/fips.h"
#include "rtp/srtp.h"
#include "stun/stun.h"
#include "relay/relay.h"
#include "server/runtime.h"
#include "store/store.h"
#include "store/writer.h"
#include "tls/context.h"

#define STOP_GRACE_MS 2000

static void runtime_on_timer(evutil_socket_t fd, short what, void *arg);

static void runtime_arm_timer(void *arg)
{
    struct runtime *rt = arg;
    int64_t next = timer_heap_next_ms(rt->timers);
    if (next < 0) {
        event_del(rt->timer_ev);
        return;
    }
    struct timeval tv = {next / 1000, (next % 1000) * 1000};
    event_add(rt->timer_ev, &tv);
}

static void runtime_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct runtime *rt = arg;
    timer_heap_run(rt->timers);
    runtime_arm_timer(rt);
}

void runtime_send(struct runtime *rt, uint64_t conn, struct strbuf *data)
{
    size_t len;
    if (data->err || !rt->workers) {
        strbuf_free(data);
        return;
    }
    char *p = strbuf_take(data, &len);
    worker_pool_send(rt->workers, conn, p, len);
}

/* The state directory belongs to one parleyd at a time. */
static int runtime_lock(struct runtime *rt, char *err, size_t errlen)
{
    size_t n = strlen(rt->cfg->state_dir) + sizeof("/parleyd.lock");
    rt->lock_path = malloc(n);
    if (!rt->lock_path)
        return -ENOMEM;
    snprintf(rt->lock_path, n, "%s/parleyd.lock", rt->cfg->state_dir);
    /* opened as root in a directory server.user owns (after the first
     * start): a link put there must not make root truncate the file it
     * names (a symbolic link is refused, a file with another name too) */
    rt->lock_fd = open(rt->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
    struct stat st;
    int e = 0;
    if (rt->lock_fd < 0 || fstat(rt->lock_fd, &st) != 0)
        e = errno;
    else if (!S_ISREG(st.st_mode) || st.st_nlink != 1)
        e = EINVAL;
    if (e) {
        snprintf(err, errlen, "%s: cannot open the lock file: %s", rt->lock_path,
                 e == ELOOP    ? "it is a symbolic link"
                 : e == EINVAL ? "not a regular file with one name"
                               : strerror(e));
        if (rt->lock_fd >= 0)
            close(rt->lock_fd);
        rt->lock_fd = -1;
        return -e;
    }
    if (flock(rt->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        e = errno;
        char pid[32] = "";
        ssize_t r = pread(rt->lock_fd, pid, sizeof(pid) - 1, 0);
        pid[r > 0 ? r : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (e == EWOULDBLOCK)
            snprintf(err, errlen, "%s: another parleyd (pid %s) is running on this state directory",
                     rt->lock_path, pid[0] ? pid : "?");
        else
            snprintf(err, errlen, "%s: cannot lock: %s", rt->lock_path, strerror(e));
        close(rt->lock_fd);
        rt->lock_fd = -1;
        return e == EWOULDBLOCK ? -EBUSY : -e;
    }
    char pid[32];
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(rt->lock_fd, 0) != 0 || pwrite(rt->lock_fd, pid, (size_t)len, 0) != len)
        log_warn("server.lock_write_failed", "path", rt->lock_path, "reason", strerror(errno));
    return 0;
}

static void runtime_apply_log_level(struct runtime *rt)
{
    enum log_level level = LOG_LEVEL_INFO;
    log_level_parse(rt->cfg->log.level, &level);
    log_set_level(rt->debug ? LOG_LEVEL_DEBUG : level);
}

static unsigned runtime_worker_count(const struct config *cfg)
{
    if (cfg->server.workers > 0)
        return (unsigned)cfg->server.workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

static bool runtime_addr_lists_equal(const struct config_addr_list *a,
                                     const struct config_addr_list *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!netaddr_equal(&a->v[i], &b->v[i]))
            return false;
    return true;
}

/* Certificates accepted before a reload answer to the new trust store and
 * CRLs too: a connection whose peer was revoked meanwhile is closed. */
static void runtime_recheck_peers(struct runtime *rt)
{
    size_t bucket;
    if (!rt->workers || !rt->conns.count)
        return;
    for (struct hmap_node *n = hmap_iter_first(&rt->conns, &bucket); n;
         n = hmap_iter_next(&rt->conns, n, &bucket)) {
        struct core_conn *cc = container_of(n, struct core_conn, node);
        if (!cc->info || !cc->info->peer_cert || !cc->info->peer_cert_verified)
            continue;
        char why[160];
        if (tls_peer_recheck(cc->info->peer_cert, rt->tls, why, sizeof(why)) == 0)
            continue;
        char peer[NETADDR_STRLEN];
        struct cert_summary cs;
        if (tls_peer_summarize(cc->info->peer_cert, &cs) != 0)
            cs.subject[0] = '\0';
        log_warn("tls.peer_rejected", "conn", LOG_INT(cc->id), "peer",
                 netaddr_format(&cc->peer, peer), "subject", cs.subject, "reason", why, "action",
                 "connection closed after reload");
        cc->info->peer_cert_verified = false;
        worker_pool_close(rt->workers, cc->id, "peer certificate no longer valid");
    }
}

/* The media relay: its addresses, ports and threads change only at restart;
 * the rest applies now (issue #6). */
static void runtime_relay_reload(struct runtime *rt, const struct config *old,
                                 const struct config *cfg)
{
    if (cfg->relay.enabled != old->relay.enabled ||
        !runtime_addr_lists_equal(&cfg->relay.listen, &old->relay.listen) ||
        !runtime_addr_lists_equal(&cfg->relay.tls_listen, &old->relay.tls_listen) ||
        strcmp(cfg->relay.port_range, old->relay.port_range) != 0 ||
        strcmp(cfg->relay.relay_address, old->relay.relay_address) != 0 ||
        cfg->relay.workers != old->relay.workers)
        log_warn("config.restart_needed", "key", "relay", "reason",
                 "relay.enabled, listen addresses, relay_address, port_range and workers change "
                 "only when parleyd restarts");
    if (rt->relay)
        relay_reload(rt->relay, cfg, rt->tls);
}

/* The transport's settings, shared with the workers (atomics). */
static void runtime_apply_transport(struct runtime *rt)
{
    const struct config *cfg = rt->cfg;
    atomic_store(&rt->transport.max_message_size, (size_t)cfg->sip.max_message_size);
    atomic_store(&rt->transport.message_deadline_s, (unsigned)cfg->sip.idle_timeout);
}

int runtime_reload(struct runtime *rt, struct strbuf *report)
{
    char err[512];
    struct config *cfg = NULL;
    SSL_CTX *ctx = NULL;

    int rc = config_load(rt->config_path, &cfg, err, sizeof(err));
    if (rc == 0)
        rc = auth_config_narrow(cfg, fips_restricted(rt->fips), err, sizeof(err));
    if (rc == 0)
        rc = tls_context_new(cfg, rt->fips, &ctx, err, sizeof(err));
    if (rc) {
        log_error("config.reload_failed", "reason", err, "action",
                  "keeping the running configuration");
        if (report)
            strbuf_printf(report, "reload failed, running configuration kept: %s", err);
        config_free(cfg);
        return rc;
    }
    if (strcmp(cfg->security.fips, rt->cfg->security.fips) != 0 ||
        strcmp(cfg->security.fips_enabled_file, rt->cfg->security.fips_enabled_file) != 0)
        log_warn("config.restart_needed", "key", "security.fips", "reason",
                 "the cryptographic mode is fixed for the process: it changes when parleyd "
                 "restarts");
    if (!runtime_addr_lists_equal(&cfg->https.listen, &rt->cfg->https.listen))
        log_warn("config.restart_needed", "key", "https.listen", "reason",
                 "listener addresses change only when parleyd restarts");
    if (!runtime_addr_lists_equal(&cfg->sip.tls_listen, &rt->cfg->sip.tls_listen))
        log_warn("config.restart_needed", "key", "sip.tls_listen", "reason",
                 "listener addresses change only when parleyd restarts");
    if (!runtime_addr_lists_equal(&cfg->sip.tcp_listen, &rt->cfg->sip.tcp_listen))
        log_warn("config.restart_needed", "key", "sip.tcp_listen", "reason",
                 "listener addresses change only when parleyd restarts");
    if (!runtime_addr_lists_equal(&cfg->sip.trunk_tcp_listen, &rt->cfg->sip.trunk_tcp_listen))
        log_warn("config.restart_needed", "key", "sip.trunk_tcp_listen", "reason",
                 "listener addresses change only when parleyd restarts");
    if (!runtime_addr_lists_equal(&cfg->sip.mtls_listen, &rt->cfg->sip.mtls_listen))
        log_warn("config.restart_needed", "key", "sip.mtls_listen", "reason",
                 "listener addresses change only when parleyd restarts");
    if (cfg->server.workers != rt->cfg->server.workers)
        log_warn("config.restart_needed", "key", "server.workers", "reason",
                 "the worker count changes only when parleyd restarts");
    if (strcmp(cfg->server.domain, rt->cfg->server.domain) != 0)
        log_warn("config.domain_changed", "old", rt->cfg->server.domain, "new", cfg->server.domain,
                 "reason",
                 "users' stored digests are bound to the old domain "
                 "(realm); reset their passwords");

    /* Listener addresses stay as opened; everything else takes effect for
     * new connections and requests. Established TLS connections keep the
     * context (and certificate) they were made with. */
    struct config_addr_list keep_tls = cfg->sip.tls_listen, keep_tcp = cfg->sip.tcp_listen,
                            keep_mtls = cfg->sip.mtls_listen,
                            keep_trunk = cfg->sip.trunk_tcp_listen;
    cfg->sip.tls_listen = rt->cfg->sip.tls_listen;
    cfg->sip.tcp_listen = rt->cfg->sip.tcp_listen;
    cfg->sip.mtls_listen = rt->cfg->sip.mtls_listen;
    cfg->sip.trunk_tcp_listen = rt->cfg->sip.trunk_tcp_listen;
    rt->cfg->sip.tls_listen = keep_tls;
    rt->cfg->sip.tcp_listen = keep_tcp;
    rt->cfg->sip.mtls_listen = keep_mtls;
    rt->cfg->sip.trunk_tcp_listen = keep_trunk;

    struct config *old = rt->cfg;
    rt->cfg = cfg;
    SSL_CTX_free(rt->tls);
    rt->tls = ctx;
    runtime_recheck_peers(rt);
    runtime_relay_reload(rt, old, cfg);
    if (strcmp(cfg->media.port_range, old->media.port_range) != 0 ||
        strcmp(cfg->media.address, old->media.address) != 0 ||
        strcmp(cfg->media.public_address, old->media.public_address) != 0 ||
        cfg->media.workers != old->media.workers)
        log_warn("config.restart_needed", "key", "media", "reason",
                 "media.address, public_address, port_range and workers change only when "
                 "parleyd restarts");
    anchor_reload(rt->anchor, cfg);
    if (!rt->anchor && strcmp(cfg->media.anchor, "always") == 0)
        log_warn("config.restart_needed", "key", "media.anchor", "reason",
                 "the media engine did not start (see media.not_started): calls stay "
                 "unanchored until parleyd restarts");
    config_free(old);
    runtime_apply_transport(rt);
    if (rt->workers)
        worker_pool_set_read_limit(rt->workers, &sip_transport_protocol, runtime_read_limit(cfg));
    runtime_apply_log_level(rt);
    websvc_reconfigure(rt);
    if (rt->proxy) {
        sipcore_reconfigure(rt);
        sipcore_load_partners(rt);
        mediation_load_dialplan(rt);
    }
    log_info("config.reloaded", "path", rt->config_path);
    if (report)
        strbuf_puts(report, "configuration and certificates reloaded");
    return 0;
}

/* systemd's readiness protocol; a failure to tell it is logged, never
 * fatal (the service manager then times the start out itself). */
static void runtime_notify(int rc, const char *state)
{
    if (rc == 0)
        return;
    char what[64];
    snprintf(what, sizeof(what), "%.*s", (int)strcspn(state, "\n"), state);
    log_warn("server.notify_failed", "state", what, "reason", strerror(-rc));
}

static void runtime_on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct runtime *rt = arg;
    if (sig == SIGHUP) {
        runtime_notify(notify_reloading("reloading"), "RELOADING=1");
        const char *done = runtime_reload(rt, NULL) == 0
                               ? "READY=1\nSTATUS=serving"
                               : "READY=1\nSTATUS=serving; the last reload failed, "
                                 "the running configuration is kept";
        runtime_notify(notify_send(done), done);
        return;
    }
    log_info("server.stopping", "signal", sig == SIGTERM ? "TERM" : "INT");
    runtime_notify(notify_send("STOPPING=1\nSTATUS=stopping"), "STOPPING=1");
    event_base_loopbreak(rt->base);
}

/* RFC 3711 B.3: the SRTP key derivation (rtp/srtp) on the context, the one
 * known-answer test above crypto's layer. The session encryption key and
 * salt for master key E1F97A0D..., master salt 0EC675AD..., kdr 0. */
/* TURN's long-term key with PASSWORD-ALGORITHM SHA-256 (RFC 8489 §9.2.2),
 * on STUN's own fetches: SHA-256("alice:example.test:secret"), computed
 * with Python's hashlib. */
static int server_selftest_stun(void)
{
    static const uint8_t want[32] = {0xcc, 0x01, 0x40, 0xd9, 0x7f, 0x2b, 0x01, 0x1f,
                                     0xee, 0x9f, 0x86, 0xaa, 0x26, 0xb6, 0x3f, 0xc4,
                                     0x72, 0x26, 0x82, 0x67, 0xb6, 0x52, 0xdc, 0xea,
                                     0x06, 0x75, 0xe1, 0x5d, 0x9d, 0xa9, 0x24, 0x68};
    uint8_t key[STUN_KEY_MAX];
    size_t len = 0;
    int rc = stun_long_term_key(STUN_PASSWORD_SHA256, strview_cstr("alice"),
                                strview_cstr("example.test"), strview_cstr("secret"), key, &len);
    return rc == 0 && len == sizeof(want) && memcmp(key, want, sizeof(want)) == 0 ? 0 : -EIO;
}

static int server_selftest_srtp(const struct fips_ctx *fips)
{
    static const uint8_t mk[16] = {0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0,
                                   0xd6, 0x4f, 0xa3, 0x2c, 0x06, 0xde, 0x41, 0x39};
    static const uint8_t ms[14] = {0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe,
                                   0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6};
    static const uint8_t want_key[16] = {0xc6, 0x1e, 0x7a, 0x93, 0x74, 0x4f, 0x39, 0xee,
                                         0x10, 0x73, 0x4a, 0xfe, 0x3f, 0xf7, 0xa0, 0x87};
    static const uint8_t want_salt[14] = {0x30, 0xcb, 0xbc, 0x08, 0x86, 0x3d, 0x8c,
                                          0x85, 0xd4, 0x9d, 0xb3, 0x4a, 0x9a, 0xe1};
    struct rtp_srtp_crypto *c = NULL;
    uint8_t key[16], salt[14];
    int rc = rtp_srtp_crypto_new(fips_libctx(fips), fips_propq(fips), &c);

    if (rc == 0)
        rc = rtp_srtp_kdf(c, mk, sizeof(mk), ms, sizeof(ms), RTP_SRTP_LABEL_RTP_ENCRYPTION, key,
                          sizeof(key));
    if (rc == 0)
        rc = rtp_srtp_kdf(c, mk, sizeof(mk), ms, sizeof(ms), RTP_SRTP_LABEL_RTP_SALT, salt,
                          sizeof(salt));
    if (rc == 0 &&
        (memcmp(key, want_key, sizeof(key)) != 0 || memcmp(salt, want_salt, sizeof(salt)) != 0))
        rc = -EIO;
    rtp_srtp_crypto_free(c);
    return rc ? -EIO : 0;
}

/* security.fips: the library context every algorithm comes from, before
 * anything else cryptographic; the known-answer tests on it; random_secret
 * drawing from its private DRBG. */
static int server_crypto_start(struct runtime *rt, char *err, size_t errlen)
{
    enum fips_setting setting;
    const char *why = NULL;

    if (fips_setting_parse(rt->cfg->security.fips, &setting) != 0) {
        snprintf(err, errlen, "security.fips: unknown value \"%s\"", rt->cfg->security.fips);
        return -EINVAL;
    }
    enum fips_mode mode = fips_resolve(setting, rt->cfg->security.fips_enabled_file, &why);
    int rc = fips_open(mode, &rt->fips, err, errlen);
    if (rc) {
        size_t n = strlen(err);
        snprintf(err + n, errlen - n, " (%s)", why); /* what asked for the mode */
        return rc;
    }
    log_info("crypto.mode", "mode", fips_mode_name(mode), "why", why, "description",
             fips_describe(rt->fips));
    if (server_selftest_srtp(rt->fips) != 0) {
        snprintf(err, errlen, "the known-answer self-test srtp-kdf failed (mode %s)",
                 fips_mode_name(mode));
        return -EIO;
    }
    random_set_secret_source(fips_secret_source, rt->fips);
    /* STUN's own digests (the long-term credential key, MD5 or SHA-256) */
    if (stun_crypto_init(fips_libctx(rt->fips), fips_propq(rt->fips)) != 0) {
        snprintf(err, errlen, "the %s library context offers no SHA-256 for STUN",
                 fips_mode_name(mode));
        return -ENOTSUP;
    }
    if (server_selftest_stun() != 0) {
        snprintf(err, errlen, "the known-answer self-test turn-key-sha256 failed (mode %s)",
                 fips_mode_name(mode));
        return -EIO;
    }
    /* logged once: the crypto module's tests, SRTP's and STUN's */
    log_info("crypto.selftest", "result", "passed", "tests",
             LOG_INT(fips_self_tests(rt->fips) + 2));
    return 0;
}

/* A file's directory, into out (cap PATH_MAX). */
static const char *server_dir_of(const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "%s", path);
    char *d = dirname(out);
    if (d != out)
        memmove(out, d, strlen(d) + 1);
    return out;
}

/* Threads of the process now: Landlock confines only the thread that asks
 * and those it starts afterwards, so this must be 1 when it does. */
static long long server_thread_count(void)
{
    long long n = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* server.confine: what the running server may touch from now on. The
 * certificates' directories are read-only (a reload that points a
 * certificate key elsewhere needs a restart); libraries read /etc
 * (resolv.conf, hosts, nsswitch.conf, OpenSSL's configuration), /usr and
 * /lib (NSS modules, OpenSSL's providers, time zones), /proc (the FIPS
 * switch, sanitizers' /proc/self/maps), /sys's CPU list (sysconf); SQLite
 * may spill large sorts into /var/tmp or /tmp. */
static int server_confine(struct runtime *rt, char *err, size_t errlen)
{
    const struct config *cfg = rt->cfg;
    enum { MAX_RO = 64 };
    static char dirs[MAX_RO][PATH_MAX];
    /* the configuration is read (a reload), never written by parleyd */
    const char *rw[] = {cfg->state_dir, "/dev/null", "/tmp", "/var/tmp", NULL};
    const char *ro[MAX_RO + 12];
    size_t n = 0, nd = 0;
    ro[n++] = cfg->config_dir;
    static const char *const system_ro[] = {
        "/etc",         "/usr",        "/lib", "/lib64", "/proc", "/sys/devices/system/cpu",
        "/dev/urandom", "/dev/random", NULL};
    for (const char *const *p = system_ro; *p; p++)
        ro[n++] = *p;
    const char *files[MAX_RO];
    size_t nf = 0;
    files[nf++] = cfg->tls.certificate;
    files[nf++] = cfg->tls.private_key;
    for (size_t i = 0; i < cfg->tls.ca_files.n && nf < MAX_RO - 2; i++)
        files[nf++] = cfg->tls.ca_files.v[i];
    for (size_t i = 0; i < cfg->tls.crl_files.n && nf < MAX_RO - 2; i++)
        files[nf++] = cfg->tls.crl_files.v[i];
    for (size_t i = 0; i < nf && nd < MAX_RO; i++)
        if (files[i] && *files[i])
            ro[n++] = server_dir_of(files[i], dirs[nd++], sizeof(dirs[0]));
    ro[n] = NULL;

    struct confine_report rep;
    long long threads = server_thread_count();
    int rc = confine_apply(rw, ro, &rep, err, errlen);
    if (rc)
        return rc;
    if (rep.landlock_abi == 0)
        log_warn("server.confine_degraded", "landlock", "unavailable", "reason", rep.landlock_why,
                 "action", "file access is not confined; the seccomp filter is in place");
    log_info("server.confined", "landlock_abi", LOG_INT(rep.landlock_abi), "seccomp",
             rep.seccomp ? "execve denied" : "off", "state_dir", cfg->state_dir, "threads",
             LOG_INT(threads));
    return 0;
}

/* server.user and server.confine, once the ports are bound and before any
 * thread starts (threads inherit both; Landlock confines only the thread
 * that asks and those it starts later). */
static int server_drop_and_confine(struct runtime *rt, const struct privdrop_target *target,
                                   char *err, size_t errlen)
{
    int rc = privdrop_own_state(target, rt->cfg->state_dir, rt->cfg->path, err, errlen);
    if (rc == 0)
        rc = privdrop_apply(target, err, errlen);
    if (rc)
        return rc;
    if (target->change || target->drop_caps)
        log_info("server.privileges_dropped", "user", target->name, "uid",
                 LOG_INT((long long)getuid()), "gid", LOG_INT((long long)getgid()), "capabilities",
                 "none");
    if (!rt->cfg->server.confine) {
        log_info("server.confine_off", "key", "server.confine", "reason",
                 "switched off in the configuration");
        return 0;
    }
    return server_confine(rt, err, errlen);
}

int server_start(const struct server_options *opts, struct runtime **out, char *err, size_t errlen)
{
    struct runtime *rt = calloc(1, sizeof(*rt));
    int rc;

    if (!rt)
        return -ENOMEM;
    rt->lock_fd = -1;
    rt->debug = opts->debug;
    rt->started = time(NULL);
    rt->config_path = strdup(opts->config_path);
    if (!rt->config_path) {
        rc = -ENOMEM;
        goto fail;
    }
    if (opts->debug)
        log_set_level(LOG_LEVEL_DEBUG);

    rc = config_load(opts->config_path, &rt->cfg, err, errlen);
    if (rc)
        goto fail;
    runtime_apply_log_level(rt);

    rc = server_crypto_start(rt, err, errlen);
    if (rc)
        goto fail;
    /* Before anything reads auth.algorithms: under FIPS its default
     * narrows to SHA-256, and an explicit MD5 refuses the start. */
    rc = auth_config_narrow(rt->cfg, fips_restricted(rt->fips), err, errlen);
    if (rc)
        goto fail;
    if (fips_restricted(rt->fips))
        /* A client that answers only MD5 gives up on a SHA-256 challenge
         * without a word to the server: say here why it will fail. */
        log_info("auth.fips", "key", "auth.algorithms", "value", AUTH_FIPS_ALGORITHMS, "reason",
                 "MD5 is not FIPS approved: clients that answer only MD5 digest challenges "
                 "(Debian's baresip) cannot register");

    rc = tls_init();
    if (rc)
        goto fail;

    /* an unknown server.user refuses the start before anything is made */
    struct privdrop_target target;
    rc = privdrop_prepare(rt->cfg->server.user, &target, err, errlen);
    if (rc)
        goto fail;

    rc = runtime_lock(rt, err, errlen);
    if (rc)
        goto fail;

    evthread_use_pthreads();
    rt->base = event_base_new();
    rt->timers = timer_heap_new(clock_system());
    rt->refuse_log = log_limit_new("conn.refused", 4096, 50);
    if (!rt->base || !rt->timers || !rt->refuse_log || hmap_init(&rt->conns, 1024) ||
        hmap_init(&rt->sources, 256) || hmap_init(&rt->txn_conns, 256) ||
        hmap_init(&rt->txn_sources, 256)) {
        rc = -ENOMEM;
        goto fail_nomem;
    }
    rt->timer_ev = evtimer_new(rt->base, runtime_on_timer, rt);
    rt->core_mbox = mbox_new(rt->base, sipcore_on_event, rt);
    rt->sig_term = evsignal_new(rt->base, SIGTERM, runtime_on_signal, rt);
    rt->sig_int = evsignal_new(rt->base, SIGINT, runtime_on_signal, rt);
    rt->sig_hup = evsignal_new(rt->base, SIGHUP, runtime_on_signal, rt);
    if (!rt->timer_ev || !rt->core_mbox || !rt->sig_term || !rt->sig_int || !rt->sig_hup) {
        rc = -ENOMEM;
        goto fail_nomem;
    }
    timer_heap_on_change(rt->timers, runtime_arm_timer, rt);
    event_add(rt->sig_term, NULL);
    event_add(rt->sig_int, NULL);
    event_add(rt->sig_hup, NULL);
    signal(SIGPIPE, SIG_IGN);

    rt->transport.core = rt->core_mbox;
    runtime_apply_transport(rt);

    /* Every port first (those under 1024 need root), then the drop to
     * server.user and the confinement, then the store and the threads. */
    rc = listeners_open(rt, err, errlen);
    if (rc)
        goto fail;
    if (rt->cfg->relay.enabled) {
        rc = relay_start(rt->cfg, fips_restricted(rt->fips), &rt->relay, err, errlen);
        if (rc)
            goto fail;
    }
    rc = server_drop_and_confine(rt, &target, err, errlen);
    if (rc)
        goto fail;
    /* The certificate and key are read as server.user, as every reload
     * will read them: never as root from files that user may have
     * replaced (a link to another root-only key in a state directory it
     * owns). Nothing accepts before the workers start. */
    rc = tls_context_new(rt->cfg, rt->fips, &rt->tls, err, errlen);
    if (rc)
        goto fail;

    {
        char path[4096];
        snprintf(path, sizeof(path), "%s/parley.db", rt->cfg->state_dir);
        rc = store_open(path, 0, &rt->store, err, errlen);
        if (rc == 0)
            rc = store_writer_start(path, &rt->store_writer, err, errlen);
        if (rc)
            goto fail;
    }
    rc = sipcore_start(rt, err, errlen);
    if (rc)
        goto fail;
    /* after the SIP core: the web services share its throttle */
    rc = websvc_start(rt, err, errlen);
    if (rc)
        goto fail;
    rc = control_open(rt, &rt->control, err, errlen);
    if (rc)
        goto fail;
    /* The media relay runs on threads of its own; started before the worker
     * pool because server_free cannot stop a running pool on failure. */
    if (rt->relay) {
        rc = relay_run(rt->relay, rt->tls, err, errlen);
        if (rc)
            goto fail;
    }
    rt->workers = worker_pool_new(runtime_worker_count(rt->cfg), err, errlen);
    if (!rt->workers) {
        rc = -ENOMEM;
        goto fail;
    }
    *out = rt;
    return 0;

fail_nomem:
    snprintf(err, errlen, "out of memory during start-up");
fail:
    server_free(rt);
    return rc;
}

int server_run(struct runtime *rt)
{
    char a[NETADDR_STRLEN];
    struct strbuf addrs = STRBUF_INIT;
    for (size_t i = 0; i < rt->nlisteners; i++) {
        strbuf_puts(&addrs, i ? "," : "");
        strbuf_printf(&addrs, "%s/%s", rt->listeners[i].tls ? "tls" : "tcp",
                      netaddr_format(&rt->listeners[i].addr, a));
    }
    log_info("server.ready", "domain", rt->cfg->server.domain, "listeners", strbuf_cstr(&addrs),
             "workers", LOG_INT(worker_pool_size(rt->workers)), "pid", LOG_INT(getpid()));
    strbuf_free(&addrs);
    /* listeners, control socket and workers are up: systemd's Type=notify
     * start completes here, and units ordered after parleyd may connect */
    runtime_notify(notify_send("READY=1\nSTATUS=serving"), "READY=1");

    event_base_dispatch(rt->base);

    /* Stop taking new work, then let the workers flush and close. */
    listeners_close(rt);
    control_close(rt->control);
    rt->control = NULL;
    relay_stop(rt->relay);
    rt->relay = NULL;
    worker_pool_stop(rt->workers, STOP_GRACE_MS);
    rt->workers_stopped = true;
    log_info("server.stopped", "exit_code", LOG_INT(rt->exit_code));
    return rt->exit_code;
}

void server_free(struct runtime *rt)
{
    if (!rt)
        return;
    listeners_close(rt);
    control_close(rt->control);
    relay_stop(rt->relay);
    rt->relay = NULL;
    if (rt->workers) {
        /* a start-up that failed after the workers began leaves them running */
        if (!rt->workers_stopped)
            worker_pool_stop(rt->workers, 0);
        worker_pool_free(rt->workers);
        rt->workers = NULL;
    }
    /* Events the workers posted while stopping are handled (and freed) here,
     * while the SIP core can still see them. */
    mbox_free(rt->core_mbox);
    rt->core_mbox = NULL;
    websvc_stop(rt);
    sipcore_stop(rt);
    /* after the proxy, whose dialogs end their streams as they go */
    anchor_stop(rt->anchor);
    rt->anchor = NULL;
    store_writer_stop(rt->store_writer); /* writes what is queued first */
    rt->store_writer = NULL;
    store_close(rt->store);
    rt->store = NULL;
    runtime_conn_tables_free(rt);
    runtime_txn_tables_free(rt);
    log_limit_free(rt->refuse_log);
    if (rt->timer_ev)
        event_free(rt->timer_ev);
    if (rt->sig_term)
        event_free(rt->sig_term);
    if (rt->sig_int)
        event_free(rt->sig_int);
    if (rt->sig_hup)
        event_free(rt->sig_hup);
    timer_heap_free(rt->timers);
    if (rt->base)
        event_base_free(rt->base);
    SSL_CTX_free(rt->tls);
    if (rt->lock_fd >= 0) {
        /* The lock file stays (unlinking it would race with a starting
         * parleyd); the lock itself goes with the descriptor. */
        close(rt->lock_fd);
    }
    free(rt->lock_path);
    /* last: everything above may hold algorithms or keys of its context */
    random_set_secret_source(NULL, NULL);
    if (rt->fips)
        stun_crypto_cleanup();
    fips_close(rt->fips);
    rt->fips = NULL;
    config_free(rt->cfg);
    free(rt->config_path);
    free(rt);
}
