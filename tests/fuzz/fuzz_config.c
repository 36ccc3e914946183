/* fuzz_config.c - libFuzzer harness: --config FILE (vmm/cli/config_file.c on json-c) and how the command line goes over it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli_check.h"
#include "fuzz.h"
#include "vmm/cli/cli.h"
#include "vmm/cli/config_file.h"
#include "base/err.h"

/*
 * Input: the file's text, then optionally a NUL byte and command-line
 * arguments separated by '\n' or NUL bytes (as in fuzz_cli). The text goes
 * to config_file_parse() directly, then to a memfd that cli_parse() reads as
 * "microvm --config /proc/self/fd/N ARGS...". An accepted configuration must
 * be one microvm can build (cli_check.h), every string it points to must be
 * an argument, the default command line or a string cfg owns, relative paths
 * from the file must have the file's directory in front, and config_free() must
 * leave nothing behind (LeakSanitizer). Every error has a message.
 */

#define MAX_ARGS 32

static FILE *devnull;
static int memfd;
static char cfgpath[64];

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fz_quiet();
	devnull = fopen("/dev/null", "w");
	memfd = memfd_create("fuzz-config", MFD_CLOEXEC);
	if (!devnull || memfd < 0)
		abort();
	snprintf(cfgpath, sizeof(cfgpath), "/proc/self/fd/%d", memfd);
	return 0;
}

static bool owned(const struct vmm_config *c, const char *s, char *const argv[], int argc)
{
	if (!s || !strcmp(s, CFG_DEFAULT_CMDLINE))   /* the default: a literal in cli.c */
		return true;
	for (int i = 0; i < c->nr_owned; i++)
		if (s == c->owned[i])
			return true;
	for (int i = 0; i < argc; i++)   /* argv[i] itself or its "--flag=VALUE" part */
		if (s >= argv[i] && s <= argv[i] + strlen(argv[i]))
			return true;
	return false;
}

static void check_strings(const struct vmm_config *c, char *const argv[], int argc)
{
	FZ_CHECK(owned(c, c->kernel, argv, argc));
	FZ_CHECK(owned(c, c->initrd, argv, argc));
	FZ_CHECK(owned(c, c->cmdline, argv, argc));
	FZ_CHECK(owned(c, c->run, argv, argc));
	FZ_CHECK(owned(c, c->user, argv, argc));
	FZ_CHECK(owned(c, c->restore, argv, argc));
	FZ_CHECK(c->nr_owned >= 0 && c->nr_owned <= CFG_MAX_OWNED);
}

/* A path the file gave (one cfg owns) is absolute or under dir. */
static void check_path(const struct vmm_config *c, const char *p, const char *dir)
{
	bool from_file = false;

	for (int i = 0; p && i < c->nr_owned; i++)
		from_file |= p == c->owned[i];
	if (from_file)
		FZ_CHECK(p[0] == '/' || !strncmp(p, dir, strlen(dir)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmm_config *cfg = malloc(sizeof(*cfg));   /* ~33 KiB: not on the stack */
	const uint8_t *nul = memchr(data, '\0', size);
	size_t tlen = nul ? (size_t)(nul - data) : size;
	char *argv[MAX_ARGS + 4];
	int argc = 0, ret;

	if (!cfg)
		abort();

	/* The parser alone, on every byte (NULs included), with and without a directory. */
	config_defaults(cfg);
	ret = config_file_parse("f", "d", (const char *)data, size, cfg);
	FZ_CHECK(ret == 0 || ret == -EINVAL);
	if (ret == 0) {
		check_strings(cfg, argv, 0);
		check_path(cfg, cfg->kernel, "d/");
		check_path(cfg, cfg->initrd, "d/");
		check_path(cfg, cfg->run, "d/");
		for (int i = 0; i < cfg->nr_disks; i++)
			FZ_CHECK(cfg->disks[i].path[0] == '/' || !strncmp(cfg->disks[i].path, "d/", 2));
		if (config_check(cfg) == 0) {
			cfg->host_info |= !cfg->kernel;
			check_config(cfg);
		}
	} else {
		FZ_CHECK(!strncmp(err_msg(), "f", 1));
	}
	config_free(cfg);

	/* As a file, under the command line's flags. */
	if (ftruncate(memfd, 0) < 0 || pwrite(memfd, data, tlen, 0) != (ssize_t)tlen)
		abort();
	argv[argc++] = strdup("microvm");
	argv[argc++] = strdup("--config");
	argv[argc++] = strdup(cfgpath);
	if (nul)
		argc = fz_split_args(data, tlen + 1, size, argv, argc, MAX_ARGS);
	argv[argc] = NULL;
	ret = cli_parse(argc, argv, cfg, devnull);
	FZ_CHECK(ret == 0 || ret == 1 || ret == -EINVAL);
	if (ret == 0) {
		check_config(cfg);
		check_strings(cfg, argv, argc);
		check_path(cfg, cfg->kernel, "/proc/self/fd/");
		check_path(cfg, cfg->initrd, "/proc/self/fd/");
		check_path(cfg, cfg->run, "/proc/self/fd/");
	} else if (ret < 0) {
		FZ_CHECK(err_msg()[0] != '\0');
	}
	config_free(cfg);
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	free(cfg);
	return 0;
}
