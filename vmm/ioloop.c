/* ioloop.c - the I/O thread (see ioloop.h): an io_uring engine and a poll() + worker-pool fallback. */
#include "vmm/ioloop.h"
#include "vmm/err.h"
#include "vmm/log.h"
#include "vmm/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RING_ENTRIES 256

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

	pthread_t thread;
	bool running;                 /* thread created and not yet joined */
	bool exited;                  /* thread left its loop (under lock) */
	atomic_bool stop;

	pthread_mutex_t lock;         /* calls, and the sync engine's queues */
	pthread_cond_t call_cond;
	struct call *calls;

	uint64_t inflight;            /* loop thread: submitted, done() not yet called */
	struct req_list pending;      /* loop thread: waiting for a submission slot */

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

static void list_push(struct req_list *l, struct io_request *r)
{
	r->next_ = NULL;
	if (l->tail)
		l->tail->next_ = r;
	else
		l->head = r;
	l->tail = r;
}

static struct io_request *list_pop(struct req_list *l)
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

static int fallocate_mode(enum io_op op)
{
	return op == IO_OP_DISCARD ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
				   : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
}

/*
 * Account one host completion of req (res = syscall result). Returns true when
 * the request is finished (req->res_ holds the final result), false when the
 * rest of a short transfer must be submitted again.
 */
static bool account(struct io_request *req, int64_t res)
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

static void complete(struct io_loop *loop, struct io_request *req)
{
	loop->inflight--;
	req->done(req, req->res_);
}

/* ---- io_uring engine ---- */

/* user_data of a watch's POLL_ADD: odd (requests are aligned pointers), then the sub-poll, then the index. */
#define WATCH_TAG(i, sub) (((uint64_t)(i) << 2) | ((uint64_t)(sub) << 1) | 1)

static bool uring_prep(struct io_loop *loop, struct io_request *req)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);
	uint64_t off = req->offset + req->xfer_;

	if (!sqe)
		return false;
	switch (req->op) {
	case IO_OP_READ:
		io_uring_prep_readv(sqe, req->file, req->iov, (unsigned)req->iovcnt, off);
		break;
	case IO_OP_WRITE:
		io_uring_prep_writev(sqe, req->file, req->iov, (unsigned)req->iovcnt, off);
		break;
	case IO_OP_FLUSH:
		io_uring_prep_fsync(sqe, req->file, IORING_FSYNC_DATASYNC);
		break;
	case IO_OP_DISCARD:
	case IO_OP_WRITE_ZEROES:
		io_uring_prep_fallocate(sqe, req->file, fallocate_mode(req->op), (off_t)req->offset,
					(off_t)req->len);
		break;
	}
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data(sqe, req);
	return true;
}

static void uring_flush_pending(struct io_loop *loop)
{
	while (loop->pending.head) {
		if (!uring_prep(loop, loop->pending.head)) {
			/* Ring full: hand what we have to the kernel and try once more. */
			io_uring_submit(&loop->ring);
			if (!uring_prep(loop, loop->pending.head))
				return;
		}
		list_pop(&loop->pending);
	}
}

static bool uring_poll(struct io_loop *loop, int i, int sub, unsigned mask)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);

	if (!sqe) {
		io_uring_submit(&loop->ring);
		sqe = io_uring_get_sqe(&loop->ring);
	}
	if (!sqe) {
		log_error("I/O loop: no submission slot to watch fd %d", loop->watch[i].fd);
		return false;
	}
	/* Fixed-file index: the registered files come first, then the watched fds. */
	io_uring_prep_poll_add(sqe, loop->nfiles + i, mask);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, WATCH_TAG(i, sub));
	return true;
}

static void uring_arm_watch(struct io_loop *loop, int i)
{
	uring_poll(loop, i, SUB_IN, POLLIN);
}

/*
 * Make the outstanding sub-polls of fd watch i cover what it wants. A sub-poll
 * no longer wanted stays outstanding: when it completes it is ignored (or,
 * if wanted again by then, reported), so no wake-up is lost and none spins.
 */
static void uring_fd_update(struct io_loop *loop, int i)
{
	struct watch *w = &loop->watch[i];

	if (!loop->ring_live || atomic_load(&loop->stop))
		return;
	if ((w->want & POLLIN) && !w->polling[SUB_IN])
		w->polling[SUB_IN] = uring_poll(loop, i, SUB_IN, POLLIN);
	if ((w->want & POLLOUT) && !w->polling[SUB_OUT])
		w->polling[SUB_OUT] = uring_poll(loop, i, SUB_OUT, POLLOUT);
}

/* ---- the parts both engines share ---- */

static void drain_eventfd(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
}

/* The wake eventfd fired: finished sync requests, calls from other threads, stop. */
static void handle_wake(struct io_loop *loop)
{
	struct req_list done;
	struct call *calls;

	pthread_mutex_lock(&loop->lock);
	done = loop->done;
	loop->done = (struct req_list){ 0 };
	calls = loop->calls;
	loop->calls = NULL;
	pthread_mutex_unlock(&loop->lock);

	for (struct io_request *r; (r = list_pop(&done));)
		complete(loop, r);
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
static void fire_fd_watch(struct io_loop *loop, int i, short revents)
{
	struct watch *w = &loop->watch[i];
	short fired = revents & (w->want | ALWAYS_REPORTED);

	if (!w->want || !fired || atomic_load(&loop->stop))
		return;
	w->want = 0;
	w->fd_cb(w->arg, fired);
}

static void fire_watch(struct io_loop *loop, int i)
{
	drain_eventfd(loop->watch[i].fd);
	if (i == 0)
		handle_wake(loop);
	else if (!atomic_load(&loop->stop))
		loop->watch[i].cb(loop->watch[i].arg);
}

static bool finished(struct io_loop *loop)
{
	return atomic_load(&loop->stop) && loop->inflight == 0;
}

static void uring_run(struct io_loop *loop)
{
	loop->ring_live = true;
	for (int i = 0; i < loop->nwatch; i++) {
		if (loop->watch[i].fd_cb)
			uring_fd_update(loop, i);
		else
			uring_arm_watch(loop, i);
	}
	uring_flush_pending(loop);
	while (!finished(loop)) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		int ret = io_uring_submit_and_wait(&loop->ring, 1);

		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			log_error("I/O loop: io_uring_enter: %s", strerror(-ret));
			break;
		}
		io_uring_for_each_cqe(&loop->ring, head, cqe) {
			uint64_t ud = io_uring_cqe_get_data64(cqe);
			n++;
			if ((ud & 1) && loop->watch[ud >> 2].fd_cb) {
				int i = (int)(ud >> 2);
				loop->watch[i].polling[(ud >> 1) & 1] = false;
				if (cqe->res < 0 && cqe->res != -ECANCELED)
					log_warn("I/O loop: polling fd %d: %s", loop->watch[i].fd,
						 strerror(-cqe->res));
				if (cqe->res >= 0)
					fire_fd_watch(loop, i, (short)cqe->res);
				uring_fd_update(loop, i);
				continue;
			}
			if (ud & 1) {
				int i = (int)(ud >> 2);
				if (cqe->res < 0 && cqe->res != -ECANCELED)
					log_warn("I/O loop: polling eventfd %d: %s", loop->watch[i].fd,
						 strerror(-cqe->res));
				if (cqe->res >= 0)
					fire_watch(loop, i);
				if (!atomic_load(&loop->stop) || i == 0)
					uring_arm_watch(loop, i);
				continue;
			}
			struct io_request *req = (struct io_request *)(uintptr_t)ud;
			if (account(req, cqe->res))
				complete(loop, req);
			else
				list_push(&loop->pending, req);
		}
		io_uring_cq_advance(&loop->ring, n);
		uring_flush_pending(loop);
	}
}

/*
 * io_uring_register(2) directly: liburing 2.3 as packaged declares
 * io_uring_register_restrictions() and io_uring_enable_rings() but does not
 * export them. Returns 0 or -errno.
 */
static int uring_register(struct io_loop *loop, unsigned op, void *arg, unsigned nr)
{
	long r = syscall(__NR_io_uring_register, loop->ring.ring_fd, op, arg, nr);

	return r < 0 ? -errno : 0;
}

/*
 * The ring's lock-down, part of the sandbox: only these operations, only on
 * registered files. Registered while the ring is still disabled; it takes
 * effect when uring_start() enables the ring.
 */
static int uring_lock_down(struct io_loop *loop)
{
	struct io_uring_restriction res[] = {
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_READV },
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_WRITEV },
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_FSYNC },
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_FALLOCATE },
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_POLL_ADD },
		{ .opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED, .sqe_flags = IOSQE_FIXED_FILE },
		{ .opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED, .sqe_flags = IOSQE_FIXED_FILE },
		/* For uring_release(): the only register calls made after the start (SYNC_CANCEL: Linux 6.0+). */
		{ .opcode = IORING_RESTRICTION_REGISTER_OP, .register_op = IORING_UNREGISTER_FILES },
		{ .opcode = IORING_RESTRICTION_REGISTER_OP, .register_op = IORING_REGISTER_SYNC_CANCEL },
	};
	unsigned nr = sizeof(res) / sizeof(res[0]);
	int ret = uring_register(loop, IORING_REGISTER_RESTRICTIONS, res, nr);

	/* A kernel before 6.0 refuses the whole set for the op it does not know: the rest still locks it down. */
	if (ret == -EINVAL)
		ret = uring_register(loop, IORING_REGISTER_RESTRICTIONS, res, nr - 1);
#ifdef MICROVM_TEST_HOOKS
	if (getenv(IO_LOOP_TEST_NO_LOCKDOWN_ENV))
		ret = -EINVAL;
#endif
	return ret;
}

static int uring_create(struct io_loop *loop)
{
	struct io_uring_params p = { .flags = IORING_SETUP_R_DISABLED };
	static const int needed[] = { IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC,
				      IORING_OP_FALLOCATE, IORING_OP_POLL_ADD };
	int ret = io_uring_queue_init_params(RING_ENTRIES, &loop->ring, &p);

	if (ret == -EINVAL) {
		loop->lockdown_failed = true;
		return err_set(EOPNOTSUPP, "io_uring: the kernel cannot start a ring disabled (Linux 5.10+), "
			       "so it cannot be locked down");
	}
	if (ret < 0)
		return err_set(-ret, "io_uring: %s", strerror(-ret));
	loop->ring_ready = true;

	struct io_uring_probe *probe = io_uring_get_probe_ring(&loop->ring);
	if (probe) {
		for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
			if (!io_uring_opcode_supported(probe, needed[i])) {
				io_uring_free_probe(probe);
				return err_set(EOPNOTSUPP, "io_uring: the kernel lacks opcode %d",
					       needed[i]);
			}
		}
		io_uring_free_probe(probe);
	}
	if ((ret = uring_lock_down(loop)) < 0) {
		loop->lockdown_failed = true;
		return err_set(-ret, "io_uring: the ring cannot be locked down (restrictions: %s)", strerror(-ret));
	}
	return 0;
}

static int uring_start(struct io_loop *loop)
{
	int fds[IO_LOOP_MAX_FILES + IO_LOOP_MAX_WATCHES];
	int n = 0, ret;

	for (int i = 0; i < loop->nfiles; i++)
		fds[n++] = loop->files[i];
	for (int i = 0; i < loop->nwatch; i++)
		fds[n++] = loop->watch[i].fd;
	if ((ret = io_uring_register_files(&loop->ring, fds, (unsigned)n)) < 0)
		return err_set(-ret, "io_uring: registering files: %s", strerror(-ret));
	loop->files_registered = true;
	if ((ret = uring_register(loop, IORING_REGISTER_ENABLE_RINGS, NULL, 0)) < 0)
		return err_set(-ret, "io_uring: enabling the ring: %s", strerror(-ret));
	return 0;
}

/* ---- sync engine ---- */

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
			r = fallocate(fd, fallocate_mode(req->op), (off_t)req->offset, (off_t)req->len);
			break;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (account(req, r < 0 ? -errno : r))
			return req->res_;
	}
}

static void *sync_worker(void *arg)
{
	struct io_loop *loop = arg;
	uint64_t one = 1;

	sandbox_enter(SANDBOX_IO);
	pthread_mutex_lock(&loop->lock);
	for (;;) {
		struct io_request *req = list_pop(&loop->work);
		if (!req) {
			if (loop->workers_stop)
				break;
			pthread_cond_wait(&loop->work_cond, &loop->lock);
			continue;
		}
		pthread_mutex_unlock(&loop->lock);
		sync_do(loop, req);
		pthread_mutex_lock(&loop->lock);
		list_push(&loop->done, req);
		if (write(loop->wake_fd, &one, sizeof(one)) < 0)
			log_warn("I/O worker: waking the loop: %s", strerror(errno));
	}
	pthread_mutex_unlock(&loop->lock);
	return NULL;
}

static void sync_run(struct io_loop *loop)
{
	struct pollfd p[IO_LOOP_MAX_WATCHES];

	while (!finished(loop)) {
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
		/* A callback may re-arm or disarm other watches: fire_fd_watch() looks at want again. */
		for (int i = 0; i < n; i++) {
			if (loop->watch[i].fd_cb)
				fire_fd_watch(loop, i, p[i].revents);
			else if (p[i].revents & (POLLIN | POLLERR | POLLHUP))
				fire_watch(loop, i);
		}
	}
}

/* ---- the public interface ---- */

static void *loop_thread(void *arg)
{
	struct io_loop *loop = arg;

	sandbox_enter(SANDBOX_IO);
	if (loop->engine == IO_ENGINE_URING)
		uring_run(loop);
	else
		sync_run(loop);
	/* Calls that raced with the end run here; later ones run in their caller. */
	pthread_mutex_lock(&loop->lock);
	loop->exited = true;
	pthread_mutex_unlock(&loop->lock);
	handle_wake(loop);
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
			err_prefix(-ret, "--io-engine uring");
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
			list_push(&loop->pending, req);
		return 0;
	}
	pthread_mutex_lock(&loop->lock);
	list_push(&loop->work, req);
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

/*
 * Give the registered files back before the ring goes. io_uring tears a ring
 * down in a kernel work item after close, so without this a tap stays
 * attached (busy for the next VM) for a moment after microvm exited. The
 * polls still outstanding pin the file table, so cancel them first; both
 * calls are synchronous. On kernels without SYNC_CANCEL (before 6.0) the
 * release stays asynchronous.
 */
static void uring_release(struct io_loop *loop)
{
	struct io_uring_sync_cancel_reg reg = {
		.flags = IORING_ASYNC_CANCEL_ANY,
		.timeout = { .tv_sec = 1 },
	};
	int ret;

	/* ANY cancels every request in one call; -ENOENT: there was none. */
	ret = uring_register(loop, IORING_REGISTER_SYNC_CANCEL, &reg, 1);
	if (ret < 0 && ret != -ENOENT) {
		log_debug("io_uring: cancelling outstanding polls: %s", strerror(-ret));
		return;
	}
	if ((ret = uring_register(loop, IORING_UNREGISTER_FILES, NULL, 0)) < 0)
		log_debug("io_uring: unregistering files: %s", strerror(-ret));
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
	if (loop->wake_fd >= 0)
		close(loop->wake_fd);
	pthread_cond_destroy(&loop->work_cond);
	pthread_cond_destroy(&loop->call_cond);
	pthread_mutex_destroy(&loop->lock);
	free(loop);
}
