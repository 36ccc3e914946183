/* overlay_priv.h - what the overlay's file part (overlay.c) and its request engine (overlay_io.c) share. */
#ifndef MICROVM_IO_OVERLAY_PRIV_H
#define MICROVM_IO_OVERLAY_PRIV_H

#include "io/overlay.h"

#define PAGE 4096u

struct ovl_op;

struct overlay {
	int fd;
	struct io_loop *loop;
	int base_file, ovl_file;
	struct ovl_header h;            /* host byte order */
	uint64_t clusters;
	uint8_t *bitmap;                /* h.bitmap_len bytes: what the disk has (I/O thread) */
	uint8_t *busy;                  /* a write is allocating the cluster (I/O thread) */
	uint8_t *dirty;                 /* per bitmap page: changed since the last flush began */
	uint64_t pages;                 /* bitmap pages */
	uint64_t allocated;
	struct ovl_op *waiting, *waiting_tail;  /* writes waiting for a busy cluster */
	struct ovl_op *flush_q, *flush_q_tail;  /* flushes waiting for the one in progress */
	bool flushing;
	bool test_bitmap_first;         /* TEST ONLY (OVL_TEST_BITMAP_FIRST_ENV): a FLUSH in the wrong order */
};

/* One request on the virtual disk, in phases; its sub-requests go to the loop. */
struct ovl_op {
	struct overlay *o;
	struct io_request *req;
	struct ovl_op *next;
	int phase;
	int pending;                    /* sub-requests in flight */
	int64_t err;                    /* the first error, or 0 */
	bool allocating;                /* owns the busy bits of the unallocated clusters in [first, last] */
	uint64_t first, last;           /* clusters touched */
	uint64_t total;                 /* READ/WRITE bytes */
	/* COW fills: head part [0], tail part [1] */
	bool fill[2];
	uint64_t fill_off[2], fill_len[2];
	uint8_t *bounce;                /* 2 clusters for fills; flush: copies of the dirty bitmap pages */
	uint64_t *flush_pages;          /* flush: page index of each copy */
	uint64_t nflush;
	int nsub;
	struct io_request *sub;         /* nsub entries */
	struct iovec *iov;              /* slices of req->iov for the sub-requests */
	struct iovec fill_iov[2];
};

static inline bool ovl_bit(const uint8_t *m, uint64_t c)
{
	return m[c / 8] >> (c % 8) & 1;
}

#endif
