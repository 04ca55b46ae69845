/*
 * crypto/fips and crypto/selftest: the setting's names, what auto resolves
 * to for a simulated kernel switch (a temporary fips_enabled file holding
 * 1, 0 or nothing), the contexts of off and approved-only with their
 * known-answer tests, mode on refused on this machine (no fips provider)
 * with a message naming it, and pki's approved-key rule under a restricted
 * mode. Keys for the negative cases are made with OpenSSL directly.
 */
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

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "core/random.h"
#include "crypto/digest.h"
#include "crypto/fips.h"
#include "crypto/pki.h"
#include "crypto/selftest.h"

static char g_dir[] = "/tmp/parley-fips-XXXXXX";

static int setup(void **state)
{
    (void)state;
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *file_with(const char *name, const char *content)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    return path;
}

static void test_setting_parse(void **state)
{
    (void)state;
    enum fips_setting s;
    assert_int_equal(fips_setting_parse("auto", &s), 0);
    assert_int_equal(s, FIPS_SETTING_AUTO);
    assert_int_equal(fips_setting_parse("on", &s), 0);
    assert_int_equal(s, FIPS_SETTING_ON);
    assert_int_equal(fips_setting_parse("approved-only", &s), 0);
    assert_int_equal(s, FIPS_SETTING_APPROVED);
    assert_int_equal(fips_setting_parse("off", &s), 0);
    assert_int_equal(s, FIPS_SETTING_OFF);
    const char *bad[] = {"", "ON", "yes", "1", "approved", "approved-only ", "fips"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(fips_setting_parse(bad[i], &s), -EINVAL);
    assert_int_equal(fips_setting_parse(NULL, &s), -EINVAL);
    assert_int_equal(fips_setting_parse("on", NULL), -EINVAL);
    assert_string_equal(fips_mode_name(FIPS_MODE_ON), "on");
    assert_string_equal(fips_mode_name(FIPS_MODE_APPROVED), "approved-only");
    assert_string_equal(fips_mode_name(FIPS_MODE_OFF), "off");
}

static void test_resolve(void **state)
{
    (void)state;
    const char *why = NULL;
    char missing[256];
    snprintf(missing, sizeof(missing), "%s/none", g_dir);

    /* explicit settings ignore the kernel */
    const char *one = file_with("one", "1\n");
    assert_int_equal(fips_resolve(FIPS_SETTING_OFF, one, &why), FIPS_MODE_OFF);
    assert_string_equal(why, "security.fips = off");
    assert_int_equal(fips_resolve(FIPS_SETTING_APPROVED, one, NULL), FIPS_MODE_APPROVED);
    assert_int_equal(fips_resolve(FIPS_SETTING_ON, missing, NULL), FIPS_MODE_ON);

    /* auto follows the file */
    assert_int_equal(fips_resolve(FIPS_SETTING_AUTO, one, &why), FIPS_MODE_ON);
    assert_non_null(strstr(why, "kernel runs in FIPS mode"));
    assert_int_equal(fips_resolve(FIPS_SETTING_AUTO, file_with("one-bare", "1"), NULL),
                     FIPS_MODE_ON);
    /* this machine's OpenSSL does not ask for fips=yes by default */
    assert_int_equal(fips_resolve(FIPS_SETTING_AUTO, file_with("zero", "0\n"), &why),
                     FIPS_MODE_OFF);
    assert_non_null(strstr(why, "does not run in FIPS mode"));
    assert_int_equal(fips_resolve(FIPS_SETTING_AUTO, missing, NULL), FIPS_MODE_OFF);
    assert_int_equal(fips_resolve(FIPS_SETTING_AUTO, file_with("empty", ""), NULL), FIPS_MODE_OFF);
    assert_int_equal(fips_resolve(FIPS_SETTING_AUTO, file_with("junk", "yes\n"), NULL),
                     FIPS_MODE_OFF);
    assert_int_equal(fips_resolve(FIPS_SETTING_AUTO, NULL, NULL), FIPS_MODE_OFF);
}

static void test_open_off(void **state)
{
    (void)state;
    struct fips_ctx *c = NULL;
    char err[1024];
    unsigned char a[32] = {0}, b[32] = {0};

    assert_int_equal(fips_open(FIPS_MODE_OFF, &c, err, sizeof(err)), 0);
    assert_non_null(c);
    assert_non_null(fips_libctx(c));
    assert_null(fips_propq(c));
    assert_false(fips_restricted(c));
    assert_false(fips_validated_module(c));
    assert_null(fips_provider(c));
    assert_string_equal(fips_describe(c), "off");
    assert_int_equal(fips_self_tests(c), 6); /* MD5's digest test included */
    assert_true(digest_alg_available(DIGEST_ALG_MD5));
    assert_int_equal(fips_random(c, a, sizeof(a)), 0);
    assert_int_equal(fips_random(c, b, sizeof(b)), 0);
    assert_memory_not_equal(a, b, sizeof(a));
    assert_int_equal(fips_random(NULL, a, sizeof(a)), -EINVAL);

    /* random_secret draws from the installed source, and says a failing one */
    random_set_secret_source(fips_secret_source, c);
    assert_int_equal(random_secret(a, sizeof(a)), 0);
    fips_close(c);
    /* the modules let go of the context: the known answers fail now */
    const char *failed = NULL;
    assert_int_equal(selftest_run(NULL, NULL, false, &failed), -EIO);
    assert_string_equal(failed, "sip-digest-sha256");
    random_set_secret_source(NULL, NULL);
    assert_int_equal(random_secret(a, sizeof(a)), 0);
}

static int failing_source(void *arg, void *out, size_t len)
{
    (void)arg, (void)out, (void)len;
    return -EIO;
}

static void test_secret_source_failure(void **state)
{
    (void)state;
    unsigned char a[16];
    random_set_secret_source(failing_source, NULL);
    assert_int_equal(random_secret(a, sizeof(a)), -EIO);
    random_set_secret_source(NULL, NULL);
    assert_int_equal(random_secret(a, sizeof(a)), 0);
}

static void test_open_approved_only(void **state)
{
    (void)state;
    struct fips_ctx *c = NULL;
    char err[1024];

    assert_int_equal(fips_open(FIPS_MODE_APPROVED, &c, err, sizeof(err)), 0);
    assert_true(fips_restricted(c));
    assert_false(fips_validated_module(c));
    assert_null(fips_propq(c));
    assert_int_equal(fips_mode(c), FIPS_MODE_APPROVED);
    assert_string_equal(fips_describe(c), "approved-only (no validated module)");
    assert_int_equal(fips_self_tests(c), 5); /* no MD5 under a restricted mode */
    fips_close(c);
}

/* This machine has no fips provider (Debian ships none). */
static void test_open_on_refused(void **state)
{
    (void)state;
    struct fips_ctx *c = (struct fips_ctx *)1;
    char err[2048];
    char module[4096];
    const char *dir = getenv("OPENSSL_MODULES");
    snprintf(module, sizeof(module), "%s/fips.so",
             dir && *dir ? dir : OPENSSL_info(OPENSSL_INFO_MODULES_DIR));
    if (access(module, F_OK) == 0)
        skip();

    assert_int_equal(fips_open(FIPS_MODE_ON, &c, err, sizeof(err)), -ENOENT);
    assert_null(c);
    assert_non_null(strstr(err, "fips provider"));
    assert_non_null(strstr(err, "fips.so"));
    assert_non_null(strstr(err, "OPENSSL_MODULES"));
    assert_non_null(strstr(err, "openssl fipsinstall"));
    assert_non_null(strstr(err, "approved-only"));
}

/* A fips.so that is not a provider: present, but it does not load. */
static void test_open_on_broken_module(void **state)
{
    (void)state;
    struct fips_ctx *c = NULL;
    char err[2048];
    char *old = getenv("OPENSSL_MODULES") ? strdup(getenv("OPENSSL_MODULES")) : NULL;

    file_with("fips.so", "not a shared object\n");
    setenv("OPENSSL_MODULES", g_dir, 1);
    int rc = fips_open(FIPS_MODE_ON, &c, err, sizeof(err));
    if (old)
        setenv("OPENSSL_MODULES", old, 1);
    else
        unsetenv("OPENSSL_MODULES");
    free(old);
    assert_int_equal(rc, -EIO);
    assert_null(c);
    assert_non_null(strstr(err, "did not load"));
    assert_non_null(strstr(err, "openssl fipsinstall"));
}

static const char *write_key(const char *name, EVP_PKEY *k)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    chmod(path, 0600);
    EVP_PKEY_free(k);
    return path;
}

/* Under a restricted mode a request is made only for an approved key. */
static void test_pki_approved_keys(void **state)
{
    (void)state;
    struct fips_ctx *c = NULL;
    char err[1024], csr[256];
    const char *names[] = {"sip.example.test", NULL};

    assert_int_equal(fips_open(FIPS_MODE_APPROVED, &c, err, sizeof(err)), 0);
    const char *ed = write_key("ed.key", EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
    snprintf(csr, sizeof(csr), "%s/ed.csr", g_dir);
    assert_int_equal(pki_csr_write(ed, NULL, names, csr, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not an approved key"));
    assert_int_equal(access(csr, F_OK), -1);

    const char *p224 = write_key("p224.key", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-224"));
    snprintf(csr, sizeof(csr), "%s/p224.csr", g_dir);
    assert_int_equal(pki_csr_write(p224, NULL, names, csr, err, sizeof(err)), -EINVAL);

    const char *p384 = write_key("p384.key", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"));
    snprintf(csr, sizeof(csr), "%s/p384.csr", g_dir);
    assert_int_equal(pki_csr_write(p384, NULL, names, csr, err, sizeof(err)), 0);
    fips_close(c);

    /* off: the same Ed25519 key is accepted */
    assert_int_equal(fips_open(FIPS_MODE_OFF, &c, err, sizeof(err)), 0);
    snprintf(csr, sizeof(csr), "%s/ed-off.csr", g_dir);
    assert_int_equal(pki_csr_write(ed, NULL, names, csr, err, sizeof(err)), 0);
    fips_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_setting_parse),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_open_off),
        cmocka_unit_test(test_secret_source_failure),
        cmocka_unit_test(test_open_approved_only),
        cmocka_unit_test(test_open_on_refused),
        cmocka_unit_test(test_open_on_broken_module),
        cmocka_unit_test(test_pki_approved_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
