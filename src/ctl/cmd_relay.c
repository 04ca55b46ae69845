/*
 * parleyctl relay status | secret | rotate-secret | credentials USER [--lifetime S]
 *
 * status asks the running parleyd; the others work on STATE_DIR/relay.secrets
 * directly (creating it with a first secret when missing), so credentials
 * can be issued whether or not the daemon runs. A running relay notices a
 * rotation by itself (it watches the file).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "core/strbuf.h"
#include "ctl/ctl.h"
#include "relay/relay_cred.h"

static void relay_time(int64_t t, char *buf, size_t cap)
{
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *relay_str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static long long relay_int(json_t *o, const char *k1, const char *k2)
{
    json_t *v = json_object_get(o, k1);
    if (k2)
        v = json_object_get(v, k2);
    return (long long)json_integer_value(v);
}

static int relay_status_cmd(struct ctl *ctl)
{
    char err[512];
    json_t *reply = NULL;

    if (ctl->argc)
        return ctl_usage(ctl, "relay status takes no arguments");
    int rc = ctl_load_config(ctl);
    if (rc)
        return rc;
    if (ctl_control_request(ctl->cfg, "relay", &reply, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s (allocations live in the running server's memory)", err);
    if (!json_is_true(json_object_get(reply, "ok"))) {
        rc = ctl_fail(ctl, "%s", relay_str(reply, "error"));
        json_decref(reply);
        return rc;
    }
    struct strbuf t = STRBUF_INIT;
    json_t *allocs = json_object_get(reply, "allocations");
    if (!json_is_true(json_object_get(reply, "enabled"))) {
        strbuf_puts(&t, "the relay is not enabled on this node (relay.enabled = false)\n");
    } else if (json_array_size(allocs) == 0) {
        strbuf_puts(&t, "no allocations\n");
    } else {
        strbuf_printf(&t, "%-12s %-5s %-22s %-22s %7s %18s %18s %8s\n", "USER", "VIA", "CLIENT",
                      "RELAYED", "AGE", "TO PEER (B/pkt)", "FROM PEER (B/pkt)", "DROPPED");
        size_t i;
        json_t *a;
        json_array_foreach(allocs, i, a)
        {
            char age[32], to[48], from[48];
            snprintf(age, sizeof(age), "%llds", relay_int(a, "age_s", NULL));
            snprintf(to, sizeof(to), "%lld/%lld", relay_int(a, "to_peer", "bytes"),
                     relay_int(a, "to_peer", "packets"));
            snprintf(from, sizeof(from), "%lld/%lld", relay_int(a, "from_peer", "bytes"),
                     relay_int(a, "from_peer", "packets"));
            strbuf_printf(&t, "%-12s %-5s %-22s %-22s %7s %18s %18s %8lld\n",
                          *relay_str(a, "user") ? relay_str(a, "user") : "-",
                          relay_str(a, "transport"), relay_str(a, "client"),
                          relay_str(a, "relayed"), age, to, from,
                          relay_int(a, "dropped_packets", NULL));
        }
    }
    ctl_done(ctl, reply, strbuf_cstr(&t));
    strbuf_free(&t);
    return CTL_OK;
}

/* Loads the secrets, creating the file when it is missing. */
static int relay_load_secrets(struct ctl *ctl, struct relay_secrets *s, char *path, size_t cap)
{
    char err[1024];
    bool created = false;
    int rc = ctl_open_crypto(ctl); /* a first secret comes from its DRBG */
    if (rc)
        return rc;
    if (relay_secrets_path(ctl->cfg->state_dir, path, cap) != 0)
        return ctl_fail(ctl, "%s: path too long", ctl->cfg->state_dir);
    if (relay_secrets_ensure(path, (int64_t)time(NULL), s, &created, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    if (created && !ctl->json)
        fprintf(stderr, "parleyctl: created %s with a first secret\n", path);
    return CTL_OK;
}

static int relay_secret_cmd(struct ctl *ctl)
{
    struct relay_secrets s;
    char path[4096], when[32];

    if (ctl->argc)
        return ctl_usage(ctl, "relay secret takes no arguments");
    int rc = relay_load_secrets(ctl, &s, path, sizeof(path));
    if (rc)
        return rc;
    const struct relay_secret *cur = relay_secrets_current(&s);
    relay_time(cur->added, when, sizeof(when));
    json_t *doc = json_pack("{s:s, s:I, s:s, s:I}", "secret", cur->value, "added",
                            (json_int_t)cur->added, "path", path, "secrets", (json_int_t)s.n);
    struct strbuf t = STRBUF_INIT;
    strbuf_printf(&t, "%s\n", cur->value);
    if (!ctl->json)
        fprintf(stderr, "current relay secret (added %s; %zu in %s); keep it private\n", when, s.n,
                path);
    ctl_done(ctl, doc, strbuf_cstr(&t));
    OPENSSL_cleanse(t.p, t.cap);
    strbuf_free(&t);
    OPENSSL_cleanse(&s, sizeof(s));
    return CTL_OK;
}

static int relay_rotate_cmd(struct ctl *ctl)
{
    struct relay_secrets s;
    char path[4096], err[1024], until[32];
    size_t retired = 0;

    if (ctl->argc)
        return ctl_usage(ctl, "relay rotate-secret takes no arguments");
    int rc = ctl_open_crypto(ctl);
    if (rc)
        return rc;
    if (relay_secrets_path(ctl->cfg->state_dir, path, sizeof(path)) != 0)
        return ctl_fail(ctl, "%s: path too long", ctl->cfg->state_dir);
    int64_t now = (int64_t)time(NULL), grace = ctl->cfg->relay.max_lifetime;
    if (relay_secrets_rotate(path, now, grace, &s, &retired, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "%s", err);
    relay_time(now + grace, until, sizeof(until));
    json_t *doc = json_pack("{s:s, s:I, s:I, s:I, s:I}", "path", path, "secrets", (json_int_t)s.n,
                            "retired", (json_int_t)retired, "grace_s", (json_int_t)grace,
                            "current_added", (json_int_t)relay_secrets_current(&s)->added);
    struct strbuf t = STRBUF_INIT;
    strbuf_printf(&t,
                  "added a new relay secret to %s (%zu kept, %zu retired)\n"
                  "credentials from the previous secret stay valid until they expire: it is "
                  "retired after relay.max_lifetime (%llds, %s)\n"
                  "a running relay picks the change up by itself\n",
                  path, s.n, retired, (long long)grace, until);
    ctl_done(ctl, doc, strbuf_cstr(&t));
    strbuf_free(&t);
    OPENSSL_cleanse(&s, sizeof(s));
    return CTL_OK;
}

static int relay_credentials_cmd(struct ctl *ctl)
{
    struct relay_secrets s;
    struct relay_cred cred;
    char path[4096], when[32];
    bool missing = false;
    long long lifetime = 0;

    const char *lt = ctl_take_option(ctl, "--lifetime", &missing);
    if (missing || ctl->argc != 1)
        return ctl_usage(ctl, "usage: relay credentials USER [--lifetime SECONDS]");
    if (lt) {
        char *end = NULL;
        errno = 0;
        lifetime = strtoll(lt, &end, 10);
        if (errno || !end || *end || lifetime <= 0)
            return ctl_usage(ctl, "--lifetime must be a positive number of seconds, not \"%s\"",
                             lt);
    }
    const char *user = ctl->argv[0];
    int rc = relay_load_secrets(ctl, &s, path, sizeof(path));
    if (rc)
        return rc;
    int64_t max = ctl->cfg->relay.max_lifetime;
    rc = relay_cred_issue(&s, user, (int64_t)time(NULL), lifetime, max, &cred);
    OPENSSL_cleanse(&s, sizeof(s));
    if (rc == -EINVAL)
        return ctl_usage(ctl,
                         "\"%s\" is not a user name for relay credentials (printable ASCII, "
                         "no spaces, at most %d characters)",
                         user, RELAY_CRED_USER_MAX);
    if (rc)
        return ctl_fail(ctl, "cannot issue credentials: %s", strerror(-rc));
    relay_time(cred.expires, when, sizeof(when));
    json_t *doc = json_pack("{s:s, s:s, s:I, s:I, s:b}", "username", cred.username, "password",
                            cred.password, "expires", (json_int_t)cred.expires, "lifetime_s",
                            (json_int_t)cred.lifetime, "capped", lifetime > max);
    struct strbuf t = STRBUF_INIT;
    strbuf_printf(&t, "username: %s\npassword: %s\nexpires:  %s (in %llds)%s\n", cred.username,
                  cred.password, when, (long long)cred.lifetime,
                  lifetime > max ? ", capped to relay.max_lifetime" : "");
    ctl_done(ctl, doc, strbuf_cstr(&t));
    OPENSSL_cleanse(t.p, t.cap);
    strbuf_free(&t);
    OPENSSL_cleanse(&cred, sizeof(cred));
    return CTL_OK;
}

int cmd_relay(struct ctl *ctl)
{
    if (ctl->argc == 0)
        return ctl_usage(ctl, "usage: relay status | secret | rotate-secret | credentials USER "
                              "[--lifetime SECONDS]");
    const char *sub = ctl->argv[0];
    ctl->argc--;
    ctl->argv++;
    if (strcmp(sub, "status") == 0)
        return relay_status_cmd(ctl);
    if (strcmp(sub, "secret") == 0)
        return relay_secret_cmd(ctl);
    if (strcmp(sub, "rotate-secret") == 0)
        return relay_rotate_cmd(ctl);
    if (strcmp(sub, "credentials") == 0)
        return relay_credentials_cmd(ctl);
    return ctl_usage(ctl, "unknown relay command \"%s\"", sub);
}
