/*
 * The user agents of the proxy tests (agents.h): what alice, bob and carol
 * do, and the checks on what the proxy sent them. Built into every test
 * program of this folder that drives the fixture with cmocka.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agents.h"
#include "core/log.h"
#include "crypto/digest.h"

/* --- the fixture per test --------------------------------------------------- */

int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (!f || fx_init(f) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

void dump(const struct fx *f)
{
    for (size_t i = 0; i < f->nsent; i++)
        print_message("--- #%zu on conn %llu\n%s", i, (unsigned long long)f->sent[i].conn,
                      f->sent[i].data);
}

/* proxy_free must leave nothing behind whatever state a test ends in; the
 * ASan build's LeakSanitizer checks that. */
int teardown(void **state)
{
    struct fx *f = *state;
    if (getenv("FX_DUMP"))
        dump(f); /* FX_DUMP=1: every message each test's proxy sent */
    size_t dropped = f->dropped;
    fx_cleanup(f);
    free(f);
    if (dropped)
        fail_msg("the capture lost %zu message(s)", dropped);
    return 0;
}

int group_setup(void **state)
{
    (void)state;
    log_set_level(LOG_LEVEL_WARN); /* the call log lines are not the subject */
    return digest_init(NULL, NULL);
}

int group_teardown(void **state)
{
    (void)state;
    digest_cleanup();
    return 0;
}

/* --- reading what was sent ------------------------------------------------- */

void assert_status(const struct fx *f, int i, int status)
{
    if (fx_sent_status(f, i) != status) {
        dump(f);
        fail_msg("message #%d: status %d, want %d", i, fx_sent_status(f, i), status);
    }
}

void assert_request(const struct fx *f, int i, const char *method)
{
    if (!fx_sent_is(f, i, method)) {
        dump(f);
        fail_msg("message #%d is not %s", i, method);
    }
}

/* The last message on conn, which must be a response of this status. */
int last_status(const struct fx *f, uint64_t conn, int status)
{
    int i = fx_last_on(f, conn);
    assert_status(f, i, status);
    return i;
}

/* The last message on conn, which must be a request of this method. */
int last_request(const struct fx *f, uint64_t conn, const char *method)
{
    int i = fx_last_on(f, conn);
    assert_request(f, i, method);
    return i;
}

void assert_header(const struct fx *f, int i, const char *name, const char *want)
{
    char v[1024];
    if (fx_sent_header(f, i, name, v, sizeof(v)) != 0) {
        dump(f);
        fail_msg("message #%d has no %s", i, name);
    }
    if (strcmp(v, want) != 0) {
        dump(f);
        fail_msg("message #%d: %s is '%s', want '%s'", i, name, v, want);
    }
}

void assert_header_has(const struct fx *f, int i, const char *name, const char *part)
{
    char v[1024];
    if (fx_sent_header(f, i, name, v, sizeof(v)) != 0 || !strstr(v, part)) {
        dump(f);
        fail_msg("message #%d: %s is '%s', want it to hold '%s'", i, name, v, part);
    }
}

void assert_no_header(const struct fx *f, int i, const char *name)
{
    if (fx_sent_header_count(f, i, name) != 0) {
        dump(f);
        fail_msg("message #%d carries %s", i, name);
    }
}

/* How many responses on conn since index `from` have this status (0: any
 * final, 200..699). */
size_t count_status(const struct fx *f, uint64_t conn, size_t from, int status)
{
    size_t n = 0;
    for (size_t i = from; i < f->nsent; i++) {
        int s = fx_sent_status(f, (int)i);
        if (f->sent[i].conn == conn && s && (status ? s == status : s >= 200))
            n++;
    }
    return n;
}

/* How many requests of method on conn since index `from`. */
size_t count_requests(const struct fx *f, uint64_t conn, size_t from, const char *method)
{
    size_t n = 0;
    for (size_t i = from; i < f->nsent; i++)
        if (f->sent[i].conn == conn && fx_sent_is(f, (int)i, method))
            n++;
    return n;
}

/* The body of message i ("" when none). */
const char *body_of(const struct fx *f, int i)
{
    const char *b = strstr(f->sent[i].data, "\r\n\r\n");
    return b ? b + 4 : "";
}

/* --- user agents -------------------------------------------------------- */

/* A device of user on a new connection, registered. */
uint64_t device(struct fx *f, const char *user)
{
    uint64_t conn = fx_open(f);
    assert_true(conn != 0);
    assert_int_equal(fx_register(f, conn, user, fx_password(user)), 200);
    return conn;
}

/* caller's INVITE to callee, through the 407, with an offer or none. */
void call_start(struct fx *f, struct call *c, uint64_t conn, const char *caller, const char *callee,
                const char *sdp, const char *headers)
{
    static unsigned n;
    memset(c, 0, sizeof(*c));
    c->conn = conn;
    c->caller = caller;
    c->callee = callee;
    snprintf(c->call_id, sizeof(c->call_id), "call-%u@192.0.2.1", ++n);
    struct fx_req r = {
        .method = "INVITE",
        .from = caller,
        .to = callee,
        .call_id = c->call_id,
        .cseq = 1,
        .contact = caller,
        .headers = headers,
        .sdp = sdp,
    };
    c->mark = f->nsent;
    assert_int_equal(fx_invite(f, conn, &r, fx_password(caller)), 0);
    c->cseq = 2;
    snprintf(c->branch, sizeof(c->branch), "%s", f->last_branch);
    /* what alice hears of the call comes after the challenge */
    for (size_t i = c->mark; i < f->nsent; i++)
        if (f->sent[i].conn == conn && fx_sent_status(f, (int)i) == 407)
            c->mark = i + 1;
}

/* The caller learns the answerer's tag and Contact from response i. */
void call_note_answer(const struct fx *f, struct call *c, int i)
{
    char v[256];
    assert_int_equal(fx_sent_header(f, i, "To", v, sizeof(v)), 0);
    fx_tag_of(v, c->to_tag, sizeof(c->to_tag));
    assert_true(c->to_tag[0] != '\0');
    assert_int_equal(fx_sent_header(f, i, "Contact", v, sizeof(v)), 0);
    /* "<uri>" */
    assert_true(v[0] == '<');
    snprintf(c->contact, sizeof(c->contact), "%.*s", (int)strcspn(v + 1, ">"), v + 1);
}

/* A request of the caller's inside the dialog, sent on conn (the caller's
 * own, or someone else's pretending). */
void call_caller_request(struct fx *f, const struct call *c, uint64_t conn, const char *method,
                         unsigned cseq, const char *to_tag, const char *sdp)
{
    struct fx_req r = {
        .method = method,
        .ruri = c->contact,
        .from = c->caller,
        .to = c->callee,
        .to_tag = to_tag ? to_tag : c->to_tag,
        .call_id = c->call_id,
        .cseq = cseq,
        .route = FX_RECORD_ROUTE,
        .contact = strcmp(method, "INVITE") == 0 ? c->caller : NULL,
        .sdp = sdp,
    };
    assert_int_equal(fx_request(f, conn, &r), 0);
}

/* The ACK of the 2xx to the INVITE. */
void call_ack(struct fx *f, const struct call *c, unsigned cseq, const char *sdp)
{
    call_caller_request(f, c, c->conn, "ACK", cseq, NULL, sdp);
}

/* The caller's CANCEL of its INVITE (same branch and CSeq number). */
void call_cancel(struct fx *f, const struct call *c)
{
    struct fx_req r = {
        .method = "CANCEL",
        .from = c->caller,
        .to = c->callee,
        .call_id = c->call_id,
        .cseq = c->cseq,
        .branch = c->branch,
    };
    assert_int_equal(fx_request(f, c->conn, &r), 0);
}

/* The INVITE the proxy forked to dev (the last message there). */
int forked(const struct fx *f, uint64_t dev)
{
    return last_request(f, dev, "INVITE");
}

void respond(struct fx *f, uint64_t dev, int i, int status, const char *tag, const char *sdp)
{
    assert_int_equal(fx_respond(f, dev, i, status, tag, NULL, sdp), 0);
}

/* alice on a calls bob on b with an SRTP offer; bob rings and answers with
 * an SRTP answer; alice ACKs. */
void answered_call(struct fx *f, struct call *c, uint64_t a, uint64_t b)
{
    call_start(f, c, a, "alice", "bob", FX_SDP_SRTP_OFFER, NULL);
    int inv = forked(f, b);
    respond(f, b, inv, 180, "bt1", NULL);
    respond(f, b, inv, 200, "bt1", FX_SDP_SRTP_ANSWER);
    call_note_answer(f, c, last_status(f, a, 200));
    call_ack(f, c, c->cseq, NULL);
    assert_request(f, fx_last_on(f, b), "ACK");
}

const struct fx_record *only_record(const struct fx *f)
{
    if (f->nrecords != 1)
        fail_msg("%zu call records, want 1", f->nrecords);
    return &f->records[0];
}

struct first_call {
    char state[32];
    size_t n;
};

static bool note_call(const struct proxy_call_info *info, void *arg)
{
    struct first_call *fc = arg;
    if (fc->n++ == 0)
        snprintf(fc->state, sizeof(fc->state), "%s", info->state);
    return true;
}

/* The state of the newest call in progress ("" when none), and how many. */
size_t live_calls(const struct fx *f, char state[32])
{
    struct first_call fc = {.n = 0};
    proxy_foreach_call(f->proxy, note_call, &fc);
    snprintf(state, 32, "%s", fc.state);
    return fc.n;
}
