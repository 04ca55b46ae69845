/*
 * The user agents of the proxy tests, for cmocka programs: fixture set-up
 * per test, checks on what the proxy sent (each fails the test and dumps
 * every message when it does not hold), and alice, bob and carol making,
 * answering and ending calls through the fixture (fixture.h).
 */
#ifndef PARLEY_TEST_PROXY_AGENTS_H
#define PARLEY_TEST_PROXY_AGENTS_H

#include <stddef.h>
#include <stdint.h>

#include "fixture.h"

/* cmocka set-up and tear-down: a fixture per test (teardown fails the test
 * when the capture lost messages; FX_DUMP=1 prints them all), and digest
 * set-up and quiet logs per group. */
int setup(void **state);
int teardown(void **state);
int group_setup(void **state);
int group_teardown(void **state);
/* Prints every message the proxy sent. */
void dump(const struct fx *f);

/* --- reading what was sent ------------------------------------------------- */

void assert_status(const struct fx *f, int i, int status);
void assert_request(const struct fx *f, int i, const char *method);
/* The last message on conn, which must be a response of this status. */
int last_status(const struct fx *f, uint64_t conn, int status);
/* The last message on conn, which must be a request of this method. */
int last_request(const struct fx *f, uint64_t conn, const char *method);
void assert_header(const struct fx *f, int i, const char *name, const char *want);
void assert_header_has(const struct fx *f, int i, const char *name, const char *part);
void assert_no_header(const struct fx *f, int i, const char *name);
/* How many responses on conn since index `from` have this status (0: any
 * final, 200..699). */
size_t count_status(const struct fx *f, uint64_t conn, size_t from, int status);
/* How many requests of method on conn since index `from`. */
size_t count_requests(const struct fx *f, uint64_t conn, size_t from, const char *method);
/* The body of message i ("" when none). */
const char *body_of(const struct fx *f, int i);

/* --- user agents -------------------------------------------------------- */

/* A call as its caller sees it. */
struct call {
    uint64_t conn; /* the caller's connection */
    const char *caller, *callee;
    char call_id[64];
    unsigned cseq;     /* of the authenticated INVITE */
    char branch[64];   /* its Via branch */
    char to_tag[128];  /* the answerer's tag, once a response carried one */
    char contact[256]; /* the answerer's Contact URI */
    size_t mark;       /* index of the first message after the 407 */
};

/* A device of user on a new connection, registered. */
uint64_t device(struct fx *f, const char *user);
/* caller's INVITE to callee, through the 407, with an offer or none. */
void call_start(struct fx *f, struct call *c, uint64_t conn, const char *caller, const char *callee,
                const char *sdp, const char *headers);
/* The caller learns the answerer's tag and Contact from response i. */
void call_note_answer(const struct fx *f, struct call *c, int i);
/* A request of the caller's inside the dialog, sent on conn (the caller's
 * own, or someone else's pretending). */
void call_caller_request(struct fx *f, const struct call *c, uint64_t conn, const char *method,
                         unsigned cseq, const char *to_tag, const char *sdp);
/* The ACK of the 2xx to the INVITE. */
void call_ack(struct fx *f, const struct call *c, unsigned cseq, const char *sdp);
/* The caller's CANCEL of its INVITE (same branch and CSeq number). */
void call_cancel(struct fx *f, const struct call *c);
/* The INVITE the proxy forked to dev (the last message there). */
int forked(const struct fx *f, uint64_t dev);
void respond(struct fx *f, uint64_t dev, int i, int status, const char *tag, const char *sdp);
/* alice on a calls bob on b with an SRTP offer; bob rings and answers with
 * an SRTP answer; alice ACKs. */
void answered_call(struct fx *f, struct call *c, uint64_t a, uint64_t b);
/* The one call record; fails unless there is exactly one. */
const struct fx_record *only_record(const struct fx *f);
/* The state of the newest call in progress ("" when none), and how many. */
size_t live_calls(const struct fx *f, char state[32]);

#endif
