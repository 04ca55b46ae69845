/*
 * config — parley.conf: an INI file of documented keys.
 *
 * Every key is a row of one table (config.c): its section, name, type,
 * default, whether SIGHUP applies it, and a one-line help. That table
 * drives loading, validation, `parleyctl config get|set|keys`, the file
 * that `parleyctl init` writes, the manual page parley.conf(5), and a test
 * that checks docs/parley.conf.md documents every key. Add a key by adding a row and a field.
 *
 * Relative paths in the file are relative to the file's directory. The
 * server's state directory (lock, control socket, store, relay secrets,
 * ticket keys, meeting content) is server.state_dir when set (a relative
 * one against the file's directory), else the file's directory too.
 */
#ifndef PARLEY_CORE_CONFIG_H
#define PARLEY_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/netaddr.h"
#include "core/strbuf.h"

struct config_addr_list {
    size_t n;
    struct netaddr *v;
};

struct config_cidr_list {
    size_t n;
    struct cidr *v;
};

struct config_str_list {
    size_t n;
    char **v;
};

struct config {
    char *path;       /* absolute path of the file */
    char *config_dir; /* its directory: relative paths resolve against it */
    char *state_dir;  /* server.state_dir, absolute; config_dir when that is empty */
    /* Which rows of config_keys() the file set (config_is_explicit). */
    unsigned char explicit_keys[256]; /* CONFIG_KEYS_MAX */

    struct {
        char *domain;
        long long workers; /* 0: one per core */
        char *user;        /* "": no change of user (server/privdrop) */
        char *state_dir;   /* as written; see state_dir above */
        bool confine;      /* Landlock and seccomp after start-up (server/confine) */
    } server;
    struct {
        struct config_addr_list tls_listen;
        struct config_addr_list mtls_listen; /* server-to-server: certificates required */
        struct config_addr_list tcp_listen;
        struct config_addr_list trunk_tcp_listen; /* gateways of TCP trunks only */
        char *client_certificates; /* on tls_listen: "none" | "request" | "require" */
        char *advertised_name;     /* how Parley names itself in URIs; "": the certificate's */
        struct config_cidr_list internal_networks;
        long long max_message_size;
        long long idle_timeout;
    } sip;
    struct {
        char *certificate;
        char *private_key;
        struct config_str_list ca_files;
        struct config_str_list crl_files;
        char *min_version;  /* "1.2" | "1.3" */
        char *ciphers;      /* TLS 1.2 cipher list */
        char *ciphersuites; /* TLS 1.3 suites */
        char *groups;
        long long handshake_timeout;
        bool require_crl;
    } tls;
    struct {
        struct config_str_list algorithms; /* "MD5", "SHA-256", in order */
        long long nonce_lifetime;
        long long max_failures;        /* per user and source, in failure_window */
        long long max_source_failures; /* per source, any name, in failure_window */
        long long max_user_failures;   /* per user, every source, in failure_window */
        long long failure_window;
        long long block_time;     /* the first block */
        long long max_block_time; /* blocks double up to this */
        long long trust_time;     /* a source that authenticated stays trusted */
        long long max_tracked;    /* throttle records */
    } auth;
    struct {
        long long min_expires;
        long long max_expires;
        long long default_expires;
        long long max_devices_per_user;
    } registrar;
    struct {
        long long max_body_size;
    } im;
    struct {
        char *policy; /* "domain" | "contacts" */
        long long min_notify_interval;
        long long min_expires;
        long long max_expires;
        long long max_subscriptions;
        long long max_per_user;
        long long max_per_watcher;
    } presence;
    struct {
        char *encryption_level; /* "required" | "supported" | "not_supported" */
        struct config_str_list srtp_suites;
        /* the media engine (src/anchor) */
        char *anchor; /* "never" | "always" */
        long long workers;
        char *port_range;     /* "30000-39999" */
        char *address;        /* "" = the first sip.tls_listen address */
        char *public_address; /* "" = media.address */
        long long timeout;
        long long consent_timeout;
        long long replay_window;
        char *latch_plain; /* "sdp" | "first" */
        long long max_streams;
        long long max_streams_per_user;
    } media;
    struct {
        bool enabled;
        struct config_addr_list listen; /* UDP and TCP */
        struct config_addr_list tls_listen;
        char *relay_address; /* "" = the first listen address */
        char *port_range;    /* "50000-59999" */
        struct config_cidr_list allowed_peers;
        long long max_lifetime;        /* credentials Parley issues */
        long long allocation_lifetime; /* most a TURN allocation may last */
        long long max_allocations_per_user;
        long long max_allocations;
        long long max_bandwidth; /* kbit/s per allocation; 0 = no limit */
        long long nonce_lifetime;
        long long workers;
    } relay;
    struct {
        struct config_addr_list listen; /* HTTPS web services; empty: none */
        long long ticket_lifetime;
        long long max_header_size;
        long long max_body_size;
        long long request_timeout;
        long long keepalive_timeout;
        long long content_max_file;
        long long content_quota_meeting;
        long long content_quota_total;
    } https;
    struct {
        char *nameservers; /* "IP[:PORT], ..." or "" for /etc/resolv.conf */
    } dns;
    struct {
        long long connections_per_source;
        long long connections_total;
        long long transactions_per_connection;
        long long transactions_per_source;
        long long transactions_per_user;
        long long trunk_calls_per_user;
        long long transactions_total;
    } limits;
    struct {
        char *level;
    } log;
    struct {
        char *fips;              /* "auto" | "on" | "approved-only" | "off" (crypto/fips) */
        char *fips_enabled_file; /* the kernel's FIPS switch, read by auto */
    } security;
};

enum config_type {
    CONFIG_STRING,
    CONFIG_ENUM, /* one of `allowed`, "a|b|c" */
    CONFIG_INT,  /* within [min, max] */
    CONFIG_BOOL, /* true|false|yes|no|on|off|1|0 */
    CONFIG_PATH, /* resolved against the config directory */
    CONFIG_PATH_LIST,
    CONFIG_ADDR_LIST, /* ADDR:PORT, ... */
    CONFIG_CIDR_LIST,
    CONFIG_DOMAIN,    /* a DNS name */
    CONFIG_ENUM_LIST, /* comma-separated values of `allowed`, no repeats, at least one */
};

struct config_key {
    const char *section;
    const char *name;
    enum config_type type;
    const char *default_value; /* text form; "" for empty */
    const char *allowed;       /* CONFIG_ENUM: "a|b"; else NULL */
    long long min, max;        /* CONFIG_INT */
    bool reloadable;           /* applied by SIGHUP (else at restart) */
    bool in_template;          /* written uncommented by `parleyctl init` */
    const char *unit;          /* "seconds", "bytes", ... or NULL */
    const char *help;
    size_t offset; /* of the field in struct config */
    /* Extra validation of a value (after its type's), or NULL. Returns 0
     * or -EINVAL with a description of what is allowed in err. */
    int (*check)(const char *value, char *err, size_t errlen);
};

/* Each subsystem owns the rows of its keys (SUBSYSTEM/config_keys.c, as
 * nginx's modules own their directives); the program installs them, in
 * the order of parley.conf's sections, once at start: see
 * config_install_keys. core/config knows no subsystem. */
#define CONFIG_KEYS_MAX 256
/* A row's field: offsetof into struct config. */
#define CONFIG_FIELD(field) offsetof(struct config, field)

/* Checks for rows (see struct config_key.check). */
int config_check_ip_or_empty(const char *value, char *err, size_t errlen);
int config_check_host_or_empty(const char *value, char *err, size_t errlen);
int config_check_port_range(const char *value, char *err, size_t errlen);
int config_check_nameservers(const char *value, char *err, size_t errlen);

/* The assembled table, terminated by a row with section == NULL. */
/* Installs the key rows: sets, NULL-terminated, each an array ended by a
 * row with section == NULL (server/config_keys.h has the program's). Call
 * once at start, before threads and before any other config_* function;
 * until then no key is known. Returns 0, or -E2BIG when the rows hold more
 * than CONFIG_KEYS_MAX keys (then none is installed). */
int config_install_keys(const struct config_key *const *sets);
const struct config_key *config_keys(void);
/* "sip.tls_listen" -> row, or NULL. */
const struct config_key *config_key_find(const char *dotted);

/* Loads and validates a file. On error returns a negative errno and writes
 * one line naming the file, line and fault into err. */
int config_load(const char *path, struct config **out, char *err, size_t errlen);
/* Same, from text (path is used for messages and relative paths). */
int config_load_string(const char *path, const char *text, struct config **out, char *err,
                       size_t errlen);
void config_free(struct config *cfg);

/* Did the file set the key ("auth.algorithms"), rather than leave it at
 * its default? Defaults may narrow by themselves (security.fips: a key left
 * alone takes its approved subset) where an explicit value is refused. */
bool config_is_explicit(const struct config *cfg, const char *dotted);
/* Replaces a key's value in a loaded configuration (validated as when
 * loading; the key keeps counting as not explicit unless it was): how a
 * default narrows. Returns 0, -ENOENT (no such key) or -EINVAL/-ENOMEM
 * with err filled. */
int config_override(struct config *cfg, const char *dotted, const char *value, char *err,
                    size_t errlen);

/* Validates one value for a key, without loading a file. */
int config_validate_value(const struct config_key *key, const char *value, char *err,
                          size_t errlen);

/* The value of a key in cfg, as text (lists comma-separated). */
void config_format_value(const struct config *cfg, const struct config_key *key,
                         struct strbuf *out);

/*
 * Sets SECTION.KEY = VALUE in the file at path: the value is validated, the
 * edited text must load as a whole, and the file is replaced atomically
 * (temporary file, fsync, rename, fsync of the directory) keeping every
 * other line and comment. Returns 0 or a negative errno with err filled.
 */
int config_set(const char *path, const char *dotted_key, const char *value, char *err,
               size_t errlen);

/* The text `parleyctl init` writes: every key with its help as a comment;
 * `values` holds "section.key=value" strings for the keys set explicitly,
 * NULL-terminated. */
int config_template(const char *const *values, struct strbuf *out);

/* Describes the allowed values of a key ("an integer from 1 to 65535",
 * "one of: 1.2, 1.3"), for error messages and docs. */
void config_describe_allowed(const struct config_key *key, struct strbuf *out);

#endif
