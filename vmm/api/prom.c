/* prom.c - GET /metrics in the Prometheus text format, and the JSON-or-text choice (see prom.h). */
#include "vmm/api/prom.h"
#include "vmm/stats.h"
#include "vmm/vm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- which format ---- */

/* A q-value as RFC 9110 writes it: "0", "0.5", "1", "1.000"; -1 if malformed. */
static double parse_q(const char *s, size_t n)
{
	if (n == 0 || (s[0] != '0' && s[0] != '1') || n > 5 || (n > 1 && s[1] != '.') || n == 2)
		return -1;
	double q = s[0] - '0', scale = 0.1;
	for (size_t i = 2; i < n; i++, scale /= 10) {
		if (s[i] < '0' || s[i] > '9' || (s[0] == '1' && s[i] != '0'))
			return -1;
		q += (s[i] - '0') * scale;
	}
	return q;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* The best match so far for one format: how specific the media range was (0: any, 1: "text/" or "application/" any, 2: exact) and its q. */
struct match {
	int spec;
	double q;
};

static void consider(struct match *m, int spec, double q)
{
	if (spec > m->spec || (spec == m->spec && q > m->q))
		*m = (struct match){ spec, q };
}

/* One element of an Accept list, s[0..n): "type/subtype *( OWS ; OWS param )". */
static void accept_element(const char *s, size_t n, struct match *json, struct match *prom)
{
	while (n && is_ows(*s))
		s++, n--;
	while (n && is_ows(s[n - 1]))
		n--;
	size_t mlen = 0;
	while (mlen < n && s[mlen] != ';' && !is_ows(s[mlen]))
		mlen++;
	double q = 1;
	for (size_t i = mlen; i < n;) {
		while (i < n && (is_ows(s[i]) || s[i] == ';'))
			i++;
		size_t j = i;
		while (j < n && s[j] != ';')
			j++;
		size_t k = j;
		while (k > i && is_ows(s[k - 1]))
			k--;
		if (k - i >= 2 && (s[i] == 'q' || s[i] == 'Q') && s[i + 1] == '=') {
			q = parse_q(s + i + 2, k - i - 2);
			if (q < 0)
				return; /* a malformed weight: the element counts for nothing */
		}
		i = j;
	}
#define IS(lit) (mlen == sizeof(lit) - 1 && !strncasecmp(s, lit, mlen))
	if (IS("*/*")) {
		consider(json, 0, q);
		consider(prom, 0, q);
	} else if (IS("application/*")) {
		consider(json, 1, q);
	} else if (IS("text/*")) {
		consider(prom, 1, q);
	} else if (IS("application/json")) {
		consider(json, 2, q);
	} else if (IS("text/plain") || IS("application/openmetrics-text")) {
		consider(prom, 2, q);
	}
#undef IS
}

int metrics_format(const char *query, const char *accept, enum metrics_format *out, char *why, size_t why_len)
{
	bool decided = false;

	*out = METRICS_JSON;
	for (const char *q = query; *q;) {
		size_t n = strcspn(q, "&");
		if (n == 7 + 4 && !strncmp(q, "format=json", n)) {
			*out = METRICS_JSON, decided = true;
		} else if (n == 7 + 10 && !strncmp(q, "format=prometheus", n)) {
			*out = METRICS_PROMETHEUS, decided = true;
		} else if (n) {
			snprintf(why, why_len, "unknown query parameter '%.*s' (only format=json or format=prometheus)",
				 (int)(n > 64 ? 64 : n), q);
			return -EINVAL;
		}
		q += n + (q[n] == '&');
	}
	if (decided)
		return 0;
	struct match json = { -1, 0 }, prom = { -1, 0 };
	for (const char *a = accept; *a;) {
		size_t n = strcspn(a, ",");
		accept_element(a, n, &json, &prom);
		a += n + (a[n] == ',');
	}
	if (prom.spec >= 0 && prom.q > 0 && (json.spec < 0 || prom.q > json.q))
		*out = METRICS_PROMETHEUS;
	return 0;
}

/* ---- the writer ---- */

void prom_escape(FILE *f, const char *s, bool escape_quote)
{
	const unsigned char *u = (const unsigned char *)s;

	while (*u) {
		unsigned char b = *u;
		size_t len = 0;
		if (b < 0x80) {
			if (b == '\\')
				fputs("\\\\", f);
			else if (b == '\n')
				fputs("\\n", f);
			else if (b == '"' && escape_quote)
				fputs("\\\"", f);
			else
				fputc(b, f);
			u++;
			continue;
		}
		/* UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF. */
		unsigned char lo = 0x80, hi = 0xbf;
		if (b >= 0xc2 && b <= 0xdf)
			len = 2;
		else if (b >= 0xe0 && b <= 0xef)
			len = 3, lo = b == 0xe0 ? 0xa0 : 0x80, hi = b == 0xed ? 0x9f : 0xbf;
		else if (b >= 0xf0 && b <= 0xf4)
			len = 4, lo = b == 0xf0 ? 0x90 : 0x80, hi = b == 0xf4 ? 0x8f : 0xbf;
		bool ok = len > 0 && u[1] >= lo && u[1] <= hi;
		for (size_t i = 2; ok && i < len; i++)
			ok = u[i] >= 0x80 && u[i] <= 0xbf;
		if (ok) {
			fwrite(u, 1, len, f);
			u += len;
		} else {
			fputs("\xef\xbf\xbd", f);
			u++;
		}
	}
}

int prom_open(struct prom *p)
{
	memset(p, 0, sizeof(*p));
	p->f = open_memstream(&p->buf, &p->len);
	return p->f ? 0 : -ENOMEM;
}

void prom_family(struct prom *p, const char *name, const char *type, const char *help)
{
	p->name = name, p->type = type, p->help = help;
	p->head_done = false;
}

static void sample_start(struct prom *p, const char *const *labels)
{
	if (!p->head_done) {
		fprintf(p->f, "# HELP %s ", p->name);
		prom_escape(p->f, p->help, false);
		fprintf(p->f, "\n# TYPE %s %s\n", p->name, p->type);
		p->head_done = true;
	}
	fputs(p->name, p->f);
	if (!labels || !labels[0])
		return;
	fputc('{', p->f);
	for (int i = 0; labels[i] && labels[i + 1]; i += 2) {
		fprintf(p->f, "%s%s=\"", i ? "," : "", labels[i]);
		prom_escape(p->f, labels[i + 1], true);
		fputc('"', p->f);
	}
	fputc('}', p->f);
}

void prom_u64(struct prom *p, const char *const *labels, uint64_t v)
{
	sample_start(p, labels);
	fprintf(p->f, " %llu\n", (unsigned long long)v);
}

void prom_double(struct prom *p, const char *const *labels, double v)
{
	sample_start(p, labels);
	fprintf(p->f, " %.3f\n", v);
}

char *prom_close(struct prom *p)
{
	bool bad = ferror(p->f);
	if (fclose(p->f) != 0 || bad) {
		free(p->buf);
		return NULL;
	}
	return p->buf;
}

/* ---- the VM's metrics ---- */

#define L(...) ((const char *const[]){ __VA_ARGS__, NULL })

static void bucket_tokens(struct prom *p, const char *dev_label, const char *dev, const char *bucket,
			  const struct token_bucket *b)
{
	if (b->cfg.size)
		prom_u64(p, L(dev_label, dev, "bucket", bucket), b->level);
}

static void disk_metrics(struct prom *p, struct vmm *vmm)
{
	int n = vmm->vdevs.nr_disks;
	struct blk_stats st[CFG_MAX_DISKS] = { 0 };
	struct rate_limiter rl[CFG_MAX_DISKS] = { 0 };
	char name[CFG_MAX_DISKS][16];

	for (int i = 0; i < n; i++) {
		snprintf(name[i], sizeof(name[i]), "vd%c", 'a' + i);
		if (vmm->vdevs.disks[i].blk) {
			blk_get_stats(vmm->vdevs.disks[i].blk, &st[i]);
			blk_get_limits(vmm->vdevs.disks[i].blk, &rl[i]);
		}
	}
	prom_family(p, "microvm_disk_info", "gauge", "A virtio-blk disk: its image file and whether it is read-only (value 1).");
	for (int i = 0; i < n; i++)
		prom_u64(p, L("disk", name[i], "path", vmm->vdevs.disks[i].cfg->path, "ro",
			      vmm->vdevs.disks[i].cfg->ro ? "true" : "false"), 1);
	prom_family(p, "microvm_disk_size_bytes", "gauge", "The disk's size as the guest sees it.");
	for (int i = 0; i < n; i++)
		prom_u64(p, L("disk", name[i]), vmm->vdevs.disks[i].size);
	prom_family(p, "microvm_disk_requests_total", "counter", "Requests the disk answered, whatever their kind and outcome.");
	for (int i = 0; i < n; i++)
		prom_u64(p, L("disk", name[i]), st[i].requests);
	prom_family(p, "microvm_disk_operations_total", "counter", "Host reads, writes and flushes that succeeded.");
	for (int i = 0; i < n; i++) {
		prom_u64(p, L("disk", name[i], "op", "read"), st[i].reads);
		prom_u64(p, L("disk", name[i], "op", "write"), st[i].writes);
		prom_u64(p, L("disk", name[i], "op", "flush"), st[i].flushes);
	}
	prom_family(p, "microvm_disk_read_bytes_total", "counter", "Bytes read from the disk by the guest.");
	for (int i = 0; i < n; i++)
		prom_u64(p, L("disk", name[i]), st[i].read_bytes);
	prom_family(p, "microvm_disk_write_bytes_total", "counter", "Bytes written to the disk by the guest.");
	for (int i = 0; i < n; i++)
		prom_u64(p, L("disk", name[i]), st[i].write_bytes);
	prom_family(p, "microvm_disk_errors_total", "counter", "Requests answered IOERR or UNSUPP (a bad request or a host I/O error).");
	for (int i = 0; i < n; i++)
		prom_u64(p, L("disk", name[i]), st[i].errors);
	prom_family(p, "microvm_disk_throttled_total", "counter", "Times a request waited for its rate limit.");
	for (int i = 0; i < n; i++)
		prom_u64(p, L("disk", name[i]), rl[i].throttled);
	prom_family(p, "microvm_disk_ratelimit_tokens", "gauge", "Tokens in a limited bucket now (bw: bytes, iops: requests).");
	for (int i = 0; i < n; i++) {
		bucket_tokens(p, "disk", name[i], "bw", &rl[i].bytes);
		bucket_tokens(p, "disk", name[i], "iops", &rl[i].ops);
	}
}

static void net_metrics(struct prom *p, struct vmm *vmm)
{
	int n = vmm->vdevs.nr_nics;
	struct net_stats st[CFG_MAX_NICS] = { 0 };
	struct rate_limiter rx[CFG_MAX_NICS] = { 0 }, tx[CFG_MAX_NICS] = { 0 };
	char name[CFG_MAX_NICS][16], mac[CFG_MAX_NICS][18];

	for (int i = 0; i < n; i++) {
		const uint8_t *m = vmm->vdevs.nics[i].mac;
		snprintf(name[i], sizeof(name[i]), "eth%d", i);
		snprintf(mac[i], sizeof(mac[i]), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
		if (vmm->vdevs.nics[i].net) {
			net_get_stats(vmm->vdevs.nics[i].net, &st[i]);
			net_get_limits(vmm->vdevs.nics[i].net, &rx[i], &tx[i]);
		}
	}
	prom_family(p, "microvm_net_info", "gauge", "A virtio-net interface: its host tap and MAC address (value 1).");
	for (int i = 0; i < n; i++)
		prom_u64(p, L("net", name[i], "tap", vmm->vdevs.nics[i].cfg->tap, "mac", mac[i]), 1);
#define NET_COUNTER(metric, help, field) \
	prom_family(p, metric, "counter", help); \
	for (int i = 0; i < n; i++) \
		prom_u64(p, L("net", name[i]), st[i].field)
	NET_COUNTER("microvm_net_rx_bytes_total", "Frame bytes delivered to the guest (without the virtio-net header).", rx_bytes);
	NET_COUNTER("microvm_net_rx_frames_total", "Frames delivered to the guest.", rx_frames);
	NET_COUNTER("microvm_net_rx_dropped_total", "Frames from the tap that fit no guest buffer, and host read errors.", rx_dropped);
	NET_COUNTER("microvm_net_tx_bytes_total", "Frame bytes the guest sent to the tap (without the virtio-net header).", tx_bytes);
	NET_COUNTER("microvm_net_tx_frames_total", "Frames the guest sent to the tap.", tx_frames);
	NET_COUNTER("microvm_net_tx_dropped_total", "Bad chains or headers from the guest, and host write errors.", tx_dropped);
#undef NET_COUNTER
	prom_family(p, "microvm_net_throttled_total", "counter", "Times a frame waited for its direction's rate limit.");
	for (int i = 0; i < n; i++) {
		prom_u64(p, L("net", name[i], "direction", "rx"), rx[i].throttled);
		prom_u64(p, L("net", name[i], "direction", "tx"), tx[i].throttled);
	}
	prom_family(p, "microvm_net_ratelimit_tokens", "gauge", "Tokens in a limited bucket now (*_bw: bytes, *_pps: frames).");
	for (int i = 0; i < n; i++) {
		bucket_tokens(p, "net", name[i], "rx_bw", &rx[i].bytes);
		bucket_tokens(p, "net", name[i], "rx_pps", &rx[i].ops);
		bucket_tokens(p, "net", name[i], "tx_bw", &tx[i].bytes);
		bucket_tokens(p, "net", name[i], "tx_pps", &tx[i].ops);
	}
}

char *prom_metrics_body(struct control *ctl)
{
	static const char *const states[] = { "running", "paused", "shutting-down", "stopping" };
	static struct exit_stats sum; /* main thread only; a few KiB */
	struct vmm *vmm = ctl->vmm;
	uint64_t now = stats_now_ns();
	const char *state = vmm_state_name(vmm);
	const char *engine = vmm->vdevs.loop ? io_engine_name(io_loop_engine(vmm->vdevs.loop)) : "none";
	struct prom p;

	if (prom_open(&p) < 0)
		return NULL;
	prom_family(&p, "microvm_info", "gauge", "microvm's version and the I/O engine in use (value 1).");
	prom_u64(&p, L("version", MICROVM_VERSION, "io_engine", engine), 1);
	prom_family(&p, "microvm_vm_state", "gauge", "1 for the VM's state now, 0 for the others.");
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		prom_u64(&p, L("state", states[i]), !strcmp(state, states[i]));
	prom_family(&p, "microvm_uptime_seconds", "gauge", "Time since microvm started, paused time included.");
	prom_double(&p, NULL, (double)(now - vmm->times.start) / 1e9);
	prom_family(&p, "microvm_paused_seconds_total", "counter", "Time the VM spent paused.");
	prom_double(&p, NULL, (double)vmm_paused_ns(vmm, now) / 1e9);
	prom_family(&p, "microvm_vcpus", "gauge", "The VM's vCPUs.");
	prom_u64(&p, NULL, (uint64_t)vmm->cfg.cpus);
	prom_family(&p, "microvm_memory_bytes", "gauge", "The VM's RAM.");
	prom_u64(&p, NULL, vmm->cfg.mem);

	/* The vCPUs keep counting while this reads: each counter is exact, their sum a snapshot. */
	exit_stats_sum(vmm->vstats, vmm->nr_vcpus, &sum);
	prom_family(&p, "microvm_vm_exits_total", "counter", "VM exits of all vCPUs, by kind.");
	for (int k = 0; k < VMEXIT_KIND_COUNT; k++)
		prom_u64(&p, L("kind", vmexit_kind_name((enum vm_exit_kind)k)), sum.kind[k]);
	disk_metrics(&p, vmm);
	net_metrics(&p, vmm);
	prom_family(&p, "microvm_api_requests_total", "counter", "Control API requests answered.");
	prom_u64(&p, NULL, ctl->server.requests);
	prom_family(&p, "microvm_api_rejected_total", "counter", "Control API connections refused for lack of a slot (503).");
	prom_u64(&p, NULL, ctl->server.rejected);
	return prom_close(&p);
}
