/*
 * mbox — a mailbox between threads, woken by an eventfd.
 *
 * Any thread posts messages; the thread that owns the mailbox's event base
 * receives them in order, in batches, from its event loop. Senders allocate
 * a struct that embeds struct mbox_msg first; ownership passes to the
 * receiver's handler with the post.
 */
#ifndef PARLEY_CORE_MBOX_H
#define PARLEY_CORE_MBOX_H

struct event_base;

struct mbox_msg {
    struct mbox_msg *next;
    int type;
};

typedef void (*mbox_handler)(struct mbox_msg *msg, void *arg);

struct mbox;

/* Returns NULL with errno set on failure. */
struct mbox *mbox_new(struct event_base *base, mbox_handler handler, void *arg);
/* Thread-safe. Never fails: the message is linked, the wake-up is a write
 * to an eventfd that cannot overflow in practice. */
void mbox_post(struct mbox *mb, struct mbox_msg *msg);
/* Delivers whatever is queued now (used at shutdown), on the calling thread. */
void mbox_drain(struct mbox *mb);
/* Frees the mailbox; messages still queued go to the handler first. */
void mbox_free(struct mbox *mb);

#endif
