/* test_prom.c - GET /metrics in the Prometheus text format: escaping, the format choice, and a whole exposition read by a strict parser. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/api/prom.h"
#include "vmm/api/control.h"
#include "vmm/vm.h"

static char *escaped(const char *s, bool quote)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cr_assert(f);
	prom_escape(f, s, quote);
	fclose(f);
	return buf;
}

Test(prom, escape_label_values_and_help)
{
	static const struct {
		const char *in, *label, *help;
	} cases[] = {
		{ "plain /srv/vm1.img", "plain /srv/vm1.img", "plain /srv/vm1.img" },
		{ "a\\b", "a\\\\b", "a\\\\b" },
		{ "say \"hi\"", "say \\\"hi\\\"", "say \"hi\"" },
		{ "two\nlines", "two\\nlines", "two\\nlines" },
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
		  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80" },            /* UTF-8 stays */
		{ "x\xffy", "x\xef\xbf\xbdy", "x\xef\xbf\xbdy" },              /* not UTF-8: U+FFFD */
		{ "\xc0\x80", "\xef\xbf\xbd\xef\xbf\xbd", "\xef\xbf\xbd\xef\xbf\xbd" }, /* overlong NUL */
		{ "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" }, /* surrogate */
		{ "\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
		  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },       /* past U+10FFFF */
		{ "cut \xe2\x82", "cut \xef\xbf\xbd\xef\xbf\xbd", "cut \xef\xbf\xbd\xef\xbf\xbd" }, /* truncated at the end */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *l = escaped(cases[i].in, true), *h = escaped(cases[i].in, false);
		cr_assert_str_eq(l, cases[i].label, "label value of case %zu", i);
		cr_assert_str_eq(h, cases[i].help, "help text of case %zu", i);
		free(l);
		free(h);
	}
}

Test(prom, format_choice)
{
	static const struct {
		const char *query, *accept;
		int want; /* METRICS_JSON, METRICS_PROMETHEUS, or -1: 400 */
	} cases[] = {
		{ "", "", METRICS_JSON },
		{ "", "*/*", METRICS_JSON },                                  /* curl */
		{ "", "application/json", METRICS_JSON },
		{ "", "text/plain", METRICS_PROMETHEUS },
		{ "", "text/plain;version=0.0.4", METRICS_PROMETHEUS },
		{ "", "TEXT/Plain ; Version=0.0.4", METRICS_PROMETHEUS },
		{ "", "application/openmetrics-text", METRICS_PROMETHEUS },
		/* What Prometheus sends. */
		{ "", "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
		      "text/plain;version=0.0.4;q=0.5,*/*;q=0.1", METRICS_PROMETHEUS },
		/* A browser: text/html is not text/plain; */
		{ "", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", METRICS_JSON },
		{ "", "text/*", METRICS_PROMETHEUS },
		{ "", "text/*;q=0.5, application/*;q=0.6", METRICS_JSON },
		{ "", "application/json;q=0.5, text/plain", METRICS_PROMETHEUS },
		{ "", "application/json, text/plain;q=0.9", METRICS_JSON },
		{ "", "text/plain;q=0.5, */*", METRICS_JSON },               /* tie on the specific ones: JSON */
		{ "", "text/plain;q=0", METRICS_JSON },                      /* not acceptable */
		{ "", "text/plain;q=0.5, */*;q=0.9", METRICS_JSON },         /* any type at 0.9 (JSON) over text at 0.5 */
		{ "", "text/plain;q=2", METRICS_JSON },                      /* a malformed weight: ignored */
		{ "", "text/plain;q=0.0001", METRICS_JSON },
		{ "", "text/plain;q=1.000", METRICS_PROMETHEUS },
		{ "", ",,, ;;; text/plain", METRICS_JSON },
		{ "", ",, text/plain ,", METRICS_PROMETHEUS },
		{ "format=prometheus", "", METRICS_PROMETHEUS },
		{ "format=prometheus", "application/json", METRICS_PROMETHEUS }, /* the query decides */
		{ "format=json", "text/plain", METRICS_JSON },
		{ "format=json&format=prometheus", "", METRICS_PROMETHEUS },
		{ "&format=prometheus&", "", METRICS_PROMETHEUS },
		{ "format=xml", "", -1 },
		{ "format=", "", -1 },
		{ "format", "", -1 },
		{ "format=prometheusx", "", -1 },
		{ "x=1&format=json", "", -1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum metrics_format f = METRICS_PROMETHEUS + 1;
		char why[160] = "";
		int r = metrics_format(cases[i].query, cases[i].accept, &f, why, sizeof(why));
		if (cases[i].want < 0) {
			cr_assert_eq(r, -EINVAL, "case %zu (%s): want -EINVAL", i, cases[i].query);
			cr_assert(strstr(why, "format=json or format=prometheus"), "case %zu: %s", i, why);
		} else {
			cr_assert_eq(r, 0, "case %zu: %s", i, why);
			cr_assert_eq((int)f, cases[i].want, "case %zu (?%s, Accept: %s)", i, cases[i].query, cases[i].accept);
		}
	}
}

/* ---- a strict reader of the text format 0.0.4 ---- */

static bool valid_utf8(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char b = s[i];
		size_t len = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
		if (!len || i + len > n)
			return false;
		unsigned cp = len == 1 ? b : b & (0xff >> (len + 1));
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

static size_t name_len(const char *s, bool colon)
{
	size_t n = 0;
	while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') || s[n] == '_' || (colon && s[n] == ':') ||
	       (n && s[n] >= '0' && s[n] <= '9'))
		n++;
	return n;
}

#define MAX_SERIES 512

static char why[1200];
#define REQ(cond, ...) do { if (!(cond)) { snprintf(why, sizeof(why), __VA_ARGS__); return why; } } while (0)

/* Checks every rule this file's format relies on: NULL with *count samples, or what is wrong. */
static const char *exposition_error(const char *text, int *count)
{
	static char series[MAX_SERIES][512], families[128][128];
	int nseries = 0, nfam = 0, samples_in_family = 0;
	char family[128] = "", type[16] = "";
	bool help_seen = false;

	REQ(*text && text[strlen(text) - 1] == '\n', "the exposition ends with a newline");
	for (const char *line = text; *line;) {
		const char *end = strchr(line, '\n');
		size_t len = (size_t)(end - line);
		char buf[1024];
		REQ(len > 0 && len < sizeof(buf), "an empty or overlong line");
		memcpy(buf, line, len);
		buf[len] = '\0';
		line = end + 1;
		REQ(valid_utf8((const unsigned char *)buf, len), "not UTF-8: %s", buf);
		if (!strncmp(buf, "# HELP ", 7)) {
			REQ(!family[0] || samples_in_family > 0, "family %s has no sample", family);
			size_t n = name_len(buf + 7, true);
			REQ(n && buf[7 + n] == ' ', "HELP: bad name: %s", buf);
			snprintf(family, sizeof(family), "%.*s", (int)n, buf + 7);
			for (int i = 0; i < nfam; i++)
				REQ(strcmp(families[i], family), "family %s twice", family);
			REQ(nfam < 128, "too many families");
			strcpy(families[nfam++], family);
			for (const char *h = buf + 8 + n; *h; h++) {
				if (*h != '\\')
					continue;
				REQ(h[1] == '\\' || h[1] == 'n', "HELP: bad escape: %s", buf);
				h++;
			}
			help_seen = true, samples_in_family = 0, type[0] = '\0';
			continue;
		}
		if (!strncmp(buf, "# TYPE ", 7)) {
			size_t n = strlen(family);
			REQ(help_seen && !strncmp(buf + 7, family, n) && buf[7 + n] == ' ' && !type[0],
				  "TYPE not right after its HELP: %s", buf);
			snprintf(type, sizeof(type), "%s", buf + 8 + n);
			REQ(!strcmp(type, "counter") || !strcmp(type, "gauge"), "type %s", type);
			size_t fl = strlen(family);
			bool total = fl > 6 && !strcmp(family + fl - 6, "_total");
			REQ(total == !strcmp(type, "counter"), "%s: a counter's name ends in _total, a gauge's not", family);
			REQ(!strncmp(family, "microvm_", 8), "%s: in microvm's namespace", family);
			continue;
		}
		REQ(buf[0] != '#', "an unknown comment: %s", buf);
		REQ(type[0], "a sample before its TYPE: %s", buf);
		size_t n = name_len(buf, true);
		REQ(n == strlen(family) && !strncmp(buf, family, n), "sample %s outside its family %s", buf, family);
		const char *p = buf + n;
		char labels[16][64];
		int nl = 0;
		if (*p == '{') {
			p++;
			while (*p != '}') {
				size_t ln = name_len(p, false);
				REQ(ln && ln < 64 && p[ln] == '=' && p[ln + 1] == '"', "bad label in %s", buf);
				REQ(strncmp(p, "__", 2), "reserved label name in %s", buf);
				REQ(nl < 16, "too many labels");
				snprintf(labels[nl], sizeof(labels[nl]), "%.*s", (int)ln, p);
				for (int i = 0; i < nl; i++)
					REQ(strcmp(labels[i], labels[nl]), "label twice in %s", buf);
				nl++;
				p += ln + 2;
				while (*p != '"') {
					REQ(*p, "unterminated label value in %s", buf);
					if (*p == '\\') {
						REQ(p[1] == '\\' || p[1] == '"' || p[1] == 'n', "bad escape in %s", buf);
						p++;
					}
					p++;
				}
				p++;
				REQ(*p == ',' || *p == '}', "after a label value: %s", buf);
				if (*p == ',')
					p++;
			}
			p++;
		}
		REQ(*p == ' ', "no space before the value: %s", buf);
		char *vend;
		double v = strtod(p + 1, &vend);
		REQ(vend != p + 1 && !*vend, "bad value in %s", buf);
		if (!strcmp(type, "counter"))
			REQ(v >= 0, "a negative counter: %s", buf);
		size_t key_len = (size_t)(p - buf);
		REQ(nseries < MAX_SERIES && key_len < 512, "too many series");
		snprintf(series[nseries], 512, "%.*s", (int)key_len, buf);
		for (int i = 0; i < nseries; i++)
			REQ(strcmp(series[i], series[nseries]), "series twice: %s", buf);
		nseries++;
		samples_in_family++;
	}
	REQ(!family[0] || samples_in_family > 0, "family %s has no sample", family);
	*count = nseries;
	return NULL;
}

/* Prometheus's own linter, where installed (Debian package prometheus): exit 0 and no complaint. */
static void promtool_check(const char *text)
{
	if (system("command -v promtool >/dev/null 2>&1") != 0) {
		cr_log_info("no promtool: checked by this file's reader only");
		return;
	}
	char path[] = "/tmp/microvm-prom-XXXXXX", cmd[128], out[2048] = "";
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	snprintf(cmd, sizeof(cmd), "promtool check metrics <%s 2>&1", path);
	FILE *f = popen(cmd, "r");
	cr_assert(f);
	size_t n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	int st = pclose(f);
	unlink(path);
	cr_assert(st == 0 && n == 0, "promtool check metrics: status %d: %s\nin:\n%s", st, out, text);
}

static int check_exposition(const char *text)
{
	int n = 0;
	const char *e = exposition_error(text, &n);
	cr_assert_null(e, "%s\nin:\n%s", e, text);
	promtool_check(text);
	return n;
}

Test(prom, strict_reader_takes_a_good_one)
{
	cr_assert_eq(check_exposition("# HELP microvm_x_total X.\n# TYPE microvm_x_total counter\nmicrovm_x_total{a=\"b\"} 1\n"), 1);
}

/* The reader's rules are real: each of these breaks one. */
Test(prom, strict_reader_refuses_bad_ones)
{
	static const char *const bad[] = {
		"# HELP microvm_x_total X.\n# TYPE microvm_x_total gauge\nmicrovm_x_total 1\n",    /* gauge named _total */
		"# HELP microvm_x X.\n# TYPE microvm_x counter\nmicrovm_x 1\n",                    /* counter without _total */
		"# HELP microvm_x X.\n# TYPE microvm_x gauge\nmicrovm_x{a=\"\\q\"} 1\n",          /* bad escape */
		"# HELP microvm_x X.\n# TYPE microvm_x gauge\nmicrovm_x{a=\"1\"} 1\nmicrovm_x{a=\"1\"} 2\n", /* series twice */
		"# HELP microvm_x X.\n# TYPE microvm_x gauge\nmicrovm_x{a=\"\xff\"} 1\n",          /* not UTF-8 */
		"# HELP microvm_x X.\n# TYPE microvm_x gauge\nmicrovm_x one\n",                    /* bad value */
		"# HELP microvm_x X.\n# TYPE microvm_x gauge\n",                                    /* no sample */
		"# HELP microvm_x X.\n# TYPE microvm_x gauge\nmicrovm_x 1",                         /* no final newline */
		"# HELP microvm_x X.\n# TYPE microvm_x gauge\nmicrovm_y 1\n",                      /* outside its family */
		"# HELP microvm_x X.\n# TYPE microvm_x gauge\nmicrovm_x{a=\"1\",a=\"2\"} 1\n",     /* label twice */
		"# HELP microvm_x X.\n# TYPE microvm_x gauge\nmicrovm_x 1\n# HELP microvm_x X.\n# TYPE microvm_x gauge\nmicrovm_x 2\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int n;
		cr_assert_not_null(exposition_error(bad[i], &n), "the reader took bad case %zu", i);
	}
}

/* ---- the VM's exposition, on a VM without KVM ---- */

static struct vmm vmm; /* large: not on the stack */
static struct control ctl = { .vmm = &vmm };

static void setup(void)
{
	memset(&vmm, 0, sizeof(vmm));
	config_defaults(&vmm.cfg);
	vmm.cfg.kernel = "bzImage";
	vmm.vm.fd = -1;
	vmm.stop_efd = -1;
	pthread_mutex_init(&vmm.run_lock, NULL);
	pthread_cond_init(&vmm.run_cond, NULL);
	vmm.run_sync_ready = true;
	vmm.nr_vcpus = 2;
	vmm.vstats[0].kind[0] = 5;
	vmm.vstats[1].kind[0] = 7;
	/* Two disks, one with a path no label can hold as it is; a NIC. */
	vmm.vdevs.nr_disks = 2;
	snprintf(vmm.cfg.disks[0].path, sizeof(vmm.cfg.disks[0].path), "/srv/vm1/root.img");
	snprintf(vmm.cfg.disks[1].path, sizeof(vmm.cfg.disks[1].path), "/tmp/a \"b\"\\c\nd\xff.img");
	vmm.cfg.disks[1].ro = true;
	for (int i = 0; i < 2; i++) {
		vmm.vdevs.disks[i].cfg = &vmm.cfg.disks[i];
		vmm.vdevs.disks[i].size = 1 << 20;
	}
	vmm.vdevs.nr_nics = 1;
	snprintf(vmm.cfg.nics[0].tap, sizeof(vmm.cfg.nics[0].tap), "tap0");
	vmm.vdevs.nics[0].cfg = &vmm.cfg.nics[0];
	memcpy(vmm.vdevs.nics[0].mac, "\x02\x00\x00\x00\x00\x01", 6);
}

static void teardown(void)
{
	pthread_cond_destroy(&vmm.run_cond);
	pthread_mutex_destroy(&vmm.run_lock);
}

static int get(const char *query, const char *accept, struct api_response *resp)
{
	struct api_request req = { .method = "GET", .path = "/metrics", .query = query, .accept = accept, .body = "" };
	memset(resp, 0, sizeof(*resp));
	control_handle(&ctl, &req, resp);
	return resp->status;
}

Test(prom, the_vms_exposition, .init = setup, .fini = teardown)
{
	struct api_response r;

	cr_assert_eq(get("format=prometheus", "", &r), 200);
	cr_assert_str_eq(r.content_type, PROM_CONTENT_TYPE);
	int n = check_exposition(r.body);
	cr_assert_gt(n, 40, "%d samples", n);
	/* The values, the labels, the escaping. */
	char kind[64];
	snprintf(kind, sizeof(kind), "\nmicrovm_vm_exits_total{kind=\"%s\"} 12\n", vmexit_kind_name(0));
	cr_assert(strstr(r.body, kind), "%s", r.body);
	cr_assert(strstr(r.body, "\nmicrovm_disk_info{disk=\"vdb\",path=\"/tmp/a \\\"b\\\"\\\\c\\nd\xef\xbf\xbd.img\",ro=\"true\"} 1\n"),
		  "%s", r.body);
	cr_assert(strstr(r.body, "\nmicrovm_disk_operations_total{disk=\"vda\",op=\"flush\"} 0\n"));
	cr_assert(strstr(r.body, "\nmicrovm_disk_size_bytes{disk=\"vda\"} 1048576\n"));
	cr_assert(strstr(r.body, "\nmicrovm_net_info{net=\"eth0\",tap=\"tap0\",mac=\"02:00:00:00:00:01\"} 1\n"));
	cr_assert(strstr(r.body, "\nmicrovm_net_throttled_total{net=\"eth0\",direction=\"tx\"} 0\n"));
	cr_assert(strstr(r.body, "\nmicrovm_vm_state{state=\"running\"} 1\nmicrovm_vm_state{state=\"paused\"} 0\n"));
	cr_assert(strstr(r.body, "\n# TYPE microvm_uptime_seconds gauge\nmicrovm_uptime_seconds "));
	cr_assert(strstr(r.body, "\nmicrovm_vcpus 1\n"), "%s", r.body);
	cr_assert(!strstr(r.body, "microvm_disk_ratelimit_tokens"), "no limits: no bucket samples, no family");
	free(r.body);

	/* By Accept; JSON stays the default; a bad query is 400 with JSON. */
	cr_assert_eq(get(NULL, "text/plain;version=0.0.4", &r), 200);
	cr_assert_str_eq(r.content_type, PROM_CONTENT_TYPE);
	free(r.body);
	cr_assert_eq(get(NULL, NULL, &r), 200);
	cr_assert_null(r.content_type);
	cr_assert_eq(r.body[0], '{');
	free(r.body);
	cr_assert_eq(get("format=yaml", "text/plain", &r), 400);
	cr_assert_null(r.content_type);
	cr_assert(strstr(r.body, "metrics: unknown query parameter 'format=yaml'"), "%s", r.body);
	free(r.body);
}

Test(prom, a_vm_without_devices, .init = setup, .fini = teardown)
{
	struct api_response r;

	vmm.vdevs.nr_disks = vmm.vdevs.nr_nics = 0;
	cr_assert_eq(get("format=prometheus", "", &r), 200);
	check_exposition(r.body);
	cr_assert(!strstr(r.body, "microvm_disk_") && !strstr(r.body, "microvm_net_"), "%s", r.body);
	free(r.body);
}
