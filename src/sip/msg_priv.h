/*
 * sip/msg_priv — the message's storage, shared by msg.c and msg_edit.c.
 * Private to src/sip.
 *
 * A message is one allocation: the struct, this private part, the first
 * arena chunk (header records and room for edits) and, at the very end, the
 * copy of the input (so a read past the input runs into the allocation's
 * end, where sanitizers see it). Later chunks are allocated only when edits
 * or an unusually long header list outgrow the first one.
 */
#ifndef PARLEY_SIP_MSG_PRIV_H
#define PARLEY_SIP_MSG_PRIV_H

#include <stdbool.h>
#include <stddef.h>

#include "sip/msg.h"

struct sip_arena_chunk {
    struct sip_arena_chunk *next;
    size_t cap;
    size_t used;
    bool embedded; /* part of the message's own allocation */
};

struct sip_msg_priv {
    struct sip_arena_chunk *chunks; /* newest first */
    struct sip_hdr *tail;
};

static inline struct sip_msg_priv *sip_msg_priv(const struct sip_msg *msg)
{
    return (struct sip_msg_priv *)msg->arena_;
}

/* Pointer-aligned storage from the message's arena, or NULL. */
void *sip_msg_alloc(struct sip_msg *msg, size_t n);
/* True when [p, p+n) lies in storage the message owns. */
bool sip_msg_owns(const struct sip_msg *msg, const void *p, size_t n);

/* Checks a Content-Type value (type "/" subtype *(";" param)) and sets
 * *type to "type/subtype" (copied to the arena when LWS has to go).
 * Returns 0, -EINVAL or -ENOMEM. */
int sip_msg_media_type(struct sip_msg *msg, struct strview value, struct strview *type);

/* Allocates a message with room for a copy of len input bytes; the copy
 * goes to msg->buf_. */
struct sip_msg *sip_msg_new(const char *data, size_t len);

#endif
