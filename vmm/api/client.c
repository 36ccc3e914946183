/* client.c - microvm --shutdown SOCKET: press another microvm's power button and wait for it to exit (see client.h). */
#include "vmm/api/client.h"
#include "base/err.h"
#include "vmm/stats.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#define ANSWER_MAX 8192
#define IO_TIMEOUT_MS 5000 /* the server's own per-connection deadline */

/* A connected stream socket on path, or -errno (ENOENT, ECONNREFUSED: nothing serves there). */
static int connect_to(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	strcpy(a.sun_path, path);
	/* Non-blocking: a full backlog is EAGAIN at once, never a connect() that waits for ever. */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* Wait for fd to be ready for events until deadline_ns; 0, or -ETIMEDOUT. */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
	for (;;) {
		uint64_t now = stats_now_ns();
		if (now >= deadline_ns)
			return -ETIMEDOUT;
		struct pollfd p = { .fd = fd, .events = events };
		int r = poll(&p, 1, (int)((deadline_ns - now + 999999) / 1000000));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* Send req and read the whole answer (the server closes after one) into ans; its length, or -errno. */
static ssize_t exchange(int fd, const char *req, size_t len, char *ans, size_t max)
{
	uint64_t deadline = stats_now_ns() + IO_TIMEOUT_MS * 1000000ULL;
	size_t off = 0, got = 0;
	int r;

	while (off < len) {
		if ((r = wait_fd(fd, POLLOUT, deadline)) < 0)
			return r;
		ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return -errno;
		if (n > 0)
			off += (size_t)n;
	}
	for (;;) {
		if ((r = wait_fd(fd, POLLIN, deadline)) < 0)
			return r;
		ssize_t n = recv(fd, ans + got, max - 1 - got, MSG_DONTWAIT);
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return -errno;
		if (n == 0 || got + (size_t)(n > 0 ? n : 0) >= max - 1) {
			if (n > 0)
				got += (size_t)n;
			break;
		}
		if (n > 0)
			got += (size_t)n;
	}
	ans[got] = '\0';
	return (ssize_t)got;
}

/* The "error" of a JSON body, else the body itself (cut to fit). */
static void error_text(const char *body, char *out, size_t len)
{
	json_object *o = json_tokener_parse(body), *e;

	if (o && json_object_object_get_ex(o, "error", &e) && json_object_is_type(e, json_type_string))
		snprintf(out, len, "%s", json_object_get_string(e));
	else
		snprintf(out, len, "%s", body);
	json_object_put(o);
}

int api_client_shutdown(const char *path, uint64_t timeout_ms)
{
	uint64_t deadline = stats_now_ns() + timeout_ms * 1000000ULL;
	uint64_t vmm_ms = timeout_ms + API_CLIENT_SHUTDOWN_GRACE_MS;
	static char ans[ANSWER_MAX];
	char req[256], body[64], why[300];

	if (vmm_ms > API_CLIENT_SHUTDOWN_MAX_MS)
		vmm_ms = API_CLIENT_SHUTDOWN_MAX_MS;
	int fd = connect_to(path);
	if (fd < 0)
		return err_set(-fd, "--shutdown %s: %s%s", path, strerror(-fd),
			       fd == -ENOENT || fd == -ECONNREFUSED ? " (no microvm serves its API there)" : "");
	int blen = snprintf(body, sizeof(body), "{\"timeout\": %llu.%03llu}", (unsigned long long)(vmm_ms / 1000),
			    (unsigned long long)(vmm_ms % 1000));
	int rlen = snprintf(req, sizeof(req), "POST /vm/shutdown HTTP/1.1\r\nHost: localhost\r\n"
			    "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", blen, body);
	ssize_t n = exchange(fd, req, (size_t)rlen, ans, sizeof(ans));
	close(fd);
	if (n < 0)   /* EIO, not ETIMEDOUT: that status (124) means the VM still runs after the button */
		return err_set(EIO, "--shutdown %s: no answer from the VM: %s", path, strerror((int)-n));
	int status = 0;
	const char *sep = strstr(ans, "\r\n\r\n");
	if (sscanf(ans, "HTTP/1.%*1[01] %3d ", &status) != 1 || !sep)
		return err_set(EPROTO, "--shutdown %s: not an HTTP answer from the VM", path);
	if (status != 202) {
		error_text(sep + 4, why, sizeof(why));
		return err_set(status == 409 ? EBUSY : EPROTO, "--shutdown %s: the VM refused (%d): %s", path, status,
			       why);
	}
	/* The button is pressed: the VM has exited once its socket no longer answers. */
	for (;;) {
		fd = connect_to(path);
		if (fd == -ENOENT || fd == -ECONNREFUSED)
			return 0;
		if (fd >= 0)
			close(fd);
		else if (fd != -EAGAIN) /* EAGAIN: its backlog is full, so it still runs */
			return err_set(-fd, "--shutdown %s: %s", path, strerror(-fd));
		uint64_t now = stats_now_ns();
		if (now >= deadline)
			break;
		uint64_t left = deadline - now;
		struct timespec ts = { 0, (long)(left < 100000000 ? left : 100000000) };
		nanosleep(&ts, NULL);
	}
	return err_set(ETIMEDOUT, "--shutdown %s: the VM did not power off within %llu.%03llu s of the power button",
		       path, (unsigned long long)(timeout_ms / 1000), (unsigned long long)(timeout_ms % 1000));
}
