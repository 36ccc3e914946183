/* main.c - microvm's entry point: parse the command line, build the VM, run it, exit with its status. */
#include "vmm/cli.h"
#include "vmm/err.h"
#include "vmm/exit_codes.h"
#include "vmm/log.h"
#include "vmm/vm.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	struct vmm_config cfg;
	static struct vmm vmm; /* large (vCPU and console buffers): not on the stack */
	int ret;

	ret = cli_parse(argc, argv, &cfg, stdout);
	if (ret == 1)
		return 0;
	if (ret < 0) {
		log_error("%s", err_msg());
		return MV_EXIT_USAGE;
	}
	if (cfg.verbosity < 0)
		log_set_level(LOG_WARN);
	else if (cfg.verbosity > 0)
		log_set_level(LOG_DEBUG);

	if (vmm_build(&vmm, &cfg) < 0) {
		log_error("%s", err_msg());
		vmm_destroy(&vmm);
		return MV_EXIT_ERROR;
	}
	ret = vmm_run(&vmm);
	vmm_destroy(&vmm);
	return ret;
}
