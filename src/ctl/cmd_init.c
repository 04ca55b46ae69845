/*
 * parleyctl init: a new state directory with a documented configuration, a
 * development PKI and an empty store. It never overwrites: run again on an
 * initialised directory, it changes nothing and names what exists.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/strbuf.h"
#include "crypto/pki.h"
#include "ctl/ctl.h"
#include "crypto/fips.h"
#include "registrar/auth.h"
#include "server/privdrop.h"
#include "relay/relay_cred.h"
#include "store/store.h"

static const char *const init_pki_files[] = {PKI_CA_CERT_FILE, PKI_CA_KEY_FILE, PKI_CRL_FILE,
                                             PKI_SERVER_CERT_FILE, PKI_SERVER_KEY_FILE};

static char *init_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static bool init_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Writes the configuration file, never replacing one. */
static int init_write_config(const char *path, const char *text, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    int rc = 0;
    if (w != (ssize_t)len || fsync(fd) != 0) {
        rc = w < 0 ? -errno : -EIO;
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(-rc));
    }
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc)
        unlink(path);
    return rc;
}

int cmd_init(struct ctl *ctl)
{
    bool missing = false;
    const char *dir = ctl_take_option(ctl, "--dir", &missing);
    const char *domain = ctl_take_option(ctl, "--domain", &missing);
    const char *address = ctl_take_option(ctl, "--address", &missing);
    const char *key_type_name = ctl_take_option(ctl, "--key-type", &missing);
    const char *fips = ctl_take_option(ctl, "--fips", &missing);
    const char *state_dir = ctl_take_option(ctl, "--state-dir", &missing);
    const char *user = ctl_take_option(ctl, "--user", &missing);
    struct privdrop_target owner;
    enum pki_key_type key_type = PKI_KEY_ECDSA_P256;
    char err[1024];
    char *conf = NULL, *pki = NULL, *db = NULL, *secrets = NULL;
    bool made_state = false;
    struct strbuf existing = STRBUF_INIT, text = STRBUF_INIT;
    bool made_dir = false, made_pki = false, made_db = false, made_secrets = false;
    int rc = CTL_FAIL;

    if (missing)
        return ctl_usage(ctl, "an option is missing its value");
    if (ctl->argc)
        return ctl_usage(ctl, "unexpected argument \"%s\"", ctl->argv[0]);
    if (!dir || !domain)
        return ctl_usage(ctl, "init needs --dir DIR and --domain DOMAIN");
    if (!address)
        address = "127.0.0.1";
    if (key_type_name && pki_key_type_parse(key_type_name, &key_type) != 0)
        return ctl_usage(ctl, "--key-type must be p256 or rsa2048, not \"%s\"", key_type_name);
    enum fips_setting fips_setting = FIPS_SETTING_AUTO;
    if (!fips)
        fips = "auto";
    if (fips_setting_parse(fips, &fips_setting) != 0)
        return ctl_usage(ctl, "--fips must be auto, on, approved-only or off, not \"%s\"", fips);

    /* validate before touching anything */
    const struct config_key *dk = config_key_find("server.domain");
    if (config_validate_value(dk, domain, err, sizeof(err)) != 0 || !*domain)
        return ctl_usage(ctl, "--domain: \"%s\" is not a DNS domain name", domain);
    unsigned char ipbuf[16];
    bool v6 = inet_pton(AF_INET6, address, ipbuf) == 1;
    if (!v6 && inet_pton(AF_INET, address, ipbuf) != 1)
        return ctl_usage(ctl, "--address: \"%s\" is not a numeric IPv4 or IPv6 address", address);

    /* --state-dir: the store, PKI and secrets go there (server.state_dir),
     * the configuration stays in --dir; it must be absolute, as the
     * configuration names it for parleyd wherever that starts */
    if (state_dir && state_dir[0] != '/')
        return ctl_usage(ctl, "--state-dir must be an absolute path, not \"%s\"", state_dir);
    if (state_dir && strcmp(state_dir, dir) == 0)
        state_dir = NULL;
    /* --user: server.user; the state directory becomes that user's */
    if (user &&
        (config_validate_value(config_key_find("server.user"), user, err, sizeof(err)) != 0 ||
         !*user))
        return ctl_usage(ctl, "--user: \"%s\" is not a user name", user);
    if (privdrop_prepare(user, &owner, err, sizeof(err)) != 0)
        return ctl_fail(ctl, "--user: %s", err);
    /* the user gets the state directory: the configuration, which root
     * reads, must be elsewhere */
    if (owner.change && !state_dir)
        return ctl_usage(ctl, "--user needs --state-dir, a directory apart from --dir: the "
                              "state directory is given to the user, the configuration stays "
                              "root's");
    const char *sdir = state_dir ? state_dir : dir;

    conf = init_path(dir, "parley.conf");
    pki = init_path(sdir, "pki");
    db = init_path(sdir, "parley.db");
    secrets = init_path(sdir, RELAY_SECRETS_FILE);
    if (!conf || !pki || !db || !secrets)
        goto out;

    if (init_exists(conf))
        strbuf_printf(&existing, "%s%s", existing.len ? ", " : "", conf);
    if (init_exists(db))
        strbuf_printf(&existing, "%s%s", existing.len ? ", " : "", db);
    for (size_t i = 0; i < sizeof(init_pki_files) / sizeof(init_pki_files[0]); i++) {
        char *f = init_path(pki, init_pki_files[i]);
        if (f && init_exists(f))
            strbuf_printf(&existing, "%s%s", existing.len ? ", " : "", f);
        free(f);
    }
    if (existing.len) {
        rc = ctl_fail(ctl, "%s is already initialised; nothing changed (exists: %s)", dir,
                      strbuf_cstr(&existing));
        goto out;
    }

    /* The keys and secrets below are made on the context the new
     * configuration will name (security.fips), so that a FIPS site's
     * first keys come from its validated module. */
    rc = ctl_open_crypto_as(ctl, fips, FIPS_ENABLED_FILE_DEFAULT);
    if (rc)
        goto out;
    rc = CTL_FAIL;

    if (mkdir(dir, 0700) == 0) {
        made_dir = true;
    } else if (errno != EEXIST) {
        rc = ctl_fail(ctl, "%s: cannot create: %s", dir, strerror(errno));
        goto out;
    }
    if (state_dir) {
        if (mkdir(state_dir, 0700) == 0) {
            made_state = true;
        } else if (errno != EEXIST) {
            rc = ctl_fail(ctl, "%s: cannot create: %s", state_dir, strerror(errno));
            goto undo;
        }
    }

    if (pki_create(pki, domain, address, key_type, err, sizeof(err)) != 0) {
        rc = ctl_fail(ctl, "%s", err);
        goto undo;
    }
    made_pki = true;

    struct store *st = NULL;
    if (store_open(db, STORE_CREATE, &st, err, sizeof(err)) != 0) {
        rc = ctl_fail(ctl, "%s", err);
        goto undo;
    }
    made_db = true;
    if (store_close(st) != 0) {
        rc = ctl_fail(ctl, "%s: closing the new store failed", db);
        goto undo;
    }

    char v_domain[300], v_listen[128], v_mtls[128], v_relay[128], v_relay_tls[128];
    snprintf(v_domain, sizeof(v_domain), "server.domain=%s", domain);
    snprintf(v_listen, sizeof(v_listen), v6 ? "sip.tls_listen=[%s]:5061" : "sip.tls_listen=%s:5061",
             address);
    snprintf(v_mtls, sizeof(v_mtls), v6 ? "sip.mtls_listen=[%s]:5062" : "sip.mtls_listen=%s:5062",
             address);
    snprintf(v_relay, sizeof(v_relay), v6 ? "relay.listen=[%s]:3478" : "relay.listen=%s:3478",
             address);
    snprintf(v_relay_tls, sizeof(v_relay_tls),
             v6 ? "relay.tls_listen=[%s]:5349" : "relay.tls_listen=%s:5349", address);
    /* HTTPS on 443 in production; a user who is not root cannot bind it,
     * so `make run` as one gets 8443 rather than a server that fails */
    unsigned https_port = geteuid() == 0 ? 443 : 8443;
    char v_https[128];
    snprintf(v_https, sizeof(v_https), v6 ? "https.listen=[%s]:%u" : "https.listen=%s:%u", address,
             https_port);
    char v_fips[64];
    snprintf(v_fips, sizeof(v_fips), "security.fips=%s", fips);
    const char *values[16] = {v_domain, v_listen, v_mtls, v_relay, v_relay_tls, v_https};
    size_t nv = 6;
    char v_state[4200], v_user[128], v_cert[4200], v_key[4200], v_ca[4200], v_crl[4200];
    if (state_dir) {
        /* the PKI is in the state directory: named absolutely */
        snprintf(v_state, sizeof(v_state), "server.state_dir=%s", state_dir);
        snprintf(v_cert, sizeof(v_cert), "tls.certificate=%s/%s", pki, PKI_SERVER_CERT_FILE);
        snprintf(v_key, sizeof(v_key), "tls.private_key=%s/%s", pki, PKI_SERVER_KEY_FILE);
        snprintf(v_ca, sizeof(v_ca), "tls.ca_files=%s/%s", pki, PKI_CA_CERT_FILE);
        snprintf(v_crl, sizeof(v_crl), "tls.crl_files=%s/%s", pki, PKI_CRL_FILE);
        values[nv++] = v_state;
        values[nv++] = v_cert;
        values[nv++] = v_key;
        values[nv++] = v_ca;
        values[nv++] = v_crl;
    }
    if (user) {
        snprintf(v_user, sizeof(v_user), "server.user=%s", user);
        values[nv++] = v_user;
    }
    if (fips_setting != FIPS_SETTING_AUTO)
        values[nv++] = v_fips;
    /* under FIPS the digest is SHA-256 only, written out so that it shows */
    if (fips_restricted(ctl->fips))
        values[nv++] = "auth.algorithms=" AUTH_FIPS_ALGORITHMS;
    values[nv] = NULL;
    if (config_template(values, &text) != 0) {
        rc = ctl_fail(ctl, "out of memory");
        goto undo;
    }
    /* The media relay's first secret, so relay credentials can be issued at once. */
    int64_t now = (int64_t)time(NULL);
    if (relay_secrets_ensure(secrets, now, NULL, &made_secrets, err, sizeof(err)) != 0) {
        rc = ctl_fail(ctl, "%s", err);
        goto undo;
    }
    if (init_write_config(conf, strbuf_cstr(&text), err, sizeof(err)) != 0) {
        rc = ctl_fail(ctl, "%s", err);
        goto undo;
    }
    /* server.user reads the configuration (root's, its group's) and owns
     * the state directory */
    if (owner.change) {
        if (state_dir && (chown(conf, 0, owner.gid) != 0 ||
                          (made_dir && (chown(dir, 0, owner.gid) != 0 || chmod(dir, 0750) != 0)))) {
            rc = ctl_fail(ctl, "%s: cannot give it to group %ld: %s", conf, (long)owner.gid,
                          strerror(errno));
            goto undo_conf;
        }
        if (privdrop_own_state(&owner, sdir, conf, err, sizeof(err)) != 0) {
            rc = ctl_fail(ctl, "%s", err);
            goto undo_conf;
        }
    }

    {
        struct strbuf msg = STRBUF_INIT;
        strbuf_printf(&msg,
                      "Initialised %s for domain %s:\n"
                      "  %s            configuration (documented in docs/parley.conf.md)\n"
                      "  %s/ca.pem, ca.key      development CA (key 0600)\n"
                      "  %s/crl.pem             its revocation list\n"
                      "  %s/server.pem, .key    certificate for sip.%s, %s, %s\n"
                      "  %s              user store\n"
                      "  %s          media relay secret (0600)\n"
                      "  HTTPS web services on port %u (https.listen)\n"
                      "Next: parleyctl -c %s user add NAME, then parleyd -c %s\n",
                      dir, domain, conf, pki, pki, pki, domain, domain, address, db, secrets,
                      https_port, conf, conf);
        json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "dir", dir, "domain", domain,
                                "address", address, "config", conf, "pki", pki, "store", db,
                                "relay_secrets", secrets);
        ctl_done(ctl, doc, strbuf_cstr(&msg));
        strbuf_free(&msg);
    }
    rc = CTL_OK;
    goto out;

undo_conf:
    unlink(conf);
undo:
    /* leave nothing half-made behind */
    if (made_secrets)
        unlink(secrets);
    if (made_db) {
        unlink(db);
        char *side = init_path(sdir, "parley.db-wal");
        if (side)
            unlink(side);
        free(side);
        side = init_path(sdir, "parley.db-shm");
        if (side)
            unlink(side);
        free(side);
    }
    if (made_pki) {
        for (size_t i = 0; i < sizeof(init_pki_files) / sizeof(init_pki_files[0]); i++) {
            char *f = init_path(pki, init_pki_files[i]);
            if (f)
                unlink(f);
            free(f);
        }
        rmdir(pki);
    }
    if (made_state)
        rmdir(state_dir);
    if (made_dir)
        rmdir(dir);
out:
    strbuf_free(&existing);
    strbuf_free(&text);
    free(conf);
    free(pki);
    free(db);
    free(secrets);
    return rc;
}
