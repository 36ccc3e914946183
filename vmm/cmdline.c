/* cmdline.c - the guest kernel's command line: its parts in one order, one word scanner (see cmdline.h). */
#include "vmm/cmdline.h"
#include "base/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* The word at or after *s (its length in *len), *s moved past it; NULL when no word is left. */
static const char *next_word(const char **s, size_t *len)
{
	const char *p = *s, *w;

	while (is_space(*p))
		p++;
	if (!*p)
		return NULL;
	w = p;
	while (*p && !is_space(*p))
		p++;
	*s = p;
	*len = (size_t)(p - w);
	return w;
}

static bool is_dashdash(const char *w, size_t len)
{
	return len == 2 && w[0] == '-' && w[1] == '-';
}

/* The first "--" word of line (where init's arguments begin), or NULL. */
static const char *find_dashdash(const char *line)
{
	const char *s = line, *w;
	size_t len;

	while ((w = next_word(&s, &len)))
		if (is_dashdash(w, len))
			return w;
	return NULL;
}

/* Bytes of s (n of them) before its first '=', or n. */
static size_t key_len(const char *s, size_t n)
{
	const char *eq = memchr(s, '=', n);

	return eq ? (size_t)(eq - s) : n;
}

bool cmdline_has_word(const char *line, const char *word, unsigned how)
{
	const char *s = line, *w;
	size_t len, wlen = strlen(word), wkey = key_len(word, wlen);

	while ((w = next_word(&s, &len))) {
		if (is_dashdash(w, len) && !(how & CMDLINE_WITH_INIT))
			return false;
		if (how & CMDLINE_PREFIX) {
			if (len >= wlen && !memcmp(w, word, wlen))
				return true;
		} else if (how & CMDLINE_KEY) {
			if (key_len(w, len) == wkey && !memcmp(w, word, wkey))
				return true;
		} else if (len == wlen && !memcmp(w, word, wlen)) {
			return true;
		}
	}
	return false;
}

struct cmdline_parts cmdline_parts(const struct vmm_config *cfg, const struct machine *m)
{
	return (struct cmdline_parts){
		.user = cfg->cmdline,
		.run_dev = cfg->run_dev,
		.devices = cfg->cmdline_devices,
		.machine = m,
	};
}

/* The line being built; with p NULL only its length is counted. */
struct buf {
	char *p;
	size_t len;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->p)
		memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* One part: a space first, unless the line is still empty. */
static void put_part(struct buf *b, const char *s)
{
	if (b->len)
		put(b, " ", 1);
	put(b, s, strlen(s));
}

/* The whole line of p, with the host options or without (see cmdline.h for the order). */
static void build(struct buf *b, const struct cmdline_parts *p, bool with_opts)
{
	const char *user = p->user, *dd = with_opts ? find_dashdash(user) : NULL;

	if (dd) {
		/* 1 with 4 inside it, where the user's line has init's arguments: " OPTS " replaces the space before "--". */
		size_t head = (size_t)(dd - user);
		while (head && is_space(user[head - 1]))
			head--;
		put(b, user, head);
		put_part(b, p->host_opts);
		put(b, " ", 1);
		put(b, dd, strlen(dd));
	} else {
		put(b, user, strlen(user));                                  /* 1 */
	}
	if (p->run_dev && p->run_dev[0]) {                                   /* 2 */
		put_part(b, CMDLINE_RUN_KEY);
		put(b, p->run_dev, strlen(p->run_dev));
	}
	if (p->machine && (p->devices || cmdline_has_word(user, "acpi=off", CMDLINE_WORD))) {  /* 3 */
		for (int i = 0; i < p->machine->nr_mmio_devs; i++) {
			const struct mmio_dev *md = &p->machine->mmio_devs[i];
			char word[96];
			snprintf(word, sizeof(word), "virtio_mmio.device=%lluK@0x%llx:%u",
				 (unsigned long long)(md->size >> 10), (unsigned long long)md->base, md->irq);
			put_part(b, word);
		}
	}
	if (with_opts && !dd)                                                /* 4, appended */
		put_part(b, p->host_opts);
}

int cmdline_compose(const struct cmdline_parts *p, size_t max, char **out)
{
	bool opts = p->host_opts && p->host_opts[0];
	struct buf b = { NULL, 0 };
	int ret = 0;

	*out = NULL;
	build(&b, p, opts);
	if (opts && b.len > max) {
		opts = false;
		ret = 1;
		b.len = 0;
		build(&b, p, false);
	}
	if (!(b.p = malloc(b.len + 1)))
		return err_set(ENOMEM, "kernel command line: out of memory");
	b.len = 0;
	build(&b, p, opts);
	b.p[b.len] = '\0';
	*out = b.p;
	return ret;
}
