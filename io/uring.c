/* uring.c - the io_uring engine of the I/O loop: one ring, locked down, registered files. */
#include "io/internal.h"
#include "base/err.h"
#include "base/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RING_ENTRIES 256

/* user_data of a watch's POLL_ADD: odd (requests are aligned pointers), then the sub-poll, then the index. */
#define WATCH_TAG(i, sub) (((uint64_t)(i) << 2) | ((uint64_t)(sub) << 1) | 1)

bool uring_prep(struct io_loop *loop, struct io_request *req)
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
		io_uring_prep_fallocate(sqe, req->file, io_fallocate_mode(req->op), (off_t)req->offset,
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
		io_list_pop(&loop->pending);
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
void uring_fd_update(struct io_loop *loop, int i)
{
	struct watch *w = &loop->watch[i];

	if (!loop->ring_live || atomic_load(&loop->stop))
		return;
	if ((w->want & POLLIN) && !w->polling[SUB_IN])
		w->polling[SUB_IN] = uring_poll(loop, i, SUB_IN, POLLIN);
	if ((w->want & POLLOUT) && !w->polling[SUB_OUT])
		w->polling[SUB_OUT] = uring_poll(loop, i, SUB_OUT, POLLOUT);
}

void uring_run(struct io_loop *loop)
{
	loop->ring_live = true;
	for (int i = 0; i < loop->nwatch; i++) {
		if (loop->watch[i].fd_cb)
			uring_fd_update(loop, i);
		else
			uring_arm_watch(loop, i);
	}
	uring_flush_pending(loop);
	while (!io_finished(loop)) {
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
					io_fire_fd_watch(loop, i, (short)cqe->res);
				uring_fd_update(loop, i);
				continue;
			}
			if (ud & 1) {
				int i = (int)(ud >> 2);
				if (cqe->res < 0 && cqe->res != -ECANCELED)
					log_warn("I/O loop: polling eventfd %d: %s", loop->watch[i].fd,
						 strerror(-cqe->res));
				if (cqe->res >= 0)
					io_fire_watch(loop, i);
				if (!atomic_load(&loop->stop) || i == 0)
					uring_arm_watch(loop, i);
				continue;
			}
			struct io_request *req = (struct io_request *)(uintptr_t)ud;
			if (io_account(req, cqe->res))
				io_complete(loop, req);
			else
				io_list_push(&loop->pending, req);
		}
		io_uring_cq_advance(&loop->ring, n);
		io_run_deferred(loop);
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

/*
 * The ring's setup flags besides R_DISABLED. COOP_TASKRUN (Linux 5.19): the
 * kernel does not interrupt the I/O thread with an IPI to post completions,
 * it posts them when the thread next enters the kernel, which this loop does
 * for every batch anyway (io_uring_submit_and_wait). SINGLE_ISSUER with
 * DEFER_TASKRUN was measured and not taken (docs/benchmarks.md). A test
 * hook turns COOP_TASKRUN off, for measuring it.
 */
static unsigned setup_flags(void)
{
#ifdef MICROVM_TEST_HOOKS
	const char *e = getenv(IO_LOOP_TEST_URING_SETUP_ENV);

	if (e && !strcmp(e, "none"))
		return 0;
#endif
	return IORING_SETUP_COOP_TASKRUN;
}

int uring_create(struct io_loop *loop)
{
	unsigned extra = setup_flags();
	struct io_uring_params p = { .flags = IORING_SETUP_R_DISABLED | extra };
	static const int needed[] = { IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC,
				      IORING_OP_FALLOCATE, IORING_OP_POLL_ADD };
	int ret = io_uring_queue_init_params(RING_ENTRIES, &loop->ring, &p);

	if (ret == -EINVAL && extra) {
		/* A kernel before 5.19 refuses COOP_TASKRUN: the ring works without it. */
		p = (struct io_uring_params){ .flags = IORING_SETUP_R_DISABLED };
		ret = io_uring_queue_init_params(RING_ENTRIES, &loop->ring, &p);
	}
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

int uring_start(struct io_loop *loop)
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

/*
 * Give the registered files back before the ring goes. io_uring tears a ring
 * down in a kernel work item after close, so without this a tap stays
 * attached (busy for the next VM) for a moment after microvm exited. The
 * polls still outstanding pin the file table, so cancel them first; both
 * calls are synchronous. On kernels without SYNC_CANCEL (before 6.0) the
 * release stays asynchronous.
 */
void uring_release(struct io_loop *loop)
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
