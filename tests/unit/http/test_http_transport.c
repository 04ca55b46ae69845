/*
 * http/transport over a real conn: a socketpair adopted by a conn_host, its
 * events on a mailbox that this test drains as the core would, the other
 * end written and read as a client.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/mbox.h"
#include "core/strbuf.h"
#include "http/response.h"
#include "http/transport.h"
#include "net/conn.h"

#define CONN_ID 7

struct fx {
    struct event_base *base;
    struct conn_host *host;
    struct mbox *mb;
    struct http_transport tp;
    int client;
    struct http_tp_event *reqs[16]; /* requests the "core" holds */
    int nreq;                       /* ever received */
    int first;                      /* the oldest not yet answered */
    int opens, closes;
    struct strbuf got; /* what the client read */
    bool eof;
};

static void on_event(struct mbox_msg *m, void *arg)
{
    struct fx *fx = arg;
    struct http_tp_event *ev = (struct http_tp_event *)m;
    if (m->type == HTTP_TP_REQUEST) {
        assert_true(fx->nreq < 16);
        assert_int_equal(ev->conn, CONN_ID);
        fx->reqs[fx->nreq++] = ev;
        return;
    }
    if (m->type == HTTP_TP_OPEN) {
        assert_non_null(ev->info);
        fx->opens++;
    } else if (m->type == HTTP_TP_CLOSE) {
        fx->closes++;
    }
    http_tp_event_free(ev);
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    fx->base = event_base_new();
    fx->host = conn_host_new(fx->base);
    fx->mb = mbox_new(fx->base, on_event, fx);
    http_transport_init(&fx->tp, fx->mb);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    fx->client = sv[1];
    struct netaddr peer;
    assert_int_equal(netaddr_parse_ip("192.0.2.1", 40000, &peer), 0);
    struct conn_params p = {
        .proto = &http_transport_protocol,
        .proto_arg = &fx->tp,
        .listener = 0,
        .read_limit = 65536,
    };
    *state = fx;
    return conn_accept(fx->host, CONN_ID, sv[0], &peer, &p) ? 0 : -1;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    for (int i = fx->first; i < fx->nreq; i++)
        http_tp_event_free(fx->reqs[i]);
    conn_host_free(fx->host);
    mbox_free(fx->mb);
    event_base_free(fx->base);
    close(fx->client);
    strbuf_free(&fx->got);
    assert_int_equal(atomic_load(&fx->tp.inflight), 0);
    free(fx);
    return 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void client_read(struct fx *fx)
{
    char buf[4096];
    for (;;) {
        ssize_t n = read(fx->client, buf, sizeof(buf));
        if (n > 0) {
            strbuf_append(&fx->got, buf, (size_t)n);
            continue;
        }
        if (n == 0)
            fx->eof = true;
        return;
    }
}

/* Runs both sides for ms, or until done says so. */
static void pump(struct fx *fx, unsigned ms, bool (*done)(struct fx *))
{
    uint64_t end = now_ms() + ms;
    do {
        event_base_loop(fx->base, EVLOOP_NONBLOCK);
        client_read(fx);
        if (done && done(fx))
            return;
        usleep(1000);
    } while (now_ms() < end);
}

static bool got_eof(struct fx *fx)
{
    return fx->eof;
}

static void send_str(struct fx *fx, const char *s)
{
    size_t len = strlen(s);
    assert_int_equal(write(fx->client, s, len), (ssize_t)len);
}

/* The "core" answers its oldest request, then frees the event. */
static void answer(struct fx *fx, const char *body)
{
    assert_true(fx->first < fx->nreq);
    struct http_tp_event *ev = fx->reqs[fx->first++];
    struct conn *c = conn_host_find(fx->host, ev->conn);
    assert_non_null(c);
    struct strbuf out = STRBUF_INIT;
    http_response_begin(&out, 200, NULL);
    http_response_end(&out, body, strlen(body), false, !ev->req->keep_alive);
    assert_int_equal(conn_write(c, out.p, out.len), 0);
    strbuf_free(&out);
    http_tp_event_free(ev);
}

static void test_request_answered(void **state)
{
    struct fx *fx = *state;
    send_str(fx, "GET /hello?x HTTP/1.1\r\nHost: a\r\n\r\n");
    pump(fx, 200, NULL);
    assert_int_equal(fx->opens, 1);
    assert_int_equal(fx->nreq, 1);
    assert_string_equal(fx->reqs[0]->req->path, "/hello");
    assert_non_null(fx->reqs[0]->flow);
    answer(fx, "hi");
    pump(fx, 50, NULL);
    assert_memory_equal(fx->got.p, "HTTP/1.1 200 OK\r\n", 17);
    assert_int_equal(strcmp(strbuf_cstr(&fx->got) + fx->got.len - 2, "hi"), 0);
    assert_false(fx->eof);
}

static void test_malformed_answered_in_worker(void **state)
{
    struct fx *fx = *state;
    send_str(fx, "GET / HTTP/1.1\nHost: a\n\n");
    pump(fx, 1000, got_eof);
    assert_true(fx->eof);
    assert_int_equal(fx->nreq, 0); /* never posted to the core */
    const char *s = strbuf_cstr(&fx->got);
    assert_memory_equal(s, "HTTP/1.1 400 Bad Request\r\n", 26);
    assert_non_null(strstr(s, "\r\nConnection: close\r\n"));
    assert_non_null(strstr(s, "bare LF"));
    pump(fx, 20, NULL);
    assert_int_equal(fx->closes, 1);
}

static void test_413_before_the_body(void **state)
{
    struct fx *fx = *state;
    send_str(fx, "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n");
    pump(fx, 1000, got_eof);
    assert_true(fx->eof);
    assert_memory_equal(fx->got.p, "HTTP/1.1 413 ", 13);
    assert_int_equal(fx->nreq, 0);
}

static bool four(struct fx *fx)
{
    return fx->nreq >= 4;
}

static void test_inflight_bound_and_order(void **state)
{
    struct fx *fx = *state;
    struct strbuf b = STRBUF_INIT;
    for (int i = 0; i < 6; i++)
        strbuf_printf(&b, "GET /%d HTTP/1.1\r\nHost: a\r\n\r\n", i);
    send_str(fx, strbuf_cstr(&b));
    strbuf_free(&b);
    pump(fx, 1000, four);
    pump(fx, 50, NULL);
    assert_int_equal(fx->nreq, HTTP_TP_MAX_INFLIGHT_CONN); /* the rest wait */
    assert_int_equal(atomic_load(&fx->tp.inflight), 4);
    for (int i = 0; i < 4; i++) {
        char want[8];
        snprintf(want, sizeof(want), "/%d", i);
        assert_string_equal(fx->reqs[i]->req->path, want);
        answer(fx, want);
    }
    pump(fx, 200, NULL);
    assert_int_equal(fx->nreq, 6);
    assert_string_equal(fx->reqs[4]->req->path, "/4");
    assert_string_equal(fx->reqs[5]->req->path, "/5");
    answer(fx, "/4");
    answer(fx, "/5");
    pump(fx, 50, NULL);
    /* six answers, in order */
    const char *s = strbuf_cstr(&fx->got);
    for (int i = 0; i < 6; i++) {
        char want[16];
        snprintf(want, sizeof(want), "\r\n\r\n/%d", i);
        const char *at = strstr(s, want);
        assert_non_null(at);
        s = at + 1;
    }
}

static void test_error_waits_for_the_core(void **state)
{
    struct fx *fx = *state;
    send_str(fx, "GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /x%00 HTTP/1.1\r\nHost: a\r\n\r\n");
    pump(fx, 100, NULL);
    assert_int_equal(fx->nreq, 1);
    assert_int_equal(fx->got.len, 0); /* the 400 waits for the first answer */
    answer(fx, "first");
    pump(fx, 1000, got_eof);
    const char *s = strbuf_cstr(&fx->got);
    const char *ok = strstr(s, "HTTP/1.1 200 OK");
    const char *bad = strstr(s, "HTTP/1.1 400 Bad Request");
    assert_non_null(ok);
    assert_non_null(bad);
    assert_true(ok < bad);
    assert_true(fx->eof);
    assert_int_equal(fx->nreq, 1);
}

static void test_continue(void **state)
{
    struct fx *fx = *state;
    send_str(fx,
             "PUT /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    pump(fx, 200, NULL);
    assert_string_equal(strbuf_cstr(&fx->got), "HTTP/1.1 100 Continue\r\n\r\n");
    assert_int_equal(fx->nreq, 0);
    send_str(fx, "data");
    pump(fx, 200, NULL);
    assert_int_equal(fx->nreq, 1);
    assert_int_equal(fx->reqs[0]->req->body_len, 4);
    assert_memory_equal(fx->reqs[0]->req->body, "data", 4);
}

static void test_request_timeout(void **state)
{
    struct fx *fx = *state;
    atomic_store(&fx->tp.request_timeout_s, 1);
    send_str(fx, "GET / HTTP/1.1\r\nHo");
    pump(fx, 500, NULL);
    assert_false(fx->eof);
    pump(fx, 2500, got_eof);
    assert_true(fx->eof);
    assert_memory_equal(fx->got.p, "HTTP/1.1 408 Request Timeout\r\n", 30);
}

static void test_upgrade_holds_reading(void **state)
{
    struct fx *fx = *state;
    send_str(fx, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                 "GET /after HTTP/1.1\r\nHost: a\r\n\r\n");
    pump(fx, 100, NULL);
    assert_int_equal(fx->nreq, 1);
    assert_true(fx->reqs[0]->req->upgrade);
    assert_true(fx->reqs[0]->hold);
    /* the core answers as HTTP: reading goes on */
    answer(fx, "no upgrade here");
    pump(fx, 200, NULL);
    assert_int_equal(fx->nreq, 2);
    assert_string_equal(fx->reqs[1]->req->path, "/after");
    assert_false(fx->reqs[1]->hold);
    answer(fx, "x");
}

static void test_no_more_after_close(void **state)
{
    struct fx *fx = *state;
    send_str(fx, "GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                 "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
    pump(fx, 200, NULL);
    assert_int_equal(fx->nreq, 1);
    assert_false(fx->reqs[0]->req->keep_alive);
    answer(fx, "bye");
    pump(fx, 100, NULL);
    assert_int_equal(fx->nreq, 1);
}

static void test_peer_close(void **state)
{
    struct fx *fx = *state;
    send_str(fx, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    pump(fx, 100, NULL);
    assert_int_equal(fx->nreq, 1);
    shutdown(fx->client, SHUT_WR);
    pump(fx, 200, NULL);
    assert_int_equal(fx->closes, 1);
    /* the core frees its event after the connection went: the flow lives on
     * until then */
    struct http_tp_event *ev = fx->reqs[fx->first++];
    assert_null(conn_host_find(fx->host, ev->conn));
    http_tp_event_free(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_request_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_answered_in_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_413_before_the_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inflight_bound_and_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_waits_for_the_core, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_holds_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_more_after_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_close, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
