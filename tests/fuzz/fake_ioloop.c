/* fake_ioloop.c - the single-threaded I/O loop of the device harnesses (see fake_ioloop.h). */
#include "fake_ioloop.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

struct io_loop *fake_loop_new(int64_t (*perform)(struct io_loop *, struct io_request *), void *ctx)
{
	struct io_loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		abort();
	loop->perform = perform;
	loop->ctx = ctx;
	loop->fd = -1;
	return loop;
}

void fake_loop_free(struct io_loop *loop)
{
	if (!loop)
		return;
	fake_loop_complete_all(loop);
	free(loop);
}

int io_loop_submit(struct io_loop *loop, struct io_request *req)
{
	if (loop->fail_submit)
		return -EINVAL;
	/* A device never has more requests in flight than its pool: more is a leak. */
	FZ_CHECK(loop->npending < FAKE_MAX_PENDING);
	for (int i = 0; i < loop->npending; i++)
		FZ_CHECK(loop->pending[i] != req);   /* submitted twice while in flight */
	loop->pending[loop->npending++] = req;
	return 0;
}

void io_loop_defer(struct io_loop *loop, struct io_deferred *d)
{
	if (d->queued_)
		return;
	d->queued_ = true;
	d->next_ = loop->deferred;
	loop->deferred = d;
}

/* What done() callbacks deferred: each completion is a batch of its own here. */
static void run_deferred(struct io_loop *loop)
{
	for (int n = 0; loop->deferred && n < 100000; n++) {
		struct io_deferred *d = loop->deferred;
		loop->deferred = d->next_;
		d->next_ = NULL;
		d->queued_ = false;
		d->fn(d->arg);
	}
	FZ_CHECK(loop->deferred == NULL);
}

void fake_loop_complete(struct io_loop *loop, int i, int64_t override)
{
	if (i < 0 || i >= loop->npending)
		return;
	struct io_request *req = loop->pending[i];
	int64_t res = loop->perform(loop, req);
	memmove(&loop->pending[i], &loop->pending[i + 1],
		(size_t)(loop->npending - i - 1) * sizeof(loop->pending[0]));
	loop->npending--;
	/* done() may submit again (the request itself, or new ones). */
	req->done(req, override ? override : res);
	run_deferred(loop);
}

void fake_loop_complete_all(struct io_loop *loop)
{
	/* Bounded: a device that resubmits forever is a bug the harness must see as a hang. */
	for (int n = 0; loop->npending && n < 100000; n++)
		fake_loop_complete(loop, 0, 0);
	FZ_CHECK(loop->npending == 0);
}

int io_loop_call(struct io_loop *loop, void (*fn)(void *arg), void *arg)
{
	fn(arg);
	fake_loop_complete_all(loop);
	return 0;
}

int io_loop_watch_fd(struct io_loop *loop, int fd, void (*cb)(void *arg, short revents), void *arg)
{
	FZ_CHECK(!loop->watched);
	loop->watched = true;
	loop->fd = fd;
	loop->fd_cb = cb;
	loop->fd_arg = arg;
	loop->armed = 0;
	return 0;
}

void io_loop_arm(struct io_loop *loop, int id, short events)
{
	FZ_CHECK(loop->watched && id == 0);
	loop->armed = events & (POLLIN | POLLOUT);
}

void fake_loop_fd_ready(struct io_loop *loop)
{
	struct pollfd p;

	if (!loop->watched || !loop->armed)
		return;
	p = (struct pollfd){ .fd = loop->fd, .events = loop->armed };
	if (poll(&p, 1, 0) != 1)
		return;
	short revents = p.revents & (loop->armed | POLLERR | POLLHUP | POLLNVAL);
	if (!revents)
		return;
	loop->armed = 0;
	loop->fd_cb(loop->fd_arg, revents);
}

int io_loop_timer(struct io_loop *loop, void (*cb)(void *arg), void *arg)
{
	FZ_CHECK(!loop->has_timer);
	loop->has_timer = true;
	loop->timer_cb = cb;
	loop->timer_arg = arg;
	loop->timer_ns = 0;
	return 0;
}

void io_loop_timer_set(struct io_loop *loop, int id, uint64_t ns)
{
	FZ_CHECK(loop->has_timer && id == 0);
	loop->timer_ns = ns;
}

void fake_loop_fire_timer(struct io_loop *loop)
{
	if (!loop->has_timer || !loop->timer_ns)
		return;
	loop->timer_ns = 0;
	loop->timer_cb(loop->timer_arg);
}
