/* run.c - the --run disk image and the host check (see run.h, docs/cli-runs.md). */
#include "vmm/cli/run.h"
#include "base/err.h"
#include "base/readfile.h"
#include "vmm/cmdline.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECTOR 512

/* The header line, NUL terminated in buf; returns its length. */
static size_t header(char *buf, size_t size, size_t len)
{
	return (size_t)snprintf(buf, size, "%s %zu\n", RUN_MAGIC, len);
}

size_t run_image_size(size_t len)
{
	char h[64];
	size_t n = header(h, sizeof(h), len) + len;

	return (n + SECTOR - 1) / SECTOR * SECTOR;
}

void run_image_format(uint8_t *out, const uint8_t *script, size_t len)
{
	char h[64];
	size_t hl = header(h, sizeof(h), len), size = run_image_size(len);

	memset(out, 0, size);
	memcpy(out, h, hl);
	if (len)
		memcpy(out + hl, script, len);
}

/* Read the whole script (at most RUN_SCRIPT_MAX bytes). */
static int read_script(const char *path, uint8_t **data, size_t *len)
{
	struct stat st;
	int fd = open_user_file(path, "a script", false, &st), ret = 0;

	*data = NULL;
	*len = 0;
	if (fd < 0)
		return err_prefix(-fd, "--run %s", path);
	if ((uint64_t)st.st_size > RUN_SCRIPT_MAX) {
		ret = err_set(EFBIG, "--run %s: script is larger than %u MiB", path, RUN_SCRIPT_MAX >> 20);
		goto out;
	}
	/* Exactly the size fstat saw: a file that grows or shrinks meanwhile is refused. */
	if ((ret = read_exact(fd, (size_t)st.st_size, data, len)) < 0)
		ret = err_prefix(ret, "--run %s", path);
out:
	close(fd);
	return ret;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int run_prepare(struct run_disk *r, struct vmm_config *cfg)
{
	uint8_t *script = NULL, *img = NULL;
	size_t len, size;
	int fd = -1, ret;

	memset(r, 0, sizeof(*r));
	if (cfg->nr_disks >= CFG_MAX_DISKS)
		return err_set(EINVAL, "--run %s: needs a disk slot of its own: at most %d --disk with --run",
			       cfg->run, CFG_MAX_DISKS - 1);
	/* Anywhere on the line: init reads it from the whole /proc/cmdline, "--" or not. */
	if (cmdline_has_word(cfg->cmdline, CMDLINE_RUN_KEY, CMDLINE_PREFIX | CMDLINE_WITH_INIT))
		return err_set(EINVAL, "--run %s: the command line already has %s (microvm adds it)",
			       cfg->run, CMDLINE_RUN_KEY);
	if ((ret = read_script(cfg->run, &script, &len)) < 0)
		return ret;

	size = run_image_size(len);
	img = malloc(size);
	if (!img) {
		ret = err_set(ENOMEM, "--run %s: out of memory", cfg->run);
		goto out;
	}
	run_image_format(img, script, len);

	const char *tmp = getenv("TMPDIR");
	if (!tmp || !*tmp)
		tmp = "/tmp";
	if ((size_t)snprintf(r->path, sizeof(r->path), "%s/microvm-run-XXXXXX.img", tmp) >= sizeof(r->path)) {
		r->path[0] = '\0';
		ret = err_set(ENAMETOOLONG, "--run: TMPDIR %s is too long", tmp);
		goto out;
	}
	fd = mkstemps(r->path, 4);
	if (fd < 0) {
		ret = err_set(errno, "--run: cannot create the script disk in %s: %s (set TMPDIR)", tmp,
			      strerror(errno));
		r->path[0] = '\0';
		goto out;
	}
	if ((ret = write_all(fd, img, size)) < 0) {
		ret = err_set(-ret, "--run: cannot write the script disk %s: %s", r->path, strerror(-ret));
		goto out;
	}

	struct disk_config *d = &cfg->disks[cfg->nr_disks];
	memset(d, 0, sizeof(*d));
	snprintf(d->path, sizeof(d->path), "%s", r->path);
	d->ro = true;
	snprintf(d->id, sizeof(d->id), "%s", RUN_DISK_ID);
	/* The guest's command line gets microvm.run= from this (vmm/cmdline.h). */
	snprintf(cfg->run_dev, sizeof(cfg->run_dev), "/dev/vd%c", 'a' + cfg->nr_disks);
	cfg->nr_disks++;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(img);
	free(script);
	return ret;
}

void run_remove_image(struct run_disk *r)
{
	if (r->path[0])
		unlink(r->path);
	r->path[0] = '\0';
}

void run_cleanup(struct run_disk *r)
{
	run_remove_image(r);
}

int run_check_host(const struct host_profile *hp, const char *override, bool *overridden)
{
	bool forced = override && !strcmp(override, "0");

	*overridden = false;
	if (!forced && (!hp->probed || hp->user_syscalls))
		return 0;
	if (override && !strcmp(override, "1")) {
		*overridden = true;
		return 0;
	}
	return err_set(EPERM,
		       "--run: this host cannot run guest user programs (guest user mode has no system "
		       "calls here: see docs/host-quirks.md); the script would never run, so microvm "
		       "does not start the guest. Run it on a host with VT-x/AMD-V%s",
		       forced ? " (" RUN_TEST_OVERRIDE_ENV "=0: refused for a test)" : "");
}
