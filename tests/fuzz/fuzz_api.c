/* fuzz_api.c - libFuzzer harness: the control API's HTTP transport (vmm/api/http.c on libhttp-parser) and what it hands a route. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "vmm/api/http.h"
#include "vmm/api/prom.h"

/*
 * Input: the bytes a client sends on one connection, then end of file. The
 * server adopts one end of a socket pair and is pumped until it lets the
 * connection go (bounded). The handler checks what the transport hands it
 * (a method, a path starting with '/' and within API_MAX_URL, a body within
 * API_MAX_BODY and NUL-terminated at body_len, a query within API_MAX_URL,
 * an Accept value within API_MAX_ACCEPT) and answers with a status picked
 * from the path; GET /metrics goes through metrics_format() (prom.h: the
 * query and the Accept header), and a Prometheus answer is an exposition
 * whose label values are the request's path and Accept (escaped). Whatever came back must be one well-formed answer:
 * a status line with a known status, a Content-Length equal to the body's
 * length, nothing after it; or nothing at all (the client went away before
 * a whole request).
 */

static struct api_server srv;
static char sockpath[64];

int LLVMFuzzerInitialize(int *argc, char ***argv);

static void handler(void *ctx, const struct api_request *req, struct api_response *resp)
{
	static const int statuses[] = { 200, 204, 400, 404, 405, 409, 500 };
	size_t plen = strlen(req->path);

	(void)ctx;
	if (!req->method || !*req->method || req->path[0] != '/' || plen > API_MAX_URL ||
	    req->body_len > API_MAX_BODY || strlen(req->body) > req->body_len || req->body[req->body_len] != '\0' ||
	    !req->query || strlen(req->query) > API_MAX_URL || !req->accept || strlen(req->accept) > API_MAX_ACCEPT)
		abort();
	if (!strcmp(req->path, "/metrics")) {
		enum metrics_format f;
		char why[160];
		struct prom p;
		if (metrics_format(req->query, req->accept, &f, why, sizeof(why)) < 0) {
			if (!memchr(why, '\0', sizeof(why)))
				abort();
			resp->status = 400;
			resp->body = api_error_body("%s", why);
			return;
		}
		if (f == METRICS_PROMETHEUS && prom_open(&p) == 0) {
			prom_family(&p, "microvm_fuzz_total", "counter", req->accept);
			prom_u64(&p, (const char *const[]){ "path", req->path, "accept", req->accept, NULL }, plen);
			resp->status = 200;
			resp->body = prom_close(&p);
			resp->content_type = PROM_CONTENT_TYPE;
			return;
		}
	}
	resp->status = statuses[(plen + req->body_len) % (sizeof(statuses) / sizeof(statuses[0]))];
	if (resp->status == 405)
		resp->allow = "GET";
	/* The body goes back through json-c: any bytes must come out as valid JSON text. */
	resp->body = api_error_body("%s %s %s", req->method, req->path, req->body);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	snprintf(sockpath, sizeof(sockpath), "/tmp/fuzz-api-%d.sock", (int)getpid());
	if (api_open(&srv, sockpath, handler, NULL) < 0)
		abort();
	return 0;
}

static bool known_status(int st)
{
	return st == 200 || st == 204 || st == 400 || st == 404 || st == 405 || st == 408 || st == 409 ||
	       st == 413 || st == 414 || st == 431 || st == 500;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	static char ans[1 << 16];
	size_t alen = 0;

	if (size > 65536)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	int sndbuf = 1 << 18;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof(sndbuf));
	if (api_adopt(&srv, sv[0], 0) < 0)
		abort();
	size_t off = 0;
	for (int round = 0; round < 256; round++) {
		/* Feed what the socket takes, then end of file. */
		while (off < size) {
			ssize_t n = send(sv[1], data + off, size - off, MSG_NOSIGNAL);
			if (n <= 0)
				break;
			off += (size_t)n;
		}
		if (off == size)
			shutdown(sv[1], SHUT_WR);
		struct pollfd p[API_MAX_CLIENTS + 1];
		int np = api_pollfds(&srv, p, API_MAX_CLIENTS + 1);
		if (np <= 1)
			break; /* the connection is gone */
		for (int i = 0; i < np; i++)
			p[i].revents = i ? p[i].events : 0;
		api_process(&srv, p, np, 0);
		for (;;) {
			ssize_t n = read(sv[1], ans + alen, sizeof(ans) - 1 - alen);
			if (n <= 0)
				break;
			alen += (size_t)n;
		}
	}
	struct pollfd p[API_MAX_CLIENTS + 1];
	if (api_pollfds(&srv, p, API_MAX_CLIENTS + 1) != 1)
		abort(); /* the transport must let every connection go */
	for (;;) {
		ssize_t n = read(sv[1], ans + alen, sizeof(ans) - 1 - alen);
		if (n <= 0)
			break;
		alen += (size_t)n;
	}
	close(sv[1]);
	ans[alen] = '\0';
	if (alen == 0)
		return 0;

	int st = 0, hl = 0;
	if (sscanf(ans, "HTTP/1.1 %d %*[^\r]\r\n%n", &st, &hl) < 1 || !known_status(st))
		abort();
	char *end = strstr(ans, "\r\n\r\n");
	char *cl = strstr(ans, "\r\nContent-Length: ");
	if (!end || !cl || cl > end)
		abort();
	size_t body = (size_t)(ans + alen - (end + 4));
	if (strtoull(cl + 18, NULL, 10) != body)
		abort();
	return 0;
}
