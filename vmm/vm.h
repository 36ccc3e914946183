/* vm.h - the life cycle of one VM: build it from the configuration, run it, tear it down. */
#ifndef MICROVM_VM_H
#define MICROVM_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "devices/cmos.h"
#include "devices/pvpanic.h"
#include "devices/serial.h"
#include "devices/sysctl.h"
#include "driver/kvm.h"
#include "driver/vcpu.h"
#include "firmware/machine.h"
#include "vmm/bus.h"
#include "vmm/config.h"
#include "vmm/console.h"
#include "vmm/devices.h"
#include "vmm/exits.h"
#include "base/guest_mem.h"
#include "vmm/snapshot.h"
#include "vmm/workingset.h"
#include "vmm/stats.h"

struct pollfd;
struct vmm;

/* What a vCPU thread runs on: its VM and its vCPU. */
struct vcpu_thread {
	struct vmm *vmm;
	struct vcpu *vcpu;
};

/*
 * A front door the main loop serves: the control API (vmm/api/control.h).
 * It sits above this layer and plugs in through these calls, all made on
 * the main thread. ctx NULL: no door.
 */
struct vmm_door {
	void *ctx;
	/* In vmm_build(), before /dev/kvm opens, so a path in use is reported the same on any host. */
	int (*open)(void *ctx, struct vmm *vmm, const char *path);
	/* Each turn of vmm_run()'s loop: the fds to poll (at most max), how long it may sleep (-1: any). */
	int (*pollfds)(void *ctx, struct pollfd *p, int max);
	int (*timeout_ms)(void *ctx, uint64_t now_ns);
	/* After the poll: serve what is ready (its routes run here). */
	void (*process)(void *ctx, const struct pollfd *p, int n, uint64_t now_ns);
	void (*close)(void *ctx);
};
#define VMM_DOOR_MAX_FDS 16

struct vmm {
	struct vmm_config cfg;
	struct machine machine;
	struct guest_mem mem;
	struct kvm kvm;
	struct vm vm;
	bool kvm_open, vm_created;

	int nr_vcpus;                       /* created so far */
	struct vcpu vcpus[MV_MAX_VCPUS];
	pthread_t threads[MV_MAX_VCPUS];
	struct vcpu_thread thread_args[MV_MAX_VCPUS];
	int nr_threads;

	struct bus pio, mmio;
	struct serial serial;
	struct sysctl sysctl;
	struct pvpanic pvpanic;
	struct cmos cmos;
	struct console console;
	bool devices_ready, console_ready;
	struct exit_env exit_env;
	struct vdevs vdevs;                 /* disks, virtio devices, the I/O thread */
	char *cmdline;                      /* the guest's kernel command line (vmm/cmdline.h), owned */
	struct snapshot snap;               /* --restore: the parsed state file (freed after the build) */
	struct ws_prefetch ws;              /* --restore: DIR/workingset's ranges, loaded while the vCPUs start */
	uint32_t ws_state_crc;              /* --restore: the snapshot's state CRC (a working set names it) */
	uint64_t ws_deadline;               /* --record-working-set: when to save it (ns; main thread); 0: not yet */
	bool ws_saved;                      /* --record-working-set: saved (or tried): recording is over */

	/* Pause (the control API): vCPU threads park on run_cond while pause_requested. */
	pthread_mutex_t run_lock;
	pthread_cond_t run_cond;            /* CLOCK_MONOTONIC */
	bool run_sync_ready;
	atomic_bool pause_requested;
	int nr_parked;                      /* under run_lock */
	uint64_t paused_since, paused_total; /* ns; under run_lock */

	struct vmm_door door;               /* --api-sock (vmm/api/control.h); door.ctx NULL: none */
	bool door_open;
	uint64_t shutdown_deadline;         /* ns; a shutdown request not yet obeyed (main thread only); 0: none */
	uint64_t shutdown_timeout_ms;

	atomic_bool stop_requested;         /* first stop request wins */
	atomic_bool stopping;               /* vCPU threads must leave KVM_RUN */
	int exit_status;                    /* valid once stop_requested */
	int stop_efd;

	struct exit_stats vstats[MV_MAX_VCPUS]; /* per vCPU, summed for --stats */
	struct boot_times times;            /* milestones for --stats */
	atomic_ullong quirk_counts[QUIRK_KIND_COUNT];
	atomic_ullong unmapped_io;
};

/*
 * Build the VM: check the configuration, load kernel and initrd, write the
 * firmware tables and boot structures, open KVM, create the VM, its devices
 * and vCPUs. Files are read and checked before /dev/kvm is opened, so bad
 * input is reported the same on any host. Returns 0 or -errno with err_msg();
 * vmm_destroy() must be called either way.
 */
int vmm_build(struct vmm *vmm, const struct vmm_config *cfg, const struct vmm_door *door);

/*
 * Run until the guest ends the VM, a fatal error, SIGINT/SIGTERM, the
 * console quit key or --timeout. With --stats, print the boot milestones and
 * exit counters to stderr at the end. Returns the process exit status
 * (base/exit_codes.h).
 */
int vmm_run(struct vmm *vmm);

void vmm_destroy(struct vmm *vmm);

/*
 * Pause: make every vCPU thread leave KVM_RUN and park, and wait (at most
 * VMM_PAUSE_WAIT_MS) until all have. Idempotent. Main thread only. Returns 0,
 * -ESHUTDOWN if the VM is stopping, or -ETIMEDOUT with err_msg() (the pause
 * is then undone).
 */
#define VMM_PAUSE_WAIT_MS 2000
int vmm_pause(struct vmm *vmm);

/* Let parked vCPUs run again. Idempotent. Returns 0, or -ESHUTDOWN if the VM is stopping. */
int vmm_resume(struct vmm *vmm);

/*
 * Graceful shutdown: press the guest's ACPI power button (the GED's
 * interrupt, firmware/acpi.c) and stop the VM with MV_EXIT_TIMEOUT if it has
 * not ended timeout_ms later. Main thread only. Returns 0, -ESHUTDOWN if the
 * VM is stopping, -EAGAIN if it is paused (it could not react), or -errno with
 * err_msg().
 */
#define VMM_SHUTDOWN_DEFAULT_MS 30000
int vmm_shutdown(struct vmm *vmm, uint64_t timeout_ms);

/*
 * --record-working-set: record the pages the guest touched so far and save
 * them as DIR/workingset (vmm/workingset.h); recording is then over. Main
 * thread only. Returns 0 with *nr ranges and *bytes of RAM, -EALREADY (saved
 * before), -ENOENT (not recording) or -errno with err_msg().
 */
int vmm_save_working_set(struct vmm *vmm, uint32_t *nr, uint64_t *bytes);

/* "running", "paused", "shutting-down" (a shutdown request pending) or "stopping". */
const char *vmm_state_name(struct vmm *vmm);

/* Nanoseconds spent paused so far (the current pause included) at time now. */
uint64_t vmm_paused_ns(struct vmm *vmm, uint64_t now);

/* Ask the VM to stop with this exit status (thread-safe; the first request wins). */
void vmm_request_stop(struct vmm *vmm, int status, const char *why);

#endif
