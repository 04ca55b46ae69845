/*
 * tls/stream — SSL objects under libevent bufferevents (see stream.h).
 */
#include "tls/stream.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>

#include "tls/peer_priv.h"

static struct bufferevent *stream_wrap(struct event_base *base, int fd, SSL *ssl, bool accepting,
                                       int opts)
{
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, fd, ssl, accepting ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING, opts);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    /* A peer that just closes the socket without close_notify is normal
     * for the protocols carried (SIP frames by Content-Length, TURN by its
     * own lengths, HTTP by Content-Length or chunks). */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

struct bufferevent *tls_stream_accept(struct event_base *base, int fd, SSL_CTX *ctx,
                                      enum tls_client_certs policy, int bev_options)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    tls_session_client_certs(ssl, policy);
    return stream_wrap(base, fd, ssl, true, bev_options);
}

struct bufferevent *tls_stream_connect(struct event_base *base, int fd, SSL_CTX *ctx,
                                       const char *sni, const char *verify_host, int bev_options)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    if (sni)
        SSL_set_tlsext_host_name(ssl, sni);
    if (verify_host) {
        /* the peer's certificate must name the host we meant to reach; if
         * that cannot be arranged, the connection is not made */
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(ssl, verify_host) != 1) {
            SSL_free(ssl);
            ERR_clear_error();
            return NULL;
        }
    }
    return stream_wrap(base, fd, ssl, false, bev_options);
}

bool tls_stream_is_tls(struct bufferevent *bev)
{
    return bev && bufferevent_openssl_get_ssl(bev) != NULL;
}

void tls_stream_close_notify(struct bufferevent *bev)
{
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    if (ssl)
        SSL_shutdown(ssl);
}

bool tls_stream_failure(struct bufferevent *bev, char *buf, size_t cap, const char **subject)
{
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    *subject = "";
    if (!ssl)
        return false;
    unsigned long errs[8], e;
    size_t n = 0;
    while ((e = bufferevent_get_openssl_error(bev)) != 0)
        if (n < sizeof(errs) / sizeof(errs[0]))
            errs[n++] = e;
    *subject = tls_session_failed_subject(ssl);
    if (tls_session_failure(ssl, errs, n, buf, cap))
        return true;
    const char *reason = NULL;
    for (size_t i = 0; i < n; i++)
        if (ERR_reason_error_string(errs[i]))
            reason = ERR_reason_error_string(errs[i]);
    if (!reason)
        return false;
    snprintf(buf, cap, "%s", reason);
    return true;
}

int tls_stream_facts(struct bufferevent *bev, struct tls_stream_facts *out)
{
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    if (!ssl)
        return -EINVAL;
    snprintf(out->version, sizeof(out->version), "%s", SSL_get_version(ssl));
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    snprintf(out->cipher, sizeof(out->cipher), "%s", cipher ? SSL_CIPHER_get_name(cipher) : "");
    out->resumed = SSL_session_reused(ssl) == 1;
    X509 *cert = SSL_get1_peer_certificate(ssl);
    out->peer = cert ? tls_peer_new(cert, SSL_get_peer_cert_chain(ssl)) : NULL;
    X509_free(cert);
    out->peer_verified = out->peer != NULL && SSL_get_verify_result(ssl) == X509_V_OK;
    out->peer_crl_missing = tls_session_crl_missing(ssl);
    return 0;
}
