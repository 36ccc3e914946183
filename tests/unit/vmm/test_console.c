/* test_console.c - the console's output side: everything through to a reader, and a stdout that stalls or is gone. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "devices/serial.h"
#include "vmm/console.h"

static struct console con; /* large: not on the stack */
static struct serial ser;
static int fds[2];

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN); /* as microvm does (vmm/vm.c) */
	memset(&ser, 0, sizeof(ser));
	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	/* No input side (in_fd -1): only the writer thread runs. */
	cr_assert_eq(console_init(&con, &ser, -1, fds[1], NULL, NULL), 0);
	cr_assert_eq(console_start(&con), 0);
}

static void teardown(void)
{
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
}

/* .timeout: a console that blocks forever fails the test instead of hanging the suite. */
TestSuite(console, .init = setup, .fini = teardown, .timeout = 60);

struct reader {
	uint8_t *buf;
	size_t len, got;
};

static void *read_all(void *arg)
{
	struct reader *r = arg;

	while (r->got < r->len) {
		ssize_t n = read(fds[0], r->buf + r->got, r->len - r->got);
		if (n <= 0)
			break;
		r->got += (size_t)n;
	}
	return NULL;
}

Test(console, output_reaches_a_reader_in_order)
{
	size_t len = 3 * CONSOLE_OUT_RING; /* more than the ring holds: the writer must keep up */
	uint8_t *want = malloc(len);
	struct reader r = { .buf = calloc(1, len), .len = len };
	pthread_t t;

	cr_assert(want && r.buf);
	for (size_t i = 0; i < len; i++)
		want[i] = (uint8_t)(i * 7 + i / 251);
	cr_assert_eq(pthread_create(&t, NULL, read_all, &r), 0);
	for (size_t off = 0; off < len; off += 1000)
		console_output(&con, want + off, len - off < 1000 ? len - off : 1000);
	console_stop(&con);
	close(fds[1]);
	fds[1] = -1;
	pthread_join(t, NULL);
	cr_assert_eq(con.dropped, 0, "dropped %llu bytes with a reader", (unsigned long long)con.dropped);
	cr_assert_eq(r.got, len);
	cr_assert(memcmp(r.buf, want, len) == 0, "output reordered or corrupted");
	free(want);
	free(r.buf);
}

Test(console, full_pipe_nobody_reads_drops_and_stop_returns)
{
	uint8_t chunk[512];
	size_t total = 0;

	memset(chunk, 'x', sizeof(chunk));
	/* 4 MiB into a 64 KiB pipe that is never read, plus a 256 KiB ring: most must be dropped. */
	double t0 = now_s();
	for (int i = 0; i < 8192; i++) {
		console_output(&con, chunk, sizeof(chunk));
		total += sizeof(chunk);
	}
	double spent = now_s() - t0;
	/*
	 * Without the congestion rule each call would wait 20 ms: 8192 calls,
	 * 160 s. With it, only the first call after the ring fills waits. The
	 * bound is loose on purpose (shared machines); it catches the 160 s.
	 */
	cr_assert_lt(spent, 30.0, "queueing 4 MiB to a stalled stdout took %.1f s", spent);
	cr_assert_gt(con.dropped, 0);
	t0 = now_s();
	console_stop(&con); /* the writer is stuck in write(): stop must give up on it */
	spent = now_s() - t0;
	cr_assert_lt(spent, CONSOLE_STOP_WAIT_MS / 1000.0 + 20.0, "console_stop took %.1f s", spent);
	cr_assert_geq(spent, CONSOLE_STOP_WAIT_MS / 1000.0 - 0.1, "console_stop did not wait for stdout (%.2f s)",
		      spent);
	/* Everything is accounted for: in the pipe, or dropped. */
	int in_pipe = 0;
	cr_assert_eq(ioctl(fds[0], FIONREAD, &in_pipe), 0);
	cr_assert_eq((uint64_t)in_pipe + con.dropped, total, "pipe %d + dropped %llu != %zu", in_pipe,
		     (unsigned long long)con.dropped, total);
}

Test(console, output_after_the_reader_closed_is_dropped)
{
	uint8_t chunk[4096];

	close(fds[0]);
	fds[0] = -1;
	memset(chunk, 'y', sizeof(chunk));
	for (int i = 0; i < 256; i++)
		console_output(&con, chunk, sizeof(chunk)); /* EPIPE: the writer drops from then on */
	console_stop(&con);
	cr_assert_eq(con.dropped, 256 * sizeof(chunk), "dropped %llu", (unsigned long long)con.dropped);
}
