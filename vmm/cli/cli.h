/* cli.h - the microvm command line: argv into the monitor's configuration (vmm/config.h), the help text. */
#ifndef MICROVM_CLI_H
#define MICROVM_CLI_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "vmm/config.h"

/*
 * Parse argv into cfg: the defaults, then the --config FILE if one is given
 * (wherever it is on the command line), then every other flag, so a flag
 * replaces the file's value and --disk/--net come after the file's. Returns
 * 0 to run the VM, 1 when --help or --version was printed to out, or -EINVAL
 * with err_msg() for an unknown flag, a missing or bad value, a bad --config
 * file or a missing --kernel. Call config_free(cfg) afterwards, whatever the result.
 */
int cli_parse(int argc, char *const argv[], struct vmm_config *cfg, FILE *out);

/* Print the help text. */
void cli_usage(FILE *out);

#endif
