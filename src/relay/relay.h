/*
 * relay — the media relay: a TURN server (RFC 8656, STUN RFC 8489)
 * for remote users and users behind NAT.
 *
 * It serves TURN over UDP and TCP on relay.listen and over TLS on
 * relay.tls_listen, allocating relayed UDP addresses on relay.relay_address
 * from relay.port_range. Clients authenticate with the long-term
 * credential mechanism (realm = server.domain) using the time-limited
 * credentials of relay/relay_cred, which the relay verifies with the
 * secrets in STATE_DIR/relay.secrets (re-read on reload and whenever the
 * file changes, so `parleyctl relay rotate-secret` needs no reload).
 * Plain STUN Binding requests are answered without authentication.
 *
 * The relay runs on relay.workers threads of its own, each with its own
 * event loop, sockets and allocations; it never touches the SIP core. A
 * client's packets always reach the worker that owns its allocation (one
 * socket per worker and listen address, SO_REUSEPORT when there are
 * several workers: the kernel keeps a 5-tuple on one socket). The packet
 * path allocates nothing: datagrams are read in batches (recvmmsg) into
 * per-worker buffers, headers for Data indications and ChannelData are
 * written in place in front of the payload, and channels are found by
 * direct index.
 *
 * Peers are refused (403) in the special ranges (unspecified, loopback,
 * RFC 1918, 100.64/10, link-local, multicast, broadcast, ULA, IPv4-mapped
 * forms of these) and on the relay's own addresses, unless
 * relay.allowed_peers lists them. A relayed address of this relay (its own
 * address and a port of relay.port_range) is allowed, so two clients of
 * the same relay can reach each other; its listen ports never are.
 *
 * Every function below is called from the daemon's core thread; they are
 * thread-safe with respect to the relay's own threads.
 */
#ifndef PARLEY_RELAY_RELAY_H
#define PARLEY_RELAY_RELAY_H

#include <stdbool.h>

#include <jansson.h>
#include <openssl/ssl.h>

#include "core/config.h"

struct relay;

/* Binds every socket and loads (or creates) the secrets file; relay_run
 * then starts the threads (parleyd drops its privileges and confines
 * itself in between, so that the threads start confined). On failure
 * returns a negative errno with one line in err
 * ("relay.listen 127.0.0.1:3478: Address already in use").
 *
 * restricted (crypto/fips: fips_restricted(), security.fips = on or
 * approved-only) is fixed for the relay's life, as the mode is for the
 * process: challenges then offer PASSWORD-ALGORITHMS SHA-256 only, and a
 * request that uses the MD5-derived long-term key (no PASSWORD-ALGORITHM,
 * as RFC 5389 clients such as turnutils_uclient send) is refused with 400
 * and a relay.refused line. MESSAGE-INTEGRITY (HMAC-SHA1) stays allowed:
 * HMAC-SHA1 is an approved MAC. stun_crypto_init() must have run on the
 * process's library context before. */
int relay_start(const struct config *cfg, bool restricted, struct relay **out, char *err,
                size_t errlen);
/* Starts the threads of a relay relay_start made, with tls, the node's
 * context, for TURN over TLS (the relay takes its own reference; it comes
 * here and not at relay_start because the certificate is read after the
 * drop to server.user, later than the ports are bound). Returns 0 or a negative
 * errno with err filled (relay_stop cleans up either way). */
int relay_run(struct relay *r, SSL_CTX *tls, char *err, size_t errlen);

/* Applies what a reload may change (allowed peers, lifetimes, quotas,
 * bandwidth, nonce lifetime, realm), uses tls for new TLS connections and
 * re-reads the secrets. Listen addresses, the port range and the worker
 * count change only at restart (the caller says so). Returns 0, or a
 * negative errno when the secrets file cannot be read (the previous
 * secrets stay). */
int relay_reload(struct relay *r, const struct config *cfg, SSL_CTX *tls);

/* What the relay holds now, as JSON (a new reference):
 *   {"enabled": true, "workers": N, "relay_address": "...", "port_range":
 *    "...", "listen": ["udp/ADDR", "tcp/ADDR", "tls/ADDR"...],
 *    "password_algorithms": ["SHA-256", "MD5"] (what challenges offer),
 *    "secrets": {"count": N, "current_added": T},
 *    "allocations": [{"user", "username", "transport", "client",
 *      "relayed", "age_s", "expires_in_s", "permissions", "channels",
 *      "to_peer": {"bytes", "packets"}, "from_peer": {"bytes", "packets"},
 *      "dropped_packets", "worker"}...]}
 * Thread-safe; NULL r gives {"enabled": false, "allocations": []}. */
json_t *relay_status(struct relay *r);

/* What the relay carried since it started, ended allocations included,
 * for the metrics; allocations is how many there are now. Sums each
 * worker's figures under its list lock, as relay_status does (the packet
 * path never takes it). A NULL r gives zeros. */
struct relay_totals {
    uint64_t allocations;
    uint64_t to_peer_bytes, to_peer_packets;
    uint64_t from_peer_bytes, from_peer_packets;
    uint64_t dropped_packets;
};
void relay_totals(struct relay *r, struct relay_totals *out);

/* Ends every allocation (logging its counters), stops the threads and
 * frees everything. NULL is a no-op. */
void relay_stop(struct relay *r);

#endif
