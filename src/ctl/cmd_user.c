/*
 * parleyctl user add|remove|list|passwd|set|unblock. Passwords are never stored: only
 * the digest hashes (HA1, MD5 and SHA-256) for realm = server.domain.
 * Under FIPS (security.fips = on or approved-only) only the SHA-256 one:
 * an MD5 digest is not an approved use, and the server would never accept
 * it. `user list` shows which digests each user has, so those without a
 * SHA-256 one (who cannot authenticate under FIPS) are found.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/strbuf.h"
#include "crypto/digest.h"
#include "crypto/fips.h"
#include "ctl/ctl.h"
#include "dialplan/dialplan.h"
#include "store/store.h"

#define USER_PASSWORD_MAX 256

/* Reads one line without echo from the terminal. */
static int user_prompt(const char *prompt, char *buf, size_t cap)
{
    struct termios old, quiet;
    FILE *tty = fopen("/dev/tty", "r+");
    if (!tty)
        return -ENOTTY;
    fputs(prompt, tty);
    fflush(tty);
    int fd = fileno(tty);
    bool restore = tcgetattr(fd, &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= (tcflag_t)~ECHO;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    char *r = fgets(buf, (int)cap, tty);
    if (restore)
        tcsetattr(fd, TCSAFLUSH, &old);
    fputc('\n', tty);
    fclose(tty);
    if (!r)
        return -EIO;
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

/* The password from --password-stdin, --generate-password or a prompt. */
static int user_get_password(struct ctl *ctl, char *buf, size_t cap, bool *generated)
{
    bool from_stdin = ctl_take_flag(ctl, "--password-stdin");
    bool generate = ctl_take_flag(ctl, "--generate-password");
    *generated = false;

    if (from_stdin && generate)
        return ctl_usage(ctl, "--password-stdin and --generate-password exclude each other");
    if (generate) {
        /* a secret: from the context's DRBG, not random_token's generator
         * (which makes identifiers) */
        static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
        int rc = ctl_open_crypto(ctl);
        if (rc)
            return rc;
        for (size_t i = 0; i < 20;) {
            unsigned char b;
            if (fips_random(ctl->fips, &b, 1) != 0)
                return ctl_fail(ctl, "no random bytes for a password");
            if (b < 252) /* 7 * 36: uniform over the alphabet */
                buf[i++] = alphabet[b % 36];
        }
        buf[20] = '\0';
        *generated = true;
        return CTL_OK;
    }
    if (from_stdin) {
        if (!fgets(buf, (int)cap, stdin))
            return ctl_fail(ctl, "no password on standard input");
        if (!strchr(buf, '\n') && !feof(stdin))
            return ctl_fail(ctl, "password longer than %d characters", USER_PASSWORD_MAX);
        buf[strcspn(buf, "\r\n")] = '\0';
    } else {
        char again[USER_PASSWORD_MAX + 2];
        if (user_prompt("Password: ", buf, cap) != 0)
            return ctl_fail(ctl, "no terminal to ask for a password; use --password-stdin or "
                                 "--generate-password");
        if (user_prompt("Again: ", again, sizeof(again)) != 0)
            return ctl_fail(ctl, "cannot read the password");
        bool same = strcmp(buf, again) == 0;
        OPENSSL_cleanse(again, sizeof(again));
        if (!same)
            return ctl_fail(ctl, "the passwords differ; nothing changed");
    }
    if (buf[0] == '\0')
        return ctl_fail(ctl, "empty password refused");
    return CTL_OK;
}

/* Does security.fips restrict digests to SHA-256 here? Asked of the
 * context parleyctl opens from the configuration; fails closed. */
static bool user_fips_restricted(struct ctl *ctl)
{
    return ctl_open_crypto(ctl) != 0 || fips_restricted(ctl->fips);
}

/* The HA1 values to store: SHA-256 always, MD5 unless restricted (then md5
 * is ""). *md5_skipped says so, for the message. */
static int user_hashes(struct ctl *ctl, const char *name, const char *password, char md5[65],
                       char sha256[65], bool *md5_skipped)
{
    int rc = ctl_open_crypto(ctl); /* the digests on the configured context */
    if (rc)
        return rc;
    *md5_skipped = fips_restricted(ctl->fips);
    md5[0] = '\0';
    rc = digest_ha1(DIGEST_ALG_SHA256, name, ctl->cfg->server.domain, password, sha256);
    if (rc == 0 && !*md5_skipped)
        rc = digest_ha1(DIGEST_ALG_MD5, name, ctl->cfg->server.domain, password, md5);
    if (rc)
        return ctl_fail(ctl, "cannot compute the digest hashes (%s)", strerror(-rc));
    return CTL_OK;
}

static int user_set(struct ctl *ctl, const char *name, bool add)
{
    char password[USER_PASSWORD_MAX + 2];
    char md5[65] = "", sha256[65] = "";
    bool generated, md5_skipped = false;
    struct store *st = NULL;
    int rc;

    if (!store_user_name_valid(name))
        return ctl_fail(ctl,
                        "\"%s\" is not a valid user name: 1 to 64 of a-z 0-9 . _ -, "
                        "starting with a letter or digit",
                        name);
    rc = user_get_password(ctl, password, sizeof(password), &generated);
    if (rc)
        goto out;
    if (ctl->argc != 1) {
        rc = ctl_usage(ctl, "unexpected argument \"%s\"", ctl->argv[1]);
        goto out;
    }
    rc = user_hashes(ctl, name, password, md5, sha256, &md5_skipped);
    if (rc)
        goto out;
    rc = ctl_open_store(ctl, &st, 0);
    if (rc)
        goto out;
    int sr =
        add ? store_user_add(st, name, md5, sha256) : store_user_set_ha1(st, name, md5, sha256);
    if (sr == -EEXIST) {
        /* a user, or a group: the two share one namespace (the store says which) */
        rc = ctl_fail(ctl, "%s", store_errmsg(st));
        goto out;
    }
    if (sr == -ENOENT) {
        rc = ctl_fail(ctl, "no user %s", name);
        goto out;
    }
    if (sr) {
        rc = ctl_fail(ctl, "cannot store user %s: %s", name, store_errmsg(st));
        goto out;
    }
    char msg[1024];
    char uri[200];
    snprintf(uri, sizeof(uri), "sip:%s@%s", name, ctl->cfg->server.domain);
    if (generated)
        snprintf(msg, sizeof(msg), "%s %s <%s> with password %s (shown once)",
                 add ? "added" : "changed password of", name, uri, password);
    else
        snprintf(msg, sizeof(msg), "%s %s <%s>", add ? "added" : "changed password of", name, uri);
    if (md5_skipped)
        snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg),
                 "\nSHA-256 digest only (security.fips): MD5-only clients cannot authenticate");
    json_t *doc = json_pack("{s:s, s:s, s:[s]}", "user", name, "uri", uri, "digests", "sha-256");
    if (!md5_skipped)
        json_array_insert_new(json_object_get(doc, "digests"), 0, json_string("md5"));
    if (generated)
        json_object_set_new(doc, "password", json_string(password));
    ctl_done(ctl, doc, msg);
    rc = CTL_OK;
out:
    OPENSSL_cleanse(password, sizeof(password));
    OPENSSL_cleanse(md5, sizeof(md5));
    OPENSSL_cleanse(sha256, sizeof(sha256));
    if (st && store_close(st) != 0 && rc == CTL_OK)
        rc = ctl_fail(ctl, "closing the store failed");
    return rc;
}

static int user_remove(struct ctl *ctl, const char *name)
{
    struct store *st = NULL;
    int rc = ctl_open_store(ctl, &st, 0);
    if (rc)
        return rc;
    int sr = store_user_remove(st, name);
    if (sr == -ENOENT)
        rc = ctl_fail(ctl, "no user %s", name);
    else if (sr)
        rc = ctl_fail(ctl, "cannot remove user %s: %s", name, store_errmsg(st));
    store_close(st);
    if (rc)
        return rc;
    char msg[128];
    snprintf(msg, sizeof(msg), "removed %s", name);
    return ctl_done(ctl, json_pack("{s:s}", "user", name), msg);
}

struct user_list_ctx {
    json_t *users;
    struct strbuf text;
    const char *domain;
    bool restricted;  /* security.fips: SHA-256 digests only */
    size_t no_sha256; /* users without a SHA-256 digest */
    json_t *throttle; /* the daemon's throttle records, or NULL */
    size_t matched;   /* of those, the records of listed users */
};

/* The throttle records of one user, as JSON and as text ("" when none). */
static json_t *user_throttle_of(json_t *records, const char *user, struct strbuf *text)
{
    json_t *mine = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(records, i, r)
    {
        const char *u = json_string_value(json_object_get(r, "user"));
        if (!u || strcmp(u, user) != 0)
            continue;
        json_array_append(mine, r);
        const char *src = json_string_value(json_object_get(r, "source"));
        long long blocked = json_integer_value(json_object_get(r, "blocked_s"));
        long long failures = json_integer_value(json_object_get(r, "failures"));
        strbuf_printf(text, "%s%s: %lld failure%s", text->len ? "; " : "",
                      src && *src ? src : "all sources", failures, failures == 1 ? "" : "s");
        if (blocked)
            strbuf_printf(text, ", blocked for %lld s", blocked);
    }
    return mine;
}

#define USER_SET_USAGE                                                                             \
    "usage: user set NAME [--number +E164|none] [--outbound none|national|all] "                   \
    "[--name \"Display Name\"] [--email ADDR] [--admin|--no-admin]"

/* user set NAME [--number +E164|none] [--outbound none|national|all]
 *               [--name "Display Name"] [--email ADDR]  ("" clears the last two) */
static int user_set_attributes(struct ctl *ctl)
{
    bool missing = false;
    const char *number = ctl_take_option(ctl, "--number", &missing);
    const char *outbound = ctl_take_option(ctl, "--outbound", &missing);
    const char *display = ctl_take_option(ctl, "--name", &missing);
    const char *email = ctl_take_option(ctl, "--email", &missing);
    /* an administrator may read /metrics with a web ticket */
    bool admin = ctl_take_flag(ctl, "--admin");
    bool no_admin = ctl_take_flag(ctl, "--no-admin");
    if (missing || ctl->argc != 1 || (admin && no_admin) ||
        (!number && !outbound && !display && !email && !admin && !no_admin))
        return ctl_usage(ctl, USER_SET_USAGE);
    const char *name = ctl->argv[0];
    if (number && strcmp(number, "none") == 0)
        number = "";
    enum dialplan_outbound o;
    if (outbound && dialplan_outbound_parse(outbound, &o) != 0)
        return ctl_usage(ctl, "--outbound is none, national or all");
    struct store *st;
    int rc = ctl_open_store(ctl, &st, 0);
    if (rc)
        return rc;
    int sr = number ? store_user_set_number(st, name, number) : 0;
    if (sr == 0 && outbound)
        sr = store_user_set_outbound(st, name, outbound);
    if (sr == 0 && (display || email))
        sr = store_user_set_profile(st, name, display, email);
    if (sr == 0 && (admin || no_admin))
        sr = store_user_set_admin(st, name, admin);
    if (sr == -ENOENT)
        rc = ctl_fail(ctl, "no user %s", name);
    else if (sr)
        rc = ctl_fail(ctl, "%s", store_errmsg(st));
    struct store_user u;
    if (rc == CTL_OK && store_user_get(st, name, &u) != 0)
        rc = ctl_fail(ctl, "cannot read %s back: %s", name, store_errmsg(st));
    rc = ctl_close_store(ctl, st, rc);
    if (rc)
        return rc;
    struct strbuf msg = STRBUF_INIT;
    strbuf_printf(&msg, "%s: number %s, outbound calls %s", name, u.number[0] ? u.number : "none",
                  u.outbound);
    if (u.display_name[0])
        strbuf_printf(&msg, ", display name \"%s\"", u.display_name);
    if (u.email[0])
        strbuf_printf(&msg, ", e-mail %s", u.email);
    if (u.admin)
        strbuf_puts(&msg, ", administrator");
    ctl_done(ctl,
             json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b}", "user", name, "number", u.number,
                       "outbound", u.outbound, "display_name", u.display_name, "email", u.email,
                       "uid", u.uid, "admin", u.admin),
             strbuf_cstr(&msg));
    strbuf_free(&msg);
    return CTL_OK;
}

static int user_list_one(const struct store_user *u, void *arg)
{
    struct user_list_ctx *lc = arg;
    char uri[200];
    snprintf(uri, sizeof(uri), "sip:%s@%s", u->name, lc->domain);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "user", u->name, "uri",
                          uri, "display_name", u->display_name, "email", u->email, "uid", u->uid,
                          "number", u->number, "outbound", u->outbound, "created",
                          (json_int_t)u->created, "updated", (json_int_t)u->updated);
    json_object_set_new(o, "admin", json_boolean(u->admin));
    /* a user's number and outbound rights, when there is anything to say */
    char extra[80] = "";
    if (u->number[0] || strcmp(u->outbound, "none") != 0)
        snprintf(extra, sizeof(extra), "  %s  outbound %s", u->number[0] ? u->number : "-",
                 u->outbound);
    /* the profile, as an address book shows it: "Name" <e-mail> */
    struct strbuf profile = STRBUF_INIT;
    if (u->display_name[0])
        strbuf_printf(&profile, "  \"%s\"", u->display_name);
    if (u->email[0])
        strbuf_printf(&profile, "  <%s>", u->email);
    if (u->admin)
        strbuf_puts(&profile, "  (administrator)");
    struct strbuf why = STRBUF_INIT;
    if (lc->throttle) {
        json_t *mine = user_throttle_of(lc->throttle, u->name, &why);
        lc->matched += json_array_size(mine);
        if (json_array_size(mine))
            json_object_set_new(o, "throttled", mine);
        else
            json_decref(mine);
    }
    /* the digests stored: a user without SHA-256 cannot authenticate under
     * FIPS (nor with a SHA-256-only auth.algorithms) until `user passwd` */
    json_t *digests = json_array();
    if (u->ha1_md5[0])
        json_array_append_new(digests, json_string("md5"));
    if (u->ha1_sha256[0])
        json_array_append_new(digests, json_string("sha-256"));
    json_object_set_new(o, "digests", digests);
    struct strbuf dig = STRBUF_INIT;
    strbuf_printf(&dig, "  digests: %s%s%s", u->ha1_md5[0] ? "md5" : "",
                  u->ha1_md5[0] && u->ha1_sha256[0] ? ", " : "", u->ha1_sha256[0] ? "sha-256" : "");
    if (!u->ha1_sha256[0]) {
        lc->no_sha256++;
        json_object_set_new(o, "needs_passwd", json_true());
        strbuf_printf(&dig, " (no SHA-256 digest%s: run `parleyctl user passwd %s`)",
                      lc->restricted ? ", cannot authenticate under FIPS" : "", u->name);
    }
    json_array_append_new(lc->users, o);
    if (why.len)
        strbuf_printf(&lc->text, "%s%s%s  (password guessing: %s)%s\n", uri, strbuf_cstr(&profile),
                      extra, strbuf_cstr(&why), strbuf_cstr(&dig));
    else
        strbuf_printf(&lc->text, "%s%s%s%s\n", uri, strbuf_cstr(&profile), extra,
                      strbuf_cstr(&dig));
    strbuf_free(&dig);
    strbuf_free(&why);
    strbuf_free(&profile);
    return 0;
}

static int user_list(struct ctl *ctl)
{
    struct store *st = NULL;
    int rc = ctl_open_store(ctl, &st, 0);
    if (rc)
        return rc;
    struct user_list_ctx lc = {
        json_array(), STRBUF_INIT, ctl->cfg->server.domain, user_fips_restricted(ctl), 0, NULL, 0};
    /* throttling is the running daemon's; without one there is none */
    json_t *reply = NULL;
    char err[256];
    if (ctl_control_request(ctl->cfg, "throttle", &reply, err, sizeof(err)) == 0 &&
        json_is_true(json_object_get(reply, "ok")))
        lc.throttle = json_object_get(reply, "records");
    int sr = store_user_list(st, user_list_one, &lc);
    store_close(st);
    if (sr) {
        json_decref(lc.users);
        json_decref(reply);
        strbuf_free(&lc.text);
        return ctl_fail(ctl, "cannot list users");
    }
    if (lc.users && json_array_size(lc.users) == 0)
        strbuf_puts(&lc.text, "no users; add one with `parleyctl user add NAME`\n");
    if (lc.no_sha256)
        strbuf_printf(&lc.text,
                      "%zu user%s without a SHA-256 digest%s: `parleyctl user passwd NAME` "
                      "stores one\n",
                      lc.no_sha256, lc.no_sha256 == 1 ? "" : "s",
                      lc.restricted ? " cannot authenticate under FIPS" : "");
    json_t *doc = json_pack("{s:o, s:b, s:I}", "users", lc.users, "fips_restricted", lc.restricted,
                            "without_sha256", (json_int_t)lc.no_sha256);
    if (lc.throttle) {
        /* guessing at names that are no user shows too: someone is trying */
        size_t others = json_array_size(lc.throttle) - lc.matched;
        json_object_set(doc, "throttled", lc.throttle);
        if (others)
            strbuf_printf(&lc.text, "(%zu throttle record%s for names that are no user)\n", others,
                          others == 1 ? "" : "s");
    }
    json_decref(reply);
    ctl_done(ctl, doc, strbuf_cstr(&lc.text));
    strbuf_free(&lc.text);
    return CTL_OK;
}

static int user_unblock(struct ctl *ctl)
{
    bool missing = false;
    const char *source = ctl_take_option(ctl, "--source", &missing);
    if (missing)
        return ctl_usage(ctl, "--source needs an address");
    if (ctl->argc != 1)
        return ctl_usage(ctl, "user unblock needs exactly one NAME (and optionally --source ADDR)");
    const char *name = ctl->argv[0];
    struct netaddr a;
    if (source && netaddr_parse_ip(source, 0, &a) != 0)
        return ctl_usage(ctl, "--source takes a numeric IPv4 or IPv6 address, not \"%s\"", source);
    json_t *req = json_pack("{s:s, s:s}", "command", "unblock", "user", name);
    if (source)
        json_object_set_new(req, "source", json_string(source));
    json_t *reply = NULL;
    char err[512];
    int cr = ctl_control_send(ctl->cfg, req, &reply, err, sizeof(err));
    json_decref(req);
    if (cr != 0)
        return ctl_fail(ctl, "%s (throttling lives in the running daemon; a restart clears it)",
                        err);
    if (!json_is_true(json_object_get(reply, "ok"))) {
        const char *e = json_string_value(json_object_get(reply, "error"));
        int rc = ctl_fail(ctl, "parleyd: %s", e ? e : "refused");
        json_decref(reply);
        return rc;
    }
    json_int_t n = json_integer_value(json_object_get(reply, "removed"));
    json_int_t left = json_integer_value(json_object_get(reply, "user_blocked_s"));
    char msg[400];
    int w;
    if (n)
        w = snprintf(msg, sizeof(msg), "unblocked %s%s%s (%lld record%s cleared)", name,
                     source ? " from " : "", source ? source : "", (long long)n, n == 1 ? "" : "s");
    else
        w = snprintf(msg, sizeof(msg), "%s%s%s was not blocked", name, source ? " from " : "",
                     source ? source : "");
    if (left && w > 0 && (size_t)w < sizeof(msg))
        snprintf(msg + w, sizeof(msg) - (size_t)w,
                 "; %s is still blocked for %lld s from every source it has not authenticated "
                 "from (a broad attack): `parleyctl user unblock %s` lifts that",
                 name, (long long)left, name);
    json_decref(reply);
    return ctl_done(ctl,
                    json_pack("{s:s, s:s?, s:I, s:I}", "user", name, "source", source, "removed", n,
                              "user_blocked_s", left),
                    msg);
}

int cmd_user(struct ctl *ctl)
{
    if (ctl->argc < 1)
        return ctl_usage(ctl, "user needs add, passwd, set, remove, list or unblock");
    const char *verb = ctl->argv[0];
    ctl->argc--;
    ctl->argv++;
    int rc = ctl_load_config(ctl);
    if (rc)
        return rc;
    if (strcmp(verb, "list") == 0) {
        if (ctl->argc)
            return ctl_usage(ctl, "user list takes no arguments");
        return user_list(ctl);
    }
    if (strcmp(verb, "add") == 0 || strcmp(verb, "passwd") == 0) {
        if (ctl->argc < 1)
            return ctl_usage(ctl, "user %s needs a NAME", verb);
        /* the name is the one argument that is not an option */
        const char *name = NULL;
        for (int i = 0; i < ctl->argc; i++)
            if (ctl->argv[i][0] != '-') {
                name = ctl->argv[i];
                break;
            }
        if (!name)
            return ctl_usage(ctl, "user %s needs a NAME", verb);
        return user_set(ctl, name, strcmp(verb, "add") == 0);
    }
    if (strcmp(verb, "unblock") == 0)
        return user_unblock(ctl);
    if (strcmp(verb, "set") == 0)
        return user_set_attributes(ctl);
    if (strcmp(verb, "remove") == 0) {
        if (ctl->argc != 1)
            return ctl_usage(ctl, "user remove needs exactly one NAME");
        return user_remove(ctl, ctl->argv[0]);
    }
    return ctl_usage(ctl, "unknown user command \"%s\"", verb);
}
