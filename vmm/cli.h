/* cli.h - the microvm command line: flags, sizes, help text. */
#ifndef MICROVM_CLI_H
#define MICROVM_CLI_H

#include <stdint.h>
#include <stdio.h>

#define CLI_DEFAULT_CMDLINE "console=ttyS0"

struct vmm_config {
	const char *kernel;    /* required */
	const char *initrd;    /* NULL: none */
	const char *cmdline;   /* never NULL after cli_parse() */
	uint64_t mem;          /* bytes */
	int cpus;
	int verbosity;         /* -1 quiet, 0 normal, 1 verbose */
};

/*
 * Parse argv into cfg (defaults first). Returns 0 to run the VM, 1 when
 * --help or --version was printed to out, or -EINVAL with err_msg() for an
 * unknown flag, a missing or bad value or a missing --kernel.
 */
int cli_parse(int argc, char *const argv[], struct vmm_config *cfg, FILE *out);

/*
 * Parse a size: a decimal number with an optional suffix K, M, G, T (powers of
 * 1024, case-insensitive, optional trailing "B" or "iB"); a plain number is bytes.
 * Returns 0 or -EINVAL/-ERANGE.
 */
int parse_size(const char *s, uint64_t *out);

/* Print the help text. */
void cli_usage(FILE *out);

#endif
