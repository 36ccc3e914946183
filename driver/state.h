/* state.h - a vCPU's and a VM's KVM state as opaque, fixed-size blobs for snapshots (vmm/snapshot.h). */
#ifndef MICROVM_DRIVER_STATE_H
#define MICROVM_DRIVER_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "driver/kvm.h"
#include "driver/vcpu.h"

/*
 * The blobs hold KVM's own structures (struct kvm_regs, ...) in this host's
 * layout; they are meant for a restore on the same kind of host with the same
 * microvm. Their sizes are fixed per build: a blob of another size is refused.
 */
size_t vcpu_state_size(void);
size_t vm_state_size(void);

/*
 * Save vCPU state into buf (vcpu_state_size() bytes): registers, special
 * registers, FPU/SSE/AVX (XSAVE) and XCRs, debug registers, LAPIC, pending
 * events, MP state and every MSR KVM lists as worth saving that this vCPU
 * reads. The vCPU must not be in KVM_RUN, and must have re-entered KVM_RUN
 * (immediate_exit) after its last I/O or MMIO exit, so that exit is complete.
 * Returns 0 or -errno with err_msg().
 */
int vcpu_state_save(struct vcpu *vcpu, void *buf);

/*
 * Load a saved state into a vCPU created (vcpu_create) and initialised
 * (vcpu_init) for the same number of vCPUs. The blob is checked (counts and
 * sizes) before use. Returns 0 or -errno with err_msg().
 */
int vcpu_state_load(struct vcpu *vcpu, const void *buf, size_t len);

/* RIP of a saved vCPU state (for logs and tests); 0 if len is wrong. */
uint64_t vcpu_state_rip(const void *buf, size_t len);

/*
 * Save the in-kernel irqchip (both PICs and the IOAPIC), the PIT and the KVM
 * clock into buf (vm_state_size() bytes), with the host's CLOCK_REALTIME at
 * that moment. Returns 0 or -errno with err_msg().
 */
int vm_state_save(struct vm *vm, void *buf);

/*
 * Load it into a VM made by vm_create(). The KVM clock goes on from the saved
 * value plus the real time that passed since the save (a guest clock source
 * of kvmclock sees the time jump; the TSC does not move on by itself).
 */
int vm_state_load(struct vm *vm, const void *buf, size_t len);

/*
 * Whether the in-kernel IOAPIC's redirection entry for pin is unmasked: the
 * guest set that line up. Returns 1 (unmasked), 0 (masked) or -errno with
 * err_msg().
 */
int vm_ioapic_pin_unmasked(struct vm *vm, unsigned pin);

#endif
