/* probe.h - what kind of KVM host this is, learnt from a few-instruction probe VM at start-up. */
#ifndef MICROVM_PROBE_H
#define MICROVM_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct host_profile {
	bool probed;              /* host_probe() ran to the end */
	/*
	 * Guest user mode (CPL3) reaches the guest kernel through `syscall`:
	 * true on hardware virtualization; false on hosts such as PVM, where
	 * `syscall` stays at CPL3 (see docs/host-quirks.md).
	 */
	bool user_syscalls;
	/*
	 * Guest kernel code (CPL0) runs in KVM's instruction emulator (the
	 * probe's CPL0 part hit an emulation failure or ran far slower than
	 * CPL3): the guest needs the emulation workarounds.
	 */
	bool emulated_kernel;
	const char *summary;      /* one line for logs and --host-info */

	/* Details for --host-info and the debug log. */
	int api_version;          /* KVM_GET_API_VERSION */
	uint32_t tsc_khz;         /* KVM_GET_TSC_KHZ of the probe vCPU; 0 unknown */
	uint64_t cpl0_cycles;     /* fastest of 3 timed 300-iteration loops at CPL0 (TSC cycles) */
	uint64_t cpl3_cycles;     /* the same loop at CPL3 */
	const char *syscall_result; /* where `syscall` from CPL3 landed, in words */
	unsigned int fault_vector; /* exception the probe's CPL0 handler saw, if any */
	uint32_t probe_us;        /* how long host_probe() took */
};

/*
 * Run the probe VM (its own small VM on /dev/kvm, torn down before return)
 * and fill *p. Cheap (well under 100 ms on either kind of host) and
 * deterministic. Returns -errno with err_msg() only when /dev/kvm cannot be
 * opened; a probe that goes wrong in any other way (setup refused, an
 * unexpected exit, no answer within 500 ms) returns 0 with probed = false and
 * says why in a debug line. See docs/host-quirks.md for the decision table.
 * The probe runs once per process: later calls return its result (a
 * --run of a Linux kernel asks twice). Not thread-safe: call it before
 * starting threads.
 */
int host_probe(struct host_profile *p);

/*
 * The KVM capabilities microvm uses, as "NAME=yes|no|N ..." in buf (a fresh
 * /dev/kvm fd). Returns 0 or -errno with err_msg().
 */
int host_kvm_caps(char *buf, size_t len);

#endif
