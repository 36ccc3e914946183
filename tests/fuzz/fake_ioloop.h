/* fake_ioloop.h - a single-threaded stand-in for io/loop.c, so the device harnesses are deterministic: the harness is the I/O thread. */
#ifndef MICROVM_FUZZ_FAKE_IOLOOP_H
#define MICROVM_FUZZ_FAKE_IOLOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "io/ioloop.h"

#define FAKE_MAX_PENDING 1024

/*
 * Implements the part of io/ioloop.h the devices use (io_loop_submit,
 * io_loop_call, io_loop_watch_fd, io_loop_arm, io_loop_timer, io_loop_timer_set); a harness links this file
 * instead of io/loop.c. Nothing happens behind the harness's back:
 *   - io_loop_submit() queues the request; fake_loop_complete() finishes it;
 *   - io_loop_call() runs fn at once, then completes every queued request
 *     (what the I/O thread would go on doing while a vCPU waits in a reset);
 *   - the one fd watch fires only from fake_loop_fd_ready().
 */
struct io_loop {
	struct io_request *pending[FAKE_MAX_PENDING];
	int npending;
	bool fail_submit;               /* io_loop_submit() returns -EINVAL (the harness sets it) */
	struct io_deferred *deferred;   /* io_loop_defer(): run after each completion (a batch of one) */
	/* Carry out req (it is still queued when called): the result to pass to done(). */
	int64_t (*perform)(struct io_loop *loop, struct io_request *req);
	void *ctx;                      /* the harness's */
	/* The fd watch (one at most). */
	bool watched;
	int fd;
	void (*fd_cb)(void *arg, short revents);
	void *fd_arg;
	short armed;
	/* The timer (one at most): set by io_loop_timer_set(), fires only from fake_loop_fire_timer(). */
	bool has_timer;
	void (*timer_cb)(void *arg);
	void *timer_arg;
	uint64_t timer_ns;              /* 0: not set */
};

/* A zeroed loop with perform() set; fake_loop_free() completes what is still queued. */
struct io_loop *fake_loop_new(int64_t (*perform)(struct io_loop *, struct io_request *), void *ctx);
void fake_loop_free(struct io_loop *loop);

/*
 * Complete queued request i (0 = oldest): perform() it, unless override is
 * non-zero, in which case that (negative) result is reported after
 * perform() ran (like a host error found after the I/O). No-op if i is out of range.
 */
void fake_loop_complete(struct io_loop *loop, int i, int64_t override);
void fake_loop_complete_all(struct io_loop *loop);

/* If the timer is set, clear it and call back (as if its time had come). */
void fake_loop_fire_timer(struct io_loop *loop);

/* Poll the watched fd for the armed events; if any is ready, disarm and call back as the loop does. */
void fake_loop_fd_ready(struct io_loop *loop);

#endif
