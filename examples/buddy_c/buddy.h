/* A buddy allocator over page frame numbers [0, nr_pages), as Linux 5.10 runs it.
 *
 * The interface a course lab would ask for; harness.c speaks the refmodel conformance
 * protocol on top of it, so the same harness works for any allocator with these calls. */
#ifndef BUDDY_H
#define BUDDY_H

/* Set up nr_pages free pages, blocks up to order max_order-1. 0 on success. */
int buddy_init(long nr_pages, int max_order);

/* The first pfn of a free block of 2^order pages, or -1 if there is none. */
long buddy_alloc(int order);

/* Free a block; NULL on success, else why the free is refused (nothing changes). */
const char *buddy_free(long pfn, int order);

/* The free list of one order, head to tail: calls fn(pfn, arg) for each block. */
void buddy_free_list(int order, void (*fn)(long pfn, void *arg), void *arg);

#endif
