/* test_ioloop.c - the I/O thread on both engines: file I/O, out-of-order completions, calls, watches, errors, shutdown. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "io/ioloop.h"

#define NREQ 64
#define CHUNK 4096

struct ctx {
	struct io_loop *loop;
	struct io_request req[NREQ];
	struct iovec iov[NREQ][2];
	int64_t result[NREQ];
	atomic_int done;
	int order[NREQ];
	pthread_t loop_thread;
	bool done_on_loop_thread;
};

static void on_done(struct io_request *r, int64_t res)
{
	struct ctx *c = r->priv;
	int i = (int)(r - c->req);

	c->result[i] = res;
	c->order[atomic_load(&c->done)] = i;
	if (!pthread_equal(pthread_self(), c->loop_thread))
		c->done_on_loop_thread = false;
	atomic_fetch_add(&c->done, 1);
}

static void note_thread(void *arg)
{
	struct ctx *c = arg;
	c->loop_thread = pthread_self();
}

/* Submit requests [from, to) on the loop thread. */
struct batch {
	struct ctx *c;
	int from, to;
	int ret;
};

static void submit_batch(void *arg)
{
	struct batch *b = arg;

	for (int i = b->from; i < b->to && !b->ret; i++)
		b->ret = io_loop_submit(b->c->loop, &b->c->req[i]);
}

static void submit(struct ctx *c, int from, int to)
{
	struct batch b = { .c = c, .from = from, .to = to };

	cr_assert_eq(io_loop_call(c->loop, submit_batch, &b), 0);
	cr_assert_eq(b.ret, 0);
}

static void wait_done(struct ctx *c, int n)
{
	for (int i = 0; i < 5000 && atomic_load(&c->done) < n; i++)
		usleep(1000);
	cr_assert_eq(atomic_load(&c->done), n, "%d of %d requests completed", atomic_load(&c->done), n);
}

static char tmpl[64];

static int temp_file(size_t size)
{
	strcpy(tmpl, "/tmp/microvm-ioloop-XXXXXX");
	int fd = mkstemp(tmpl);
	cr_assert_geq(fd, 0);
	unlink(tmpl);
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	return fd;
}

static bool setup(struct ctx *c, enum io_engine e, int *fds, int nfds, int *idx)
{
	memset(c, 0, sizeof(*c));
	int ret = io_loop_create(&c->loop, e);
	if (ret < 0 && e == IO_ENGINE_URING)
		return false;
	cr_assert_eq(ret, 0, "%s", err_msg());
	cr_assert_eq(io_loop_engine(c->loop), e);
	for (int i = 0; i < nfds; i++)
		idx[i] = io_loop_register_file(c->loop, fds[i]);
	return true;
}

static void start(struct ctx *c)
{
	cr_assert_eq(io_loop_start(c->loop), 0, "%s", err_msg());
	io_loop_call(c->loop, note_thread, c);
	c->done_on_loop_thread = true;
}

static void rw_req(struct ctx *c, int i, enum io_op op, int file, void *buf, size_t len, uint64_t off)
{
	/* Two iovecs per request, to exercise scatter/gather. */
	c->iov[i][0] = (struct iovec){ .iov_base = buf, .iov_len = len / 2 };
	c->iov[i][1] = (struct iovec){ .iov_base = (char *)buf + len / 2, .iov_len = len - len / 2 };
	c->req[i] = (struct io_request){ .op = op, .file = file, .iov = c->iov[i], .iovcnt = 2,
					 .offset = off, .done = on_done, .priv = c };
}

static void test_readwrite(enum io_engine e)
{
	struct ctx c;
	int fd = temp_file(NREQ * CHUNK), idx;
	static uint8_t wbuf[NREQ][CHUNK], rbuf[NREQ][CHUNK];

	if (!setup(&c, e, &fd, 1, &idx))
		cr_skip_test("io_uring unavailable here: %s", err_msg());
	cr_assert_eq(idx, 0);
	start(&c);
	for (int i = 0; i < NREQ; i++) {
		memset(wbuf[i], 'a' + i % 26, CHUNK);
		rw_req(&c, i, IO_OP_WRITE, idx, wbuf[i], CHUNK, (uint64_t)i * CHUNK);
	}
	submit(&c, 0, NREQ); /* all in flight at once */
	wait_done(&c, NREQ);
	for (int i = 0; i < NREQ; i++)
		cr_assert_eq(c.result[i], CHUNK);

	atomic_store(&c.done, 0);
	c.req[0] = (struct io_request){ .op = IO_OP_FLUSH, .file = idx, .done = on_done, .priv = &c };
	submit(&c, 0, 1);
	wait_done(&c, 1);
	cr_assert_eq(c.result[0], 0);

	atomic_store(&c.done, 0);
	for (int i = 0; i < NREQ; i++)
		rw_req(&c, i, IO_OP_READ, idx, rbuf[NREQ - 1 - i], CHUNK,
		       (uint64_t)(NREQ - 1 - i) * CHUNK);
	submit(&c, 0, NREQ);
	wait_done(&c, NREQ);
	for (int i = 0; i < NREQ; i++)
		cr_assert_eq(c.result[i], CHUNK);
	cr_assert_eq(memcmp(wbuf, rbuf, sizeof(wbuf)), 0);
	cr_assert(c.done_on_loop_thread, "done() runs on the I/O thread");

	/* Discard the first chunk and zero the second: both read back as zeroes. */
	atomic_store(&c.done, 0);
	c.req[0] = (struct io_request){ .op = IO_OP_DISCARD, .file = idx, .offset = 0, .len = CHUNK,
					.done = on_done, .priv = &c };
	c.req[1] = (struct io_request){ .op = IO_OP_WRITE_ZEROES, .file = idx, .offset = CHUNK,
					.len = CHUNK, .done = on_done, .priv = &c };
	submit(&c, 0, 2);
	wait_done(&c, 2);
	cr_assert_eq(c.result[0], 0, "discard: %lld", (long long)c.result[0]);
	/* tmpfs has no ZERO_RANGE; the device falls back itself. */
	cr_assert(c.result[1] == 0 || c.result[1] == -EOPNOTSUPP);
	uint8_t back[CHUNK], zero[CHUNK] = { 0 };
	cr_assert_eq(pread(fd, back, CHUNK, 0), CHUNK);
	cr_assert_eq(memcmp(back, zero, CHUNK), 0);
	if (c.result[1] == 0) {
		cr_assert_eq(pread(fd, back, CHUNK, CHUNK), CHUNK);
		cr_assert_eq(memcmp(back, zero, CHUNK), 0);
	}
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, NREQ * CHUNK, "KEEP_SIZE");
	io_loop_destroy(c.loop);
	close(fd);
}

Test(ioloop_uring, readwrite) { test_readwrite(IO_ENGINE_URING); }
Test(ioloop_sync, readwrite) { test_readwrite(IO_ENGINE_SYNC); }

static void test_errors(enum io_engine e)
{
	struct ctx c;
	int rw = temp_file(CHUNK);
	int ro;
	char path[64];
	uint8_t buf[2 * CHUNK];
	int fds[2], idx[2];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", rw);
	ro = open(path, O_RDONLY);
	cr_assert_geq(ro, 0);
	fds[0] = rw, fds[1] = ro;
	if (!setup(&c, e, fds, 2, idx))
		cr_skip_test("io_uring unavailable here");
	start(&c);
	/* A write to a read-only descriptor: -EBADF. */
	rw_req(&c, 0, IO_OP_WRITE, idx[1], buf, CHUNK, 0);
	/* A read crossing the end of the file: never reported as a success. */
	rw_req(&c, 1, IO_OP_READ, idx[0], buf, 2 * CHUNK, 0);
	/* A read entirely past the end: -EIO too. */
	rw_req(&c, 2, IO_OP_READ, idx[0], buf, CHUNK, 10 * CHUNK);
	submit(&c, 0, 3);
	wait_done(&c, 3);
	cr_assert_eq(c.result[0], -EBADF);
	cr_assert_eq(c.result[1], -EIO);
	cr_assert_eq(c.result[2], -EIO);

	/* Bad file index: refused at submission. */
	struct batch b = { .c = &c, .from = 3, .to = 4 };
	rw_req(&c, 3, IO_OP_READ, 7, buf, CHUNK, 0);
	io_loop_call(c.loop, submit_batch, &b);
	cr_assert_eq(b.ret, -EINVAL);
	io_loop_destroy(c.loop);
	close(rw);
	close(ro);
}

Test(ioloop_uring, errors) { test_errors(IO_ENGINE_URING); }
Test(ioloop_sync, errors) { test_errors(IO_ENGINE_SYNC); }

struct watch_ctx {
	atomic_int fired;
	pthread_t thread;
};

static void on_watch(void *arg)
{
	struct watch_ctx *w = arg;
	w->thread = pthread_self();
	atomic_fetch_add(&w->fired, 1);
}

static void test_watch_and_call(enum io_engine e)
{
	struct ctx c;
	struct watch_ctx w = { 0 };
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	uint64_t one = 1;

	if (!setup(&c, e, NULL, 0, NULL))
		cr_skip_test("io_uring unavailable here");
	cr_assert_eq(io_loop_watch_eventfd(c.loop, efd, on_watch, &w), 0);
	start(&c);
	cr_assert_not(pthread_equal(c.loop_thread, pthread_self()), "calls run on the I/O thread");
	for (int round = 1; round <= 3; round++) {
		cr_assert_eq(write(efd, &one, sizeof(one)), 8);
		for (int i = 0; i < 5000 && atomic_load(&w.fired) < round; i++)
			usleep(1000);
		cr_assert_eq(atomic_load(&w.fired), round, "watch re-armed after each signal");
	}
	cr_assert(pthread_equal(w.thread, c.loop_thread));
	/* Watches and files are fixed once the loop runs. */
	cr_assert_eq(io_loop_watch_eventfd(c.loop, efd, on_watch, &w), -EBUSY);
	cr_assert_eq(io_loop_register_file(c.loop, efd), -EBUSY);
	io_loop_destroy(c.loop);
	close(efd);
}

Test(ioloop_uring, watch_and_call) { test_watch_and_call(IO_ENGINE_URING); }
Test(ioloop_sync, watch_and_call) { test_watch_and_call(IO_ENGINE_SYNC); }

/* Destroy right after submitting: every done() still runs, before destroy returns. */
static void test_destroy_completes(enum io_engine e)
{
	struct ctx c;
	int fd = temp_file(NREQ * CHUNK), idx;
	static uint8_t buf[NREQ][CHUNK];

	if (!setup(&c, e, &fd, 1, &idx))
		cr_skip_test("io_uring unavailable here");
	start(&c);
	for (int i = 0; i < NREQ; i++)
		rw_req(&c, i, IO_OP_WRITE, idx, buf[i], CHUNK, (uint64_t)i * CHUNK);
	submit(&c, 0, NREQ);
	io_loop_destroy(c.loop);
	cr_assert_eq(atomic_load(&c.done), NREQ);
	for (int i = 0; i < NREQ; i++)
		cr_assert_eq(c.result[i], CHUNK);
	close(fd);
}

Test(ioloop_uring, destroy_completes_inflight) { test_destroy_completes(IO_ENGINE_URING); }
Test(ioloop_sync, destroy_completes_inflight) { test_destroy_completes(IO_ENGINE_SYNC); }

/* Requests queued before the start run once the loop starts. */
static void test_submit_before_start(enum io_engine e)
{
	struct ctx c;
	int fd = temp_file(CHUNK), idx;
	uint8_t buf[CHUNK];

	if (!setup(&c, e, &fd, 1, &idx))
		cr_skip_test("io_uring unavailable here");
	rw_req(&c, 0, IO_OP_READ, idx, buf, CHUNK, 0);
	cr_assert_eq(io_loop_submit(c.loop, &c.req[0]), 0);
	start(&c);
	wait_done(&c, 1);
	cr_assert_eq(c.result[0], CHUNK);
	io_loop_destroy(c.loop);
	close(fd);
}

Test(ioloop_uring, submit_before_start) { test_submit_before_start(IO_ENGINE_URING); }
Test(ioloop_sync, submit_before_start) { test_submit_before_start(IO_ENGINE_SYNC); }

static void inc(void *a)
{
	(*(int *)a)++;
}

Test(ioloop, auto_and_names)
{
	struct io_loop *l;

	cr_assert_eq(io_loop_create(&l, IO_ENGINE_AUTO), 0);
	cr_assert_neq(io_loop_engine(l), IO_ENGINE_AUTO);
	/* Never started: destroy still cleans up; calls run directly. */
	int x = 0;
	cr_assert_eq(io_loop_call(l, inc, &x), 0);
	cr_assert_eq(x, 1);
	io_loop_destroy(l);
	io_loop_destroy(NULL);
	cr_assert_str_eq(io_engine_name(IO_ENGINE_URING), "io_uring");
	cr_assert_str_eq(io_engine_name(IO_ENGINE_SYNC), "sync");
	cr_assert_str_eq(io_engine_name(IO_ENGINE_AUTO), "auto");
}

/* Like a container profile: io_uring_setup fails with EPERM (this test runs in its own process). */
static void forbid_io_uring(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	cr_assert_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	cr_assert_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
}

Test(ioloop, auto_falls_back_when_io_uring_is_forbidden)
{
	struct io_loop *l;

	forbid_io_uring();
	cr_assert_eq(io_loop_create(&l, IO_ENGINE_URING), -EPERM);
	/* What failed, without the flag: vmm/devices.c prefixes "--io-engine uring: ". */
	cr_assert(!strncmp(err_msg(), "io_uring: ", 10), "%s", err_msg());
	cr_assert_null(l);
	cr_assert_eq(io_loop_create(&l, IO_ENGINE_AUTO), 0);
	cr_assert_eq(io_loop_engine(l), IO_ENGINE_SYNC);
	io_loop_destroy(l);
}

/* ---- one-shot fd watches (io_loop_watch_fd / io_loop_arm) over a socketpair ---- */

struct fdw {
	struct io_loop *loop;
	int id;
	int sv[2];                      /* sv[0] watched, sv[1] the peer */
	atomic_int fired;
	atomic_int revents;             /* of the last callback */
	atomic_int rearm;               /* re-arm with this from the callback (0: no) */
	pthread_t thread;
};

static void on_fd(void *arg, short revents)
{
	struct fdw *w = arg;

	w->thread = pthread_self();
	atomic_store(&w->revents, revents);
	atomic_fetch_add(&w->fired, 1);
	if (atomic_load(&w->rearm))
		io_loop_arm(w->loop, w->id, (short)atomic_load(&w->rearm));
}

struct arm_args {
	struct fdw *w;
	short events;
};

static void do_arm(void *arg)
{
	struct arm_args *a = arg;
	io_loop_arm(a->w->loop, a->w->id, a->events);
}

/* Arm on the I/O thread (the contract), and wait for it to have happened. */
static void arm(struct fdw *w, short events)
{
	struct arm_args a = { .w = w, .events = events };
	cr_assert_eq(io_loop_call(w->loop, do_arm, &a), 0);
}

static void wait_fired(struct fdw *w, int n)
{
	for (int i = 0; i < 5000 && atomic_load(&w->fired) < n; i++)
		usleep(1000);
	cr_assert_eq(atomic_load(&w->fired), n, "fired %d times, want %d", atomic_load(&w->fired), n);
}

static void noop(void *arg)
{
	(void)arg;
}

/*
 * Nothing more fires: let the loop go round a few times and give it a little
 * time. (This can only miss a wrong callback, never fail a right run.)
 */
static void assert_quiet(struct fdw *w, int n)
{
	for (int i = 0; i < 3; i++) {
		usleep(10000);
		io_loop_call(w->loop, noop, NULL);
	}
	cr_assert_eq(atomic_load(&w->fired), n, "fired %d times, want %d", atomic_load(&w->fired), n);
}

static bool fdw_setup(struct fdw *w, enum io_engine e)
{
	memset(w, 0, sizeof(*w));
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, w->sv), 0);
	int ret = io_loop_create(&w->loop, e);
	if (ret < 0 && e == IO_ENGINE_URING)
		return false;
	cr_assert_eq(ret, 0, "%s", err_msg());
	w->id = io_loop_watch_fd(w->loop, w->sv[0], on_fd, w);
	cr_assert_geq(w->id, 0, "%s", err_msg());
	return true;
}

static void fdw_teardown(struct fdw *w)
{
	io_loop_destroy(w->loop);
	close(w->sv[0]);
	close(w->sv[1]);
}

static void peer_send(struct fdw *w)
{
	cr_assert_eq(write(w->sv[1], "x", 1), 1);
}

static void test_fd_watch(enum io_engine e)
{
	struct fdw w;
	char buf[8];

	if (!fdw_setup(&w, e))
		cr_skip_test("io_uring unavailable here");
	cr_assert_eq(io_loop_start(w.loop), 0, "%s", err_msg());

	/* Starts disarmed: a readable fd calls nobody. */
	peer_send(&w);
	assert_quiet(&w, 0);

	/* Armed: fires once, on the I/O thread, with POLLIN. */
	arm(&w, POLLIN);
	wait_fired(&w, 1);
	cr_assert_eq(atomic_load(&w.revents), POLLIN);
	cr_assert_not(pthread_equal(w.thread, pthread_self()));

	/* Disarmed after the callback: still readable, but quiet. */
	assert_quiet(&w, 1);

	/* Re-armed while still readable: fires again at once (level, no lost wake-up). */
	arm(&w, POLLIN);
	wait_fired(&w, 2);
	cr_assert_eq(read(w.sv[0], buf, sizeof(buf)), 1);

	/* Nothing to read: armed for POLLIN, quiet; widened to POLLIN|POLLOUT: POLLOUT fires. */
	arm(&w, POLLIN);
	assert_quiet(&w, 2);
	arm(&w, POLLIN | POLLOUT);
	wait_fired(&w, 3);
	cr_assert_eq(atomic_load(&w.revents), POLLOUT);

	/* Changed from POLLIN to POLLOUT alone: POLLOUT fires, POLLIN is not reported. */
	arm(&w, POLLIN);
	arm(&w, POLLOUT);
	wait_fired(&w, 4);
	cr_assert_eq(atomic_load(&w.revents), POLLOUT);

	/* Back to POLLIN (an old POLLIN poll may still be outstanding on io_uring): data wakes it. */
	arm(&w, POLLIN);
	assert_quiet(&w, 4);
	peer_send(&w);
	wait_fired(&w, 5);
	cr_assert_eq(atomic_load(&w.revents), POLLIN);
	cr_assert_eq(read(w.sv[0], buf, sizeof(buf)), 1);

	/* Armed then disarmed (0): data arrives, nobody is called; armed again: it is. */
	arm(&w, POLLIN);
	arm(&w, 0);
	peer_send(&w);
	assert_quiet(&w, 5);
	arm(&w, POLLIN);
	wait_fired(&w, 6);
	cr_assert_eq(read(w.sv[0], buf, sizeof(buf)), 1);

	/* Hang-up is reported even when only POLLIN is armed. */
	arm(&w, POLLIN);
	close(w.sv[1]);
	w.sv[1] = -1;
	wait_fired(&w, 7);
	cr_assert(atomic_load(&w.revents) & POLLHUP, "revents 0x%x", atomic_load(&w.revents));

	/* Watches are fixed once the loop runs. */
	cr_assert_eq(io_loop_watch_fd(w.loop, w.sv[0], on_fd, &w), -EBUSY);
	fdw_teardown(&w);
}

Test(ioloop_uring, fd_watch) { test_fd_watch(IO_ENGINE_URING); }
Test(ioloop_sync, fd_watch) { test_fd_watch(IO_ENGINE_SYNC); }

/* Armed before the start: the callback comes once the loop runs. */
static void test_fd_watch_before_start(enum io_engine e)
{
	struct fdw w;

	if (!fdw_setup(&w, e))
		cr_skip_test("io_uring unavailable here");
	io_loop_arm(w.loop, w.id, POLLIN);
	peer_send(&w);
	cr_assert_eq(io_loop_start(w.loop), 0, "%s", err_msg());
	wait_fired(&w, 1);
	cr_assert_eq(atomic_load(&w.revents), POLLIN);
	fdw_teardown(&w);
}

Test(ioloop_uring, fd_watch_armed_before_start) { test_fd_watch_before_start(IO_ENGINE_URING); }
Test(ioloop_sync, fd_watch_armed_before_start) { test_fd_watch_before_start(IO_ENGINE_SYNC); }

/* Stop with a watch armed, one that fires all the time (re-armed for POLLOUT from its callback). */
static void test_fd_watch_stop(enum io_engine e)
{
	struct fdw w;

	if (!fdw_setup(&w, e))
		cr_skip_test("io_uring unavailable here");
	atomic_store(&w.rearm, POLLOUT);
	cr_assert_eq(io_loop_start(w.loop), 0, "%s", err_msg());
	arm(&w, POLLOUT);
	for (int i = 0; i < 5000 && atomic_load(&w.fired) < 100; i++)
		usleep(1000);
	cr_assert_geq(atomic_load(&w.fired), 100, "re-armed from its callback: fires again");
	io_loop_destroy(w.loop);
	int after = atomic_load(&w.fired);
	usleep(20000);
	cr_assert_eq(atomic_load(&w.fired), after, "no callback after destroy returned");
	close(w.sv[0]);
	close(w.sv[1]);
}

Test(ioloop_uring, fd_watch_stop_while_armed) { test_fd_watch_stop(IO_ENGINE_URING); }
Test(ioloop_sync, fd_watch_stop_while_armed) { test_fd_watch_stop(IO_ENGINE_SYNC); }

/* Misuse: bad arguments, a bad id, arming from another thread while the loop runs. */
Test(ioloop_sync, fd_watch_misuse)
{
	struct fdw w;

	fdw_setup(&w, IO_ENGINE_SYNC);
	cr_assert_eq(io_loop_watch_fd(w.loop, -1, on_fd, &w), -EINVAL);
	cr_assert_eq(io_loop_watch_fd(w.loop, w.sv[0], NULL, &w), -EINVAL);
	io_loop_arm(w.loop, 0, POLLIN);      /* the loop's own wake eventfd: refused */
	io_loop_arm(w.loop, 999, POLLIN);
	cr_assert_eq(io_loop_start(w.loop), 0, "%s", err_msg());
	peer_send(&w);
	io_loop_arm(w.loop, w.id, POLLIN);   /* not the I/O thread: ignored */
	assert_quiet(&w, 0);
	arm(&w, POLLIN);
	wait_fired(&w, 1);
	fdw_teardown(&w);
}

/*
 * io_uring without its lock-down (an old kernel, or restrictions refused;
 * simulated by the test hook): an explicit uring is refused with the reason,
 * auto falls back to the sync engine, and --host-info's line says so.
 */
#ifdef MICROVM_TEST_HOOKS   /* MICROVM_TEST_URING_NO_LOCKDOWN */
Test(ioloop_uring, no_lockdown_no_uring)
{
	struct io_loop *loop;
	char line[256];

	if (io_loop_create(&loop, IO_ENGINE_URING) < 0)
		cr_skip_test("io_uring unavailable here: %s", err_msg());
	io_loop_destroy(loop);
	cr_assert(strstr(io_loop_uring_status(line, sizeof(line)), "locked down"), "%s", line);

	setenv(IO_LOOP_TEST_NO_LOCKDOWN_ENV, "1", 1);
	err_clear();
	cr_assert_lt(io_loop_create(&loop, IO_ENGINE_URING), 0, "an unrestricted ring was accepted");
	cr_assert(strstr(err_msg(), "cannot be locked down"), "%s", err_msg());
	cr_assert_eq(io_loop_create(&loop, IO_ENGINE_AUTO), 0);
	cr_assert_eq(io_loop_engine(loop), IO_ENGINE_SYNC, "auto used io_uring without its lock-down");
	io_loop_destroy(loop);
	io_loop_uring_status(line, sizeof(line));
	cr_assert(strstr(line, "not used") && strstr(line, "cannot be locked down"), "%s", line);
	unsetenv(IO_LOOP_TEST_NO_LOCKDOWN_ENV);
}
#endif

/* ---- timers (io_loop_timer): one shot, replaced, cancelled, on the I/O thread ---- */

struct timer_ctx {
	struct io_loop *loop;
	int id[2];
	atomic_int fired[2];
	atomic_bool on_loop_thread;
	uint64_t set_ns[2];
};

static void timer_cb0(void *arg)
{
	struct timer_ctx *t = arg;
	/* io_loop_call() from the callback runs at once only on the I/O thread itself. */
	atomic_store(&t->on_loop_thread, true);
	atomic_fetch_add(&t->fired[0], 1);
}

static void timer_cb1(void *arg)
{
	struct timer_ctx *t = arg;
	atomic_fetch_add(&t->fired[1], 1);
}

/* (io) Set both timers; UINT64_MAX leaves one as it is. */
static void timer_set_both(void *arg)
{
	struct timer_ctx *t = arg;
	for (int i = 0; i < 2; i++)
		if (t->set_ns[i] != UINT64_MAX)
			io_loop_timer_set(t->loop, t->id[i], t->set_ns[i]);
}

/*
 * (io) Two settings in one call on the I/O thread: the loop cannot fire a timer between
 * them, so the test does not depend on how soon a second call would come (a loaded host).
 */
static void timer_set_twice(void *arg)
{
	struct timer_ctx *t = arg;
	io_loop_timer_set(t->loop, t->id[0], 1000000);     /* 1 ms, replaced below */
	io_loop_timer_set(t->loop, t->id[1], 20000000);    /* 20 ms, cancelled below */
	io_loop_timer_set(t->loop, t->id[0], t->set_ns[0]);
	io_loop_timer_set(t->loop, t->id[1], t->set_ns[1]);
}

static void test_timers(enum io_engine e)
{
	static struct timer_ctx t;

	memset(&t, 0, sizeof(t));
	if (io_loop_create(&t.loop, e) < 0)
		cr_skip_test("io_uring unavailable here");
	cr_assert_eq(t.id[0] = io_loop_timer(t.loop, timer_cb0, &t), 0);
	cr_assert_eq(t.id[1] = io_loop_timer(t.loop, timer_cb1, &t), 1);
	cr_assert_eq(io_loop_start(t.loop), 0);
	cr_assert_eq(io_loop_timer(t.loop, timer_cb0, &t), -EBUSY, "timers are made before the start");

	/* Timer 0 in 30 ms; timer 1 set to 20 ms, then cancelled: only timer 0 fires, once. */
	t.set_ns[0] = 30000000;
	t.set_ns[1] = 0;
	io_loop_call(t.loop, timer_set_twice, &t);
	for (int i = 0; i < 2000 && !atomic_load(&t.fired[0]); i++)
		usleep(1000);
	usleep(100000);
	cr_assert_eq(atomic_load(&t.fired[0]), 1, "one shot");
	cr_assert_eq(atomic_load(&t.fired[1]), 0, "a cancelled timer never fires");
	cr_assert(atomic_load(&t.on_loop_thread));

	/* Re-set: a later time (500 ms) replaces an earlier one (1 ms); it fires again. */
	t.set_ns[0] = 500000000;
	t.set_ns[1] = 0;
	io_loop_call(t.loop, timer_set_twice, &t);
	t.set_ns[0] = UINT64_MAX;
	t.set_ns[1] = 1;
	io_loop_call(t.loop, timer_set_both, &t);
	usleep(40000);
	cr_assert_eq(atomic_load(&t.fired[0]), 1, "the 1 ms setting was replaced by 500 ms");
	for (int i = 0; i < 5000 && atomic_load(&t.fired[0]) < 2; i++)
		usleep(1000);
	cr_assert_eq(atomic_load(&t.fired[0]), 2);
	cr_assert_eq(atomic_load(&t.fired[1]), 1, "1 ns: fires at once");
	io_loop_destroy(t.loop);
}

Test(ioloop_uring, timers, .timeout = 20) { test_timers(IO_ENGINE_URING); }
Test(ioloop_sync, timers, .timeout = 20) { test_timers(IO_ENGINE_SYNC); }

/* ---- io_loop_defer(): once per batch, after the batch's done() callbacks ---- */

struct dctx {
	struct ctx c;
	struct io_deferred d, chained;
	int uncovered;                  /* done() calls since the last deferred run (loop thread) */
	int covered;                    /* done() calls a deferred run came after */
	atomic_int runs, chained_runs;
	bool off_thread;
};

static void d_done(struct io_request *r, int64_t res)
{
	struct dctx *x = r->priv;

	x->c.result[r - x->c.req] = res;
	x->uncovered++;
	/* Twice on purpose: a deferred call already queued runs once. */
	io_loop_defer(x->c.loop, &x->d);
	io_loop_defer(x->c.loop, &x->d);
	atomic_fetch_add(&x->c.done, 1);
}

static void d_chained(void *arg)
{
	struct dctx *x = arg;

	atomic_fetch_add(&x->chained_runs, 1);
}

static void d_run(void *arg)
{
	struct dctx *x = arg;

	if (!pthread_equal(pthread_self(), x->c.loop_thread))
		x->off_thread = true;
	cr_assert_gt(x->uncovered, 0, "a deferred call ran without a done() before it");
	x->covered += x->uncovered;
	x->uncovered = 0;
	atomic_fetch_add(&x->runs, 1);
	/* Deferring from a deferred call: it runs before the loop sleeps. */
	io_loop_defer(x->c.loop, &x->chained);
}

static void test_defer(enum io_engine e)
{
	static struct dctx x;
	static uint8_t buf[NREQ][CHUNK];
	int fd = temp_file(NREQ * CHUNK), idx;

	memset(&x, 0, sizeof(x));
	if (!setup(&x.c, e, &fd, 1, &idx)) {
		close(fd);
		cr_skip_test("io_uring unavailable here");
	}
	x.d = (struct io_deferred){ .fn = d_run, .arg = &x };
	x.chained = (struct io_deferred){ .fn = d_chained, .arg = &x };
	start(&x.c);
	for (int i = 0; i < NREQ; i++) {
		memset(buf[i], i, CHUNK);
		rw_req(&x.c, i, IO_OP_WRITE, idx, buf[i], CHUNK, (uint64_t)i * CHUNK);
		x.c.req[i].done = d_done;
		x.c.req[i].priv = &x;
	}
	submit(&x.c, 0, NREQ);
	wait_done(&x.c, NREQ);
	/* The last batch's deferred call runs right after its done() calls: wait for it on the loop thread. */
	io_loop_call(x.c.loop, noop, NULL);
	for (int i = 0; i < NREQ; i++)
		cr_assert_eq(x.c.result[i], CHUNK);
	int runs = atomic_load(&x.runs);
	cr_assert_eq(x.covered, NREQ, "every done() is followed by a deferred run (%d of %d)", x.covered, NREQ);
	cr_assert_geq(runs, 1);
	cr_assert_leq(runs, NREQ);
	cr_assert_eq(atomic_load(&x.chained_runs), runs);
	cr_assert(!x.off_thread);
	io_loop_destroy(x.c.loop);
	close(fd);
}

Test(ioloop_uring, defer_once_per_batch) { test_defer(IO_ENGINE_URING); }
Test(ioloop_sync, defer_once_per_batch) { test_defer(IO_ENGINE_SYNC); }
