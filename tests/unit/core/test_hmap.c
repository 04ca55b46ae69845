#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/hmap.h"

struct item {
    struct hmap_node node;
    int key;
};

static struct item *find(struct hmap *m, int key)
{
    uint64_t h = hash_bytes(&key, sizeof(key));
    for (struct hmap_node *n = hmap_first(m, h); n; n = hmap_next(n, h)) {
        struct item *it = container_of(n, struct item, node);
        if (it->key == key)
            return it;
    }
    return NULL;
}

static void test_insert_find_remove_grow(void **state)
{
    (void)state;
    enum { N = 5000 };
    struct hmap m;
    assert_int_equal(hmap_init(&m, 4), 0);
    struct item *items = calloc(N, sizeof(*items));
    for (int i = 0; i < N; i++) {
        items[i].key = i * 7;
        hmap_insert(&m, &items[i].node, hash_bytes(&items[i].key, sizeof(int)));
    }
    assert_int_equal(m.count, N);
    for (int i = 0; i < N; i++)
        assert_ptr_equal(find(&m, i * 7), &items[i]);
    assert_null(find(&m, 3));
    for (int i = 0; i < N; i += 2)
        hmap_remove(&m, &items[i].node);
    for (int i = 0; i < N; i++)
        assert_true((find(&m, i * 7) != NULL) == (i % 2 == 1));
    size_t seen = 0, b;
    for (struct hmap_node *n = hmap_iter_first(&m, &b); n; n = hmap_iter_next(&m, n, &b))
        seen++;
    assert_int_equal(seen, N / 2);
    hmap_destroy(&m);
    free(items);
}

static void test_hash_nocase(void **state)
{
    (void)state;
    assert_true(hash_bytes_nocase("Example.TEST", 12) == hash_bytes_nocase("example.test", 12));
    assert_true(hash_bytes("Example.TEST", 12) != hash_bytes("example.test", 12));
    assert_true(hash_bytes("", 0) == hash_bytes("", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_find_remove_grow),
        cmocka_unit_test(test_hash_nocase),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
