/* ioloop.h - the I/O thread: one event loop (io_uring, or poll + a thread pool) for every device back end. */
#ifndef MICROVM_IOLOOP_H
#define MICROVM_IOLOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

enum io_engine {
	IO_ENGINE_AUTO = 0,  /* io_uring if the host allows it, else sync */
	IO_ENGINE_URING,
	IO_ENGINE_SYNC,      /* poll() loop + worker threads doing preadv/pwritev/fdatasync */
};

enum io_op {
	IO_OP_READ,          /* preadv */
	IO_OP_WRITE,         /* pwritev */
	IO_OP_FLUSH,         /* fdatasync */
	IO_OP_DISCARD,       /* fallocate(PUNCH_HOLE | KEEP_SIZE) */
	IO_OP_WRITE_ZEROES,  /* fallocate(ZERO_RANGE | KEEP_SIZE) */
};

struct io_request {
	enum io_op op;
	int file;                       /* index from io_loop_register_file() */
	const struct iovec *iov;        /* READ/WRITE */
	int iovcnt;
	uint64_t offset;
	uint64_t len;                   /* DISCARD/WRITE_ZEROES */
	/* Called on the I/O thread with bytes transferred or -errno. */
	void (*done)(struct io_request *req, int64_t result);
	void *priv;
};

struct io_loop;

/* Create the loop with the wanted engine (AUTO falls back to SYNC with one log line). */
int io_loop_create(struct io_loop **out, enum io_engine want);
enum io_engine io_loop_engine(const struct io_loop *loop);
const char *io_engine_name(enum io_engine e);

/* Before io_loop_start(): call cb(arg) on the I/O thread each time eventfd fd is signalled. */
int io_loop_watch_eventfd(struct io_loop *loop, int fd, void (*cb)(void *arg), void *arg);

/* Before io_loop_start(): register a file for requests; returns its index or -errno. */
int io_loop_register_file(struct io_loop *loop, int fd);

/* Start the thread; with io_uring the ring is locked down to the registered files and the ops above. */
int io_loop_start(struct io_loop *loop);

/* I/O thread only: queue a request; done() is called later (possibly out of order). */
int io_loop_submit(struct io_loop *loop, struct io_request *req);

/*
 * From any other thread: run fn(arg) on the I/O thread and wait for it to
 * return. Used e.g. by a device reset to stop using its queues.
 */
int io_loop_call(struct io_loop *loop, void (*fn)(void *arg), void *arg);

/* I/O thread only: process completions until none of the given requests' owner has any in flight. */
void io_loop_drain(struct io_loop *loop);

/* Stop: finish requests in flight (their done() runs), join the thread, free everything. */
void io_loop_destroy(struct io_loop *loop);

#endif
