/* state.c - vCPU and VM state for snapshots (see state.h). */
#include "driver/state.h"
#include "base/err.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#define STATE_MAX_MSRS 256

struct vcpu_blob {
	uint32_t magic, nr_msrs;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave xsave;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs dregs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	uint32_t pad;
	struct kvm_msr_entry msrs[STATE_MAX_MSRS];
};

struct vm_blob {
	uint32_t magic, pad;
	struct kvm_irqchip chip[3];     /* PIC master, PIC slave, IOAPIC */
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
	uint64_t realtime_ns;           /* host CLOCK_REALTIME at the save */
};

#define VCPU_MAGIC 0x55504376u /* "vCPU" */
#define VM_MAGIC 0x004d5676u   /* "vVM" */

size_t vcpu_state_size(void)
{
	return sizeof(struct vcpu_blob);
}

size_t vm_state_size(void)
{
	return sizeof(struct vm_blob);
}

static int vcpu_ioctl(struct vcpu *vcpu, unsigned long req, void *arg, const char *name)
{
	if (ioctl(vcpu->fd, req, arg) < 0)
		return err_set(errno, "%s on vCPU %d: %s", name, vcpu->id, strerror(errno));
	return 0;
}

#define VCPU_IOCTL(v, req, arg) vcpu_ioctl((v), (req), (arg), #req)

/* The MSR indices KVM says are worth saving (KVM_GET_MSR_INDEX_LIST), at most STATE_MAX_MSRS. */
static int msr_index_list(int kvm_fd, uint32_t *idx, uint32_t *n)
{
	struct {
		struct kvm_msr_list l;
		uint32_t idx[1024];
	} list = { .l.nmsrs = 1024 };

	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &list) < 0)
		return err_set(errno, "KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
	*n = list.l.nmsrs < STATE_MAX_MSRS ? list.l.nmsrs : STATE_MAX_MSRS;
	memcpy(idx, list.idx, *n * sizeof(uint32_t));
	return 0;
}

/*
 * Get or set entries [0, n) of msrs, one KVM call for the lot; KVM stops at
 * the first MSR it refuses, which is then dropped (get) or skipped (set).
 * Returns how many entries are left in msrs (get) or were set, or -errno.
 */
static int msrs_xfer(struct vcpu *vcpu, struct kvm_msr_entry *msrs, uint32_t n, bool set)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[STATE_MAX_MSRS];
	} *buf = calloc(1, sizeof(*buf));
	uint32_t done = 0, kept = 0;

	if (!buf)
		return err_set(ENOMEM, "vCPU %d: out of memory for MSRs", vcpu->id);
	while (done < n) {
		buf->h.nmsrs = n - done;
		memcpy(buf->e, msrs + done, (n - done) * sizeof(*msrs));
		int r = ioctl(vcpu->fd, set ? KVM_SET_MSRS : KVM_GET_MSRS, buf);
		if (r < 0) {
			int e = errno;
			free(buf);
			return err_set(e, "%s on vCPU %d: %s", set ? "KVM_SET_MSRS" : "KVM_GET_MSRS",
				       vcpu->id, strerror(e));
		}
		if (!set)
			memcpy(msrs + kept, buf->e, (size_t)r * sizeof(*msrs));
		kept += (uint32_t)r;
		done += (uint32_t)r + ((uint32_t)r < n - done ? 1 : 0); /* skip the refused one */
	}
	free(buf);
	return (int)kept;
}

int vcpu_state_save(struct vcpu *vcpu, void *out)
{
	struct vcpu_blob *b = out;
	uint32_t idx[STATE_MAX_MSRS], n = 0;
	int r;

	memset(b, 0, sizeof(*b));
	b->magic = VCPU_MAGIC;
	if ((r = VCPU_IOCTL(vcpu, KVM_GET_MP_STATE, &b->mp)) < 0 ||
	    (r = VCPU_IOCTL(vcpu, KVM_GET_REGS, &b->regs)) < 0 ||
	    (r = VCPU_IOCTL(vcpu, KVM_GET_SREGS, &b->sregs)) < 0 ||
	    (r = VCPU_IOCTL(vcpu, KVM_GET_XSAVE, &b->xsave)) < 0 ||
	    (r = VCPU_IOCTL(vcpu, KVM_GET_XCRS, &b->xcrs)) < 0 ||
	    (r = VCPU_IOCTL(vcpu, KVM_GET_DEBUGREGS, &b->dregs)) < 0 ||
	    (r = VCPU_IOCTL(vcpu, KVM_GET_LAPIC, &b->lapic)) < 0 ||
	    (r = VCPU_IOCTL(vcpu, KVM_GET_VCPU_EVENTS, &b->events)) < 0)
		return r;
	if ((r = msr_index_list(vcpu->vm->kvm->fd, idx, &n)) < 0)
		return r;
	for (uint32_t i = 0; i < n; i++)
		b->msrs[i].index = idx[i];
	if ((r = msrs_xfer(vcpu, b->msrs, n, false)) < 0)
		return r;
	b->nr_msrs = (uint32_t)r;
	return 0;
}

#define MSR_IA32_TSC 0x10

/*
 * Make the guest's TSC go on from `want`. KVM takes a host write of the TSC
 * MSR that lies within a second of what it expects (a vCPU just created
 * counts from 0) as an attempt to synchronise vCPUs and keeps its own value
 * instead, so a snapshot of a guest less than a second old would see its
 * TSC jump back. Where KVM has the TSC offset attribute (Linux 5.16+), set
 * the offset that gives `want` now; elsewhere the MSR write stands.
 */
static int tsc_set(struct vcpu *vcpu, uint64_t want)
{
	uint64_t off = 0;
	struct kvm_device_attr a = { .group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET,
				     .addr = (uintptr_t)&off };
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e;
	} m = { .h.nmsrs = 1, .e.index = MSR_IA32_TSC };

	if (ioctl(vcpu->fd, KVM_HAS_DEVICE_ATTR, &a) < 0)
		return 0;
	if (ioctl(vcpu->fd, KVM_GET_DEVICE_ATTR, &a) < 0 || ioctl(vcpu->fd, KVM_GET_MSRS, &m) != 1)
		return err_set(errno, "vCPU %d: reading the TSC: %s", vcpu->id, strerror(errno));
	off += want - m.e.data;
	if (ioctl(vcpu->fd, KVM_SET_DEVICE_ATTR, &a) < 0)
		return err_set(errno, "vCPU %d: setting the TSC offset: %s", vcpu->id, strerror(errno));
	return 0;
}

int vcpu_state_load(struct vcpu *vcpu, const void *buf, size_t len)
{
	struct vcpu_blob *b;
	int r;

	if (len != sizeof(*b))
		return err_set(EINVAL, "vCPU %d state: %zu bytes, this microvm expects %zu", vcpu->id, len,
			       sizeof(*b));
	/* A copy: the ioctls want writable structures, and the input stays untouched. */
	b = malloc(sizeof(*b));
	if (!b)
		return err_set(ENOMEM, "vCPU %d state: out of memory", vcpu->id);
	memcpy(b, buf, sizeof(*b));
	if (b->magic != VCPU_MAGIC || b->nr_msrs > STATE_MAX_MSRS || b->xcrs.nr_xcrs > KVM_MAX_XCRS) {
		free(b);
		return err_set(EINVAL, "vCPU %d state: not a vCPU state of this microvm", vcpu->id);
	}
	/* Apply the NMI and SIPI state too, besides what KVM_GET_VCPU_EVENTS marked valid. */
	b->events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
	/* The order matters: special registers (APIC base) before the LAPIC, the LAPIC before its MSRs (TSC deadline). */
	if ((r = VCPU_IOCTL(vcpu, KVM_SET_MP_STATE, &b->mp)) < 0 ||
	    (r = VCPU_IOCTL(vcpu, KVM_SET_REGS, &b->regs)) < 0 ||
	    (r = VCPU_IOCTL(vcpu, KVM_SET_SREGS, &b->sregs)) < 0 ||
	    (r = VCPU_IOCTL(vcpu, KVM_SET_XSAVE, &b->xsave)) < 0 ||
	    /* A host without XSAVE reports no XCRs, and refuses to set any. */
	    (b->xcrs.nr_xcrs && (r = VCPU_IOCTL(vcpu, KVM_SET_XCRS, &b->xcrs)) < 0) ||
	    (r = VCPU_IOCTL(vcpu, KVM_SET_DEBUGREGS, &b->dregs)) < 0 ||
	    (r = VCPU_IOCTL(vcpu, KVM_SET_LAPIC, &b->lapic)) < 0)
		goto out;
	if ((r = msrs_xfer(vcpu, b->msrs, b->nr_msrs, true)) < 0)
		goto out;
	if ((uint32_t)r != b->nr_msrs) {
		r = err_set(EINVAL, "vCPU %d state: KVM refused %u of its %u MSRs", vcpu->id,
			    b->nr_msrs - (uint32_t)r, b->nr_msrs);
		goto out;
	}
	for (uint32_t i = 0; i < b->nr_msrs; i++)
		if (b->msrs[i].index == MSR_IA32_TSC && (r = tsc_set(vcpu, b->msrs[i].data)) < 0)
			goto out;
	r = VCPU_IOCTL(vcpu, KVM_SET_VCPU_EVENTS, &b->events);
out:
	free(b);
	return r < 0 ? r : 0;
}

uint64_t vcpu_state_rip(const void *buf, size_t len)
{
	const struct vcpu_blob *b = buf;

	return len == sizeof(*b) ? b->regs.rip : 0;
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int vm_ioctl(struct vm *vm, unsigned long req, void *arg, const char *name)
{
	if (ioctl(vm->fd, req, arg) < 0)
		return err_set(errno, "%s: %s", name, strerror(errno));
	return 0;
}

#define VM_IOCTL(v, req, arg) vm_ioctl((v), (req), (arg), #req)

int vm_state_save(struct vm *vm, void *out)
{
	struct vm_blob *b = out;
	int r;

	memset(b, 0, sizeof(*b));
	b->magic = VM_MAGIC;
	for (uint32_t i = 0; i < 3; i++) {
		b->chip[i].chip_id = i;
		if ((r = VM_IOCTL(vm, KVM_GET_IRQCHIP, &b->chip[i])) < 0)
			return r;
	}
	if ((r = VM_IOCTL(vm, KVM_GET_PIT2, &b->pit)) < 0 ||
	    (r = VM_IOCTL(vm, KVM_GET_CLOCK, &b->clock)) < 0)
		return r;
	b->realtime_ns = realtime_ns();
	return 0;
}

int vm_state_load(struct vm *vm, const void *buf, size_t len)
{
	struct vm_blob b;
	int r;

	if (len != sizeof(b))
		return err_set(EINVAL, "VM state: %zu bytes, this microvm expects %zu", len, sizeof(b));
	memcpy(&b, buf, sizeof(b));
	if (b.magic != VM_MAGIC)
		return err_set(EINVAL, "VM state: not a VM state of this microvm");
	for (uint32_t i = 0; i < 3; i++) {
		if (b.chip[i].chip_id != i)
			return err_set(EINVAL, "VM state: irqchip %u is chip %u", i, b.chip[i].chip_id);
		if ((r = VM_IOCTL(vm, KVM_SET_IRQCHIP, &b.chip[i])) < 0)
			return r;
	}
	if ((r = VM_IOCTL(vm, KVM_SET_PIT2, &b.pit)) < 0)
		return r;
	uint64_t now = realtime_ns();
	struct kvm_clock_data c = { .clock = b.clock.clock + (now > b.realtime_ns ? now - b.realtime_ns : 0) };
	return VM_IOCTL(vm, KVM_SET_CLOCK, &c);
}

int vm_ioapic_pin_unmasked(struct vm *vm, unsigned pin)
{
	struct kvm_irqchip chip = { .chip_id = KVM_IRQCHIP_IOAPIC };
	int r;

	if (pin >= KVM_IOAPIC_NUM_PINS)
		return err_set(EINVAL, "IOAPIC pin %u: the IOAPIC has %d", pin, KVM_IOAPIC_NUM_PINS);
	if ((r = VM_IOCTL(vm, KVM_GET_IRQCHIP, &chip)) < 0)
		return r;
	return !chip.chip.ioapic.redirtbl[pin].fields.mask;
}
