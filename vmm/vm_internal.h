/* vm_internal.h - what the VM's three parts share: building (vm.c), the run loop and vCPU
 * threads (runloop.c), pause/resume/stop (lifecycle.c). Not for other modules: they use vm.h. */
#ifndef MICROVM_VM_INTERNAL_H
#define MICROVM_VM_INTERNAL_H

#include "base/exit_codes.h"
#include "vmm/vm.h"

/* The status for a guest that ended the VM without an exit-status write: 0, or 123 under --run. */
static inline int end_status(const struct vmm *vmm)
{
	return vmm->cfg.run ? MV_EXIT_RUN_NO_STATUS : MV_EXIT_POWEROFF;
}

static inline const char *end_note(const struct vmm *vmm)
{
	return vmm->cfg.run ? " before reporting the --run script's status (exit status 123)" : "";
}

/* lifecycle.c */
/* (vCPU thread) Wait while the VM is paused; then clear the kick that took us out of KVM_RUN. */
void park(struct vmm *vmm, struct vcpu *vcpu);
/* Make every vCPU thread leave KVM_RUN and wait for them. */
void stop_vcpus(struct vmm *vmm);

/* runloop.c: the console's callbacks, wired by vmm_build() and vmm_run(). */
void serial_output(void *ctx, const uint8_t *buf, size_t len);
void console_quit(void *ctx);

#endif
