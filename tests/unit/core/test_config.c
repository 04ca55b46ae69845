#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "server/config_keys.h"

static const char *docs_path;

static const char *minimal = "[server]\ndomain = Example.TEST\n";

static void test_defaults_and_paths(void **state)
{
    (void)state;
    struct config *cfg = NULL;
    char err[512] = "";
    assert_int_equal(config_load_string("/etc/parley/parley.conf", minimal, &cfg, err, sizeof(err)),
                     0);
    assert_string_equal(cfg->server.domain, "example.test"); /* lower-cased */
    assert_string_equal(cfg->state_dir, "/etc/parley");
    assert_string_equal(cfg->tls.certificate, "/etc/parley/pki/server.pem");
    assert_int_equal(cfg->sip.tcp_listen.n, 0); /* no plain TCP by default */
    assert_int_equal(cfg->sip.tls_listen.n, 1);
    assert_int_equal(cfg->limits.connections_per_source, 64);
    assert_int_equal(cfg->sip.internal_networks.n, 2);
    assert_string_equal(cfg->tls.min_version, "1.2");
    assert_string_equal(cfg->config_dir, "/etc/parley");
    assert_string_equal(cfg->server.user, ""); /* no change of user */
    assert_true(cfg->server.confine);
    config_free(cfg);
}

/* server.state_dir moves the state, not the paths of the file */
static void test_state_dir(void **state)
{
    (void)state;
    struct config *cfg = NULL;
    char err[512] = "";
    assert_int_equal(config_load_string("/etc/parley/parley.conf",
                                        "[server]\ndomain = example.test\n"
                                        "state_dir = /var/lib/parley\nuser = parley\n"
                                        "confine = off\n",
                                        &cfg, err, sizeof(err)),
                     0);
    assert_string_equal(cfg->state_dir, "/var/lib/parley");
    assert_string_equal(cfg->config_dir, "/etc/parley");
    assert_string_equal(cfg->tls.certificate, "/etc/parley/pki/server.pem");
    assert_string_equal(cfg->server.user, "parley");
    assert_false(cfg->server.confine);
    config_free(cfg);
    /* relative: against the file's directory */
    assert_int_equal(config_load_string("/srv/p/parley.conf",
                                        "[server]\ndomain = example.test\nstate_dir = state\n",
                                        &cfg, err, sizeof(err)),
                     0);
    assert_string_equal(cfg->state_dir, "/srv/p/state");
    config_free(cfg);
    /* negative: a user name that could be anything else is refused */
    const char *bad[] = {"a b", "../root", "x:y", "-x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "[server]\ndomain = example.test\nuser = %s\n", bad[i]);
        cfg = NULL;
        assert_int_equal(config_load_string("/x/parley.conf", text, &cfg, err, sizeof(err)),
                         -EINVAL);
        assert_null(cfg);
        assert_non_null(strstr(err, "server.user"));
    }
}

static void test_refusals_name_key_and_line(void **state)
{
    (void)state;
    struct {
        const char *text;
        const char *expect;
    } cases[] = {
        {"[server]\ndomain = a.test\n[sip]\nbogus = 1\n", "x.conf:4: unknown key sip.bogus"},
        {"[server]\ndomain = a.test\n[nosuch]\nk = 1\n", "there is no section [nosuch]"},
        {"[server]\ndomain = a.test\n[sip]\nidle_timeout = 0\n",
         "sip.idle_timeout: invalid value \"0\"; expected an integer from 1 to 86400"},
        {"[server]\ndomain = a.test\n[sip]\nidle_timeout = 10s\n", "sip.idle_timeout"},
        {"[server]\ndomain = a.test\n[tls]\nmin_version = 1.0\n", "one of: 1.2, 1.3"},
        {"[server]\ndomain = a.test\n[sip]\ntls_listen = localhost:5061\n",
         "\"localhost:5061\" is not valid"},
        {"[server]\ndomain = a.test\n[sip]\ninternal_networks = 10.0.0.0/40\n",
         "sip.internal_networks"},
        {"[server]\ndomain = a.test\ndomain = b.test\n", "server.domain is set twice"},
        {"[server]\ndomain = -bad-.test\n", "server.domain: invalid value"},
        {"[sip]\ntls_listen = 127.0.0.1:5061\n", "server.domain is not set"},
        {"[server]\ndomain = a.test\n[sip]\ntls_listen =\n", "nothing to listen on"},
        {"[server]\ndomain = a.test\n[sip]\ntcp_listen = 127.0.0.1:5061\n",
         "in both sip.tls_listen and sip.tcp_listen"},
        {"[server]\ndomain = a.test\n[log]\nlevel = loud\n", "one of: debug, info, warn, error"},
        {"[server\ndomain = a.test\n", "x.conf:1:"},
        {"[server]\ndomain = a.test\n[tls]\nrequire_crl = maybe\n", "true or false"},
        {"[server]\ndomain = a.test\n[sip]\ntls_listen = 127.0.0.1:5061,,127.0.0.1:5062\n",
         "sip.tls_listen"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config *cfg = NULL;
        char err[512] = "";
        int rc = config_load_string("x.conf", cases[i].text, &cfg, err, sizeof(err));
        if (rc == 0 || !strstr(err, cases[i].expect))
            fail_msg("case %zu: rc=%d err=\"%s\", expected \"%s\"", i, rc, err, cases[i].expect);
        assert_null(cfg);
    }
}

static char *read_all(const char *path)
{
    struct stat st;
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_int_equal(fstat(fileno(f), &st), 0);
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    assert_non_null(buf);
    size_t n = fread(buf, 1, size, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_set_keeps_comments_and_is_atomic(void **state)
{
    (void)state;
    char dir[] = "/tmp/parley-config-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/parley.conf", dir);
    FILE *f = fopen(path, "w");
    fputs("# top comment\n[server]\ndomain = a.test  \n\n[sip]\n# idle_timeout = 300\n"
          "max_message_size = 4096 \n",
          f);
    fclose(f);
    chmod(path, 0640);

    char err[512] = "";
    assert_int_equal(config_set(path, "sip.idle_timeout", "42", err, sizeof(err)), 0);
    assert_int_equal(config_set(path, "sip.max_message_size", " 8192 ", err, sizeof(err)), 0);
    assert_int_equal(config_set(path, "log.level", "debug", err, sizeof(err)), 0);
    char *text = read_all(path);
    assert_non_null(strstr(text, "# top comment\n"));
    assert_non_null(strstr(text, "# idle_timeout = 300\nidle_timeout = 42\n"));
    assert_non_null(strstr(text, "max_message_size = 8192\n"));
    assert_null(strstr(text, "4096"));
    assert_non_null(strstr(text, "\n[log]\nlevel = debug\n"));
    free(text);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);

    /* refusals change nothing */
    char *before = read_all(path);
    assert_int_equal(config_set(path, "sip.idle_timeout", "-5", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "sip.idle_timeout"));
    assert_int_equal(config_set(path, "sip.nonsense", "1", err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "sip.nonsense"));
    assert_int_equal(config_set(path, "sip.tcp_listen", "127.0.0.1:5061", err, sizeof(err)),
                     -EINVAL); /* collides with tls_listen's default */
    assert_int_equal(config_set(path, "server.domain", "a.test\nx=1", err, sizeof(err)), -EINVAL);
    char *after = read_all(path);
    assert_string_equal(before, after);
    free(before);
    free(after);

    struct config *cfg = NULL;
    assert_int_equal(config_load(path, &cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg->sip.idle_timeout, 42);
    config_free(cfg);
    unlink(path);
    rmdir(dir);
}

static void test_template_loads(void **state)
{
    (void)state;
    struct strbuf t = STRBUF_INIT;
    const char *values[] = {"server.domain=t.test", "sip.tls_listen=10.1.2.3:5061", NULL};
    assert_int_equal(config_template(values, &t), 0);
    struct config *cfg = NULL;
    char err[512] = "";
    int rc = config_load_string("/x/parley.conf", strbuf_cstr(&t), &cfg, err, sizeof(err));
    if (rc)
        fail_msg("template does not load: %s", err);
    assert_string_equal(cfg->server.domain, "t.test");
    assert_int_equal(netaddr_port(&cfg->sip.tls_listen.v[0]), 5061);
    config_free(cfg);
    strbuf_free(&t);
}

/* docs/parley.conf.md documents every key, with its true default and
 * whether reload applies it. */
static void test_every_key_documented(void **state)
{
    (void)state;
    char *doc = read_all(docs_path);
    for (const struct config_key *k = config_keys(); k->section; k++) {
        char heading[128];
        snprintf(heading, sizeof(heading), "### `%s.%s`", k->section, k->name);
        char *at = strstr(doc, heading);
        if (!at)
            fail_msg("%s is not documented in %s", heading, docs_path);
        char *end = strstr(at + 1, "\n### ");
        size_t span = end ? (size_t)(end - at) : strlen(at);
        char *block = strndup(at, span);
        char want[1024];
        snprintf(want, sizeof(want), "Default: `%s`", k->default_value);
        if (!*k->default_value)
            snprintf(want, sizeof(want), "Default: empty");
        if (!strstr(block, want))
            fail_msg("%s.%s: the docs do not say \"%s\"", k->section, k->name, want);
        const char *applies = k->reloadable ? "Applied by: reload" : "Applied by: restart";
        if (!strstr(block, applies))
            fail_msg("%s.%s: the docs do not say \"%s\"", k->section, k->name, applies);
        free(block);
    }
    free(doc);
}

/* More rows than the table holds is refused whole, and the installed
 * table stays as it was. */
static void test_install_refuses_too_many_keys(void **state)
{
    (void)state;
    static struct config_key many[CONFIG_KEYS_MAX + 2];
    for (size_t i = 0; i <= CONFIG_KEYS_MAX; i++)
        many[i] = (struct config_key){.section = "x", .name = "y"};
    const struct config_key *const sets[] = {many, NULL};
    assert_int_equal(config_install_keys(sets), -E2BIG);
    assert_non_null(config_key_find("server.domain"));
    assert_null(config_key_find("x.y"));
}

int main(int argc, char **argv)
{
    docs_path = argc > 1 ? argv[1] : "docs/parley.conf.md";
    /* the program's rows, as parleyd and parleyctl install them */
    if (config_install_keys(server_config_key_sets) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_paths),
        cmocka_unit_test(test_state_dir),
        cmocka_unit_test(test_refusals_name_key_and_line),
        cmocka_unit_test(test_set_keeps_comments_and_is_atomic),
        cmocka_unit_test(test_template_loads),
        cmocka_unit_test(test_every_key_documented),
        cmocka_unit_test(test_install_refuses_too_many_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
