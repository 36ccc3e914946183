/* control.c - the control API's routes (see control.h and docs/api.md). */
#include "vmm/api/control.h"
#include "vmm/api/prom.h"
#include "base/err.h"
#include "base/exit_codes.h"
#include "vmm/stats.h"
#include "vmm/vm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

static char *take_json(json_object *o)
{
	char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

static void put_u64(json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_uint64(v));
}

static json_object *str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static void disk_name(char *buf, size_t len, int i)
{
	snprintf(buf, len, "vd%c", 'a' + i);
}

/* A configured limit in the command line's syntax, null without one (GET /vm). */
static void limit_str(json_object *o, const char *key, const struct tb_config *c)
{
	char spec[80];

	format_limit(c, spec, sizeof(spec));
	json_object_object_add(o, key, c->size ? json_object_new_string(spec) : NULL);
}

/* One bucket: null without a limit, else its configuration and its level now. */
static json_object *bucket_json(const struct token_bucket *b)
{
	if (!b->cfg.size)
		return NULL;
	json_object *o = json_object_new_object();
	char spec[80];
	format_limit(&b->cfg, spec, sizeof(spec));
	json_object_object_add(o, "limit", json_object_new_string(spec));
	put_u64(o, "size", b->cfg.size);
	put_u64(o, "refill_ms", b->cfg.refill_ms);
	put_u64(o, "burst", b->cfg.burst);
	put_u64(o, "level", b->level);
	put_u64(o, "burst_left", b->burst_left);
	return o;
}

/* The limits of disk i (GET/PATCH /vm/disks/vdX, /metrics). */
static json_object *disk_limits_json(struct vmm *vmm, int i)
{
	struct rate_limiter rl = { 0 };
	json_object *o = json_object_new_object();
	char name[16];

	if (vmm->vdevs.disks[i].blk)
		blk_get_limits(vmm->vdevs.disks[i].blk, &rl);
	disk_name(name, sizeof(name), i);
	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "bw", bucket_json(&rl.bytes));
	json_object_object_add(o, "iops", bucket_json(&rl.ops));
	put_u64(o, "throttled", rl.throttled);
	return o;
}

/* The limits of NIC i (GET/PATCH /vm/nets/ethN, /metrics). */
static json_object *net_limits_json(struct vmm *vmm, int i)
{
	struct rate_limiter rx = { 0 }, tx = { 0 };
	json_object *o = json_object_new_object();
	char name[16];

	if (vmm->vdevs.nics[i].net)
		net_get_limits(vmm->vdevs.nics[i].net, &rx, &tx);
	snprintf(name, sizeof(name), "eth%d", i);
	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "rx_bw", bucket_json(&rx.bytes));
	json_object_object_add(o, "rx_pps", bucket_json(&rx.ops));
	json_object_object_add(o, "tx_bw", bucket_json(&tx.bytes));
	json_object_object_add(o, "tx_pps", bucket_json(&tx.ops));
	put_u64(o, "rx_throttled", rx.throttled);
	put_u64(o, "tx_throttled", tx.throttled);
	return o;
}

static json_object *config_json(const struct vmm *vmm)
{
	const struct vmm_config *c = &vmm->cfg;
	json_object *o = json_object_new_object();
	json_object *disks = json_object_new_array();
	json_object *nets = json_object_new_array();

	json_object_object_add(o, "kernel", str_or_null(c->kernel));
	json_object_object_add(o, "initrd", str_or_null(c->initrd));
	json_object_object_add(o, "cmdline", str_or_null(vmm->cmdline ? vmm->cmdline : c->cmdline));
	put_u64(o, "mem", c->mem);
	json_object_object_add(o, "cpus", json_object_new_int(c->cpus));
	for (int i = 0; i < vmm->vdevs.nr_disks; i++) {
		const struct vdisk *v = &vmm->vdevs.disks[i];
		json_object *d = json_object_new_object();
		char name[16];
		disk_name(name, sizeof(name), i);
		json_object_object_add(d, "name", json_object_new_string(name));
		json_object_object_add(d, "path", json_object_new_string(v->cfg->path));
		json_object_object_add(d, "ro", json_object_new_boolean(v->cfg->ro));
		json_object_object_add(d, "direct", json_object_new_boolean(v->cfg->direct));
		put_u64(d, "size", v->size);
		limit_str(d, "bw", &v->cfg->limit.bytes);
		limit_str(d, "iops", &v->cfg->limit.ops);
		json_object_array_add(disks, d);
	}
	json_object_object_add(o, "disks", disks);
	for (int i = 0; i < vmm->vdevs.nr_nics; i++) {
		const struct vnet *v = &vmm->vdevs.nics[i];
		json_object *n = json_object_new_object();
		char name[16], mac[18];
		snprintf(name, sizeof(name), "eth%d", i);
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", v->mac[0], v->mac[1], v->mac[2],
			 v->mac[3], v->mac[4], v->mac[5]);
		json_object_object_add(n, "name", json_object_new_string(name));
		json_object_object_add(n, "tap", json_object_new_string(v->cfg->tap));
		json_object_object_add(n, "mac", json_object_new_string(mac));
		limit_str(n, "rx_bw", &v->cfg->rx.bytes);
		limit_str(n, "rx_pps", &v->cfg->rx.ops);
		limit_str(n, "tx_bw", &v->cfg->tx.bytes);
		limit_str(n, "tx_pps", &v->cfg->tx.ops);
		json_object_array_add(nets, n);
	}
	json_object_object_add(o, "nets", nets);
	json_object_object_add(o, "io_engine", json_object_new_string(io_engine_name(c->io_engine)));
	return o;
}

static json_object *engine_json(const struct vmm *vmm)
{
	return vmm->vdevs.loop ? json_object_new_string(io_engine_name(io_loop_engine(vmm->vdevs.loop))) : NULL;
}

static char *info_body(struct vmm *vmm)
{
	json_object *o = json_object_new_object();
	uint64_t now = stats_now_ns();

	json_object_object_add(o, "state", json_object_new_string(vmm_state_name(vmm)));
	put_u64(o, "uptime_ms", (now - vmm->times.start) / 1000000);
	put_u64(o, "paused_ms", vmm_paused_ns(vmm, now) / 1000000);
	json_object_object_add(o, "version", json_object_new_string(MICROVM_VERSION));
	json_object_object_add(o, "io_engine", engine_json(vmm));
	json_object_object_add(o, "config", config_json(vmm));
	return take_json(o);
}

static char *metrics_body(struct control *ctl)
{
	struct vmm *vmm = ctl->vmm;
	static struct exit_stats sum; /* main thread only; a few KiB */
	json_object *o = json_object_new_object();
	json_object *exits = json_object_new_object();
	json_object *devs = json_object_new_object();
	uint64_t total = 0;

	/* The vCPUs keep counting while this reads: each counter is exact, their sum a snapshot. */
	exit_stats_sum(vmm->vstats, vmm->nr_vcpus, &sum);
	for (int k = 0; k < VMEXIT_KIND_COUNT; k++) {
		put_u64(exits, vmexit_kind_name((enum vm_exit_kind)k), sum.kind[k]);
		total += sum.kind[k];
	}
	put_u64(o, "vm_exits_total", total);
	json_object_object_add(o, "vm_exits", exits);
	for (int i = 0; i < vmm->vdevs.nr_disks; i++) {
		struct blk_stats st = { 0 };
		json_object *d = json_object_new_object();
		char name[16];
		if (vmm->vdevs.disks[i].blk)
			blk_get_stats(vmm->vdevs.disks[i].blk, &st);
		disk_name(name, sizeof(name), i);
		put_u64(d, "requests", st.requests);
		put_u64(d, "reads", st.reads);
		put_u64(d, "read_bytes", st.read_bytes);
		put_u64(d, "writes", st.writes);
		put_u64(d, "write_bytes", st.write_bytes);
		put_u64(d, "flushes", st.flushes);
		put_u64(d, "errors", st.errors);
		json_object_object_add(d, "limits", disk_limits_json(vmm, i));
		json_object_object_add(devs, name, d);
	}
	for (int i = 0; i < vmm->vdevs.nr_nics; i++) {
		struct net_stats st = { 0 };
		json_object *n = json_object_new_object();
		char name[16];
		if (vmm->vdevs.nics[i].net)
			net_get_stats(vmm->vdevs.nics[i].net, &st);
		snprintf(name, sizeof(name), "eth%d", i);
		put_u64(n, "rx_frames", st.rx_frames);
		put_u64(n, "rx_bytes", st.rx_bytes);
		put_u64(n, "rx_dropped", st.rx_dropped);
		put_u64(n, "tx_frames", st.tx_frames);
		put_u64(n, "tx_bytes", st.tx_bytes);
		put_u64(n, "tx_dropped", st.tx_dropped);
		json_object_object_add(n, "limits", net_limits_json(vmm, i));
		json_object_object_add(devs, name, n);
	}
	json_object_object_add(o, "devices", devs);
	json_object_object_add(o, "io_engine", engine_json(vmm));
	json_object *api = json_object_new_object();
	put_u64(api, "requests", ctl->server.requests);
	put_u64(api, "rejected", ctl->server.rejected);
	json_object_object_add(o, "api", api);
	return take_json(o);
}

static char *state_body(struct vmm *vmm)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "state", json_object_new_string(vmm_state_name(vmm)));
	return take_json(o);
}

/* One route: its path, its method, what it does (body: the request's, NUL-terminated). */
struct route {
	const char *path, *method;
	void (*fn)(struct control *ctl, const struct api_request *req, struct api_response *resp);
};

static void get_vm(struct control *ctl, const struct api_request *req, struct api_response *resp)
{
	struct vmm *vmm = ctl->vmm;
	(void)req;
	resp->status = 200;
	resp->body = info_body(vmm);
}

/* JSON, or the Prometheus text format when the query or the Accept header asks for it (prom.h). */
static void get_metrics(struct control *ctl, const struct api_request *req, struct api_response *resp)
{
	enum metrics_format fmt;
	char why[160];

	if (metrics_format(req->query ? req->query : "", req->accept ? req->accept : "", &fmt, why, sizeof(why)) < 0) {
		resp->status = 400;
		resp->body = api_error_body("GET /metrics: %s", why);
		return;
	}
	resp->status = 200;
	if (fmt == METRICS_PROMETHEUS) {
		resp->body = prom_metrics_body(ctl);
		resp->content_type = PROM_CONTENT_TYPE;
	} else {
		resp->body = metrics_body(ctl);
	}
	if (!resp->body) {
		resp->status = 500;
		resp->content_type = NULL;
		resp->body = api_error_body("GET /metrics: out of memory");
	}
}

static void post_pause(struct control *ctl, const struct api_request *req, struct api_response *resp)
{
	struct vmm *vmm = ctl->vmm;
	(void)req;
	int r = vmm_pause(vmm);
	if (r == -ESHUTDOWN) {
		resp->status = 409;
		resp->body = api_error_body("the VM is stopping");
	} else if (r < 0) {
		resp->status = 500;
		resp->body = api_error_body("%s", err_msg());
	} else {
		resp->status = 200;
		resp->body = state_body(vmm);
	}
}

static void post_resume(struct control *ctl, const struct api_request *req, struct api_response *resp)
{
	struct vmm *vmm = ctl->vmm;
	(void)req;
	if (vmm_resume(vmm) < 0) {
		resp->status = 409;
		resp->body = api_error_body("the VM is stopping");
		return;
	}
	resp->status = 200;
	resp->body = state_body(vmm);
}

static void post_stop(struct control *ctl, const struct api_request *req, struct api_response *resp)
{
	struct vmm *vmm = ctl->vmm;
	(void)req;
	vmm_request_stop(vmm, MV_EXIT_POWEROFF, "stop requested through the control API: stopping the VM");
	resp->status = 200;
	resp->body = state_body(vmm);
}

/* The body of a JSON-object request, or NULL with a 400 in resp ("ROUTE: the body must be ..."). */
static json_object *object_body(const struct api_request *req, const char *route, const char *example,
				struct api_response *resp)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *o = tok ? json_tokener_parse_ex(tok, req->body, (int)req->body_len) : NULL;
	size_t end = tok ? json_tokener_get_parse_end(tok) : 0;
	while (end < req->body_len && (req->body[end] == ' ' || req->body[end] == '\t' ||
				       req->body[end] == '\r' || req->body[end] == '\n'))
		end++;
	bool whole = tok && json_tokener_get_error(tok) == json_tokener_success && end == req->body_len;
	json_tokener_free(tok);
	if (!o || !whole || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		resp->status = 400;
		resp->body = api_error_body("%s: the body must be a JSON object, e.g. %s", route, example);
		return NULL;
	}
	return o;
}

/*
 * The body: empty, or {"timeout": SECONDS} (a number, 0 < SECONDS <= 3600).
 * Returns 0 with *ms, or -EINVAL with the message in resp.
 */
static int shutdown_timeout(const struct api_request *req, uint64_t *ms, struct api_response *resp)
{
	*ms = VMM_SHUTDOWN_DEFAULT_MS;
	if (req->body_len == 0)
		return 0;
	json_object *o = object_body(req, "POST /vm/shutdown", "{\"timeout\": 30}", resp);
	if (!o)
		return -EINVAL;
	const char *why = NULL;
	json_object *t = NULL;
	json_object_object_foreach(o, key, val) {
		(void)val;
		if (strcmp(key, "timeout")) {
			why = "unknown key (only \"timeout\")";
			break;
		}
	}
	if (!why && json_object_object_get_ex(o, "timeout", &t)) {
		double s = json_object_get_double(t);
		if (!(json_object_is_type(t, json_type_int) || json_object_is_type(t, json_type_double)) ||
		    !(s > 0 && s <= 3600))
			why = "timeout must be a number of seconds, more than 0 and at most 3600";
		else
			*ms = (uint64_t)(s * 1000.0 + 0.5) ? (uint64_t)(s * 1000.0 + 0.5) : 1;
	}
	json_object_put(o);
	if (why) {
		resp->status = 400;
		resp->body = api_error_body("POST /vm/shutdown: %s", why);
		return -EINVAL;
	}
	return 0;
}

static void post_shutdown(struct control *ctl, const struct api_request *req, struct api_response *resp)
{
	struct vmm *vmm = ctl->vmm;
	uint64_t ms;

	if (shutdown_timeout(req, &ms, resp) < 0)
		return;
	int r = vmm_shutdown(vmm, ms);
	if (r == -ESHUTDOWN || r == -EAGAIN) {
		resp->status = 409;
		resp->body = api_error_body(r == -EAGAIN ? "the VM is paused: resume it first (a paused guest cannot see the button)"
							 : "the VM is stopping");
		return;
	}
	if (r < 0) {
		resp->status = 500;
		resp->body = api_error_body("%s", err_msg());
		return;
	}
	json_object *o = json_object_new_object();
	json_object_object_add(o, "state", json_object_new_string(vmm_state_name(vmm)));
	put_u64(o, "timeout_ms", vmm->shutdown_timeout_ms);
	resp->status = 202;
	resp->body = take_json(o);
}

/* {"path": DIR, "compress": false}: snapshot the paused VM into DIR (vmm/snapshot.h). */
static void post_snapshot(struct control *ctl, const struct api_request *req, struct api_response *resp)
{
	struct vmm *vmm = ctl->vmm;
	static const char route[] = "POST /vm/snapshot", example[] = "{\"path\": \"/srv/snap/fn1\"}";
	json_object *o = object_body(req, route, example, resp), *v;
	const char *why = NULL, *path = NULL;
	bool compress = false;

	if (!o)
		return;
	json_object_object_foreach(o, key, val) {
		(void)val;
		if (strcmp(key, "path") && strcmp(key, "compress")) {
			why = "unknown key (only \"path\" and \"compress\")";
			break;
		}
	}
	if (!why && (!json_object_object_get_ex(o, "path", &v) || !json_object_is_type(v, json_type_string) ||
		     !*(path = json_object_get_string(v)) || strlen(path) > 3500))
		why = "\"path\" must be a directory path (a non-empty string)";
	if (!why && json_object_object_get_ex(o, "compress", &v)) {
		if (!json_object_is_type(v, json_type_boolean))
			why = "\"compress\" must be true or false";
		else
			compress = json_object_get_boolean(v);
	}
	if (why) {
		resp->status = 400;
		resp->body = api_error_body("%s: %s", route, why);
		json_object_put(o);
		return;
	}
	if (strcmp(vmm_state_name(vmm), "paused")) {
		resp->status = 409;
		resp->body = api_error_body("%s: the VM is %s: pause it first (POST /vm/pause)", route,
					    vmm_state_name(vmm));
		json_object_put(o);
		return;
	}
	uint64_t t0 = stats_now_ns(), bytes = 0;
	if (vmm_snapshot(vmm, path, compress, &bytes) < 0) {
		resp->status = 500;
		resp->body = api_error_body("%s: %s", route, err_msg());
		json_object_put(o);
		return;
	}
	json_object *r = json_object_new_object();
	json_object_object_add(r, "state", json_object_new_string(vmm_state_name(vmm)));
	json_object_object_add(r, "path", json_object_new_string(path));
	json_object_object_add(r, "compress", json_object_new_boolean(compress));
	put_u64(r, "bytes", bytes);
	put_u64(r, "ms", (stats_now_ns() - t0) / 1000000);
	json_object_put(o);
	resp->status = 200;
	resp->body = take_json(r);
}

/* --record-working-set: record the pages touched so far and save DIR/workingset now, before the deadline. */
static void post_working_set(struct control *ctl, const struct api_request *req, struct api_response *resp)
{
	static const char route[] = "POST /vm/working-set";
	struct vmm *vmm = ctl->vmm;
	uint32_t nr = 0;
	uint64_t bytes = 0;
	(void)req;
	int r = vmm_save_working_set(vmm, &nr, &bytes);
	if (r == -ENOENT || r == -EALREADY) {
		resp->status = 409;
		resp->body = api_error_body(r == -ENOENT ? "%s: not recording (start microvm with --restore DIR "
							   "--record-working-set SECONDS)"
							 : "%s: the working set was saved already (once per restore)", route);
		return;
	}
	if (r < 0) {
		resp->status = 500;
		resp->body = api_error_body("%s: %s", route, err_msg());
		return;
	}
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/workingset", vmm->cfg.restore);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "path", json_object_new_string(path));
	put_u64(o, "ranges", nr);
	put_u64(o, "bytes", bytes);
	resp->status = 200;
	resp->body = take_json(o);
}

/*
 * One limit of a PATCH body: a string in the command line's syntax
 * (parse_limit), a whole number (per second), or null / 0 (no limit).
 * Returns 0, or -EINVAL with the reason in why[].
 */
static int limit_value(json_object *v, const char *key, bool bytes, struct tb_config *out, char *why,
		       size_t why_len)
{
	char buf[64];
	const char *s;

	if (!v || json_object_is_type(v, json_type_null)) {
		*out = (struct tb_config){ 0 };
		return 0;
	}
	if (json_object_is_type(v, json_type_int)) {
		int64_t n = json_object_get_int64(v);
		if (n < 0 || (uint64_t)n > TB_MAX_TOKENS) {
			snprintf(why, why_len, "\"%s\" must be 0 to %llu per second, a string (%s) or null", key,
				 TB_MAX_TOKENS, LIMIT_SYNTAX);
			return -EINVAL;
		}
		*out = (struct tb_config){ .size = (uint64_t)n, .refill_ms = n ? TB_DEFAULT_REFILL_MS : 0 };
		return 0;
	}
	if (json_object_is_type(v, json_type_string)) {
		s = json_object_get_string(v);
		/* A \u0000 inside would cut the C string short: refused, not half-read. */
		if (strlen(s) == (size_t)json_object_get_string_len(v) && parse_limit(s, strlen(s), bytes, out) == 0)
			return 0;
	}
	snprintf(buf, sizeof(buf), "%s", json_object_get_string(v));
	snprintf(why, why_len, "\"%s\": bad limit '%s' (%s%s, or null)", key, buf, LIMIT_SYNTAX,
		 bytes ? "" : "; plain numbers, no suffix");
	return -EINVAL;
}

/* What a PATCH may set on a device: the keys, whether each counts bytes, where it goes. */
struct limit_keys {
	const char *const *names;
	const bool *bytes;
	struct tb_config *const *dst;
	int n;
};

/*
 * Apply the body's keys (each one of lk's names) over the current limits in
 * *dst. 0, or -EINVAL with a 400 in resp.
 */
static int patch_limits(const struct api_request *req, const char *route, const struct limit_keys *lk,
			struct api_response *resp)
{
	char why[300] = "";
	json_object *o = object_body(req, route, "{\"bw\": \"10M\"}", resp);

	if (!o)
		return -EINVAL;
	json_object_object_foreach(o, key, val) {
		int i;
		for (i = 0; i < lk->n && strcmp(lk->names[i], key); i++)
			;
		if (i == lk->n) {
			snprintf(why, sizeof(why), "unknown key \"%s\" (use %s%s%s%s%s%s%s)", key, lk->names[0],
				 lk->n > 1 ? ", " : "", lk->n > 1 ? lk->names[1] : "", lk->n > 2 ? ", " : "",
				 lk->n > 2 ? lk->names[2] : "", lk->n > 3 ? ", " : "", lk->n > 3 ? lk->names[3] : "");
			break;
		}
		if (limit_value(val, key, lk->bytes[i], lk->dst[i], why, sizeof(why)) < 0)
			break;
	}
	json_object_put(o);
	if (why[0]) {
		resp->status = 400;
		resp->body = api_error_body("%s: %s", route, why);
		return -EINVAL;
	}
	return 0;
}

/* GET or PATCH /vm/disks/vdX and /vm/nets/ethN: a device's rate limits. */
static void device_limits(struct control *ctl, const struct api_request *req, struct api_response *resp)
{
	struct vmm *vmm = ctl->vmm;
	bool disk = !strncmp(req->path, "/vm/disks/", 10);
	const char *id = req->path + (disk ? 10 : 9);
	int count = disk ? vmm->vdevs.nr_disks : vmm->vdevs.nr_nics, idx = -1;
	char route[64], name[16];

	for (int i = 0; i < count; i++) {
		if (disk)
			disk_name(name, sizeof(name), i);
		else
			snprintf(name, sizeof(name), "eth%d", i);
		if (!strcmp(name, id))
			idx = i;
	}
	if (idx < 0) {
		resp->status = 404;
		resp->body = api_error_body("%s: no such %s (%s)", req->path, disk ? "disk" : "NIC",
					    disk ? "disks are vda, vdb, ... in --disk order" : "NICs are eth0, eth1, ... in --net order");
		return;
	}
	if (strcmp(req->method, "GET") && strcmp(req->method, "PATCH")) {
		resp->status = 405;
		resp->allow = "GET, PATCH";
		resp->body = api_error_body("%s %s: method not allowed (use GET or PATCH)", req->method, req->path);
		return;
	}
	snprintf(route, sizeof(route), "PATCH %s", req->path);
	if (!strcmp(req->method, "PATCH")) {
		int ret;
		if (disk) {
			struct disk_config *dc = &vmm->cfg.disks[idx];
			struct rl_config c = dc->limit;
			static const char *const names[] = { "bw", "iops" };
			static const bool bytes[] = { true, false };
			struct tb_config *const dst[] = { &c.bytes, &c.ops };
			struct limit_keys lk = { names, bytes, dst, 2 };
			if (patch_limits(req, route, &lk, resp) < 0)
				return;
			ret = vmm->vdevs.disks[idx].blk ? blk_set_limits(vmm->vdevs.disks[idx].blk, &c) : 0;
			if (ret == 0)
				dc->limit = c;
		} else {
			struct net_config *nc = &vmm->cfg.nics[idx];
			struct rl_config rx = nc->rx, tx = nc->tx;
			static const char *const names[] = { "rx_bw", "rx_pps", "tx_bw", "tx_pps" };
			static const bool bytes[] = { true, false, true, false };
			struct tb_config *const dst[] = { &rx.bytes, &rx.ops, &tx.bytes, &tx.ops };
			struct limit_keys lk = { names, bytes, dst, 4 };
			if (patch_limits(req, route, &lk, resp) < 0)
				return;
			ret = vmm->vdevs.nics[idx].net ? net_set_limits(vmm->vdevs.nics[idx].net, &rx, &tx) : 0;
			if (ret == 0) {
				nc->rx = rx;
				nc->tx = tx;
			}
		}
		if (ret < 0) {
			resp->status = 400;
			resp->body = api_error_body("%s: %s", route, err_msg());
			return;
		}
	}
	resp->status = 200;
	resp->body = take_json(disk ? disk_limits_json(vmm, idx) : net_limits_json(vmm, idx));
}

static const struct route routes[] = {
	{ "/vm", "GET", get_vm },
	{ "/metrics", "GET", get_metrics },
	{ "/vm/pause", "POST", post_pause },
	{ "/vm/resume", "POST", post_resume },
	{ "/vm/stop", "POST", post_stop },
	{ "/vm/shutdown", "POST", post_shutdown },
	{ "/vm/snapshot", "POST", post_snapshot },
	{ "/vm/working-set", "POST", post_working_set },
};

void control_handle(void *ctx, const struct api_request *req, struct api_response *resp)
{
	struct control *ctl = ctx;

	if (!strncmp(req->path, "/vm/disks/", 10) || !strncmp(req->path, "/vm/nets/", 9)) {
		device_limits(ctl, req, resp);
		return;
	}
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(routes[i].path, req->path))
			continue;
		if (strcmp(routes[i].method, req->method)) {
			resp->status = 405;
			resp->allow = routes[i].method;
			resp->body = api_error_body("%s %s: method not allowed (use %s)", req->method, req->path,
						    routes[i].method);
			return;
		}
		routes[i].fn(ctl, req, resp);
		return;
	}
	resp->status = 404;
	resp->body = api_error_body("%s: no such route (see docs/api.md)", req->path);
}

/* ---- the door vmm_run()'s main loop serves (vmm/vm.h) ---- */

_Static_assert(1 + API_MAX_CLIENTS <= VMM_DOOR_MAX_FDS, "the main loop polls every API fd");

static int door_open(void *ctx, struct vmm *vmm, const char *path)
{
	struct control *ctl = ctx;

	ctl->vmm = vmm;
	return api_open(&ctl->server, path, control_handle, ctl);
}

static int door_pollfds(void *ctx, struct pollfd *p, int max)
{
	return api_pollfds(&((struct control *)ctx)->server, p, max);
}

static int door_timeout_ms(void *ctx, uint64_t now_ns)
{
	return api_timeout_ms(&((struct control *)ctx)->server, now_ns);
}

static void door_process(void *ctx, const struct pollfd *p, int n, uint64_t now_ns)
{
	api_process(&((struct control *)ctx)->server, p, n, now_ns);
}

static void door_close(void *ctx)
{
	api_close(&((struct control *)ctx)->server);
}

struct vmm_door control_door(struct control *ctl)
{
	return (struct vmm_door){ .ctx = ctl, .open = door_open, .pollfds = door_pollfds,
				  .timeout_ms = door_timeout_ms, .process = door_process, .close = door_close };
}
