/* A buddy allocator that behaves exactly like Linux 5.10's (mm/page_alloc.c) for one zone
 * with one migratetype: allocations take the head of the smallest non-empty free list and
 * split it, keeping the lowest pages and putting each upper half at the head of its list
 * (__rmqueue_smallest, expand); frees merge with free buddies up to order max_order-1 and
 * put the result at the list tail if the next-order buddy is free, else at the head
 * (__free_one_page, buddy_merge_likely); boot releases memory in the largest aligned
 * blocks, ascending, each to the list tail (__free_pages_memory, FPI_TO_TAIL).
 *
 * Deliberately broken variants for the conformance kit's own tests (compile with -D...):
 *   BROKEN_NO_MERGE     never merges freed blocks with their buddies
 *   BROKEN_WRONG_BUDDY  looks for the buddy at pfn + 2^order instead of pfn ^ 2^order
 *   BROKEN_DOUBLE_FREE  silently accepts freeing a block that is not allocated
 */
#include <stdlib.h>
#include "buddy.h"

#define MAX_ORDERS 32

static long N;
static int MAXO;
static long *next_, *prev_;         /* free-list links, valid for free block heads */
static signed char *free_order;     /* order of the free block headed here, or -1 */
static signed char *alloc_order;    /* order of the live block headed here, or -1 */
static long head[MAX_ORDERS], tail[MAX_ORDERS];

static void list_add_head(long pfn, int o)
{
    prev_[pfn] = -1;
    next_[pfn] = head[o];
    if (head[o] >= 0) prev_[head[o]] = pfn; else tail[o] = pfn;
    head[o] = pfn;
    free_order[pfn] = (signed char)o;
}

static void list_add_tail(long pfn, int o)
{
    next_[pfn] = -1;
    prev_[pfn] = tail[o];
    if (tail[o] >= 0) next_[tail[o]] = pfn; else head[o] = pfn;
    tail[o] = pfn;
    free_order[pfn] = (signed char)o;
}

static void list_del(long pfn, int o)
{
    if (prev_[pfn] >= 0) next_[prev_[pfn]] = next_[pfn]; else head[o] = next_[pfn];
    if (next_[pfn] >= 0) prev_[next_[pfn]] = prev_[pfn]; else tail[o] = prev_[pfn];
    free_order[pfn] = -1;
}

static long find_buddy(long pfn, int order)
{
#ifdef BROKEN_WRONG_BUDDY
    return pfn + (1L << order);
#else
    return pfn ^ (1L << order);
#endif
}

/* buddy_merge_likely: is the buddy of the merged block free at the next order? */
static int merge_likely(long pfn, long buddy, int order)
{
    if (order >= MAXO - 2) return 0;
    long higher_buddy = (buddy & pfn) ^ (1L << (order + 1));
    return higher_buddy < N && free_order[higher_buddy] == order + 1;
}

static void free_one(long pfn, int order, int to_tail)
{
    long buddy = pfn;
    while (order < MAXO - 1) {
        buddy = find_buddy(pfn, order);
        if (buddy >= N || free_order[buddy] != order) break;
#ifdef BROKEN_NO_MERGE
        break;
#endif
        list_del(buddy, order);
        pfn &= buddy;
        order++;
    }
    if (to_tail || merge_likely(pfn, buddy, order)) list_add_tail(pfn, order);
    else list_add_head(pfn, order);
}

int buddy_init(long nr_pages, int max_order)
{
    if (nr_pages < 1 || max_order < 1 || max_order > MAX_ORDERS - 1) return -1;
    free(next_); free(prev_); free(free_order); free(alloc_order);
    N = nr_pages;
    MAXO = max_order;
    next_ = malloc(sizeof(long) * N);
    prev_ = malloc(sizeof(long) * N);
    free_order = malloc(N);
    alloc_order = malloc(N);
    if (!next_ || !prev_ || !free_order || !alloc_order) return -1;
    for (long i = 0; i < N; i++) free_order[i] = alloc_order[i] = -1;
    for (int o = 0; o < MAX_ORDERS; o++) head[o] = tail[o] = -1;
    for (long start = 0; start < N;) {      /* __free_pages_memory */
        int o = MAXO - 1;
        if (start) {
            int low = __builtin_ctzl((unsigned long)start);
            if (low < o) o = low;
        }
        while (start + (1L << o) > N) o--;
        free_one(start, o, 1);
        start += 1L << o;
    }
    return 0;
}

long buddy_alloc(int order)
{
    if (order < 0 || order >= MAXO) return -1;
    for (int o = order; o < MAXO; o++) {
        long pfn = head[o];
        if (pfn < 0) continue;
        list_del(pfn, o);
        while (o > order) {                  /* expand */
            o--;
            list_add_head(pfn + (1L << o), o);
        }
        alloc_order[pfn] = (signed char)order;
        return pfn;
    }
    return -1;
}

const char *buddy_free(long pfn, int order)
{
    if (pfn < 0 || pfn >= N) return "pfn out of range";
    if (alloc_order[pfn] != order || order < 0) {
        if (order < 0 || order >= MAXO) return "order out of range";
        if (pfn + (1L << order) > N) return "block out of range";
        if (pfn & ((1L << order) - 1)) return "pfn not aligned to the order";
#ifdef BROKEN_DOUBLE_FREE
        if (alloc_order[pfn] < 0) return NULL;   /* "already free: nothing to do" */
#endif
        if (alloc_order[pfn] < 0) return "not an allocated block (double free?)";
        return "freed with the wrong order";
    }
    alloc_order[pfn] = -1;
    free_one(pfn, order, 0);
    return NULL;
}

void buddy_free_list(int order, void (*fn)(long pfn, void *arg), void *arg)
{
    if (order < 0 || order >= MAXO) return;
    /* bounded, so that even a corrupted (cyclic) list prints a finite line */
    long n = 0;
    for (long p = head[order]; p >= 0 && n < N; p = next_[p], n++) fn(p, arg);
}
