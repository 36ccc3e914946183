/* api.c - the control API's HTTP transport over a Unix socket (see api.h). */
#include "vmm/api/http.h"
#include "base/err.h"
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

const char *api_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "";
	}
}

char *api_error_body(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string(msg));
	char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

/* ---- one connection ---- */

static void client_free(struct api_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* Queue the answer (takes body); the connection then only writes, and closes once it is sent. */
static void client_answer(struct api_client *c, int status, char *body, const char *allow, const char *ctype)
{
	char head[256];
	int n;

	if (status == 204) {
		free(body);
		body = NULL;
	}
	size_t blen = body ? strlen(body) : 0;
	n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n%s%s%sContent-Length: %zu\r\n%s%s%sConnection: close\r\n\r\n",
		     status, api_reason(status), body ? "Content-Type: " : "",
		     body ? (ctype ? ctype : "application/json") : "", body ? "\r\n" : "", blen,
		     allow ? "Allow: " : "", allow ? allow : "", allow ? "\r\n" : "");
	free(c->out);
	c->out = malloc((size_t)n + blen + 1);
	if (!c->out) {
		free(body);
		c->out_len = c->out_off = 0;
		return;
	}
	memcpy(c->out, head, (size_t)n);
	if (blen)
		memcpy(c->out + n, body, blen);
	c->out_len = (size_t)n + blen;
	c->out_off = 0;
	free(body);
	c->complete = true;
}

/* Append a parser chunk to a bounded, NUL-terminated buffer (room for max bytes); false if it would not fit. */
static bool append(char *buf, size_t *len, size_t max, const char *at, size_t n)
{
	if (*len + n > max)
		return false;
	memcpy(buf + *len, at, n);
	*len += n;
	buf[*len] = '\0';
	return true;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct api_client *c = p->data;

	if (!append(c->url, &c->url_len, API_MAX_URL, at, len)) {
		c->error = 414;
		return 1;
	}
	return 0;
}

/*
 * Headers arrive in pieces: a name (perhaps in several calls), then its value
 * (the same). Only Accept is kept; several Accept headers are one list.
 */
static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct api_client *c = p->data;

	if (c->in_value) {
		c->in_value = false;
		c->field_len = 0;
		c->field[0] = '\0';
		c->field_long = false;
	}
	if (!c->field_long && !append(c->field, &c->field_len, sizeof(c->field) - 1, at, len))
		c->field_long = true;
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct api_client *c = p->data;

	if (!c->in_value) {
		c->in_value = true;
		c->in_accept = !c->field_long && !strcasecmp(c->field, "accept");
		if (c->in_accept && c->accept_len && !append(c->accept, &c->accept_len, API_MAX_ACCEPT, ", ", 2))
			goto too_long;
	}
	if (c->in_accept && !append(c->accept, &c->accept_len, API_MAX_ACCEPT, at, len))
		goto too_long;
	return 0;
too_long:
	c->error = 431;
	return 1;
}

static int on_headers_complete(http_parser *p)
{
	struct api_client *c = p->data;

	/* A declared body too big is refused before it is sent. */
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > API_MAX_BODY) {
		c->error = 413;
		return -1; /* an error (1 and 2 would mean "no body") */
	}
	c->head_len = SIZE_MAX; /* the head is complete: stop counting it */
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct api_client *c = p->data;

	if (!append(c->body, &c->body_len, API_MAX_BODY, at, len)) {
		c->error = 413;
		return 1;
	}
	return 0;
}

static int on_message_complete(http_parser *p)
{
	http_parser_pause(p, 1); /* one request per connection: the rest is ignored */
	return 0;
}

static const http_parser_settings settings = {
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

static void client_dispatch(struct api_server *s, struct api_client *c)
{
	struct http_parser_url u;
	char path[API_MAX_URL + 1], query[API_MAX_URL + 1] = "";

	if (c->parser.http_major != 1) {
		client_answer(c, 400, api_error_body("not an HTTP/1.x request"), NULL, NULL);
		return;
	}
	http_parser_url_init(&u);
	if (http_parser_parse_url(c->url, c->url_len, 0, &u) != 0 || !(u.field_set & (1 << UF_PATH)) ||
	    c->url[u.field_data[UF_PATH].off] != '/') {
		client_answer(c, 400, api_error_body("malformed request target '%s'", c->url), NULL, NULL);
		return;
	}
	memcpy(path, c->url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
	path[u.field_data[UF_PATH].len] = '\0';
	if (u.field_set & (1 << UF_QUERY)) {
		memcpy(query, c->url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
		query[u.field_data[UF_QUERY].len] = '\0';
	}

	struct api_request req = {
		.method = http_method_str((enum http_method)c->parser.method),
		.path = path,
		.query = query,
		.accept = c->accept,
		.body = c->body,
		.body_len = c->body_len,
	};
	struct api_response resp = { .status = 500 };
	s->handler(s->ctx, &req, &resp);
	s->requests++;
	client_answer(c, resp.status, resp.body, resp.allow, resp.content_type);
}

/* Read what the client sent and parse it; answer once the request is whole or wrong. */
static void client_read(struct api_server *s, struct api_client *c)
{
	char buf[4096];

	for (;;) {
		ssize_t n = read(c->fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				client_free(c);
			return;
		}
		if (n == 0) { /* the client went away (or half-closed) before a whole request */
			client_free(c);
			return;
		}
		if (c->head_len != SIZE_MAX)
			c->head_len += (size_t)n;
		size_t done = http_parser_execute(&c->parser, &settings, buf, (size_t)n);
		enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
		if (e == HPE_PAUSED) {
			client_dispatch(s, c);
			return;
		}
		if (c->error) {
			client_answer(c, c->error, api_error_body("%s", c->error == 413 ? "request body over 4096 bytes" :
								   c->error == 414 ? "request target over 256 bytes" :
								   "Accept header over 512 bytes"), NULL, NULL);
			return;
		}
		if (e == HPE_HEADER_OVERFLOW || (c->head_len != SIZE_MAX && c->head_len > API_MAX_HEAD)) {
			client_answer(c, 431, api_error_body("request head over %d bytes", API_MAX_HEAD), NULL, NULL);
			return;
		}
		if (e != HPE_OK || done != (size_t)n) {
			client_answer(c, 400, api_error_body("malformed HTTP request: %s", http_errno_description(e)), NULL, NULL);
			return;
		}
	}
}

/* Send what is left of the answer; close when it is all out or the client is gone. */
static void client_write(struct api_client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				client_free(c);
			return;
		}
		c->out_off += (size_t)n;
	}
	client_free(c);
}

/* ---- the listening socket ---- */

static void accept_all(struct api_server *s, uint64_t now_ns)
{
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				log_debug("api: accept: %s", strerror(errno));
			return;
		}
		if (api_adopt(s, fd, now_ns) < 0) {
			static const char body[] = "{\"error\":\"too many API connections\"}";
			char busy[256];
			int n = snprintf(busy, sizeof(busy), "HTTP/1.1 503 %s\r\nContent-Type: application/json\r\n"
					 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
					 api_reason(503), sizeof(body) - 1, body);
			(void)!send(fd, busy, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			s->rejected++;
			continue;
		}
	}
}

int api_adopt(struct api_server *s, int fd, uint64_t now_ns)
{
	for (int i = 0; i < API_MAX_CLIENTS; i++) {
		struct api_client *c = &s->clients[i];
		if (c->fd >= 0)
			continue;
		memset(c, 0, sizeof(*c));
		c->fd = fd;
		c->deadline_ns = now_ns + API_DEADLINE_MS * 1000000ULL;
		http_parser_init(&c->parser, HTTP_REQUEST);
		c->parser.data = c;
		return 0;
	}
	return -EBUSY;
}

int api_open(struct api_server *s, const char *path, api_handler h, void *ctx)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	memset(s, 0, sizeof(*s));
	s->lfd = -1;
	for (int i = 0; i < API_MAX_CLIENTS; i++)
		s->clients[i].fd = -1;
	if (strlen(path) >= sizeof(a.sun_path))
		return err_set(ENAMETOOLONG, "--api-sock %s: longer than %zu bytes (a Unix socket path's limit)",
			       path, sizeof(a.sun_path) - 1);
	strcpy(a.sun_path, path);

	/* Something already there: a live socket or another file stays; a dead socket is ours to replace. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return err_set(EEXIST, "--api-sock %s: exists and is not a socket", path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return err_set(errno, "--api-sock %s: socket: %s", path, strerror(errno));
		int r = connect(fd, (struct sockaddr *)&a, sizeof(a));
		int e = errno;
		close(fd);
		if (r == 0)
			return err_set(EADDRINUSE, "--api-sock %s: in use (another process answers on it)", path);
		if (e != ECONNREFUSED)
			return err_set(e, "--api-sock %s: %s", path, strerror(e));
		if (unlink(path) < 0)
			return err_set(errno, "--api-sock %s: cannot remove the stale socket: %s", path, strerror(errno));
	} else if (errno != ENOENT) {
		return err_set(errno, "--api-sock %s: %s", path, strerror(errno));
	}

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(errno, "--api-sock %s: socket: %s", path, strerror(errno));
	/* Owner-only from the moment it exists (set-up is single-threaded: umask is safe to swap). */
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&a, sizeof(a));
	int e = errno;
	umask(old);
	if (r < 0) {
		close(fd);
		return err_set(e, "--api-sock %s: %s", path, strerror(e));
	}
	if (listen(fd, API_MAX_CLIENTS) < 0) {
		e = errno;
		close(fd);
		unlink(path);
		return err_set(e, "--api-sock %s: listen: %s", path, strerror(e));
	}
	s->path = strdup(path);
	if (!s->path) {
		close(fd);
		unlink(path);
		return err_set(ENOMEM, "--api-sock %s: out of memory", path);
	}
	s->lfd = fd;
	s->handler = h;
	s->ctx = ctx;
	return 0;
}

int api_pollfds(const struct api_server *s, struct pollfd *p, int max)
{
	int n = 0;

	if (!s->path || max < 1)
		return 0;
	p[n++] = (struct pollfd){ .fd = s->lfd, .events = POLLIN };
	for (int i = 0; i < API_MAX_CLIENTS && n < max; i++) {
		const struct api_client *c = &s->clients[i];
		if (c->fd >= 0)
			p[n++] = (struct pollfd){ .fd = c->fd, .events = c->complete ? POLLOUT : POLLIN };
	}
	return n;
}

static struct api_client *client_by_fd(struct api_server *s, int fd)
{
	for (int i = 0; i < API_MAX_CLIENTS; i++)
		if (s->clients[i].fd == fd)
			return &s->clients[i];
	return NULL;
}

void api_process(struct api_server *s, const struct pollfd *p, int n, uint64_t now_ns)
{
	if (!s->path)
		return;
	for (int i = 0; i < n; i++) {
		if (!p[i].revents)
			continue;
		if (p[i].fd == s->lfd) {
			accept_all(s, now_ns);
			continue;
		}
		struct api_client *c = client_by_fd(s, p[i].fd);
		if (!c)
			continue; /* closed meanwhile, or a slot reused by a new connection */
		if (!c->complete)
			client_read(s, c);
		if (c->fd >= 0 && c->complete)
			client_write(c);
	}
	/* Too slow: a request not whole in time gets 408 (one try), an answer not read in time is dropped. */
	for (int i = 0; i < API_MAX_CLIENTS; i++) {
		struct api_client *c = &s->clients[i];
		if (c->fd < 0 || now_ns < c->deadline_ns)
			continue;
		if (!c->complete) {
			client_answer(c, 408, api_error_body("request not complete within %d ms", API_DEADLINE_MS), NULL, NULL);
			c->out_off = 0;
			(void)!send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
		}
		client_free(c);
	}
}

int api_timeout_ms(const struct api_server *s, uint64_t now_ns)
{
	uint64_t next = UINT64_MAX;

	if (!s->path)
		return -1;
	for (int i = 0; i < API_MAX_CLIENTS; i++)
		if (s->clients[i].fd >= 0 && s->clients[i].deadline_ns < next)
			next = s->clients[i].deadline_ns;
	if (next == UINT64_MAX)
		return -1;
	if (next <= now_ns)
		return 0;
	return (int)((next - now_ns + 999999) / 1000000);
}

int api_set_path(struct api_server *s, const char *path)
{
	char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	free(s->path);
	s->path = p;
	return 0;
}

void api_close(struct api_server *s)
{
	if (!s->path)
		return;
	for (int i = 0; i < API_MAX_CLIENTS; i++)
		client_free(&s->clients[i]);
	if (s->lfd >= 0)
		close(s->lfd);
	s->lfd = -1;
	if (unlink(s->path) < 0 && errno != ENOENT)
		log_debug("api: cannot remove %s: %s", s->path, strerror(errno));
	free(s->path);
	s->path = NULL;
}
