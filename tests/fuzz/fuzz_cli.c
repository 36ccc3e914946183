/* fuzz_cli.c - libFuzzer harness: the command line (cli_parse) and its value parsers on arbitrary arguments. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "firmware/machine.h"
#include "cli_check.h"
#include "fuzz.h"
#include "vmm/cli/cli.h"
#include "base/err.h"

/*
 * Input: the arguments after argv[0], separated by '\n' or NUL bytes (at most
 * MAX_ARGS; each in a heap block of its own size, so a read past an argument's
 * NUL is an AddressSanitizer report). Every argument is also handed to each
 * value parser alone. On success cli_parse()'s result must describe a VM
 * microvm can build: every value inside its documented range. Inputs with
 * --config are skipped: fuzz_config gives that flag a file of its own.
 */

#define MAX_ARGS 64

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fz_quiet();
	devnull = fopen("/dev/null", "w");
	if (!devnull)
		abort();
	return 0;
}

/* Each value parser alone on one argument. */
static void parsers(const char *a)
{
	uint64_t v;
	uint8_t mac[6];
	struct disk_config d;
	struct net_config n;
	struct cgroup_config g;

	if (parse_size(a, &v) == 0)
		FZ_CHECK(isdigit((unsigned char)a[0]));
	if (parse_timeout(a, &v) == 0)
		FZ_CHECK(v >= 1 && v <= (uint64_t)(CFG_TIMEOUT_MAX_S * 1000.0 + 1));
	(void)parse_mac(a, strlen(a), mac);
	if (parse_disk(a, &d) == 0)
		check_disk(&d);
	if (parse_net(a, &n) == 0)
		check_net(&n);
	if (cgroup_parse("--cgroup", a, &g) == 0)
		check_cgroup(&g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* --config reads a file: fuzz_config covers it with a file of its own, not whatever path comes up here. */
	if (memmem(data, size, "--config", 8))
		return 0;

	char *argv[MAX_ARGS + 2];
	int argc = 0;
	struct vmm_config *cfg = malloc(sizeof(*cfg));   /* ~33 KiB: not on the stack */

	if (!cfg)
		abort();
	argv[argc++] = strdup("microvm");
	argc = fz_split_args(data, 0, size, argv, argc, MAX_ARGS);
	argv[argc] = NULL;

	for (int i = 1; i < argc; i++)
		parsers(argv[i]);
	int ret = cli_parse(argc, argv, cfg, devnull);
	FZ_CHECK(ret == 0 || ret == 1 || ret == -EINVAL);
	if (ret == 0)
		check_config(cfg);
	else if (ret < 0)
		FZ_CHECK(err_msg()[0] != '\0');

	for (int i = 0; i < argc; i++)
		free(argv[i]);
	free(cfg);
	return 0;
}
