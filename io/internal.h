/* internal.h - what the I/O loop's common part (loop.c) and its two engines (uring.c, sync.c) share. */
#ifndef MICROVM_IO_INTERNAL_H
#define MICROVM_IO_INTERNAL_H

#include "io/ioloop.h"

#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Sub-polls of an fd watch on io_uring: one POLL_ADD per event kind, so a mask change never needs POLL_REMOVE. */
#define SUB_IN 0
#define SUB_OUT 1

struct watch {
	int fd;
	void (*cb)(void *arg);                  /* eventfd watch */
	void (*fd_cb)(void *arg, short revents); /* fd watch (io_loop_watch_fd) */
	void *arg;
	short want;                             /* fd watch: armed events, 0 = disarmed (loop thread) */
	bool polling[2];                        /* io_uring: a POLL_ADD for POLLIN / POLLOUT is outstanding */
};

#define WATCH_EVENTS (POLLIN | POLLOUT)
#define ALWAYS_REPORTED (POLLERR | POLLHUP | POLLNVAL)

struct timer {
	int fd;                                 /* timerfd */
	int watch;                              /* its fd watch */
	bool armed;                             /* set and not yet fired or cancelled (loop thread) */
	void (*cb)(void *arg);
	void *arg;
};

struct call {
	void (*fn)(void *arg);
	void *arg;
	bool done;
	struct call *next;
};

struct req_list {
	struct io_request *head, *tail;
};

struct io_loop {
	enum io_engine engine;
	int files[IO_LOOP_MAX_FILES];
	int nfiles;
	struct watch watch[IO_LOOP_MAX_WATCHES]; /* [0] is the loop's own wake eventfd */
	int nwatch;
	int wake_fd;
	struct timer timers[IO_LOOP_MAX_TIMERS];
	int ntimers;

	pthread_t thread;
	bool running;                 /* thread created and not yet joined */
	bool exited;                  /* thread left its loop (under lock) */
	atomic_bool stop;

	pthread_mutex_t lock;         /* calls, and the sync engine's queues */
	pthread_cond_t call_cond;
	struct call *calls;

	uint64_t inflight;            /* loop thread: submitted, done() not yet called */
	struct req_list pending;      /* loop thread: waiting for a submission slot */
	struct io_deferred *deferred; /* loop thread: io_loop_defer() calls for the end of this batch */

	/* io_uring engine */
	struct io_uring ring;
	bool ring_ready;
	bool lockdown_failed;           /* io_uring works but cannot be restricted (uring_lock_down) */
	bool files_registered;        /* io_uring_register_files() succeeded */
	bool ring_live;               /* loop thread: submissions go straight to the ring */

	/* sync engine */
	pthread_t workers[IO_LOOP_SYNC_WORKERS];
	int nworkers;
	bool workers_stop;            /* under lock */
	pthread_cond_t work_cond;
	struct req_list work;         /* under lock */
	struct req_list done;         /* under lock */
};

/* loop.c: the request lists, accounting and the watches both engines use. */
void io_list_push(struct req_list *l, struct io_request *r);
struct io_request *io_list_pop(struct req_list *l);
int io_fallocate_mode(enum io_op op);
bool io_account(struct io_request *req, int64_t res);
void io_complete(struct io_loop *loop, struct io_request *req);
void io_handle_wake(struct io_loop *loop);
void io_fire_fd_watch(struct io_loop *loop, int i, short revents);
void io_fire_watch(struct io_loop *loop, int i);
bool io_finished(struct io_loop *loop);
void io_run_deferred(struct io_loop *loop);
/* What every thread of the loop runs first (io_loop_set_thread_init). */
void io_thread_init(void);

/* uring.c: the io_uring engine. */
int uring_create(struct io_loop *loop);
int uring_start(struct io_loop *loop);
bool uring_prep(struct io_loop *loop, struct io_request *req);
void uring_fd_update(struct io_loop *loop, int i);
void uring_run(struct io_loop *loop);
void uring_release(struct io_loop *loop);

/* sync.c: the poll() loop and its worker threads. */
void *sync_worker(void *arg);
void sync_run(struct io_loop *loop);

#endif
