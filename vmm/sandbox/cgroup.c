/* cgroup.c - --cgroup: a cgroup v2 group with limits for the VM (see cgroup.h, docs/jail.md). */
#include "vmm/sandbox/cgroup.h"
#include "base/err.h"
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

/* A decimal number with nothing after it, at most max. */
static bool parse_num(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!len || len > 20)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (v > (max - (uint64_t)(s[i] - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return true;
}

static bool is_max(const char *s, size_t len)
{
	return len == 3 && !memcmp(s, "max", 3);
}

/* SIZE: a number of bytes with an optional K/M/G/T (powers of 1024), at least 1 MiB, below 2^60. */
static bool parse_mem(const char *s, size_t len, uint64_t *out)
{
	unsigned shift = 0;
	uint64_t v;

	if (len && strchr("kKmMgGtT", s[len - 1])) {
		const char *u = strchr("kKmMgGtT", s[len - 1]);
		shift = 10 * (unsigned)(1 + (u - "kKmMgGtT") / 2);
		len--;
	}
	if (!parse_num(s, len, UINT64_MAX, &v) || v > (UINT64_C(1) << 60) >> shift)
		return false;
	v <<= shift;
	if (v < (1u << 20))
		return false;
	*out = v;
	return true;
}

static bool path_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       strchr("-_.@:", ch);
}

static int parse_path(const char *name, const char *val, const char *p, size_t len, struct cgroup_config *c)
{
	if (len && *p == '/')
		p++, len--;
	if (!len)
		return err_set(EINVAL, "%s %s: give a group below %s, e.g. microvm/vm1", name, val, CGROUP_ROOT);
	if (len >= sizeof(c->path))
		return err_set(EINVAL, "%s %s: the path is longer than %zu bytes", name, val, sizeof(c->path) - 1);
	int depth = 0;
	for (size_t i = 0; i < len;) {
		size_t n = 0;
		while (i + n < len && p[i + n] != '/')
			n++;
		if (!n || (n == 1 && p[i] == '.') || (n == 2 && p[i] == '.' && p[i + 1] == '.'))
			return err_set(EINVAL, "%s %s: an empty, '.' or '..' component in the path", name, val);
		for (size_t k = 0; k < n; k++)
			if (!path_char(p[i + k]))
				return err_set(EINVAL, "%s: the path may hold letters, digits, '-', '_', '.', "
					       "'@', ':' and '/' only (not byte 0x%02x)", name, (unsigned char)p[i + k]);
		if (++depth > CGROUP_DEPTH_MAX)
			return err_set(EINVAL, "%s %s: more than %d components", name, val, CGROUP_DEPTH_MAX);
		i += n;
		if (i < len && ++i == len)
			return err_set(EINVAL, "%s %s: an empty, '.' or '..' component in the path", name, val);
	}
	memcpy(c->path, p, len);
	c->path[len] = '\0';
	return 0;
}

/* "QUOTA[/PERIOD]" or "max[/PERIOD]" into "QUOTA PERIOD". */
static bool parse_cpu(const char *s, size_t len, char *out, size_t size)
{
	const char *slash = memchr(s, '/', len);
	size_t ql = slash ? (size_t)(slash - s) : len;
	uint64_t quota = 0, period = 100000;

	if (slash && !parse_num(slash + 1, len - ql - 1, 1000000, &period))
		return false;
	if (period < 1000)
		return false;
	if (is_max(s, ql)) {
		snprintf(out, size, "max %llu", (unsigned long long)period);
		return true;
	}
	if (!parse_num(s, ql, UINT64_C(1) << 40, &quota) || quota < 1000)
		return false;
	snprintf(out, size, "%llu %llu", (unsigned long long)quota, (unsigned long long)period);
	return true;
}

int cgroup_parse(const char *name, const char *val, struct cgroup_config *c)
{
	const char *comma = strchr(val, ',');
	size_t plen = comma ? (size_t)(comma - val) : strlen(val);
	int ret;

	memset(c, 0, sizeof(*c));
	if ((ret = parse_path(name, val, val, plen, c)) < 0)
		return ret;
	for (const char *o = comma; o; o = strchr(o, ',')) {
		o++;
		size_t n = strcspn(o, ",");
		const char *eq = memchr(o, '=', n);
		size_t kl = eq ? (size_t)(eq - o) : n, vl = eq ? n - kl - 1 : 0;
		const char *v = eq ? eq + 1 : "";
		uint64_t x;
		char *slot;

#define KEY(k) (kl == sizeof(k) - 1 && !memcmp(o, k, kl))
		if (!eq && (KEY("memory.max") || KEY("cpu.max") || KEY("pids.max")))
			return err_set(EINVAL, "%s %s: %.*s needs a value", name, val, (int)kl, o);
		if (KEY("memory.max")) {
			slot = c->memory_max;
			if (is_max(v, vl))
				snprintf(slot, sizeof(c->memory_max), "max");
			else if (parse_mem(v, vl, &x))
				snprintf(slot, sizeof(c->memory_max), "%llu", (unsigned long long)x);
			else
				return err_set(EINVAL, "%s %s: memory.max=%.*s: must be a size of at least 1M (e.g. "
					       "256M, 2G) or max", name, val, (int)vl, v);
		} else if (KEY("cpu.max")) {
			slot = c->cpu_max;
			if (!parse_cpu(v, vl, slot, sizeof(c->cpu_max)))
				return err_set(EINVAL, "%s %s: cpu.max=%.*s: must be QUOTA[/PERIOD] in microseconds "
					       "(QUOTA at least 1000, PERIOD 1000 to 1000000, default 100000; e.g. "
					       "50000/100000) or max", name, val, (int)vl, v);
		} else if (KEY("pids.max")) {
			slot = c->pids_max;
			if (is_max(v, vl))
				snprintf(slot, sizeof(c->pids_max), "max");
			else if (parse_num(v, vl, 4194304, &x) && x >= 1)
				snprintf(slot, sizeof(c->pids_max), "%llu", (unsigned long long)x);
			else
				return err_set(EINVAL, "%s %s: pids.max=%.*s: must be a number from 1 to 4194304 or "
					       "max", name, val, (int)vl, v);
		} else {
			return err_set(EINVAL, "%s %s: unknown option '%.*s' (memory.max=, cpu.max=, pids.max=)",
				       name, val, (int)n, o);
		}
#undef KEY
		(void)slot;
	}
	/* Each at most once: a second one would silently replace the first. */
	for (const char *k = "memory.max\0cpu.max\0pids.max\0"; *k; k += strlen(k) + 1) {
		int seen = 0;
		size_t kl = strlen(k);
		for (const char *o = comma; o; o = strchr(o + 1, ','))
			if (!strncmp(o + 1, k, kl) && o[1 + kl] == '=')
				seen++;
		if (seen > 1)
			return err_set(EINVAL, "%s %s: %s given twice", name, val, k);
	}
	c->set = true;
	return 0;
}

/* The whole of a small file at dirfd/name, NUL terminated. */
static int read_small(int dirfd, const char *name, char *buf, size_t size)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	buf[n] = '\0';
	return 0;
}

static int write_small(int dirfd, const char *name, const char *val)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	size_t len = strlen(val);

	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, val, len);
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	return (size_t)n == len ? 0 : -EIO;
}

/* Is word in the space-separated list? */
static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ') && (!p[n] || p[n] == ' ' || p[n] == '\n'))
			return true;
	return false;
}

/* The group's path up to component i (exclusive), "" for the root. */
static void prefix(const char *path, int upto, char *out, size_t size)
{
	const char *p = path;

	for (int i = 0; i < upto && p; i++) {
		p = strchr(p, '/');
		if (p && i + 1 < upto)
			p++;
	}
	size_t n = p ? (size_t)(p - path) : strlen(path);
	if (upto == 0)
		n = 0;
	snprintf(out, size, "%.*s", (int)n, path);
}

static int depth_of(const char *path)
{
	int d = 1;

	for (const char *p = path; *p; p++)
		d += *p == '/';
	return d;
}

long long cgroup_oom_kills(const struct cgroup *cg)
{
	char buf[1024];

	if (cg->dirfd < 0 || read_small(cg->dirfd, "memory.events", buf, sizeof(buf)) < 0)
		return -1;
	for (char *p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, "oom_kill ", 9))
			return strtoll(p + 9, NULL, 10);
	return -1;
}

void cgroup_close(struct cgroup *cg)
{
	if (cg->procs_fd >= 0)
		close(cg->procs_fd);
	if (cg->dirfd >= 0)
		close(cg->dirfd);
	cg->procs_fd = cg->dirfd = -1;
}

void cgroup_remove(struct cgroup *cg)
{
	int depth = depth_of(cg->path);

	cgroup_close(cg);
	for (int i = 0; i < cg->created; i++) {
		char rel[CGROUP_PATH_MAX], full[CGROUP_PATH_MAX + sizeof(CGROUP_ROOT) + 1];
		prefix(cg->path, depth - i, rel, sizeof(rel));
		snprintf(full, sizeof(full), "%s/%s", CGROUP_ROOT, rel);
		/* The last process has been reaped; the kernel may take a moment to let the group go. */
		int tries = 0, r;
		while ((r = rmdir(full)) < 0 && errno == EBUSY && ++tries < 50)
			nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
		if (r < 0) {
			log_warn("--cgroup %s: cannot remove %s: %s", cg->path, full, strerror(errno));
			break;
		}
	}
	cg->created = 0;
}

int cgroup_setup(const struct cgroup_config *c, struct cgroup *cg)
{
	const char *ctl[3];
	int nctl = 0, ret, dir = -1;
	struct statfs sf;
	char buf[1024];

	memset(cg, 0, sizeof(*cg));
	cg->dirfd = cg->procs_fd = -1;
	cg->oom_kills = -1;
	snprintf(cg->path, sizeof(cg->path), "%s", c->path);
	if (statfs(CGROUP_ROOT, &sf) < 0 || sf.f_type != CGROUP2_SUPER_MAGIC)
		return err_set(ENOTSUP, "--cgroup %s: %s is not a cgroup v2 hierarchy (a cgroup v1 or hybrid host, "
			       "or nothing mounted there); --cgroup needs the unified hierarchy", c->path, CGROUP_ROOT);
	if (c->memory_max[0])
		ctl[nctl++] = "memory";
	if (c->cpu_max[0])
		ctl[nctl++] = "cpu";
	if (c->pids_max[0])
		ctl[nctl++] = "pids";

	if ((dir = open(CGROUP_ROOT, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return err_set(errno, "--cgroup %s: %s: %s", c->path, CGROUP_ROOT, strerror(errno));
	if ((ret = read_small(dir, "cgroup.controllers", buf, sizeof(buf))) < 0) {
		close(dir);
		return err_set(-ret, "--cgroup %s: %s/cgroup.controllers: %s", c->path, CGROUP_ROOT, strerror(-ret));
	}
	for (int i = 0; i < nctl; i++)
		if (!has_word(buf, ctl[i])) {
			close(dir);
			return err_set(ENOTSUP, "--cgroup %s: this host's cgroup v2 has no %s controller (%s/"
				       "cgroup.controllers: %s)", c->path, ctl[i], CGROUP_ROOT, strtok(buf, "\n"));
		}

	int depth = depth_of(c->path);
	const char *comp = c->path;
	for (int i = 0; i < depth; i++) {
		char here[CGROUP_PATH_MAX], name[CGROUP_PATH_MAX];
		size_t n = strcspn(comp, "/");
		prefix(c->path, i, here, sizeof(here));
		snprintf(name, sizeof(name), "%.*s", (int)n, comp);
		comp += n + (comp[n] == '/');
		/* The controllers must be passed down by every group above the one that has the limit. */
		if ((ret = read_small(dir, "cgroup.subtree_control", buf, sizeof(buf))) < 0) {
			ret = err_set(-ret, "--cgroup %s: %s%s%s/cgroup.subtree_control: %s", c->path, CGROUP_ROOT,
				      *here ? "/" : "", here, strerror(-ret));
			goto fail;
		}
		for (int k = 0; k < nctl; k++) {
			char add[16];
			if (has_word(buf, ctl[k]))
				continue;
			snprintf(add, sizeof(add), "+%s", ctl[k]);
			if ((ret = write_small(dir, "cgroup.subtree_control", add)) < 0) {
				ret = err_set(-ret, "--cgroup %s: cannot enable the %s controller in %s%s%s/cgroup.subtree_control: "
					"%s%s", c->path, ctl[k], CGROUP_ROOT, *here ? "/" : "", here, strerror(-ret),
					ret == -EBUSY ? " (a group with processes of its own cannot pass controllers "
					"down: put the VM's group under one that has none)" : "");
				goto fail;
			}
		}
		if (mkdirat(dir, name, 0755) == 0) {
			if (!cg->created)
				cg->created = depth - i;   /* this one and every one below it are new */
		} else if (errno != EEXIST) {
			ret = err_set(errno, "--cgroup %s: cannot create %s/%s%s%s: %s", c->path, CGROUP_ROOT, here,
				*here ? "/" : "", name, strerror(errno));
			goto fail;
		}
		int next = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			ret = err_set(errno, "--cgroup %s: %s/%s: %s", c->path, CGROUP_ROOT, c->path, strerror(errno));
			goto fail;
		}
		close(dir);
		dir = next;
	}
	cg->dirfd = dir;
	dir = -1;

	const struct { const char *file, *val; } vals[] = {
		{ "memory.max", c->memory_max }, { "cpu.max", c->cpu_max }, { "pids.max", c->pids_max },
	};
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		if (!vals[i].val[0])
			continue;
		if ((ret = write_small(cg->dirfd, vals[i].file, vals[i].val)) < 0) {
			ret = err_set(-ret, "--cgroup %s: cannot write %s to %s/%s/%s: %s", c->path, vals[i].val,
				CGROUP_ROOT, c->path, vals[i].file, strerror(-ret));
			goto fail;
		}
	}
	/* Without swap accounting the file is not there, and there is nothing to turn off. */
	if (c->memory_max[0] && (ret = write_small(cg->dirfd, "memory.swap.max", "0")) < 0 && ret != -ENOENT) {
		ret = err_set(-ret, "--cgroup %s: cannot write 0 to memory.swap.max: %s", c->path, strerror(-ret));
		goto fail;
	}
	cg->procs_fd = openat(cg->dirfd, "cgroup.procs", O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (cg->procs_fd < 0) {
		ret = err_set(errno, "--cgroup %s: %s/%s/cgroup.procs: %s", c->path, CGROUP_ROOT, c->path, strerror(errno));
		goto fail;
	}
	cg->oom_kills = cgroup_oom_kills(cg);
	return 0;
fail:
	if (dir >= 0)
		close(dir);
	{
		char msg[1024];
		snprintf(msg, sizeof(msg), "%s", err_msg());
		cgroup_remove(cg);
		ret = err_set(-ret, "%s", msg);
	}
	return ret;
}

int cgroup_join(struct cgroup *cg)
{
	int ret = 0;

	if (write(cg->procs_fd, "0", 1) != 1)
		ret = err_set(errno, "--cgroup %s: cannot join the group (%s/%s/cgroup.procs): %s", cg->path,
			      CGROUP_ROOT, cg->path, strerror(errno));
	cgroup_close(cg);
	return ret;
}
