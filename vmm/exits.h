/* exits.h - what microvm does for each kind of VM exit (a table, separate from KVM_RUN). */
#ifndef MICROVM_EXITS_H
#define MICROVM_EXITS_H

#include <stdatomic.h>
#include <stddef.h>

#include "driver/vcpu.h"
#include "vmm/bus.h"
#include "vmm/quirks.h"
#include "vmm/stats.h"

enum exit_action { EXIT_CONTINUE, EXIT_STOP };

/* What the handlers need from the VM; tests build one by hand. */
struct exit_env {
	const struct bus *pio;
	const struct bus *mmio;
	/* End the VM with this process exit status; why is a log line. */
	void (*stop)(void *ctx, int status, const char *why);
	/* Last guest console output, for error reports (may be NULL). */
	void (*console_tail)(void *ctx, char *buf, size_t len);
	void *ctx;
	/*
	 * Per-vCPU exit counters, indexed by vcpu->id (may be NULL): each vCPU
	 * thread writes only its own, without atomics (see stats.h).
	 */
	struct exit_stats *stats;
	int nr_stats;
	/* Counters shared by all vCPUs (may be NULL). */
	atomic_ullong *quirk_counts;    /* QUIRK_KIND_COUNT entries: the first of each kind is logged */
	atomic_ullong *unmapped_io;     /* accesses that hit no device */
};

/*
 * Handle one decoded exit of vcpu. Port I/O and MMIO go to the buses; triple
 * fault, guest errors and unknown exits call env->stop() with the documented
 * exit status and return EXIT_STOP. Emulation failures of instructions listed
 * in quirks.h are completed on the vCPU and return EXIT_CONTINUE.
 */
enum exit_action exit_dispatch(const struct exit_env *env, struct vcpu *vcpu, const struct vm_exit *ex);

#endif
