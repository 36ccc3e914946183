/*
 * api.h - the control API's transport: HTTP/1.1 over a Unix socket (--api-sock),
 * parsed with libhttp-parser, one request per connection.
 *
 * The server never blocks: the socket and every connection are non-blocking
 * and served from the owner's poll loop (api_pollfds / api_process), so a
 * client that sends slowly, sends too much or never reads its answer costs
 * one slot and is dropped at its deadline; it cannot stall the VM or
 * another client. What the routes mean is up to the handler (vmm/api/control.c).
 */
#ifndef MICROVM_API_H
#define MICROVM_API_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#define API_MAX_CLIENTS 8          /* more at once get 503 and are closed */
#define API_MAX_HEAD 8192          /* request line and headers: 431 beyond */
#define API_MAX_BODY 4096          /* request body: 413 beyond */
#define API_MAX_URL 256            /* 414 beyond */
#define API_DEADLINE_MS 5000       /* from accept to the last byte of the answer: else 408 / dropped */
#define API_MAX_ACCEPT 512         /* the Accept header's value(s), joined: 431 beyond */

struct api_request {
	const char *method;            /* "GET", "PUT", ... */
	const char *path;              /* the URL's path, without query ("/vm") */
	const char *query;             /* the URL's query without '?' ("format=prometheus"), "" when none */
	const char *accept;            /* the Accept header (several joined with ", "), "" when none */
	const char *body;              /* NUL-terminated; "" when none */
	size_t body_len;
};

struct api_response {
	int status;                    /* 200, 204, 400, ... */
	char *body;                    /* malloc'd text, JSON unless content_type says otherwise (the server frees it), or NULL */
	const char *allow;             /* with 405: the Allow header's value */
	const char *content_type;      /* the body's media type; NULL: application/json */
};

/* Answer one complete request; must not block. */
typedef void (*api_handler)(void *ctx, const struct api_request *req, struct api_response *resp);

struct api_client {
	int fd;                        /* -1: free slot */
	uint64_t deadline_ns;
	http_parser parser;
	size_t head_len, body_len;
	char url[API_MAX_URL + 1];
	size_t url_len;
	char body[API_MAX_BODY + 1];
	char field[16];                /* the header name being read (only Accept is kept) */
	size_t field_len;
	bool field_long;               /* longer than field[]: not Accept */
	bool in_value;                 /* the parser is in a header value (a new field starts a new header) */
	bool in_accept;                /* ... of an Accept header */
	char accept[API_MAX_ACCEPT + 1];
	size_t accept_len;
	int error;                     /* an HTTP status decided while parsing (413, 414, 431), else 0 */
	bool complete;                 /* a whole request arrived */
	char *out;                     /* the answer being sent */
	size_t out_len, out_off;
};

struct api_server {
	int lfd;                       /* -1: closed */
	char *path;
	api_handler handler;
	void *ctx;
	struct api_client clients[API_MAX_CLIENTS];
	uint64_t requests, rejected;   /* answered; refused for lack of a slot */
};

/*
 * Create the listening socket at path with owner-only permissions (0600). A
 * stale socket left by a VMM that died is replaced; a live one (something
 * answers on it) or any other kind of file is an error, never removed.
 * Returns 0 or -errno with err_msg() naming --api-sock PATH.
 */
int api_open(struct api_server *s, const char *path, api_handler h, void *ctx);

/*
 * Serve fd (a connected, non-blocking stream socket) as a client accepted at
 * now_ns; the server owns it from then on. -EBUSY (fd untouched) when all
 * slots are taken. The socket's accept path uses it; so does the fuzzer.
 */
int api_adopt(struct api_server *s, int fd, uint64_t now_ns);

/*
 * The socket's path as the server sees it from now on (--jail: the same socket, inside the
 * jail), for its removal at exit. Returns 0 or -ENOMEM (the old path kept).
 */
int api_set_path(struct api_server *s, const char *path);

/* Fill at most max poll entries (the socket, then every connection); returns how many. */
int api_pollfds(const struct api_server *s, struct pollfd *p, int max);

/* Serve what poll reported in p[0..n-1] (as filled by api_pollfds), then drop connections past their deadline. */
void api_process(struct api_server *s, const struct pollfd *p, int n, uint64_t now_ns);

/* Milliseconds until the nearest connection deadline (0 if one passed), or -1 with no connection. */
int api_timeout_ms(const struct api_server *s, uint64_t now_ns);

/* Close every connection and the socket and remove its file; safe on a zeroed or closed server. */
void api_close(struct api_server *s);

/* The reason phrase of an HTTP status ("Not Found"), "" if unknown. */
const char *api_reason(int status);

/* A JSON error body {"error": "..."} (malloc'd), for handlers and the server. */
char *api_error_body(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
