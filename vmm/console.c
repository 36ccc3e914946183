/* console.c - guest serial output to stdout, stdin to the guest, raw terminal mode, Ctrl-A x. */
#include "vmm/console.h"
#include "base/err.h"
#include "base/log.h"
#include "vmm/sandbox/sandbox.h"
#include "vmm/stats.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define CTRL_A 0x01

int console_init(struct console *c, struct serial *s, int in_fd, int out_fd,
		 void (*quit)(void *ctx), void *quit_ctx)
{
	memset(c, 0, sizeof(*c));
	c->in_fd = in_fd;
	c->out_fd = out_fd;
	c->serial = s;
	c->quit = quit;
	c->quit_ctx = quit_ctx;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->abandon_efd = -1;
	c->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->stop_efd < 0)
		return err_set(errno, "eventfd: %s", strerror(errno));
	c->abandon_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->abandon_efd < 0)
		return err_set(errno, "eventfd: %s", strerror(errno));
	if (in_fd >= 0 && isatty(in_fd) && tcgetattr(in_fd, &c->saved) == 0) {
		struct termios raw = c->saved;
		cfmakeraw(&raw);
		/* Keep output post-processing as it was: the guest's "\r\n" passes unchanged anyway. */
		raw.c_oflag = c->saved.c_oflag;
		if (tcsetattr(in_fd, TCSANOW, &raw) == 0)
			c->tty = true;
	}
	return 0;
}

static void tail_add_locked(struct console *c, const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		c->tail[c->tail_pos++] = buf[i];
		if (c->tail_pos == CONSOLE_TAIL) {
			c->tail_pos = 0;
			c->tail_full = true;
		}
	}
}

void console_output(void *ctx, const uint8_t *buf, size_t len)
{
	struct console *c = ctx;
	struct timespec deadline = { 0 };   /* read the clock only when the ring is full (rare) */

	pthread_mutex_lock(&c->lock);
	tail_add_locked(c, buf, len);
	/* Stdout stalled before: drop at once until the writer has made room again. */
	if (c->congested && c->count > CONSOLE_OUT_RING / 2) {
		c->dropped += len;
		pthread_mutex_unlock(&c->lock);
		return;
	}
	c->congested = false;
	for (size_t i = 0; i < len; i++) {
		while (c->count == CONSOLE_OUT_RING && !c->stop) {
			if (!deadline.tv_sec)
				deadline = stats_deadline_ts(CLOCK_REALTIME, 20);
			if (pthread_cond_timedwait(&c->cond, &c->lock, &deadline) == ETIMEDOUT)
				break;
		}
		if (c->count == CONSOLE_OUT_RING) {
			c->dropped += len - i;
			c->congested = true;
			break;
		}
		c->ring[(c->head + c->count) % CONSOLE_OUT_RING] = buf[i];
		c->count++;
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* Write out what is queued; returns false when stdout is gone (EPIPE etc.). */
static bool drain_locked(struct console *c)
{
	while (c->count) {
		size_t n = c->count;
		if (c->head + n > CONSOLE_OUT_RING)
			n = CONSOLE_OUT_RING - c->head;
		/* At most PIPE_BUF: once poll() says a pipe has room, the write cannot block. */
		uint8_t chunk[PIPE_BUF];
		if (n > sizeof(chunk))
			n = sizeof(chunk);
		memcpy(chunk, &c->ring[c->head], n);
		/*
		 * Write without the lock so vCPUs can keep queueing, and only once
		 * stdout has room, so console_stop() can make the thread give up on
		 * a stdout nobody reads (abandon_efd).
		 */
		pthread_mutex_unlock(&c->lock);
		struct pollfd p[2] = {
			{ .fd = c->out_fd, .events = POLLOUT },
			{ .fd = c->abandon_efd, .events = POLLIN },
		};
		ssize_t w;
		if (poll(p, 2, -1) < 0)
			w = errno == EINTR ? -1 : 0;
		else if (p[1].revents)
			w = 0;      /* given up on */
		else
			w = write(c->out_fd, chunk, n);
		int saved_errno = errno;
		pthread_mutex_lock(&c->lock);
		if (w < 0 && saved_errno == EINTR)
			continue;
		if (w <= 0) {
			/* Output is gone: drop everything from now on, keep the VM running. */
			c->dropped += c->count;
			c->count = 0;
			pthread_cond_broadcast(&c->cond);
			return false;
		}
		c->head = (c->head + (size_t)w) % CONSOLE_OUT_RING;
		c->count -= (size_t)w;
		pthread_cond_broadcast(&c->cond);
	}
	return true;
}

static void *out_thread(void *arg)
{
	struct console *c = arg;
	bool alive = true;

	sandbox_enter(SANDBOX_CONSOLE);
	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->count && !c->stop)
			pthread_cond_wait(&c->cond, &c->lock);
		if (alive)
			alive = drain_locked(c);
		else {
			c->dropped += c->count;
			c->count = 0;
			pthread_cond_broadcast(&c->cond);
		}
		if (c->stop && !c->count)
			break;
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Hand input to the UART, waiting (bounded by stop) while its FIFO is full. */
static void feed(struct console *c, const uint8_t *buf, size_t len)
{
	while (len) {
		size_t n = serial_receive(c->serial, buf, len);
		buf += n;
		len -= n;
		if (len) {
			struct pollfd p = { .fd = c->stop_efd, .events = POLLIN };
			if (poll(&p, 1, 10) > 0)
				return;
		}
	}
}

static void *in_thread(void *arg)
{
	struct console *c = arg;
	uint8_t buf[256], out[256];

	sandbox_enter(SANDBOX_CONSOLE);
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = c->in_fd, .events = POLLIN },
			{ .fd = c->stop_efd, .events = POLLIN },
		};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (!p[0].revents)
			continue;
		ssize_t n = read(c->in_fd, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break; /* EOF or error: the guest just gets no more input */
		size_t m = 0;
		for (ssize_t i = 0; i < n; i++) {
			uint8_t ch = buf[i];
			if (c->tty && c->escape) {
				c->escape = false;
				if (ch == 'x' || ch == 'X') {
					if (c->quit)
						c->quit(c->quit_ctx);
					return NULL;
				}
				if (ch != CTRL_A)
					out[m++] = CTRL_A;
			} else if (c->tty && ch == CTRL_A) {
				c->escape = true;
				continue;
			}
			out[m++] = ch;
		}
		feed(c, out, m);
	}
	return NULL;
}

int console_start(struct console *c)
{
	int e = pthread_create(&c->out_thread, NULL, out_thread, c);

	if (e)
		return err_set(e, "console output thread: %s", strerror(e));
	c->out_thread_started = true;
	if (c->in_fd >= 0) {
		e = pthread_create(&c->in_thread, NULL, in_thread, c);
		if (e)
			return err_set(e, "console input thread: %s", strerror(e));
		c->in_thread_started = true;
	}
	return 0;
}

void console_stop(struct console *c)
{
	if (c->in_thread_started) {
		uint64_t one = 1;
		if (write(c->stop_efd, &one, sizeof(one)) < 0)
			log_debug("console: cannot wake the input thread: %s", strerror(errno));
		pthread_join(c->in_thread, NULL);
		c->in_thread_started = false;
	}
	if (c->out_thread_started) {
		pthread_mutex_lock(&c->lock);
		c->stop = true;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		/* Stdout may be a pipe nobody reads: do not wait for it forever. */
		struct timespec until = stats_deadline_ts(CLOCK_REALTIME, CONSOLE_STOP_WAIT_MS);
		if (pthread_timedjoin_np(c->out_thread, NULL, &until) == ETIMEDOUT) {
			uint64_t one = 1;
			/* It waits in poll() for room: wake it there, it drops the rest and leaves. */
			if (write(c->abandon_efd, &one, sizeof(one)) < 0)
				log_debug("console: cannot wake the output thread: %s", strerror(errno));
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 1;
			if (pthread_timedjoin_np(c->out_thread, NULL, &until) == ETIMEDOUT) {
				/* Inside a write() a terminal blocks: leave it there; exiting ends it. */
				pthread_detach(c->out_thread);
				c->abandoned = true;
			}
			log_warn("console: stdout took no output for %d ms; giving up on it", CONSOLE_STOP_WAIT_MS);
		}
		c->out_thread_started = false;
	}
	console_restore_terminal(c);
	c->tty = false;
	pthread_mutex_lock(&c->lock);
	uint64_t dropped = c->dropped + (c->abandoned ? c->count : 0);
	pthread_mutex_unlock(&c->lock);
	if (dropped)
		log_warn("console: %llu bytes of guest output dropped (stdout did not keep up or was closed)",
			 (unsigned long long)dropped);
	if (c->stop_efd >= 0)
		close(c->stop_efd);
	c->stop_efd = -1;
	/* A detached writer may still look at its eventfd: it stays open until exit. */
	if (!c->abandoned) {
		if (c->abandon_efd >= 0)
			close(c->abandon_efd);
		c->abandon_efd = -1;
	}
}

void console_restore_terminal(struct console *c)
{
	if (c->tty)
		tcsetattr(c->in_fd, TCSANOW, &c->saved);
}

void console_tail(struct console *c, char *buf, size_t len)
{
	size_t n = 0;

	if (!len)
		return;
	pthread_mutex_lock(&c->lock);
	size_t total = c->tail_full ? CONSOLE_TAIL : c->tail_pos;
	size_t start = c->tail_full ? c->tail_pos : 0;
	if (total > len - 1) {
		start = (start + total - (len - 1)) % CONSOLE_TAIL;
		total = len - 1;
	}
	for (size_t i = 0; i < total; i++) {
		char ch = (char)c->tail[(start + i) % CONSOLE_TAIL];
		buf[n++] = (ch == '\r') ? ' ' : ch;
	}
	buf[n] = '\0';
	pthread_mutex_unlock(&c->lock);
}
