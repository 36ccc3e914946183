/*
 * floor.c - the raw-KVM floor for start-up (docs/benchmarks.md, table 1):
 * the least a program can do to run guest code to its first output and
 * exit. Open /dev/kvm, create a VM with one memory slot and one vCPU, run
 * seven bytes of real-mode code that write one byte to the serial port
 * (an I/O exit: the byte goes to stdout, as a VMM's console would) and halt,
 * then exit. Nothing else: no irqchip, no CPUID, no threads, no libraries
 * beyond libc.
 *
 * Usage: floor [--stats] [BYTE]
 *   BYTE: the byte the guest writes (default 'm', the first byte the test
 *   guest prints). --stats: the milestones, in milliseconds since main(),
 *   as one line of JSON on stderr ({"floor_stats":1,"ms":{...}}).
 * Exit status 0 after the guest's hlt; 1 on any error (one line on stderr).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define GUEST_MEM 0x1000        /* one page at guest physical 0 */
#define GUEST_ENTRY 0x0
#define SERIAL_PORT 0x3f8

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int fail(const char *what)
{
	fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
	return 1;
}

enum { T_START, T_VM, T_VCPU, T_RUN, T_OUTPUT, T_HLT, T_EXIT, T_COUNT };
static const char *const t_name[T_COUNT] = {
	"start", "vm_created", "vcpu_ready", "guest_start", "first_output", "guest_end", "exit",
};

int main(int argc, char **argv)
{
	uint64_t t[T_COUNT] = { now_ns() };
	int stats = argc > 1 && !strcmp(argv[1], "--stats");
	const char *arg = argv[1 + stats] ? argv[1 + stats] : "m";
	uint8_t byte = (uint8_t)arg[0];

	if (argc > 2 + stats || !arg[0] || arg[1]) {
		fprintf(stderr, "floor: usage: floor [--stats] [BYTE] (one character)\n");
		return 1;
	}
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return fail("/dev/kvm");
	int vm = ioctl(kvm, KVM_CREATE_VM, 0UL);
	if (vm < 0)
		return fail("KVM_CREATE_VM");
	uint8_t *mem = mmap(NULL, GUEST_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return fail("mmap guest memory");
	/* mov al, BYTE; mov dx, 0x3f8; out dx, al; hlt */
	const uint8_t code[] = { 0xb0, byte, 0xba, SERIAL_PORT & 0xff, SERIAL_PORT >> 8, 0xee, 0xf4 };
	memcpy(mem + GUEST_ENTRY, code, sizeof(code));
	struct kvm_userspace_memory_region slot = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = GUEST_MEM, .userspace_addr = (uintptr_t)mem,
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		return fail("KVM_SET_USER_MEMORY_REGION");
	t[T_VM] = now_ns();

	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0UL);
	if (vcpu < 0)
		return fail("KVM_CREATE_VCPU");
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0UL);
	if (run_size < (int)sizeof(struct kvm_run))
		return fail("KVM_GET_VCPU_MMAP_SIZE");
	struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		return fail("mmap kvm_run");
	/* Real mode at CS:IP 0:GUEST_ENTRY (the reset state has CS base 0xffff0000). */
	struct kvm_sregs sregs;
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		return fail("KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
		return fail("KVM_SET_SREGS");
	struct kvm_regs regs = { .rip = GUEST_ENTRY, .rflags = 0x2 };
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		return fail("KVM_SET_REGS");
	t[T_VCPU] = now_ns();

	t[T_RUN] = now_ns();
	for (int exits = 0;; exits++) {
		if (exits > 16) {
			fprintf(stderr, "floor: the guest did not halt after %d exits\n", exits);
			return 1;
		}
		if (ioctl(vcpu, KVM_RUN, 0UL) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return fail("KVM_RUN");
		}
		if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT &&
		    run->io.port == SERIAL_PORT && run->io.size == 1 && run->io.count == 1) {
			const uint8_t *b = (const uint8_t *)run + run->io.data_offset;
			if (write(STDOUT_FILENO, b, 1) != 1)
				return fail("write stdout");
			if (!t[T_OUTPUT])
				t[T_OUTPUT] = now_ns();
			continue;
		}
		if (run->exit_reason == KVM_EXIT_HLT)
			break;
		fprintf(stderr, "floor: unexpected exit %u (KVM_EXIT_*; internal error suberror %u)\n",
			run->exit_reason, run->exit_reason == KVM_EXIT_INTERNAL_ERROR ? run->internal.suberror : 0);
		return 1;
	}
	t[T_HLT] = now_ns();
	close(vcpu);
	close(vm);
	close(kvm);
	t[T_EXIT] = now_ns();
	if (stats) {
		fprintf(stderr, "{\"floor_stats\":1,\"ms\":{");
		for (int i = 1; i < T_COUNT; i++)
			fprintf(stderr, "%s\"%s\":%.3f", i > 1 ? "," : "", t_name[i], (double)(t[i] - t[0]) / 1e6);
		fprintf(stderr, "}}\n");
	}
	return 0;
}
