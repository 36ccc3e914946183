/* kvm.h - the VM-level interface to /dev/kvm: system checks, memory slots, irqchip, eventfds. */
#ifndef MICROVM_DRIVER_KVM_H
#define MICROVM_DRIVER_KVM_H

/*
 * driver/ is the only code that includes <linux/kvm.h> or issues KVM ioctls.
 * Everything here returns 0 or -errno with err_msg() set (base/err.h).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvm {
	int fd;
	int api_version;
	size_t vcpu_mmap_size;
	int max_vcpus;            /* KVM_CAP_MAX_VCPUS (or NR_VCPUS) */
};

struct vm {
	struct kvm *kvm;
	int fd;
};

/*
 * Open path (normally "/dev/kvm"), check the API version is 12 and that every
 * capability microvm relies on is present. The message names the missing piece:
 * no device ("is KVM enabled?"), EACCES ("are you in the kvm group?"), or the
 * capability.
 */
int kvm_open(struct kvm *kvm, const char *path);

#define KVM_DEV_PATH "/dev/kvm"

/*
 * Open path read-write; the descriptor, or -errno with err_msg() naming path
 * and what to do ("is KVM enabled?", "are you in the kvm group?"). kvm_open()
 * and the host probe use it.
 */
int kvm_dev_open(const char *path);
void kvm_close(struct kvm *kvm);

/* Create a VM with the in-kernel PIC, IOAPIC, LAPICs and PIT (speaker port off). */
int vm_create(struct kvm *kvm, struct vm *vm, uint64_t tss_gpa, uint64_t identity_map_gpa);
void vm_destroy(struct vm *vm);

/* Map host memory at gpa as memory slot `slot`. */
int vm_set_memory(struct vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, void *host);

/* Drive the level of IOAPIC/PIC input `gsi` (KVM_IRQ_LINE). */
int vm_irq_line(struct vm *vm, uint32_t gsi, bool level);

/*
 * Make writes of `len` bytes to addr (MMIO, or port I/O when pio) signal
 * eventfd `fd` inside KVM, without an exit to the vCPU thread. With
 * `datamatch`, only writes of exactly that value do.
 */
int vm_ioeventfd(struct vm *vm, uint64_t addr, uint32_t len, int fd, bool pio,
		 bool use_datamatch, uint64_t datamatch, bool deassign);

/* Make a write to eventfd `fd` raise (edge) IOAPIC input `gsi`. */
int vm_irqfd(struct vm *vm, int fd, uint32_t gsi, bool deassign);

#endif
