/* run.h - --run SCRIPT: the script on a small read-only disk for the guest's init, and when --run may start. */
#ifndef MICROVM_RUN_H
#define MICROVM_RUN_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "driver/probe.h"
#include "vmm/config.h"

/*
 * The run disk (docs/cli-runs.md): one header line
 *     "MICROVM-RUN v1 LEN\n"       (LEN: the script's length in bytes, decimal)
 * then the script's LEN bytes, then zero bytes up to a multiple of 512.
 */
#define RUN_MAGIC       "MICROVM-RUN v1"
#define RUN_SCRIPT_MAX  (16u << 20)   /* bytes */
#define RUN_DISK_ID     "microvm-run"  /* the virtio-blk serial of the run disk */
/* Tests only: =1 lets --run start where host_probe() says it cannot work, =0 refuses it everywhere. */
#define RUN_TEST_OVERRIDE_ENV "MICROVM_TEST_RUN_ANYWAY"

struct run_disk {
	char path[PATH_MAX];   /* the temporary image; "" once removed or never made */
};

/* Size of the run disk image for a script of len bytes (a multiple of 512). Pure. */
size_t run_image_size(size_t len);

/*
 * Write the run disk image for script[0..len) into out, which has
 * run_image_size(len) bytes. Pure.
 */
void run_image_format(uint8_t *out, const uint8_t *script, size_t len);

/*
 * For --run: check that cfg->run is a readable regular file of at most
 * RUN_SCRIPT_MAX bytes, write its image to a new file in $TMPDIR (or /tmp),
 * append it to cfg as the last --disk (read-only, id RUN_DISK_ID) and set
 * cfg->run_dev to its "/dev/vdX", from which the guest's command line gets
 * microvm.run=/dev/vdX (vmm/cmdline.h). Refused when cfg->cmdline already has
 * a microvm.run= word (anywhere, after "--" too). Returns 0 or -errno with
 * err_msg() ("--run PATH: ..."); run_cleanup() must be called either way.
 */
int run_prepare(struct run_disk *r, struct vmm_config *cfg);

/* Remove the temporary image (once the VM has it open, the open descriptor keeps it). Idempotent. */
void run_remove_image(struct run_disk *r);

/* Everything run_prepare() left (today the image: run_remove_image()), after the VM is gone. Idempotent. */
void run_cleanup(struct run_disk *r);

/*
 * May --run start on this host? 0 when guest user mode can make system
 * calls, or when override (the value of RUN_TEST_OVERRIDE_ENV, may be NULL)
 * is "1" (then *overridden is set); otherwise -EPERM with err_msg() explaining
 * why, in one line. A profile that was not probed counts as able. Override
 * "0" refuses on any host, so tests see the refusal everywhere.
 */
int run_check_host(const struct host_profile *hp, const char *override, bool *overridden);

#endif
