/* vcpu.c - vCPU creation, KVM_RUN and the decoding of struct kvm_run into struct vm_exit. */
#include "driver/vcpu.h"
#include "base/err.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

int vcpu_create(struct vm *vm, int id, struct vcpu *vcpu)
{
	memset(vcpu, 0, sizeof(*vcpu));
	vcpu->vm = vm;
	vcpu->id = id;
	vcpu->fd = ioctl(vm->fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (vcpu->fd < 0)
		return err_set(errno, "KVM_CREATE_VCPU %d: %s", id, strerror(errno));
	vcpu->run_size = vm->kvm->vcpu_mmap_size;
	vcpu->run = mmap(NULL, vcpu->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		int e = errno;
		close(vcpu->fd);
		vcpu->fd = -1;
		vcpu->run = NULL;
		return err_set(e, "mmap of vCPU %d run area: %s", id, strerror(e));
	}
	return 0;
}

void vcpu_destroy(struct vcpu *vcpu)
{
	if (vcpu->run)
		munmap(vcpu->run, vcpu->run_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	vcpu->run = NULL;
	vcpu->fd = -1;
}

const char *vmexit_kind_name(enum vm_exit_kind kind)
{
	static const char *const names[VMEXIT_KIND_COUNT] = {
		[VMEXIT_UNKNOWN] = "unknown",
		[VMEXIT_IO] = "io",
		[VMEXIT_MMIO] = "mmio",
		[VMEXIT_HLT] = "hlt",
		[VMEXIT_SHUTDOWN] = "shutdown",
		[VMEXIT_SYSTEM_EVENT] = "system-event",
		[VMEXIT_EMULATION_FAILURE] = "emulation-failure",
		[VMEXIT_INTERNAL_ERROR] = "internal-error",
		[VMEXIT_FAIL_ENTRY] = "fail-entry",
		[VMEXIT_INTR] = "intr",
	};

	if ((unsigned)kind >= VMEXIT_KIND_COUNT)
		return "invalid";
	return names[kind];
}

static void decode_internal(const struct kvm_run *r, struct vm_exit *ex)
{
	if (r->internal.suberror == KVM_INTERNAL_ERROR_EMULATION) {
		ex->kind = VMEXIT_EMULATION_FAILURE;
		ex->emul.suberror = r->internal.suberror;
		ex->emul.insn_len = 0;
		/* The instruction bytes are ABI only when the flag says so. */
		if (r->emulation_failure.ndata >= 3 &&
		    (r->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
			uint8_t n = r->emulation_failure.insn_size;
			if (n > sizeof(ex->emul.insn))
				n = sizeof(ex->emul.insn);
			ex->emul.insn_len = n;
			memcpy(ex->emul.insn, r->emulation_failure.insn_bytes, n);
		}
		return;
	}
	ex->kind = VMEXIT_INTERNAL_ERROR;
	ex->internal.suberror = r->internal.suberror;
	ex->internal.ndata = r->internal.ndata;
	for (unsigned i = 0; i < 4 && i < r->internal.ndata && i < 16; i++)
		ex->internal.data[i] = r->internal.data[i];
}

int vmexit_decode(void *run, size_t run_size, struct vm_exit *ex)
{
	const struct kvm_run *r = run;

	memset(ex, 0, sizeof(*ex));
	ex->raw_reason = r->exit_reason;
	switch (r->exit_reason) {
	case KVM_EXIT_IO: {
		uint64_t bytes = (uint64_t)r->io.size * r->io.count;
		if ((r->io.size != 1 && r->io.size != 2 && r->io.size != 4) || r->io.count == 0 ||
		    r->io.data_offset > run_size || bytes > run_size - r->io.data_offset) {
			ex->kind = VMEXIT_INTERNAL_ERROR;
			ex->internal.suberror = 0;
			return 0;
		}
		ex->kind = VMEXIT_IO;
		ex->io.port = r->io.port;
		ex->io.size = r->io.size;
		ex->io.write = r->io.direction == KVM_EXIT_IO_OUT;
		ex->io.count = r->io.count;
		ex->io.data = (uint8_t *)run + r->io.data_offset;
		return 0;
	}
	case KVM_EXIT_MMIO:
		ex->kind = VMEXIT_MMIO;
		ex->mmio.addr = r->mmio.phys_addr;
		ex->mmio.len = r->mmio.len > 8 ? 8 : (uint8_t)r->mmio.len;
		ex->mmio.write = r->mmio.is_write;
		ex->mmio.data = ((struct kvm_run *)run)->mmio.data;
		return 0;
	case KVM_EXIT_HLT:
		ex->kind = VMEXIT_HLT;
		return 0;
	case KVM_EXIT_SHUTDOWN:
		ex->kind = VMEXIT_SHUTDOWN;
		return 0;
	case KVM_EXIT_SYSTEM_EVENT:
		ex->kind = VMEXIT_SYSTEM_EVENT;
		ex->event.type = r->system_event.type;
		return 0;
	case KVM_EXIT_INTERNAL_ERROR:
		decode_internal(r, ex);
		return 0;
	case KVM_EXIT_FAIL_ENTRY:
		ex->kind = VMEXIT_FAIL_ENTRY;
		ex->fail_entry.reason = r->fail_entry.hardware_entry_failure_reason;
		return 0;
	case KVM_EXIT_INTR:
		ex->kind = VMEXIT_INTR;
		return 0;
	default:
		ex->kind = VMEXIT_UNKNOWN;
		return 0;
	}
}

int vcpu_run(struct vcpu *vcpu, struct vm_exit *ex)
{
	if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
		int e = errno;
		if (e == EINTR || e == EAGAIN) {
			memset(ex, 0, sizeof(*ex));
			ex->kind = VMEXIT_INTR;
			ex->raw_reason = KVM_EXIT_INTR;
			return -EINTR;
		}
		return err_set(e, "KVM_RUN on vCPU %d: %s", vcpu->id, strerror(e));
	}
	return vmexit_decode(vcpu->run, vcpu->run_size, ex);
}

void vcpu_set_immediate_exit(struct vcpu *vcpu, bool on)
{
	struct kvm_run *r = vcpu->run;

	__atomic_store_n(&r->immediate_exit, on ? 1 : 0, __ATOMIC_SEQ_CST);
}

int vcpu_set_mp_state(struct vcpu *vcpu, bool runnable)
{
	struct kvm_mp_state mp = {
		.mp_state = runnable ? KVM_MP_STATE_RUNNABLE : KVM_MP_STATE_UNINITIALIZED,
	};

	if (ioctl(vcpu->fd, KVM_SET_MP_STATE, &mp) < 0)
		return err_set(errno, "KVM_SET_MP_STATE on vCPU %d: %s", vcpu->id, strerror(errno));
	return 0;
}

int vcpu_get_rip(struct vcpu *vcpu, uint64_t *rip)
{
	struct kvm_regs regs;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0)
		return err_set(errno, "KVM_GET_REGS: %s", strerror(errno));
	*rip = regs.rip;
	return 0;
}

int vcpu_advance_rip(struct vcpu *vcpu, unsigned int len)
{
	struct kvm_regs regs;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0)
		return err_set(errno, "KVM_GET_REGS: %s", strerror(errno));
	regs.rip += len;
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
		return err_set(errno, "KVM_SET_REGS: %s", strerror(errno));
	return 0;
}

int vcpu_update_rflags(struct vcpu *vcpu, uint64_t set, uint64_t clear)
{
	struct kvm_regs regs;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0)
		return err_set(errno, "KVM_GET_REGS: %s", strerror(errno));
	regs.rflags = (regs.rflags & ~clear) | set;
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
		return err_set(errno, "KVM_SET_REGS: %s", strerror(errno));
	return 0;
}

int vcpu_inject_exception(struct vcpu *vcpu, unsigned int vector)
{
	struct kvm_vcpu_events ev;

	if (ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return err_set(errno, "KVM_GET_VCPU_EVENTS: %s", strerror(errno));
	ev.exception.injected = 1;
	ev.exception.nr = (uint8_t)vector;
	ev.exception.has_error_code = 0;
	ev.exception.error_code = 0;
	ev.flags = 0; /* leave NMI, SIPI, SMM and shadow state as they are */
	if (ioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return err_set(errno, "KVM_SET_VCPU_EVENTS: %s", strerror(errno));
	return 0;
}

void vcpu_describe(struct vcpu *vcpu, char *buf, size_t len)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0) {
		snprintf(buf, len, "vCPU %d: registers unavailable: %s", vcpu->id, strerror(errno));
		return;
	}
	snprintf(buf, len,
		 "vCPU %d: RIP=0x%llx RSP=0x%llx RFLAGS=0x%llx CS=0x%x CR0=0x%llx CR3=0x%llx "
		 "CR4=0x%llx EFER=0x%llx",
		 vcpu->id, (unsigned long long)regs.rip, (unsigned long long)regs.rsp,
		 (unsigned long long)regs.rflags, sregs.cs.selector, (unsigned long long)sregs.cr0,
		 (unsigned long long)sregs.cr3, (unsigned long long)sregs.cr4,
		 (unsigned long long)sregs.efer);
}
