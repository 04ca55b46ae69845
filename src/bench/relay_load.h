/*
 * bench/relay_load — parley-bench's TURN relay load mode: ChannelData
 * through a TURN server's UDP listener (Parley's relay, coturn), measured
 * from the outside, at rates coturn's turnutils_uclient cannot offer.
 *
 *   parley-bench --scenario relay --server IP:PORT
 *                (--username U --password P | --secret S --user NAME)
 *                [--allocations N] [--rate R] [--duration S] [--size N]
 *                [--peer-mode pairs|loop] [--algorithm MD5|SHA-256] [--json]
 *
 * Set-up: one UDP socket per allocation; Allocate (the 401 challenge, then
 * the long-term credential with MESSAGE-INTEGRITY and FINGERPRINT) and a
 * ChannelBind toward the allocation's target, all allocations in parallel
 * with retransmissions. The target is, in pairs mode (the default, as
 * turnutils_uclient -y), the relayed address of the other allocation of
 * its pair, so every packet crosses the relay twice; in loop mode a UDP
 * socket of the generator's own, which only counts, so every packet
 * crosses it once.
 *
 * Load: ChannelData whose payload carries the sending allocation, a
 * sequence number and the send time, paced by a timer (or as fast as
 * possible) in sendmmsg batches and spread evenly over the allocations;
 * received with recvmmsg. Counted: sent, received, lost after a drain,
 * duplicated, reordered, the latency from the send call to the kernel's
 * receive timestamp, and the generator's own CPU ("generator-limited" at
 * 95 % of a core or when it could not keep the rate). A "relayed packet"
 * is one the generator sent and got back at its target: in pairs mode
 * that is two relay traversals (the server's to-peer and from-peer
 * counters each count it once), in loop mode one (to-peer only).
 * Allocations are deleted (Refresh, lifetime 0) at the end.
 */
#ifndef PARLEY_BENCH_RELAY_LOAD_H
#define PARLEY_BENCH_RELAY_LOAD_H

#include <stdbool.h>

/* argv asks for this mode (--scenario relay). */
bool relay_load_selected(int argc, char **argv);
/* The mode's main(): 0 (nothing lost), 1 (loss, or the set-up failed:
 * refused credentials, no answer) or 2 (usage). */
int relay_load_main(int argc, char **argv);

#endif
