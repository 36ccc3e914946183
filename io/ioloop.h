/* ioloop.h - the I/O thread: one event loop (io_uring, or poll + a thread pool) for every device back end. */
#ifndef MICROVM_IOLOOP_H
#define MICROVM_IOLOOP_H

#include <stdbool.h>
#include <stddef.h>
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

#define IO_LOOP_MAX_FILES 32
#define IO_LOOP_MAX_WATCHES 64
#define IO_LOOP_SYNC_WORKERS 4

struct io_request {
	enum io_op op;
	int file;                       /* index from io_loop_register_file() */
	/*
	 * READ/WRITE buffers. Owned by the caller until done(); the loop may
	 * advance the entries in place to resubmit the rest of a short transfer.
	 */
	struct iovec *iov;
	int iovcnt;
	uint64_t offset;
	uint64_t len;                   /* DISCARD/WRITE_ZEROES */
	/*
	 * Called on the I/O thread with the total bytes transferred (READ/WRITE:
	 * always the full length; a transfer is never reported partly done) or
	 * 0 (FLUSH/DISCARD/WRITE_ZEROES), or -errno. done() may submit requests.
	 */
	void (*done)(struct io_request *req, int64_t result);
	void *priv;

	/* Private to the loop. */
	struct io_request *next_;
	uint64_t xfer_;                 /* bytes transferred so far */
	int64_t res_;
};

struct io_loop;

/*
 * Create the loop with the wanted engine. io_uring is used only locked down
 * (started disabled, restricted to the operations above on registered files:
 * part of the sandbox). AUTO tries io_uring and falls back to SYNC with one
 * log line saying why (a warning when io_uring works but cannot be locked
 * down); URING fails with err_msg() ("io_uring: ...") if the host forbids
 * io_uring or its lock-down. Returns 0 or -errno.
 */
int io_loop_create(struct io_loop **out, enum io_engine want);

/*
 * What every thread the I/O loops start (the loop thread, the sync engine's
 * workers) calls first, before any I/O: the monitor installs its I/O
 * thread's seccomp filter here (vmm/sandbox/). Process-wide; set it before
 * io_loop_start(). NULL: nothing.
 */
void io_loop_set_thread_init(void (*fn)(void));

/* Test hook (builds with MICROVM_TEST_HOOKS): set, the ring's lock-down fails as on an old kernel. */
#define IO_LOOP_TEST_NO_LOCKDOWN_ENV "MICROVM_TEST_URING_NO_LOCKDOWN"

/* Test hook: "none" makes the ring without IORING_SETUP_COOP_TASKRUN (for measuring it, docs/benchmarks.md). */
#define IO_LOOP_TEST_URING_SETUP_ENV "MICROVM_TEST_URING_SETUP"

/* For --host-info: one line on whether io_uring is usable here, locked down, or why not. */
const char *io_loop_uring_status(char *buf, size_t len);
enum io_engine io_loop_engine(const struct io_loop *loop);
const char *io_engine_name(enum io_engine e);

/*
 * Before io_loop_start(): call cb(arg) on the I/O thread each time eventfd fd
 * is signalled (the counter is read and reset first). fd stays the caller's.
 */
int io_loop_watch_eventfd(struct io_loop *loop, int fd, void (*cb)(void *arg), void *arg);

/*
 * Before io_loop_start(): watch a non-blocking fd (a tap, a socket) for
 * readiness, one shot at a time. The watch starts disarmed; io_loop_arm()
 * says which events to wait for. When one of them (or POLLERR / POLLHUP) is
 * reported, the watch is disarmed first and then cb(arg, revents) runs on the
 * I/O thread, with revents limited to the armed events plus POLLERR, POLLHUP
 * and POLLNVAL. cb may call io_loop_arm() again. After io_loop_destroy()
 * started stopping, cb is no longer called. Returns a watch id >= 0, or
 * -errno with err_msg(): EBUSY after the start, ENOSPC when
 * IO_LOOP_MAX_WATCHES (eventfd and fd watches together) are taken. fd stays
 * the caller's and must stay open until io_loop_destroy() returns.
 */
int io_loop_watch_fd(struct io_loop *loop, int fd, void (*cb)(void *arg, short revents), void *arg);

/*
 * I/O thread only (or before io_loop_start()): arm watch `id` for events, a
 * combination of POLLIN and POLLOUT (other bits are ignored), replacing what
 * was armed; 0 disarms it (cb is not called until it is armed again). Arming
 * an fd that is already ready makes cb run on the next loop iteration, so
 * no readiness is ever lost between a callback and the next arm. Cheap when
 * the mask does not change. A bad id is logged and ignored.
 */
void io_loop_arm(struct io_loop *loop, int id, short events);

/*
 * Before io_loop_start(): a one-shot timer (a timerfd on CLOCK_MONOTONIC,
 * watched like an fd) that calls cb(arg) on the I/O thread. Used by the
 * rate limiters: a throttled queue waits here, never in a vCPU or another
 * device. Returns a timer id >= 0, or -errno with err_msg() (EBUSY after the
 * start, ENOSPC when IO_LOOP_MAX_TIMERS or the watches are taken). Closed by
 * io_loop_destroy().
 */
#define IO_LOOP_MAX_TIMERS 16
int io_loop_timer(struct io_loop *loop, void (*cb)(void *arg), void *arg);

/*
 * I/O thread only (or before io_loop_start()): fire timer `id` once, ns
 * nanoseconds from now (at least 1), replacing an earlier setting; ns 0
 * cancels it. A bad id is logged and ignored.
 */
void io_loop_timer_set(struct io_loop *loop, int id, uint64_t ns);

/* Before io_loop_start(): register a file for requests; returns its index or -errno. fd stays the caller's. */
int io_loop_register_file(struct io_loop *loop, int fd);

/*
 * Start the thread; with io_uring the ring is locked down to the registered
 * files (and watched eventfds) and the ops above where the kernel supports
 * restrictions. Returns 0 or -errno with err_msg().
 */
int io_loop_start(struct io_loop *loop);

/*
 * I/O thread only (or before io_loop_start() from the creating thread, in
 * which case the request waits for the start): queue a request; done() is
 * called later on the I/O thread, possibly out of order. Returns 0 or -EINVAL
 * for a bad file index / op.
 */
int io_loop_submit(struct io_loop *loop, struct io_request *req);

/*
 * Work a device wants done once per batch: after the loop has handled every
 * completion and event that one wake-up brought (all the done() callbacks of
 * that batch), and before it submits what they queued and sleeps again. A
 * device batches with it: done() only records its answer and defers; the
 * deferred call publishes every answer of the batch at once (one used-ring
 * update, one interrupt). Private fields belong to the loop; zero the whole
 * struct before the first use.
 */
struct io_deferred {
	void (*fn)(void *arg);
	void *arg;

	/* Private to the loop. */
	bool queued_;
	struct io_deferred *next_;
};

/*
 * I/O thread only (a done() callback, an eventfd or fd watch's callback):
 * have d->fn(d->arg) run once at the end of the current batch. Deferring a d
 * already queued does nothing; fn may defer again (it then runs in the next
 * round of the same batch end, before the loop sleeps).
 */
void io_loop_defer(struct io_loop *loop, struct io_deferred *d);

/*
 * Run fn(arg) on the I/O thread and wait for it to return. Called from the
 * I/O thread itself, or when the thread is not running, fn runs directly.
 * Used e.g. by a device reset to stop using its queues.
 */
int io_loop_call(struct io_loop *loop, void (*fn)(void *arg), void *arg);

/*
 * Stop: stop watching eventfds and fds (armed fd watches are dropped), finish every request in flight (their done()
 * runs on the I/O thread), join the thread, free everything. NULL is ignored.
 */
void io_loop_destroy(struct io_loop *loop);

#endif
