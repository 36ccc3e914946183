/* loop.c - the I/O thread (see ioloop.h): what both engines share, and the public interface. */
#include "io/internal.h"
#include "base/err.h"
#include "base/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

static void (*thread_init)(void);

void io_loop_set_thread_init(void (*fn)(void))
{
	thread_init = fn;
}

void io_thread_init(void)
{
	if (thread_init)
		thread_init();
}

void io_list_push(struct req_list *l, struct io_request *r)
{
	r->next_ = NULL;
	if (l->tail)
		l->tail->next_ = r;
	else
		l->head = r;
	l->tail = r;
}

struct io_request *io_list_pop(struct req_list *l)
{
	struct io_request *r = l->head;

	if (r) {
		l->head = r->next_;
		if (!l->head)
			l->tail = NULL;
		r->next_ = NULL;
	}
	return r;
}

const char *io_engine_name(enum io_engine e)
{
	switch (e) {
	case IO_ENGINE_AUTO:
		return "auto";
	case IO_ENGINE_URING:
		return "io_uring";
	case IO_ENGINE_SYNC:
		return "sync";
	}
	return "?";
}

enum io_engine io_loop_engine(const struct io_loop *loop)
{
	return loop->engine;
}

static uint64_t iov_bytes(const struct iovec *iov, int cnt)
{
	uint64_t n = 0;

	for (int i = 0; i < cnt; i++)
		n += iov[i].iov_len;
	return n;
}

/* Skip n bytes of req's buffers (a short transfer): advance iov in place. */
static void iov_advance(struct io_request *req, uint64_t n)
{
	while (n && req->iovcnt) {
		if (n >= req->iov->iov_len) {
			n -= req->iov->iov_len;
			req->iov++;
			req->iovcnt--;
		} else {
			req->iov->iov_base = (char *)req->iov->iov_base + n;
			req->iov->iov_len -= n;
			n = 0;
		}
	}
	/* Drop empty entries so a zero-length remainder means "done". */
	while (req->iovcnt && req->iov->iov_len == 0) {
		req->iov++;
		req->iovcnt--;
	}
}

int io_fallocate_mode(enum io_op op)
{
	return op == IO_OP_DISCARD ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
				   : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
}

/*
 * Account one host completion of req (res = syscall result). Returns true when
 * the request is finished (req->res_ holds the final result), false when the
 * rest of a short transfer must be submitted again.
 */
bool io_account(struct io_request *req, int64_t res)
{
	if (req->op != IO_OP_READ && req->op != IO_OP_WRITE) {
		req->res_ = res < 0 ? res : 0;
		return true;
	}
	if (res < 0) {
		req->res_ = res;
		return true;
	}
	if (res == 0 && iov_bytes(req->iov, req->iovcnt) > 0) {
		/* End of file or no progress: never report a partial transfer as done. */
		req->res_ = -EIO;
		return true;
	}
	req->xfer_ += (uint64_t)res;
	iov_advance(req, (uint64_t)res);
	if (req->iovcnt == 0) {
		req->res_ = (int64_t)req->xfer_;
		return true;
	}
	return false;
}

void io_complete(struct io_loop *loop, struct io_request *req)
{
	loop->inflight--;
	req->done(req, req->res_);
}

static void drain_eventfd(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
}

/* The wake eventfd fired: finished sync requests, calls from other threads, stop. */
void io_handle_wake(struct io_loop *loop)
{
	struct req_list done;
	struct call *calls;

	pthread_mutex_lock(&loop->lock);
	done = loop->done;
	loop->done = (struct req_list){ 0 };
	calls = loop->calls;
	loop->calls = NULL;
	pthread_mutex_unlock(&loop->lock);

	for (struct io_request *r; (r = io_list_pop(&done));)
		io_complete(loop, r);
	/* Calls were pushed LIFO; order between threads does not matter. */
	while (calls) {
		struct call *c = calls;
		calls = c->next;
		c->fn(c->arg);
		pthread_mutex_lock(&loop->lock);
		c->done = true;
		pthread_cond_broadcast(&loop->call_cond);
		pthread_mutex_unlock(&loop->lock);
	}
}

/* fd watch i reported revents: disarm it, then call back if it was armed for them. */
void io_fire_fd_watch(struct io_loop *loop, int i, short revents)
{
	struct watch *w = &loop->watch[i];
	short fired = revents & (w->want | ALWAYS_REPORTED);

	if (!w->want || !fired || atomic_load(&loop->stop))
		return;
	w->want = 0;
	w->fd_cb(w->arg, fired);
}

void io_fire_watch(struct io_loop *loop, int i)
{
	drain_eventfd(loop->watch[i].fd);
	if (i == 0)
		io_handle_wake(loop);
	else if (!atomic_load(&loop->stop))
		loop->watch[i].cb(loop->watch[i].arg);
}

void io_loop_defer(struct io_loop *loop, struct io_deferred *d)
{
	if (d->queued_)
		return;
	d->queued_ = true;
	d->next_ = loop->deferred;
	loop->deferred = d;
}

/* The end of a batch: what done() callbacks and watches deferred, until nothing is left. */
void io_run_deferred(struct io_loop *loop)
{
	while (loop->deferred) {
		struct io_deferred *d = loop->deferred;

		loop->deferred = d->next_;
		d->next_ = NULL;
		d->queued_ = false;
		d->fn(d->arg);
	}
}

bool io_finished(struct io_loop *loop)
{
	return atomic_load(&loop->stop) && loop->inflight == 0;
}

/* ---- the public interface ---- */

static void *loop_thread(void *arg)
{
	struct io_loop *loop = arg;

	io_thread_init();
	if (loop->engine == IO_ENGINE_URING)
		uring_run(loop);
	else
		sync_run(loop);
	/* Calls that raced with the end run here; later ones run in their caller. */
	pthread_mutex_lock(&loop->lock);
	loop->exited = true;
	pthread_mutex_unlock(&loop->lock);
	io_handle_wake(loop);
	io_run_deferred(loop);
	return NULL;
}

int io_loop_create(struct io_loop **out, enum io_engine want)
{
	struct io_loop *loop = calloc(1, sizeof(*loop));
	int ret;

	*out = NULL;
	if (!loop)
		return err_set(ENOMEM, "I/O loop: out of memory");
	pthread_mutex_init(&loop->lock, NULL);
	pthread_cond_init(&loop->call_cond, NULL);
	pthread_cond_init(&loop->work_cond, NULL);
	loop->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->wake_fd < 0) {
		ret = err_set(errno, "I/O loop: eventfd: %s", strerror(errno));
		io_loop_destroy(loop);
		return ret;
	}
	loop->watch[0] = (struct watch){ .fd = loop->wake_fd };
	loop->nwatch = 1;

	loop->engine = want == IO_ENGINE_SYNC ? IO_ENGINE_SYNC : IO_ENGINE_URING;
	if (loop->engine == IO_ENGINE_URING && (ret = uring_create(loop)) < 0) {
		if (want == IO_ENGINE_URING) {
			io_loop_destroy(loop);
			return ret;
		}
		/* Without its lock-down the ring would be a hole in the sandbox: say so louder. */
		log_msg(loop->lockdown_failed ? LOG_WARN : LOG_INFO, "%s: using the sync I/O engine (thread pool) instead",
			err_msg());
		err_clear();
		if (loop->ring_ready)
			io_uring_queue_exit(&loop->ring);
		loop->ring_ready = false;
		loop->engine = IO_ENGINE_SYNC;
	}
	*out = loop;
	return 0;
}

const char *io_loop_uring_status(char *buf, size_t len)
{
	struct io_loop *loop;

	if (io_loop_create(&loop, IO_ENGINE_URING) == 0) {
		io_loop_destroy(loop);
		snprintf(buf, len, "locked down (registered files, 5 operations): the default I/O engine");
	} else {
		snprintf(buf, len, "not used: %s; the default I/O engine is sync", err_msg());
		err_clear();
	}
	return buf;
}

int io_loop_watch_eventfd(struct io_loop *loop, int fd, void (*cb)(void *arg), void *arg)
{
	if (loop->running)
		return err_set(EBUSY, "I/O loop: eventfds must be watched before the start");
	if (loop->nwatch >= IO_LOOP_MAX_WATCHES)
		return err_set(ENOSPC, "I/O loop: more than %d eventfds", IO_LOOP_MAX_WATCHES - 1);
	loop->watch[loop->nwatch++] = (struct watch){ .fd = fd, .cb = cb, .arg = arg };
	return 0;
}

int io_loop_watch_fd(struct io_loop *loop, int fd, void (*cb)(void *arg, short revents), void *arg)
{
	if (loop->running)
		return err_set(EBUSY, "I/O loop: fds must be watched before the start");
	if (fd < 0 || !cb)
		return err_set(EINVAL, "I/O loop: watching fd %d without a callback", fd);
	if (loop->nwatch >= IO_LOOP_MAX_WATCHES)
		return err_set(ENOSPC, "I/O loop: more than %d watched fds", IO_LOOP_MAX_WATCHES - 1);
	loop->watch[loop->nwatch] = (struct watch){ .fd = fd, .fd_cb = cb, .arg = arg };
	return loop->nwatch++;
}

/* Is the caller allowed to touch loop-thread state: the I/O thread, or no thread running? */
static bool on_loop_thread(struct io_loop *loop)
{
	bool ok;

	pthread_mutex_lock(&loop->lock);
	ok = !loop->running || loop->exited || pthread_equal(pthread_self(), loop->thread);
	pthread_mutex_unlock(&loop->lock);
	return ok;
}

void io_loop_arm(struct io_loop *loop, int id, short events)
{
	if (id <= 0 || id >= loop->nwatch || !loop->watch[id].fd_cb) {
		log_error("I/O loop: arming watch %d, which is not an fd watch", id);
		return;
	}
	if (!on_loop_thread(loop)) {
		log_error("I/O loop: watch %d armed from outside the I/O thread (ignored)", id);
		return;
	}
	loop->watch[id].want = events & WATCH_EVENTS;
	if (loop->engine == IO_ENGINE_URING)
		uring_fd_update(loop, id);
}

/* A timer's fd became readable: read its count (so it is not ready again), then call back. */
static void timer_fired(void *arg, short revents)
{
	struct timer *t = arg;
	uint64_t n;

	(void)revents;
	while (read(t->fd, &n, sizeof(n)) < 0 && errno == EINTR)
		;
	t->armed = false;
	t->cb(t->arg);
}

int io_loop_timer(struct io_loop *loop, void (*cb)(void *arg), void *arg)
{
	if (loop->running)
		return err_set(EBUSY, "I/O loop: timers must be created before the start");
	if (loop->ntimers >= IO_LOOP_MAX_TIMERS)
		return err_set(ENOSPC, "I/O loop: more than %d timers", IO_LOOP_MAX_TIMERS);
	struct timer *t = &loop->timers[loop->ntimers];
	t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->fd < 0)
		return err_set(errno, "I/O loop: timerfd_create: %s", strerror(errno));
	t->cb = cb;
	t->arg = arg;
	int w = io_loop_watch_fd(loop, t->fd, timer_fired, t);
	if (w < 0) {
		close(t->fd);
		return w;
	}
	t->watch = w;
	return loop->ntimers++;
}

void io_loop_timer_set(struct io_loop *loop, int id, uint64_t ns)
{
	struct itimerspec its = { 0 };

	if (id < 0 || id >= loop->ntimers) {
		log_error("I/O loop: setting timer %d, which does not exist", id);
		return;
	}
	struct timer *t = &loop->timers[id];
	if (!ns && !t->armed)
		return;   /* nothing to cancel: no system call (device resets run this often) */
	pthread_mutex_lock(&loop->lock);
	bool gone = loop->running && loop->exited;
	pthread_mutex_unlock(&loop->lock);
	if (gone) {
		/* Nothing polls any more; and the caller's thread (a vCPU, the API) may not make this call. */
		t->armed = false;
		return;
	}
	if (ns) {
		its.it_value.tv_sec = (time_t)(ns / 1000000000ULL);
		its.it_value.tv_nsec = (long)(ns % 1000000000ULL);
	}
	if (timerfd_settime(t->fd, 0, &its, NULL) < 0) {
		log_error("I/O loop: timerfd_settime: %s", strerror(errno));
		return;
	}
	/* timerfd_settime() clears an expiry not yet read, so nothing stale fires. */
	t->armed = ns != 0;
	io_loop_arm(loop, t->watch, ns ? POLLIN : 0);
}

int io_loop_register_file(struct io_loop *loop, int fd)
{
	if (loop->running)
		return err_set(EBUSY, "I/O loop: files must be registered before the start");
	if (loop->nfiles >= IO_LOOP_MAX_FILES)
		return err_set(ENOSPC, "I/O loop: more than %d files", IO_LOOP_MAX_FILES);
	loop->files[loop->nfiles] = fd;
	return loop->nfiles++;
}

int io_loop_start(struct io_loop *loop)
{
	int e, ret;

	if (loop->running)
		return err_set(EBUSY, "I/O loop: already started");
	if (loop->engine == IO_ENGINE_URING && (ret = uring_start(loop)) < 0)
		return ret;
	if (loop->engine == IO_ENGINE_SYNC) {
		for (int i = 0; i < IO_LOOP_SYNC_WORKERS; i++) {
			if ((e = pthread_create(&loop->workers[i], NULL, sync_worker, loop)))
				return err_set(e, "I/O loop: starting a worker thread: %s", strerror(e));
			loop->nworkers = i + 1;
		}
	}
	/* Set first: the thread's own io_loop_call() must see itself as running. */
	pthread_mutex_lock(&loop->lock);
	loop->running = true;
	e = pthread_create(&loop->thread, NULL, loop_thread, loop);
	if (e)
		loop->running = false;
	pthread_mutex_unlock(&loop->lock);
	if (e)
		return err_set(e, "I/O loop: starting the I/O thread: %s", strerror(e));
	return 0;
}

int io_loop_submit(struct io_loop *loop, struct io_request *req)
{
	if (req->file < 0 || req->file >= loop->nfiles || req->op > IO_OP_WRITE_ZEROES ||
	    !req->done)
		return -EINVAL;
	if ((req->op == IO_OP_READ || req->op == IO_OP_WRITE) && req->iovcnt < 0)
		return -EINVAL;
	req->xfer_ = 0;
	req->res_ = 0;
	loop->inflight++;
	if (loop->engine == IO_ENGINE_URING) {
		/* Batched: the loop hands the queue to the kernel before it sleeps. */
		if (!loop->ring_live || loop->pending.head || !uring_prep(loop, req))
			io_list_push(&loop->pending, req);
		return 0;
	}
	pthread_mutex_lock(&loop->lock);
	io_list_push(&loop->work, req);
	pthread_cond_signal(&loop->work_cond);
	pthread_mutex_unlock(&loop->lock);
	return 0;
}

int io_loop_call(struct io_loop *loop, void (*fn)(void *arg), void *arg)
{
	struct call c = { .fn = fn, .arg = arg };
	uint64_t one = 1;

	pthread_mutex_lock(&loop->lock);
	if (!loop->running || loop->exited || pthread_equal(pthread_self(), loop->thread)) {
		pthread_mutex_unlock(&loop->lock);
		fn(arg);
		return 0;
	}
	c.next = loop->calls;
	loop->calls = &c;
	pthread_mutex_unlock(&loop->lock);
	if (write(loop->wake_fd, &one, sizeof(one)) < 0)
		log_warn("I/O loop: waking the loop: %s", strerror(errno));
	pthread_mutex_lock(&loop->lock);
	while (!c.done)
		pthread_cond_wait(&loop->call_cond, &loop->lock);
	pthread_mutex_unlock(&loop->lock);
	return 0;
}

void io_loop_destroy(struct io_loop *loop)
{
	uint64_t one = 1;

	if (!loop)
		return;
	if (loop->running) {
		atomic_store(&loop->stop, true);
		if (write(loop->wake_fd, &one, sizeof(one)) < 0)
			log_warn("I/O loop: waking the loop: %s", strerror(errno));
		pthread_join(loop->thread, NULL);
		loop->running = false;
	}
	pthread_mutex_lock(&loop->lock);
	loop->workers_stop = true;
	pthread_cond_broadcast(&loop->work_cond);
	pthread_mutex_unlock(&loop->lock);
	for (int i = 0; i < loop->nworkers; i++)
		pthread_join(loop->workers[i], NULL);
	if (loop->ring_ready) {
		if (loop->files_registered)
			uring_release(loop);
		io_uring_queue_exit(&loop->ring);
	}
	for (int i = 0; i < loop->ntimers; i++)
		close(loop->timers[i].fd);
	if (loop->wake_fd >= 0)
		close(loop->wake_fd);
	pthread_cond_destroy(&loop->work_cond);
	pthread_cond_destroy(&loop->call_cond);
	pthread_mutex_destroy(&loop->lock);
	free(loop);
}
