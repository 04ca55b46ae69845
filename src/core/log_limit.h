/*
 * log_limit — bounded logging of events a remote party can trigger at will
 * (failed authentications, refused handshakes, throttled guesses).
 *
 * A caller names what it is about to log with a 64-bit key (say, a hash of
 * the event, the source and the reason) and asks whether a line may be
 * written now: at most one line per key per second, and at most
 * `per_second` lines in all. A line that is allowed reports how many of its
 * key's lines were held back since its last one (write it as a
 * `suppressed=N` field); lines held back by the overall cap are summed and
 * reported once the next second starts, as one
 * `event=log.suppressed for=NAME count=N` line.
 *
 * Keys share a fixed table of slots: a key that collides with another in
 * its slot may get a line sooner than once a second, never more than the
 * overall cap. One log_limit belongs to one thread.
 */
#ifndef PARLEY_CORE_LOG_LIMIT_H
#define PARLEY_CORE_LOG_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct log_limit;

/* name: what the summary line says it is for ("auth.throttled");
 * slots: rounded up to a power of two (at least 64); per_second >= 1.
 * Returns NULL when out of memory. */
struct log_limit *log_limit_new(const char *name, size_t slots, unsigned per_second);
void log_limit_free(struct log_limit *ll);

/* May a line for key be written at now_ms (monotonic)? When true,
 * *suppressed gets the key's lines held back since its last line. */
bool log_limit_allow(struct log_limit *ll, uint64_t now_ms, uint64_t key, uint64_t *suppressed);

/* Lines held back in all since the limiter was made. */
uint64_t log_limit_suppressed_total(const struct log_limit *ll);

#endif
