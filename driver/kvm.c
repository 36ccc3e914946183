/* kvm.c - /dev/kvm and VM-level ioctls (see kvm.h). */
#include "driver/kvm.h"
#include "base/err.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static const struct {
	int cap;
	const char *name;
} required_caps[] = {
	{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
	{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
	{ KVM_CAP_PIT2, "KVM_CAP_PIT2" },
	{ KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD" },
	{ KVM_CAP_IRQFD, "KVM_CAP_IRQFD" },
	{ KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
	{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
	{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
	{ KVM_CAP_NR_MEMSLOTS, "KVM_CAP_NR_MEMSLOTS" },
};

int kvm_dev_open(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd >= 0)
		return fd;
	int e = errno;
	if (e == ENOENT || e == ENXIO || e == ENODEV)
		return err_set(e, "%s: %s (is KVM enabled? load kvm_intel or kvm_amd, "
			       "or enable virtualization in the firmware)", path, strerror(e));
	if (e == EACCES || e == EPERM)
		return err_set(e, "%s: %s (are you in the kvm group? try: "
			       "sudo usermod -aG kvm $USER, then log in again)", path, strerror(e));
	return err_set(e, "%s: %s", path, strerror(e));
}

int kvm_open(struct kvm *kvm, const char *path)
{
	int ret;

	memset(kvm, 0, sizeof(*kvm));
	if ((ret = kvm_dev_open(path)) < 0) {
		kvm->fd = -1;
		return ret;
	}
	kvm->fd = ret;
	kvm->api_version = ioctl(kvm->fd, KVM_GET_API_VERSION, 0);
	if (kvm->api_version != KVM_API_VERSION) {
		int v = kvm->api_version;
		kvm_close(kvm);
		return err_set(ENOTSUP, "%s: KVM API version %d, microvm needs %d", path, v,
			       KVM_API_VERSION);
	}
	for (size_t i = 0; i < sizeof(required_caps) / sizeof(required_caps[0]); i++) {
		if (ioctl(kvm->fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0) {
			kvm_close(kvm);
			return err_set(ENOTSUP, "%s: the kernel's KVM lacks %s, which microvm needs",
				       path, required_caps[i].name);
		}
	}
	int sz = ioctl(kvm->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz < (int)sizeof(struct kvm_run)) {
		kvm_close(kvm);
		return err_set(EINVAL, "%s: bad KVM_GET_VCPU_MMAP_SIZE %d", path, sz);
	}
	kvm->vcpu_mmap_size = (size_t)sz;
	kvm->max_vcpus = ioctl(kvm->fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (kvm->max_vcpus <= 0)
		kvm->max_vcpus = ioctl(kvm->fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (kvm->max_vcpus <= 0)
		kvm->max_vcpus = 4; /* documented default when the cap is absent */
	return 0;
}

void kvm_close(struct kvm *kvm)
{
	if (kvm->fd > 0)
		close(kvm->fd);
	kvm->fd = -1;
}

int vm_create(struct kvm *kvm, struct vm *vm, uint64_t tss_gpa, uint64_t identity_map_gpa)
{
	int e;

	vm->kvm = kvm;
	vm->fd = ioctl(kvm->fd, KVM_CREATE_VM, 0);
	if (vm->fd < 0)
		return err_set(errno, "KVM_CREATE_VM: %s", strerror(errno));
	if (ioctl(vm->fd, KVM_SET_TSS_ADDR, (unsigned long)tss_gpa) < 0) {
		e = err_set(errno, "KVM_SET_TSS_ADDR: %s", strerror(errno));
		goto fail;
	}
	/* Only VMX needs the identity map page; absent elsewhere is fine. */
	if (ioctl(kvm->fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0) {
		__u64 addr = identity_map_gpa;
		if (ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &addr) < 0) {
			e = err_set(errno, "KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
			goto fail;
		}
	}
	if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		e = err_set(errno, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
		goto fail;
	}
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	if (ioctl(vm->fd, KVM_CREATE_PIT2, &pit) < 0) {
		e = err_set(errno, "KVM_CREATE_PIT2: %s", strerror(errno));
		goto fail;
	}
	return 0;
fail:
	close(vm->fd);
	vm->fd = -1;
	return e;
}

void vm_destroy(struct vm *vm)
{
	if (vm->fd >= 0)
		close(vm->fd);
	vm->fd = -1;
}

int vm_set_memory(struct vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, void *host)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)host,
	};

	if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return err_set(errno, "KVM_SET_USER_MEMORY_REGION (slot %u, 0x%llx+0x%llx): %s", slot,
			       (unsigned long long)gpa, (unsigned long long)size, strerror(errno));
	return 0;
}

int vm_irq_line(struct vm *vm, uint32_t gsi, bool level)
{
	struct kvm_irq_level l = { .irq = gsi, .level = level ? 1 : 0 };

	if (ioctl(vm->fd, KVM_IRQ_LINE, &l) < 0)
		return err_set(errno, "KVM_IRQ_LINE %u: %s", gsi, strerror(errno));
	return 0;
}

int vm_ioeventfd(struct vm *vm, uint64_t addr, uint32_t len, int fd, bool pio,
		 bool use_datamatch, uint64_t datamatch, bool deassign)
{
	struct kvm_ioeventfd io = {
		.datamatch = datamatch,
		.addr = addr,
		.len = len,
		.fd = fd,
		.flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
			 (use_datamatch ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0) |
			 (deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0),
	};

	if (ioctl(vm->fd, KVM_IOEVENTFD, &io) < 0)
		return err_set(errno, "KVM_IOEVENTFD at 0x%llx: %s", (unsigned long long)addr,
			       strerror(errno));
	return 0;
}

int vm_irqfd(struct vm *vm, int fd, uint32_t gsi, bool deassign)
{
	struct kvm_irqfd irq = {
		.fd = (__u32)fd,
		.gsi = gsi,
		.flags = deassign ? KVM_IRQFD_FLAG_DEASSIGN : 0,
	};

	if (ioctl(vm->fd, KVM_IRQFD, &irq) < 0)
		return err_set(errno, "KVM_IRQFD for GSI %u: %s", gsi, strerror(errno));
	return 0;
}
