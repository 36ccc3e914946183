/* config_file.c - --config FILE: read a JSON file with json-c and apply it through config_set() (see config_file.h). */
#include "vmm/cli/config_file.h"
#include "base/err.h"
#include "base/readfile.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What the messages say a value is. */
static const char *type_name(struct json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "a boolean";
	case json_type_double:
		return "a fractional number";
	case json_type_int:
		return "an integer";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	}
	return "a value of unknown type";
}

static int wrong_type(const char *name, const char *key, struct json_object *o, const char *want)
{
	return err_set(EINVAL, "%s: %s: must be %s, not %s", name, key, want, type_name(o));
}

/* A string value, refused when json-c decoded a \u0000 inside it (C strings stop there). */
static int get_string(const char *name, const char *key, struct json_object *o, const char **s)
{
	if (!json_object_is_type(o, json_type_string))
		return wrong_type(name, key, o, "a string");
	*s = json_object_get_string(o);
	if (strlen(*s) != (size_t)json_object_get_string_len(o))
		return err_set(EINVAL, "%s: %s: contains a NUL character (\\u0000)", name, key);
	return 0;
}

/* Keep s until config_free(); frees it on failure. */
static int own(struct vmm_config *cfg, const char *name, char *s)
{
	if (!s)
		return err_set(ENOMEM, "%s: out of memory", name);
	if (cfg->nr_owned >= CFG_MAX_OWNED) {
		free(s);
		return err_set(EINVAL, "%s: too many strings", name);
	}
	cfg->owned[cfg->nr_owned++] = s;
	return 0;
}

/* dir/p for a relative p (p itself when it is absolute or dir is empty), in a new string. */
static char *join(const char *dir, const char *p)
{
	char *s;

	if (p[0] == '/' || !dir || !dir[0])
		return strdup(p);
	size_t n = strlen(dir);
	if (asprintf(&s, "%s%s%s", dir, dir[n - 1] == '/' ? "" : "/", p) < 0)
		return NULL;
	return s;
}

/* One path of a disk (as parse_disk() stored it) made relative to dir, in place. */
static int fix_path(const char *name, const char *key, const char *dir, char *path, size_t size)
{
	char *p = join(dir, path);

	if (!p)
		return err_set(ENOMEM, "%s: out of memory", name);
	if (strlen(p) >= size) {
		free(p);
		return err_set(EINVAL, "%s: %s: path longer than %zu bytes", name, key, size - 1);
	}
	strcpy(path, p);
	free(p);
	return 0;
}

/* The last disk's path and overlay file relative to dir. */
static int fix_disk_path(const char *name, const char *key, const char *dir, struct disk_config *d)
{
	int ret = fix_path(name, key, dir, d->path, sizeof(d->path));

	if (ret == 0 && d->overlay_path[0])
		ret = fix_path(name, key, dir, d->overlay_path, sizeof(d->overlay_path));
	return ret;
}

/* Append ",OPT" or ",OPT=VAL" (VAL without a comma: it would read as another option). */
static int add_opt(const char *name, const char *key, char *buf, size_t size, const char *opt, const char *val)
{
	size_t n = strlen(buf);

	if (val && strchr(val, ','))
		return err_set(EINVAL, "%s: %s: no ',' allowed (as on the command line)", name, key);
	if ((size_t)snprintf(buf + n, size - n, "%s%s%s%s", n ? "," : "", opt, val ? "=" : "",
			     val ? val : "") >= size - n)
		return err_set(EINVAL, "%s: %s: too long", name, key);
	return 0;
}

/*
 * One entry of "disks" or "nets": the command-line string, or an object whose
 * members are turned into that string, so parse_disk()/parse_net() decide.
 */
static int list_entry(const char *name, const char *key, struct json_object *o, bool disk, char *buf,
		      size_t size)
{
	/* The rate limits last: from index 5 (disks) and 2 (NICs). */
	static const char *const disk_keys[] = { "path", "ro", "direct", "id", "overlay", "bw", "iops", NULL };
	static const char *const net_keys[] = { "tap", "mac", "rx_bw", "rx_pps", "tx_bw", "tx_pps", NULL };
	const char *const *keys = disk ? disk_keys : net_keys;
	char sub[64];
	const char *s;
	int ret;

	buf[0] = '\0';
	if (json_object_is_type(o, json_type_string)) {
		if ((ret = get_string(name, key, o, &s)) < 0)
			return ret;
		if ((size_t)snprintf(buf, size, "%s", s) >= size)
			return err_set(EINVAL, "%s: %s: too long", name, key);
		return 0;
	}
	if (!json_object_is_type(o, json_type_object))
		return wrong_type(name, key, o,
				  disk ? "a string (\"PATH,ro,id=NAME\") or an object ({\"path\": ...})"
				       : "a string (\"tap=NAME,mac=MAC\") or an object ({\"tap\": ...})");
	json_object_object_foreach(o, k, v) {
		int i;
		for (i = 0; keys[i] && strcmp(keys[i], k); i++)
			;
		if (!keys[i])
			return err_set(EINVAL, "%s: %s: unknown key '%s' (%s)", name, key, k,
				       disk ? "path, ro, direct, id, overlay, bw, iops"
					    : "tap, mac, rx_bw, rx_pps, tx_bw, tx_pps");
		(void)v;
	}
	/* In the order of the command line: the path or tap first. */
	for (int i = 0; keys[i]; i++) {
		struct json_object *val;
		snprintf(sub, sizeof(sub), "%s.%s", key, keys[i]);
		if (!json_object_object_get_ex(o, keys[i], &val) || json_object_is_type(val, json_type_null)) {
			if (i == 0)
				return err_set(EINVAL, "%s: %s: missing \"%s\"", name, key, keys[i]);
			continue;
		}
		if (disk && (!strcmp(keys[i], "ro") || !strcmp(keys[i], "direct"))) {
			if (!json_object_is_type(val, json_type_boolean))
				return wrong_type(name, sub, val, "true or false");
			if (json_object_get_boolean(val) && (ret = add_opt(name, sub, buf, size, keys[i], NULL)) < 0)
				return ret;
			continue;
		}
		/* "overlay": true is a throw-away overlay, a string its file. */
		if (disk && !strcmp(keys[i], "overlay") && !json_object_is_type(val, json_type_string)) {
			if (!json_object_is_type(val, json_type_boolean))
				return wrong_type(name, sub, val, "true, false or a file name");
			if (json_object_get_boolean(val) && (ret = add_opt(name, sub, buf, size, keys[i], NULL)) < 0)
				return ret;
			continue;
		}
		/* A rate limit may also be a number: that many per second (0: no limit). */
		if (json_object_is_type(val, json_type_int) && i >= (disk ? 5 : 2)) {
			char num[24];
			int64_t per_s = json_object_get_int64(val);
			if (per_s < 0)
				return wrong_type(name, sub, val, "a limit (\"" LIMIT_SYNTAX "\") or a number per second");
			snprintf(num, sizeof(num), "%lld", (long long)per_s);
			if ((ret = add_opt(name, sub, buf, size, keys[i], num)) < 0)
				return ret;
			continue;
		}
		if ((ret = get_string(name, sub, val, &s)) < 0)
			return ret;
		if (i == 0 && disk) {
			if (strchr(s, ','))
				return err_set(EINVAL, "%s: %s: no ',' allowed (as on the command line)", name, sub);
			if ((size_t)snprintf(buf, size, "%s", s) >= size)
				return err_set(EINVAL, "%s: %s: too long", name, sub);
			if (!*s)   /* parse_disk() would read ",ro" as an empty path, too */
				return err_set(EINVAL, "%s: %s: empty path", name, sub);
		} else if ((ret = add_opt(name, sub, buf, size, keys[i], s)) < 0) {
			return ret;
		}
	}
	return 0;
}

static int apply_list(const char *name, const char *dir, const char *key, struct json_object *o,
		      struct vmm_config *cfg)
{
	bool disk = !strcmp(key, "disks");
	char buf[2 * PATH_MAX + 64], sub[32];   /* a disk's path and its overlay's */
	int ret;

	if (!json_object_is_type(o, json_type_array))
		return wrong_type(name, key, o, "an array");
	size_t n = json_object_array_length(o);
	for (size_t i = 0; i < n; i++) {
		snprintf(sub, sizeof(sub), "%s[%zu]", key, i);
		if ((ret = list_entry(name, sub, json_object_array_get_idx(o, i), disk, buf, sizeof(buf))) < 0)
			return ret;
		if ((ret = config_set(cfg, disk ? CFG_DISK : CFG_NET, "", buf)) < 0)
			return err_prefix(-ret, "%s: %s", name, sub);
		if (disk && (ret = fix_disk_path(name, sub, dir, &cfg->disks[cfg->nr_disks - 1])) < 0)
			return ret;
	}
	return 0;
}

enum kind { K_PATH, K_STRING, K_SIZE, K_INT, K_SECONDS, K_BOOL, K_LIST };

static const struct key {
	const char *name;
	enum kind kind;
	enum config_key key;
} keys[] = {
	{ "kernel", K_PATH, CFG_KERNEL },
	{ "initrd", K_PATH, CFG_INITRD },
	{ "cmdline", K_STRING, CFG_CMDLINE },
	{ "mem", K_SIZE, CFG_MEM },
	{ "cpus", K_INT, CFG_CPUS },
	{ "disks", K_LIST, CFG_DISK },
	{ "nets", K_LIST, CFG_NET },
	{ "io_engine", K_STRING, CFG_IO_ENGINE },
	{ "cmdline_devices", K_BOOL, 0 },
	{ "no_host_quirks", K_BOOL, 0 },
	{ "no_seccomp", K_BOOL, 0 },
	{ "timeout", K_SECONDS, CFG_TIMEOUT },
	{ "stats", K_STRING, CFG_STATS },
	{ "run", K_PATH, CFG_RUN },
	{ "user", K_STRING, CFG_USER },
	{ "api_sock", K_PATH, CFG_API_SOCK },
	{ "restore", K_PATH, CFG_RESTORE },
	{ "verify_memory", K_BOOL, CFG_VERIFY_MEMORY },
	{ "paused", K_BOOL, CFG_PAUSED },
	{ "no_working_set", K_BOOL, CFG_NO_WORKING_SET },
	{ "record_working_set", K_SECONDS, CFG_RECORD_WORKING_SET },
	{ "jail", K_STRING, CFG_JAIL },
	{ "netns", K_STRING, CFG_NETNS },
	{ "cgroup", K_STRING, CFG_CGROUP },
};

static int apply_key(const char *name, const char *dir, const struct key *k, struct json_object *v,
		     struct vmm_config *cfg)
{
	char what[PATH_MAX];
	const char *s;
	int ret;

	if (json_object_is_type(v, json_type_null))
		return 0;   /* as if the key were not there */
	snprintf(what, sizeof(what), "%s: %s", name, k->name);
	switch (k->kind) {
	case K_BOOL:
		if (!json_object_is_type(v, json_type_boolean))
			return wrong_type(name, k->name, v, "true or false");
		if (k->key == CFG_VERIFY_MEMORY || k->key == CFG_PAUSED || k->key == CFG_NO_WORKING_SET)
			return config_set(cfg, k->key, what, json_object_get_boolean(v) ? "true" : "false");
		*(!strcmp(k->name, "cmdline_devices") ? &cfg->cmdline_devices :
		  !strcmp(k->name, "no_seccomp")      ? &cfg->no_seccomp :
							&cfg->no_host_quirks) = json_object_get_boolean(v);
		return 0;
	case K_LIST:
		return apply_list(name, dir, k->name, v, cfg);
	case K_INT:
	case K_SIZE:
	case K_SECONDS:
		/* A number is checked as its JSON text, as if typed on the command line. */
		if (json_object_is_type(v, json_type_int) ||
		    (k->kind == K_SECONDS && json_object_is_type(v, json_type_double)))
			s = json_object_get_string(v);
		else if (k->kind != K_INT && json_object_is_type(v, json_type_string))
			return (ret = get_string(name, k->name, v, &s)) < 0 ? ret : config_set(cfg, k->key, what, s);
		else
			return wrong_type(name, k->name, v,
					  k->kind == K_INT     ? "an integer" :
					  k->kind == K_SIZE    ? "a number of bytes or a string like \"512M\"" :
								 "a number of seconds or a string like \"0.5\"");
		return config_set(cfg, k->key, what, s);
	case K_PATH:
	case K_STRING: {
		if ((ret = get_string(name, k->name, v, &s)) < 0)
			return ret;
		if (k->key == CFG_IO_ENGINE || k->key == CFG_STATS || k->key == CFG_CGROUP)
			return config_set(cfg, k->key, what, s);   /* only compared or copied, never kept */
		char *copy = k->kind == K_PATH && *s ? join(dir, s) : strdup(s);
		if ((ret = own(cfg, name, copy)) < 0)
			return ret;
		return config_set(cfg, k->key, what, copy);
	}
	}
	return 0;
}

/* 1-based line and column of byte off in buf. */
static void position(const char *buf, size_t off, int *line, int *col)
{
	*line = 1, *col = 1;
	for (size_t i = 0; i < off; i++) {
		if (buf[i] == '\n')
			(*line)++, *col = 1;
		else
			(*col)++;
	}
}

int config_file_parse(const char *name, const char *dir, const char *buf, size_t len, struct vmm_config *cfg)
{
	struct json_tokener *tok;
	struct json_object *root;
	int line, col, ret = 0;

	const char *nul = memchr(buf, '\0', len);
	if (nul) {
		position(buf, (size_t)(nul - buf), &line, &col);
		return err_set(EINVAL, "%s:%d:%d: not valid JSON: a NUL byte", name, line, col);
	}
	if (len >= INT_MAX)
		return err_set(EINVAL, "%s: larger than %d bytes", name, CONFIG_MAX_SIZE);
	/* With its NUL: json-c needs to see the end of the text to finish a top-level number or null. */
	char *text = malloc(len + 1);
	tok = json_tokener_new();
	if (!text || !tok) {
		free(text);
		if (tok)
			json_tokener_free(tok);
		return err_set(ENOMEM, "%s: out of memory", name);
	}
	memcpy(text, buf, len);
	text[len] = '\0';
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, text, (int)len + 1);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!root && jerr == json_tokener_success) {   /* the text "null" */
		ret = err_set(EINVAL, "%s: must be one JSON object ({\"kernel\": ...}), not null", name);
		goto out;
	}
	if (!root) {
		position(buf, end > len ? len : end, &line, &col);
		ret = err_set(EINVAL, "%s:%d:%d: not valid JSON: %s", name, line, col,
			      jerr == json_tokener_continue ? "unexpected end of data" : json_tokener_error_desc(jerr));
		goto out;
	}
	end += strspn(text + end, " \t\r\n");   /* json-c stops after the object */
	if (end < len) {
		position(buf, end, &line, &col);
		ret = err_set(EINVAL, "%s:%d:%d: not valid JSON: more after the end of the object", name, line, col);
		goto out;
	}
	if (!json_object_is_type(root, json_type_object)) {
		ret = err_set(EINVAL, "%s: must be one JSON object ({\"kernel\": ...}), not %s", name, type_name(root));
		goto out;
	}
	json_object_object_foreach(root, key, val) {
		size_t i;
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]) && strcmp(keys[i].name, key); i++)
			;
		if (i == sizeof(keys) / sizeof(keys[0])) {
			ret = err_set(EINVAL, "%s: unknown key '%s' (see docs/config.md)", name, key);
			goto out;
		}
		if ((ret = apply_key(name, dir, &keys[i], val, cfg)) < 0)
			goto out;
	}
out:
	json_object_put(root);
	free(text);
	return ret;
}

int config_file_load(const char *path, struct vmm_config *cfg)
{
	char name[PATH_MAX + 16], *dir = NULL;
	uint8_t *buf = NULL;
	struct stat st;
	size_t len = 0;
	int fd, ret;

	snprintf(name, sizeof(name), "--config %s", path);
	/* A pipe too (--config /dev/stdin); every failure is a usage error (EINVAL). */
	fd = open_user_file(path, "a JSON file", true, &st);
	if (fd < 0)
		return err_prefix(EINVAL, "%s", name);
	if (S_ISREG(st.st_mode) && st.st_size > CONFIG_MAX_SIZE) {
		ret = err_set(EINVAL, "%s: larger than %d bytes (%lld): not a VM description", name,
			      CONFIG_MAX_SIZE, (long long)st.st_size);
		goto out;
	}
	/* Read whole (a pipe has no size to check first), up to the limit. */
	ret = read_whole(fd, CONFIG_MAX_SIZE, &buf, &len);
	if (ret == -EFBIG) {
		ret = err_set(EINVAL, "%s: larger than %d bytes: not a VM description", name, CONFIG_MAX_SIZE);
		goto out;
	}
	if (ret == -ENOMEM) {
		ret = err_set(ENOMEM, "%s: out of memory", name);
		goto out;
	}
	if (ret < 0) {
		ret = err_set(EINVAL, "%s: %s", name, strerror(-ret));
		goto out;
	}
	const char *slash = strrchr(path, '/');
	dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup("");
	if (!dir) {
		ret = err_set(ENOMEM, "%s: out of memory", name);
		goto out;
	}
	ret = config_file_parse(name, dir, (const char *)buf, len, cfg);
out:
	free(dir);
	free(buf);
	close(fd);
	return ret;
}
