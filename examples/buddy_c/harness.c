/* The refmodel conformance harness for a buddy allocator: JSON lines on stdin/stdout.
 *
 * Reuse it for your own allocator: implement buddy.h and build with
 *     cc -O2 -o mybuddy harness.c mybuddy.c
 * then run   refmodel conform --target buddy -- ./mybuddy
 * Protocol (docs/conformance.md): one JSON object per line; every request has an "id" that
 * the answer repeats; answers come in request order. This harness only needs to find a few
 * keys in flat objects, so it does that with strstr instead of a JSON library. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "buddy.h"

/* The value of "key" in a flat JSON object: as a number, or as a string copied to buf. */
static const char *find_key(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(line, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

static int get_long(const char *line, const char *key, long *out)
{
    const char *p = find_key(line, key);
    char *end;
    if (!p) return 0;
    *out = strtol(p, &end, 10);
    return end != p;
}

static int get_str(const char *line, const char *key, char *buf, size_t n)
{
    const char *p = find_key(line, key);
    size_t i = 0;
    if (!p || *p != '"') return 0;
    for (p++; *p && *p != '"' && i + 1 < n; p++) buf[i++] = *p;
    buf[i] = 0;
    return 1;
}

static int first;
static void print_pfn(long pfn, void *arg)
{
    (void)arg;
    printf(first ? "%ld" : ",%ld", pfn);
    first = 0;
}

int main(void)
{
    char *line = NULL, op[32];
    size_t cap = 0;
    long id, nr_pages = 0, max_order = 0;
    while (getline(&line, &cap, stdin) > 0) {
        if (!get_str(line, "op", op, sizeof op)) continue;
        if (!strcmp(op, "quit")) break;
        if (!get_long(line, "id", &id)) continue;
        if (!strcmp(op, "hello")) {
            long version = 0;
            char target[32] = "";
            get_long(line, "version", &version);
            get_str(line, "target", target, sizeof target);
            if (version != 1 || strcmp(target, "buddy")
                || !get_long(line, "nr_pages", &nr_pages)
                || !get_long(line, "max_order", &max_order)
                || buddy_init(nr_pages, (int)max_order)) {
                printf("{\"id\":%ld,\"error\":\"unsupported version, target or config\"}\n", id);
            } else {
                printf("{\"id\":%ld,\"protocol\":\"refmodel-conform\",\"version\":1,"
                       "\"target\":\"buddy\",\"implementation\":\"examples/buddy_c\","
                       "\"observations\":[\"free_lists\"],\"reset\":true}\n", id);
            }
        } else if (!strcmp(op, "reset")) {
            buddy_init(nr_pages, (int)max_order);
            printf("{\"id\":%ld,\"ok\":true}\n", id);
        } else if (!strcmp(op, "alloc_pages")) {
            long order = 0;
            get_long(line, "order", &order);
            long pfn = buddy_alloc((int)order);
            if (pfn < 0) printf("{\"id\":%ld,\"pfn\":null}\n", id);
            else printf("{\"id\":%ld,\"pfn\":%ld}\n", id, pfn);
        } else if (!strcmp(op, "free_pages")) {
            long pfn = 0, order = 0;
            get_long(line, "pfn", &pfn);
            get_long(line, "order", &order);
            const char *err = buddy_free(pfn, (int)order);
            if (err) printf("{\"id\":%ld,\"error\":\"%s\"}\n", id, err);
            else printf("{\"id\":%ld,\"ok\":true}\n", id);
        } else if (!strcmp(op, "observe")) {
            printf("{\"id\":%ld,\"free_lists\":[", id);
            for (long o = 0; o < max_order; o++) {
                printf(o ? ",[" : "[");
                first = 1;
                buddy_free_list((int)o, print_pfn, NULL);
                printf("]");
            }
            printf("]}\n");
        } else {
            printf("{\"id\":%ld,\"error\":\"unknown op\"}\n", id);
        }
        fflush(stdout);
    }
    free(line);
    return 0;
}
