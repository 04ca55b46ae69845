/*
 * sip/frame — finds message boundaries in a SIP byte stream (RFC 3261
 * §18.3): the head ends at the first empty line, the body is exactly
 * Content-Length bytes. Keep-alive CRLFs between messages are reported so
 * the transport can answer a double-CRLF ping with a single CRLF
 * (RFC 5626 §3.5.1).
 */
#ifndef PARLEY_SIP_FRAME_H
#define PARLEY_SIP_FRAME_H

#include <stddef.h>

enum sip_frame_result {
    SIP_FRAME_NEED_MORE = 0, /* wait for more bytes */
    SIP_FRAME_MESSAGE,       /* a whole message of `len` bytes starts at the buffer's start */
    SIP_FRAME_KEEPALIVE,     /* `len` bytes of CR/LF to consume; `ping` says whether to pong */
    SIP_FRAME_TOO_LARGE,     /* past max_size: answer 513 and close */
    SIP_FRAME_BAD,           /* unusable framing (bad Content-Length): answer 400 and close */
};

struct sip_frame {
    size_t len;
    int ping;           /* 1 for a "\r\n\r\n" keep-alive */
    const char *reason; /* for SIP_FRAME_BAD / TOO_LARGE */
};

/* Inspects the first `avail` bytes of a stream. max_size bounds head plus
 * body; no end of the head within max_size bytes is TOO_LARGE as well. A
 * stream connection without Content-Length is BAD (RFC 3261 §18.3 makes it
 * mandatory on streams), and so is a negative, non-numeric or conflicting
 * one. CR/LFs that may still become a "\r\n\r\n" ping are NEED_MORE. Reads
 * nothing past avail; a call is linear in the head it scans, so call it
 * when bytes arrive, not per byte. */
enum sip_frame_result sip_frame_scan(const char *data, size_t avail, size_t max_size,
                                     struct sip_frame *out);

#endif
