/* overlay_io.c - the overlay's request engine on the I/O thread: read runs, copy-on-write, flush ordering (see overlay.h). */
#include "io/overlay.h"
#include "io/overlay_priv.h"
#include "base/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void advance(struct ovl_op *op);
static void plan_write(struct ovl_op *op);
static void flush_start(struct overlay *o, struct ovl_op *op);
static void flush_bitmap(struct ovl_op *op);

static void set_bit(uint8_t *m, uint64_t c)
{
	m[c / 8] |= (uint8_t)(1u << (c % 8));
}

static void clear_bit(uint8_t *m, uint64_t c)
{
	m[c / 8] &= (uint8_t)~(1u << (c % 8));
}

static void op_free(struct ovl_op *op)
{
	free(op->bounce);
	free(op->flush_pages);
	free(op->sub);
	free(op->iov);
	free(op);
}

/* Copy [from, from + len) of the bytes described by src into dst; returns the entries used. */
static int iov_slice(const struct iovec *src, int cnt, uint64_t from, uint64_t len, struct iovec *dst)
{
	int n = 0;

	for (int i = 0; i < cnt && len; i++) {
		if (from >= src[i].iov_len) {
			from -= src[i].iov_len;
			continue;
		}
		uint64_t take = src[i].iov_len - from;
		if (take > len)
			take = len;
		dst[n++] = (struct iovec){ .iov_base = (uint8_t *)src[i].iov_base + from, .iov_len = take };
		len -= take;
		from = 0;
	}
	return n;
}

static void sub_done(struct io_request *s, int64_t res)
{
	struct ovl_op *op = s->priv;

	/* A file system without hole punching: zero the range in place instead. */
	if (res == -EOPNOTSUPP && s->op == IO_OP_DISCARD) {
		s->op = IO_OP_WRITE_ZEROES;
		if (io_loop_submit(op->o->loop, s) == 0)
			return;
	}
	if (res < 0 && !op->err)
		op->err = res;
	if (--op->pending == 0)
		advance(op);
}

/* Queue one sub-request of op's current phase (op->pending holds a guard while a phase submits). */
static void sub_submit(struct ovl_op *op, struct io_request *s, enum io_op type, int file, struct iovec *iov,
		       int iovcnt, uint64_t offset, uint64_t len)
{
	*s = (struct io_request){ .op = type, .file = file, .iov = iov, .iovcnt = iovcnt, .offset = offset,
				  .len = len, .done = sub_done, .priv = op };
	op->pending++;
	int ret = io_loop_submit(op->o->loop, s);
	if (ret < 0) {
		op->pending--;
		if (!op->err)
			op->err = ret;
	}
}

static void phase_begin(struct ovl_op *op, int phase)
{
	op->phase = phase;
	op->pending++;                  /* the guard: no advance() until every sub-request is queued */
}

static void phase_end(struct ovl_op *op)
{
	if (--op->pending == 0)
		advance(op);
}

static void complete(struct ovl_op *op)
{
	struct io_request *req = op->req;
	int64_t res = op->err ? op->err : (req->op == IO_OP_READ || req->op == IO_OP_WRITE) ? (int64_t)op->total : 0;

	op_free(op);
	req->done(req, res);
}

/* ---- reads ---- */

static bool allocated(const struct overlay *o, uint64_t c)
{
	return ovl_bit(o->bitmap, c);
}

/* Length of the run of clusters like the one at pos, from pos up to end. */
static uint64_t run_len(const struct overlay *o, uint64_t pos, uint64_t end)
{
	uint64_t c = pos / OVL_CLUSTER;
	bool a = allocated(o, c);
	uint64_t stop = (c + 1) * OVL_CLUSTER;

	while (stop < end && allocated(o, stop / OVL_CLUSTER) == a)
		stop += OVL_CLUSTER;
	return (stop < end ? stop : end) - pos;
}

static int read_start(struct ovl_op *op)
{
	struct overlay *o = op->o;
	struct io_request *req = op->req;
	uint64_t end = req->offset + op->total;
	int runs = 0;

	for (uint64_t pos = req->offset; pos < end; pos += run_len(o, pos, end))
		runs++;
	if (runs <= 1) {
		/* One run (or nothing): the caller's buffers as they are. */
		bool a = op->total && allocated(o, req->offset / OVL_CLUSTER);
		if (!(op->sub = calloc(1, sizeof(*op->sub))))
			return -ENOMEM;
		phase_begin(op, 1);
		sub_submit(op, &op->sub[0], IO_OP_READ, a || !op->total ? o->ovl_file : o->base_file, req->iov,
			   req->iovcnt, (a || !op->total ? o->h.data_off : 0) + req->offset, 0);
		phase_end(op);
		return 0;
	}
	op->sub = calloc((size_t)runs, sizeof(*op->sub));
	op->iov = calloc((size_t)(req->iovcnt + runs), sizeof(*op->iov));
	if (!op->sub || !op->iov)
		return -ENOMEM;
	phase_begin(op, 1);
	struct iovec *iov = op->iov;
	int i = 0;
	for (uint64_t pos = req->offset; pos < end; i++) {
		uint64_t n = run_len(o, pos, end);
		bool a = allocated(o, pos / OVL_CLUSTER);
		int cnt = iov_slice(req->iov, req->iovcnt, pos - req->offset, n, iov);
		sub_submit(op, &op->sub[i], IO_OP_READ, a ? o->ovl_file : o->base_file, iov, cnt,
			   (a ? o->h.data_off : 0) + pos, 0);
		iov += cnt;
		pos += n;
	}
	phase_end(op);
	return 0;
}

/* ---- writes, discard and write-zeroes ---- */

static void wait_push(struct overlay *o, struct ovl_op *op)
{
	op->next = NULL;
	if (o->waiting_tail)
		o->waiting_tail->next = op;
	else
		o->waiting = op;
	o->waiting_tail = op;
}

/* Cluster allocations ended: every waiting write plans again, in arrival order. */
static void wake_waiters(struct overlay *o)
{
	struct ovl_op *op = o->waiting;

	o->waiting = o->waiting_tail = NULL;
	while (op) {
		struct ovl_op *next = op->next;
		plan_write(op);
		op = next;
	}
}

static void plan_write(struct ovl_op *op)
{
	struct overlay *o = op->o;
	struct io_request *req = op->req;
	uint64_t start = req->offset, end = start + op->total;
	bool any = false;

	for (uint64_t c = op->first; c <= op->last; c++) {
		if (allocated(o, c))
			continue;
		if (ovl_bit(o->busy, c)) {
			wait_push(o, op);
			return;
		}
		any = true;
	}
	if (any) {
		op->allocating = true;
		for (uint64_t c = op->first; c <= op->last; c++)
			if (!allocated(o, c))
				set_bit(o->busy, c);
	}
	/* The parts of a first-written cluster the request leaves out come from the base. */
	uint64_t head = op->first * OVL_CLUSTER;
	uint64_t tail_end = (op->last + 1) * OVL_CLUSTER;
	if (tail_end > o->h.size)
		tail_end = o->h.size;
	op->fill[0] = start > head && !allocated(o, op->first);
	op->fill_off[0] = head;
	op->fill_len[0] = start - head;
	op->fill[1] = end < tail_end && !allocated(o, op->last);
	op->fill_off[1] = end;
	op->fill_len[1] = tail_end - end;
	if (op->fill[0] || op->fill[1]) {
		if (posix_memalign((void **)&op->bounce, 4096, 2 * OVL_CLUSTER)) {
			op->bounce = NULL;
			op->err = -ENOMEM;
			advance(op);      /* phase 0 with an error: finish */
			return;
		}
		phase_begin(op, 1);
		for (int k = 0; k < 2; k++) {
			if (!op->fill[k])
				continue;
			op->fill_iov[k] = (struct iovec){ .iov_base = op->bounce + k * OVL_CLUSTER,
							  .iov_len = op->fill_len[k] };
			sub_submit(op, &op->sub[k], IO_OP_READ, o->base_file, &op->fill_iov[k], 1,
				   op->fill_off[k], 0);
		}
		phase_end(op);
		return;
	}
	op->phase = 1;
	advance(op);
}

/* The fills are read (or there are none): write them and the request's own range. */
static void write_data(struct ovl_op *op)
{
	struct overlay *o = op->o;
	struct io_request *req = op->req;

	phase_begin(op, 2);
	for (int k = 0; k < 2; k++) {
		if (!op->fill[k])
			continue;
		op->fill_iov[k] = (struct iovec){ .iov_base = op->bounce + k * OVL_CLUSTER, .iov_len = op->fill_len[k] };
		sub_submit(op, &op->sub[k], IO_OP_WRITE, o->ovl_file, &op->fill_iov[k], 1,
			   o->h.data_off + op->fill_off[k], 0);
	}
	if (req->op == IO_OP_WRITE)
		sub_submit(op, &op->sub[2], IO_OP_WRITE, o->ovl_file, req->iov, req->iovcnt,
			   o->h.data_off + req->offset, 0);
	else    /* DISCARD and WRITE_ZEROES: a hole reads as zeroes (sub_done() falls back to zeroing) */
		sub_submit(op, &op->sub[2], IO_OP_DISCARD, o->ovl_file, NULL, 0, o->h.data_off + req->offset,
			   req->len);
	phase_end(op);
}

/* The data is in the file: the clusters are the overlay's now (durable at the next FLUSH). */
static void write_finish(struct ovl_op *op)
{
	struct overlay *o = op->o;

	if (op->allocating) {
		for (uint64_t c = op->first; c <= op->last; c++) {
			if (!ovl_bit(o->busy, c))
				continue;
			clear_bit(o->busy, c);
			if (op->err)
				continue;
			set_bit(o->bitmap, c);
			o->dirty[c / (8 * PAGE)] = 1;
			o->allocated++;
		}
	}
	bool wake = op->allocating;
	complete(op);
	if (wake)
		wake_waiters(o);
}

/* ---- flush ---- */

static void flush_pages_restore(struct ovl_op *op)
{
	for (uint64_t i = 0; i < op->nflush; i++)
		op->o->dirty[op->flush_pages[i]] = 1;
}

static void flush_start(struct overlay *o, struct ovl_op *op)
{
	uint64_t n = 0, runs = 0;

	o->flushing = true;
	for (uint64_t p = 0; p < o->pages; p++)
		if (o->dirty[p]) {
			runs += p == 0 || !o->dirty[p - 1];
			n++;
		}
	/*
	 * The bitmap as it is now: every bit in it belongs to a write that has
	 * completed, so the fdatasync below makes its data durable before the
	 * bit is written. Bits set meanwhile wait for the next flush.
	 */
	op->sub = calloc(runs ? (size_t)runs : 1, sizeof(*op->sub));
	op->iov = calloc(runs ? (size_t)runs : 1, sizeof(*op->iov));
	op->flush_pages = calloc(n ? (size_t)n : 1, sizeof(*op->flush_pages));
	op->bounce = n ? malloc((size_t)(n * PAGE)) : NULL;
	if (!op->sub || !op->iov || !op->flush_pages || (n && !op->bounce)) {
		op->err = -ENOMEM;
		op->phase = 3;
		advance(op);
		return;
	}
	for (uint64_t p = 0; p < o->pages; p++)
		if (o->dirty[p]) {
			memcpy(op->bounce + op->nflush * PAGE, o->bitmap + p * PAGE, PAGE);
			op->flush_pages[op->nflush++] = p;
			o->dirty[p] = 0;
		}
	op->nsub = (int)runs;
	if (o->test_bitmap_first && op->nflush) {
		flush_bitmap(op);       /* TEST ONLY: the bitmap first, then one fdatasync (wrong) */
		return;
	}
	phase_begin(op, 1);
	sub_submit(op, &op->sub[0], IO_OP_FLUSH, o->ovl_file, NULL, 0, 0, 0);
	phase_end(op);
}

static void flush_bitmap(struct ovl_op *op)
{
	struct overlay *o = op->o;
	int k = 0;

	phase_begin(op, 2);
	for (uint64_t i = 0; i < op->nflush;) {
		uint64_t j = i + 1;
		while (j < op->nflush && op->flush_pages[j] == op->flush_pages[j - 1] + 1)
			j++;
		op->iov[k] = (struct iovec){ .iov_base = op->bounce + i * PAGE, .iov_len = (j - i) * PAGE };
		sub_submit(op, &op->sub[k], IO_OP_WRITE, o->ovl_file, &op->iov[k], 1,
			   o->h.bitmap_off + op->flush_pages[i] * PAGE, 0);
		k++;
		i = j;
	}
	phase_end(op);
}

static void flush_finish(struct ovl_op *op)
{
	struct overlay *o = op->o;

	if (op->err)
		flush_pages_restore(op);
	complete(op);
	o->flushing = false;
	struct ovl_op *next = o->flush_q;
	if (next) {
		o->flush_q = next->next;
		if (!o->flush_q)
			o->flush_q_tail = NULL;
		flush_start(o, next);
	}
}

/* ---- the state machine ---- */

static void advance(struct ovl_op *op)
{
	switch (op->req->op) {
	case IO_OP_READ:
		complete(op);
		return;
	case IO_OP_WRITE:
	case IO_OP_DISCARD:
	case IO_OP_WRITE_ZEROES:
		if (op->phase == 1 && !op->err)
			write_data(op);
		else
			write_finish(op);
		return;
	case IO_OP_FLUSH:
		if (op->err || op->phase == 3 || (op->phase == 1 && op->nflush == 0))
			flush_finish(op);
		else if (op->phase == 1)
			flush_bitmap(op);
		else {
			phase_begin(op, 3);
			sub_submit(op, &op->sub[0], IO_OP_FLUSH, op->o->ovl_file, NULL, 0, 0, 0);
			phase_end(op);
		}
		return;
	}
}

int overlay_submit(struct overlay *o, struct io_request *req)
{
	uint64_t len = 0;

	switch (req->op) {
	case IO_OP_READ:
	case IO_OP_WRITE:
		if (req->iovcnt < 0 || (req->iovcnt && !req->iov))
			return -EINVAL;
		for (int i = 0; i < req->iovcnt; i++)
			len += req->iov[i].iov_len;
		break;
	case IO_OP_DISCARD:
	case IO_OP_WRITE_ZEROES:
		len = req->len;
		break;
	case IO_OP_FLUSH:
		break;
	default:
		return -EINVAL;
	}
	if (req->offset > o->h.size || len > o->h.size - req->offset)
		return -EINVAL;
	struct ovl_op *op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	op->o = o;
	op->req = req;
	op->total = len;
	if (req->op == IO_OP_FLUSH) {
		if (o->flushing) {
			if (o->flush_q_tail)
				o->flush_q_tail->next = op;
			else
				o->flush_q = op;
			o->flush_q_tail = op;
		} else {
			flush_start(o, op);
		}
		return 0;
	}
	if (req->op == IO_OP_READ) {
		int ret = read_start(op);
		if (ret < 0)
			op_free(op);
		return ret;
	}
	if (len == 0) {
		/* Nothing to write or zero: an empty write answers it in order with the rest. */
		if (!(op->sub = calloc(3, sizeof(*op->sub)))) {
			op_free(op);
			return -ENOMEM;
		}
		phase_begin(op, 2);
		sub_submit(op, &op->sub[2], IO_OP_WRITE, o->ovl_file, NULL, 0, o->h.data_off, 0);
		phase_end(op);
		return 0;
	}
	op->first = req->offset / OVL_CLUSTER;
	op->last = (req->offset + len - 1) / OVL_CLUSTER;
	if (!(op->sub = calloc(3, sizeof(*op->sub)))) {
		op_free(op);
		return -ENOMEM;
	}
	plan_write(op);
	return 0;
}
