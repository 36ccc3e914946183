/* test_api.c - the control API's HTTP transport with raw socket clients: answers, the query and Accept a route gets, every error status, slow and greedy clients, the socket file. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vmm/api/http.h"
#include "base/err.h"

static char dir[64], sock[128];
static struct api_server srv;
static int handled;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* GET /echo and POST /echo answer what they got; /big answers 1 MiB; anything else is 404 or 405. */
static void handler(void *ctx, const struct api_request *req, struct api_response *resp)
{
	(void)ctx;
	handled++;
	if (strcmp(req->path, "/echo") == 0) {
		if (strcmp(req->method, "GET") && strcmp(req->method, "POST")) {
			resp->status = 405;
			resp->allow = "GET, POST";
			resp->body = api_error_body("%s not allowed", req->method);
			return;
		}
		size_t n = strlen(req->method) + strlen(req->path) + req->body_len + 64;
		resp->body = malloc(n);
		snprintf(resp->body, n, "{\"m\":\"%s\",\"p\":\"%s\",\"b\":\"%s\",\"n\":%zu}", req->method, req->path,
			 req->body, req->body_len);
		resp->status = 200;
	} else if (strcmp(req->path, "/big") == 0) {
		resp->body = malloc(1 << 20);
		memset(resp->body, 'x', (1 << 20) - 1);
		resp->body[(1 << 20) - 1] = '\0';
		resp->status = 200;
	} else if (strcmp(req->path, "/hdr") == 0) {
		/* What the transport hands a route besides the path: the query and the Accept header. */
		size_t n = strlen(req->query) + strlen(req->accept) + 16;
		resp->body = malloc(n);
		snprintf(resp->body, n, "q=%s|a=%s", req->query, req->accept);
		resp->content_type = "text/plain";
		resp->status = 200;
	} else if (strcmp(req->path, "/empty") == 0) {
		resp->status = 204;
	} else {
		resp->status = 404;
		resp->body = api_error_body("no route %s", req->path);
	}
}

static void setup(void)
{
	strcpy(dir, "/tmp/test-api-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/api.sock", dir);
	handled = 0;
	cr_assert_eq(api_open(&srv, sock, handler, NULL), 0, "%s", err_msg());
}

static void teardown(void)
{
	api_close(&srv);
	rmdir(dir);
}

static int client(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	strcpy(a.sun_path, sock);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s", strerror(errno));
	return fd;
}

/* One round of the server's loop, as the VMM's main thread runs it, at time now. */
static void pump_at(uint64_t now, int wait_ms)
{
	struct pollfd p[API_MAX_CLIENTS + 1];
	int n = api_pollfds(&srv, p, API_MAX_CLIENTS + 1);
	if (poll(p, (nfds_t)n, wait_ms) > 0 || wait_ms == 0)
		api_process(&srv, p, n, now);
	else
		api_process(&srv, p, 0, now);
}

static void pump(void)
{
	pump_at(now_ns(), 10);
}

/* Pump the server until fd has the whole answer (EOF); returns it (static buffer). */
static char *answer(int fd)
{
	static char buf[1 << 16];
	size_t len = 0;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	for (int i = 0; i < 500; i++) {
		pump();
		for (;;) {
			ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
			if (n > 0) {
				len += (size_t)n;
				continue;
			}
			if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				buf[len] = '\0';
				close(fd);
				return buf;
			}
			break;
		}
	}
	cr_assert_fail("no complete answer after 500 rounds (got %zu bytes)", len);
	return NULL;
}

static char *exchange(const char *req, size_t len)
{
	int fd = client();
	cr_assert_eq(write(fd, req, len), (ssize_t)len);
	return answer(fd);
}

#define EXCHANGE(s) exchange((s), sizeof(s) - 1)

static int status_of(const char *ans)
{
	int st = 0;
	cr_assert_eq(sscanf(ans, "HTTP/1.1 %d ", &st), 1, "not an HTTP answer: '%.80s'", ans);
	return st;
}

static int free_slots(void)
{
	struct pollfd p[API_MAX_CLIENTS + 1];
	return API_MAX_CLIENTS + 1 - api_pollfds(&srv, p, API_MAX_CLIENTS + 1);
}

TestSuite(api, .init = setup, .fini = teardown, .timeout = 30);

Test(api, get_answers_json_with_length_and_closes)
{
	char *a = EXCHANGE("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	cr_assert_eq(status_of(a), 200);
	cr_assert(strstr(a, "\r\nContent-Type: application/json\r\n"), "%s", a);
	cr_assert(strstr(a, "\r\nConnection: close\r\n"), "%s", a);
	const char *body = strstr(a, "\r\n\r\n") + 4;
	char want[64];
	snprintf(want, sizeof(want), "\r\nContent-Length: %zu\r\n", strlen(body));
	cr_assert(strstr(a, want), "want '%s' in %s", want, a);
	cr_assert_str_eq(body, "{\"m\":\"GET\",\"p\":\"/echo\",\"b\":\"\",\"n\":0}");
	cr_assert_eq(free_slots(), API_MAX_CLIENTS, "the connection's slot was not freed");
}

Test(api, post_body_and_query_string)
{
	char *a = EXCHANGE("POST /echo?verbose=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n{\"a\": true}");
	cr_assert_eq(status_of(a), 200);
	cr_assert(strstr(a, "{\"m\":\"POST\",\"p\":\"/echo\",\"b\":\"{\"a\": true}\",\"n\":11}"), "%s", a);
}

Test(api, query_accept_and_content_type)
{
	char *a = EXCHANGE("GET /hdr?format=prometheus HTTP/1.1\r\nAccept: text/plain;q=0.5\r\nX-Accept: no\r\n"
			   "Acceptable: no\r\naccept: */*\r\n\r\n");
	cr_assert_eq(status_of(a), 200);
	cr_assert(strstr(a, "\r\nContent-Type: text/plain\r\n"), "%s", a);
	cr_assert_str_eq(strstr(a, "\r\n\r\n") + 4, "q=format=prometheus|a=text/plain;q=0.5, */*",
			 "only Accept headers, joined in order");
	a = EXCHANGE("GET /hdr HTTP/1.1\r\n\r\n");
	cr_assert_str_eq(strstr(a, "\r\n\r\n") + 4, "q=|a=");

	/* A header name and value in pieces: one byte per read. */
	static const char req[] = "GET /hdr?x HTTP/1.1\r\nACCEPT: application/json\r\n\r\n";
	int fd = client();
	for (size_t i = 0; i < sizeof(req) - 1; i++) {
		cr_assert_eq(write(fd, req + i, 1), 1);
		pump_at(now_ns(), 0);
	}
	a = answer(fd);
	cr_assert_str_eq(strstr(a, "\r\n\r\n") + 4, "q=x|a=application/json", "%s", a);

	/* Accept headers over 512 bytes together: 431, the route not called. */
	char big[1200];
	int n = snprintf(big, sizeof(big), "GET /hdr HTTP/1.1\r\nAccept: %0300d\r\nAccept: %0300d\r\n\r\n", 0, 0);
	int before = handled;
	a = exchange(big, (size_t)n);
	cr_assert_eq(status_of(a), 431, "%s", a);
	cr_assert(strstr(a, "Accept header over 512 bytes"), "%s", a);
	cr_assert_eq(handled, before);
}

Test(api, chunked_body)
{
	char *a = EXCHANGE("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
	cr_assert_eq(status_of(a), 200);
	cr_assert(strstr(a, "\"b\":\"abcde\",\"n\":5"), "%s", a);
}

Test(api, request_in_many_small_writes)
{
	static const char req[] = "POST /echo HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd";
	int fd = client();
	for (size_t i = 0; i < sizeof(req) - 1; i++) {
		cr_assert_eq(write(fd, req + i, 1), 1);
		pump_at(now_ns(), 0);
	}
	char *a = answer(fd);
	cr_assert_eq(status_of(a), 200);
	cr_assert(strstr(a, "\"b\":\"abcd\""), "%s", a);
}

Test(api, handler_statuses_pass_through)
{
	char *a = EXCHANGE("DELETE /echo HTTP/1.1\r\n\r\n");
	cr_assert_eq(status_of(a), 405);
	cr_assert(strstr(a, "\r\nAllow: GET, POST\r\n"), "%s", a);
	a = EXCHANGE("GET /nowhere HTTP/1.1\r\n\r\n");
	cr_assert_eq(status_of(a), 404);
	cr_assert(strstr(a, "{\"error\":\"no route \\/nowhere\"}") || strstr(a, "{\"error\":\"no route /nowhere\"}"), "%s", a);
	a = EXCHANGE("GET /empty HTTP/1.1\r\n\r\n");
	cr_assert_eq(status_of(a), 204);
	cr_assert(strstr(a, "Content-Length: 0\r\n"), "%s", a);
	cr_assert_null(strstr(a, "Content-Type"), "%s", a);
}

Test(api, garbage_is_400)
{
	char *a = EXCHANGE("HELLO THERE\r\n\r\n");
	cr_assert_eq(status_of(a), 400);
	cr_assert(strstr(a, "malformed HTTP request"), "%s", a);
	cr_assert_eq(handled, 0);
	a = EXCHANGE("\x01\x02\x03\xff\xfe binary");
	cr_assert_eq(status_of(a), 400);
	a = EXCHANGE("GET /echo HTTP/1.1\r\nContent-Length: -5\r\n\r\n");
	cr_assert_eq(status_of(a), 400);
	/* Found by fuzz_api: a target that is not a path, and a request without a version. */
	a = EXCHANGE("GET ****/echo HTTP/1.1\r\n\r\n");
	cr_assert_eq(status_of(a), 400);
	cr_assert(strstr(a, "malformed request target"), "%s", a);
	a = EXCHANGE("GET /echo\r\n\r\n");
	cr_assert_eq(status_of(a), 400);
	a = EXCHANGE("GET http://localhost/echo HTTP/1.1\r\n\r\n");
	cr_assert_eq(status_of(a), 200, "an absolute URL's path is used: %s", a);
	cr_assert_eq(handled, 1);
}

Test(api, declared_body_too_big_is_413_before_it_is_sent)
{
	char *a = EXCHANGE("POST /echo HTTP/1.1\r\nContent-Length: 4097\r\n\r\n");
	cr_assert_eq(status_of(a), 413);
	cr_assert_eq(handled, 0);
}

Test(api, chunked_body_too_big_is_413)
{
	static char req[16384];
	int n = snprintf(req, sizeof(req), "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n", 5000);
	memset(req + n, 'a', 5000);
	n += 5000;
	n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n0\r\n\r\n");
	char *a = exchange(req, (size_t)n);
	cr_assert_eq(status_of(a), 413);
	cr_assert_eq(handled, 0);
}

Test(api, long_target_is_414_and_big_head_is_431)
{
	static char req[20000];
	int n = snprintf(req, sizeof(req), "GET /");
	memset(req + n, 'a', 300);
	n += 300;
	n += snprintf(req + n, sizeof(req) - (size_t)n, " HTTP/1.1\r\n\r\n");
	cr_assert_eq(status_of(exchange(req, (size_t)n)), 414);

	n = snprintf(req, sizeof(req), "GET /echo HTTP/1.1\r\n");
	for (int i = 0; i < 200; i++)
		n += snprintf(req + n, sizeof(req) - (size_t)n, "X-Header-%03d: %060d\r\n", i, i);
	n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
	cr_assert_gt(n, API_MAX_HEAD);
	cr_assert_eq(status_of(exchange(req, (size_t)n)), 431);
	cr_assert_eq(handled, 0);
}

Test(api, slow_client_gets_408_and_does_not_block_another)
{
	int slow = client();
	cr_assert_eq(write(slow, "GET /ec", 7), 7);
	pump();
	/* Another client is served while the slow one waits. */
	char *a = EXCHANGE("GET /echo HTTP/1.1\r\n\r\n");
	cr_assert_eq(status_of(a), 200);
	cr_assert_eq(free_slots(), API_MAX_CLIENTS - 1);
	cr_assert_eq(api_timeout_ms(&srv, now_ns()) > 0 && api_timeout_ms(&srv, now_ns()) <= API_DEADLINE_MS, 1);
	/* Past its deadline: 408, closed. */
	pump_at(now_ns() + (API_DEADLINE_MS + 1) * 1000000ULL, 0);
	cr_assert_eq(free_slots(), API_MAX_CLIENTS);
	cr_assert_eq(api_timeout_ms(&srv, now_ns()), -1);
	char buf[512];
	ssize_t n = read(slow, buf, sizeof(buf) - 1);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	cr_assert_eq(status_of(buf), 408);
	close(slow);
	cr_assert_eq(handled, 1);
}

Test(api, reader_that_never_reads_is_dropped_at_its_deadline)
{
	int fd = client();
	cr_assert_eq(write(fd, "GET /big HTTP/1.1\r\n\r\n", 21), 21);
	for (int i = 0; i < 20; i++)
		pump_at(now_ns(), 1);
	/* 1 MiB does not fit in the socket buffers: the answer is still being sent, the slot in use. */
	cr_assert_eq(free_slots(), API_MAX_CLIENTS - 1);
	pump_at(now_ns() + (API_DEADLINE_MS + 1) * 1000000ULL, 0);
	cr_assert_eq(free_slots(), API_MAX_CLIENTS);
	close(fd);
}

Test(api, client_gone_mid_request_frees_its_slot)
{
	int fd = client();
	cr_assert_eq(write(fd, "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nab", 46), 46);
	pump();
	cr_assert_eq(free_slots(), API_MAX_CLIENTS - 1);
	close(fd);
	for (int i = 0; i < 5; i++)
		pump();
	cr_assert_eq(free_slots(), API_MAX_CLIENTS);
	cr_assert_eq(handled, 0);
}

Test(api, connections_beyond_the_limit_get_503)
{
	int fds[API_MAX_CLIENTS];
	for (int i = 0; i < API_MAX_CLIENTS; i++) {
		fds[i] = client();
		pump();
	}
	cr_assert_eq(free_slots(), 0);
	int extra = client();
	char *a = answer(extra);
	cr_assert_eq(status_of(a), 503);
	cr_assert_eq(srv.rejected, 1);
	for (int i = 0; i < API_MAX_CLIENTS; i++)
		close(fds[i]);
	for (int i = 0; i < 5; i++)
		pump();
	cr_assert_eq(status_of(EXCHANGE("GET /echo HTTP/1.1\r\n\r\n")), 200);
}

Test(api, socket_is_owner_only_and_removed_on_close)
{
	struct stat st;
	cr_assert_eq(lstat(sock, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
	api_close(&srv);
	cr_assert_eq(lstat(sock, &st), -1);
	cr_assert_eq(errno, ENOENT);
	api_close(&srv); /* twice is fine */
}

Test(api, live_socket_is_refused_stale_one_replaced)
{
	struct api_server other;
	cr_assert_lt(api_open(&other, sock, handler, NULL), 0);
	cr_assert(strstr(err_msg(), "in use"), "%s", err_msg());
	api_close(&other);

	/* A socket file nobody listens on (a VMM that died) is replaced. */
	close(srv.lfd);
	srv.lfd = -1;
	cr_assert_eq(api_open(&other, sock, handler, NULL), 0, "%s", err_msg());
	free(srv.path);
	srv = other;
	cr_assert_eq(status_of(EXCHANGE("GET /echo HTTP/1.1\r\n\r\n")), 200);
}

Test(api, other_files_are_never_removed)
{
	char path[160];
	struct api_server other;
	snprintf(path, sizeof(path), "%s/file", dir);
	int fd = open(path, O_CREAT | O_WRONLY, 0644);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_lt(api_open(&other, path, handler, NULL), 0);
	cr_assert(strstr(err_msg(), "exists and is not a socket"), "%s", err_msg());
	cr_assert_eq(access(path, F_OK), 0);
	unlink(path);

	char longp[200];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	cr_assert_lt(api_open(&other, longp, handler, NULL), 0);
	cr_assert(strstr(err_msg(), "longer than 107 bytes"), "%s", err_msg());
}
