/* fuzz_cli.c - libFuzzer harness: the command line (cli_parse) and its value parsers on arbitrary arguments. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "firmware/machine.h"
#include "fuzz.h"
#include "vmm/cli.h"
#include "vmm/err.h"

/*
 * Input: the arguments after argv[0], separated by '\n' or NUL bytes (at most
 * MAX_ARGS; each in a heap block of its own size, so a read past an argument's
 * NUL is an AddressSanitizer report). Every argument is also handed to each
 * value parser alone. On success cli_parse()'s result must describe a VM
 * microvm can build: every value inside its documented range.
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

static bool printable_id(const char *s)
{
	for (; *s; s++)
		if (!isgraph((unsigned char)*s))
			return false;
	return true;
}

static void check_net(const struct net_config *n)
{
	size_t len = strnlen(n->tap, sizeof(n->tap));

	FZ_CHECK(len > 0 && len <= CLI_TAP_NAME_MAX);
	for (size_t i = 0; i < len; i++)
		FZ_CHECK(isalnum((unsigned char)n->tap[i]) || strchr("-_.", n->tap[i]));
	FZ_CHECK(!(n->has_mac && n->random_mac));
	if (n->has_mac) {
		FZ_CHECK(!(n->mac[0] & 1));
		FZ_CHECK(n->mac[0] | n->mac[1] | n->mac[2] | n->mac[3] | n->mac[4] | n->mac[5]);
	}
}

static void check_disk(const struct disk_config *d)
{
	FZ_CHECK(memchr(d->path, '\0', sizeof(d->path)) && d->path[0]);
	FZ_CHECK(memchr(d->id, '\0', sizeof(d->id)) && printable_id(d->id));
}

static void check_config(const struct vmm_config *c)
{
	FZ_CHECK(c->kernel || c->host_info);
	FZ_CHECK(c->cmdline);
	FZ_CHECK(c->mem >= MV_MEM_MIN && c->mem <= MV_MEM_MAX && c->mem % (1 << 20) == 0);
	FZ_CHECK(c->cpus >= 1 && c->cpus <= MV_MAX_VCPUS);
	FZ_CHECK(c->nr_disks >= 0 && c->nr_disks <= CLI_MAX_DISKS);
	FZ_CHECK(!c->run || c->nr_disks < CLI_MAX_DISKS);
	for (int i = 0; i < c->nr_disks; i++)
		check_disk(&c->disks[i]);
	FZ_CHECK(c->nr_nics >= 0 && c->nr_nics <= CLI_MAX_NICS);
	for (int i = 0; i < c->nr_nics; i++) {
		check_net(&c->nics[i]);
		for (int j = 0; j < i; j++)
			FZ_CHECK(strcmp(c->nics[i].tap, c->nics[j].tap) != 0);
	}
	FZ_CHECK(c->timeout_ms <= (uint64_t)(CLI_TIMEOUT_MAX_S * 1000.0 + 1));
	FZ_CHECK(c->verbosity >= -1 && c->verbosity <= 1);
}

/* Each value parser alone on one argument. */
static void parsers(const char *a)
{
	uint64_t v;
	uint8_t mac[6];
	struct disk_config d;
	struct net_config n;

	if (parse_size(a, &v) == 0)
		FZ_CHECK(isdigit((unsigned char)a[0]));
	if (parse_timeout(a, &v) == 0)
		FZ_CHECK(v >= 1 && v <= (uint64_t)(CLI_TIMEOUT_MAX_S * 1000.0 + 1));
	(void)parse_mac(a, strlen(a), mac);
	if (parse_disk(a, &d) == 0)
		check_disk(&d);
	if (parse_net(a, &n) == 0)
		check_net(&n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[MAX_ARGS + 2];
	int argc = 0;
	size_t start = 0;
	struct vmm_config *cfg = malloc(sizeof(*cfg));   /* ~33 KiB: not on the stack */

	if (!cfg)
		abort();
	argv[argc++] = strdup("microvm");
	for (size_t i = 0; i <= size && argc <= MAX_ARGS; i++) {
		if (i < size && data[i] != '\n' && data[i] != '\0')
			continue;
		char *a = malloc(i - start + 1);
		if (!a)
			abort();
		memcpy(a, data + start, i - start);
		a[i - start] = '\0';
		argv[argc++] = a;
		start = i + 1;
	}
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
