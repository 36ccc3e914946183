/* sync.c - the sync engine of the I/O loop: poll() on the loop thread, a pool of workers doing the I/O. */
#include "io/internal.h"
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static int64_t sync_do(struct io_loop *loop, struct io_request *req)
{
	int fd = loop->files[req->file];
	int64_t r;

	for (;;) {
		switch (req->op) {
		case IO_OP_READ:
			r = preadv(fd, req->iov, req->iovcnt, (off_t)(req->offset + req->xfer_));
			break;
		case IO_OP_WRITE:
			r = pwritev(fd, req->iov, req->iovcnt, (off_t)(req->offset + req->xfer_));
			break;
		case IO_OP_FLUSH:
			r = fdatasync(fd);
			break;
		default:
			r = fallocate(fd, io_fallocate_mode(req->op), (off_t)req->offset, (off_t)req->len);
			break;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (io_account(req, r < 0 ? -errno : r))
			return req->res_;
	}
}

void *sync_worker(void *arg)
{
	struct io_loop *loop = arg;
	uint64_t one = 1;

	io_thread_init();
	pthread_mutex_lock(&loop->lock);
	for (;;) {
		struct io_request *req = io_list_pop(&loop->work);
		if (!req) {
			if (loop->workers_stop)
				break;
			pthread_cond_wait(&loop->work_cond, &loop->lock);
			continue;
		}
		pthread_mutex_unlock(&loop->lock);
		sync_do(loop, req);
		pthread_mutex_lock(&loop->lock);
		io_list_push(&loop->done, req);
		if (write(loop->wake_fd, &one, sizeof(one)) < 0)
			log_warn("I/O worker: waking the loop: %s", strerror(errno));
	}
	pthread_mutex_unlock(&loop->lock);
	return NULL;
}

void sync_run(struct io_loop *loop)
{
	struct pollfd p[IO_LOOP_MAX_WATCHES];

	while (!io_finished(loop)) {
		/* Once stopping, only the wake eventfd (completions, calls) matters. */
		int n = atomic_load(&loop->stop) ? 1 : loop->nwatch;
		for (int i = 0; i < n; i++) {
			const struct watch *w = &loop->watch[i];
			if (w->fd_cb) /* a negative fd is skipped by poll(): a disarmed watch */
				p[i] = (struct pollfd){ .fd = w->want ? w->fd : -1, .events = w->want };
			else
				p[i] = (struct pollfd){ .fd = w->fd, .events = POLLIN };
		}
		if (poll(p, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("I/O loop: poll: %s", strerror(errno));
			break;
		}
		/* A callback may re-arm or disarm other watches: io_fire_fd_watch() looks at want again. */
		for (int i = 0; i < n; i++) {
			if (loop->watch[i].fd_cb)
				io_fire_fd_watch(loop, i, p[i].revents);
			else if (p[i].revents & (POLLIN | POLLERR | POLLHUP))
				io_fire_watch(loop, i);
		}
		io_run_deferred(loop);
	}
}
