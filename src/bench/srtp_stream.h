/*
 * bench/srtp_stream — parley-bench's SRTP stream mode: media through an
 * anchoring server (Parley's media engine, rtpengine), measured from the
 * outside.
 *
 *   parley-bench --scenario srtp-stream --streams-file FILE [--rate R]
 *                [--duration S] [--first-index I] [--forgery-check] [--json]
 *
 * For the streams of FILE (bench/srtp_packets.h) it protects every packet
 * ahead of time, sends each B's hello, then A's packets evenly paced
 * (--rate packets/s in all; default 50 per stream, one every 20 ms; 0 =
 * as fast as it can) in batches (sendmmsg), and counts what reaches B by
 * its RTP header, never unprotecting it: sent, received, lost, the delay
 * from the send call to the kernel's receive timestamp at B, and its own
 * CPU. When it could not keep the rate asked (late sends, a saturated
 * core) it says so (generator_limited): then the server's figure is a
 * floor, "≥ X".
 *
 * --forgery-check sends, instead of a load, a few valid packets and then
 * forged ones (a wrong tag from A's address; a wrong tag from another
 * port; a valid packet replayed from another port) and reports which the
 * server forwarded to B.
 */
#ifndef PARLEY_BENCH_SRTP_STREAM_H
#define PARLEY_BENCH_SRTP_STREAM_H

#include <stdbool.h>

/* argv asks for this mode (--scenario srtp-stream). */
bool srtp_stream_selected(int argc, char **argv);
/* The mode's main(): 0 (no loss; check passed), 1 (loss; check failed;
 * set-up failed) or 2 (usage). */
int srtp_stream_main(int argc, char **argv);

#endif
