/* stats.h - per-boot numbers for --stats: boot milestones and VM exits by kind and device. */
#ifndef MICROVM_STATS_H
#define MICROVM_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "driver/vcpu.h"
#include "vmm/bus.h"
#include "vmm/quirks.h"

/*
 * One vCPU's exit counters. Only that vCPU's thread writes them (plain
 * increments, no atomics, no locks: the hot path stays as it was); they are
 * read after the vCPU threads were joined. Aligned so two vCPUs never share
 * a cache line.
 */
struct exit_stats {
	uint64_t kind[VMEXIT_KIND_COUNT];
	uint64_t pio[BUS_MAX_RANGES + 1];   /* by port bus range index; [BUS_MAX_RANGES]: no device */
	uint64_t mmio[BUS_MAX_RANGES + 1];  /* by MMIO bus range index; [BUS_MAX_RANGES]: no device */
	uint64_t quirk[QUIRK_KIND_COUNT];   /* emulation failures microvm completed, by quirk kind */
	const char *quirk_name[QUIRK_KIND_COUNT];
} __attribute__((aligned(64)));

#define STATS_UNMAPPED BUS_MAX_RANGES

/* Add n per-vCPU counter sets into *sum (which is zeroed first). */
void exit_stats_sum(const struct exit_stats *per_vcpu, int n, struct exit_stats *sum);

/*
 * Boot milestones, in nanoseconds of CLOCK_MONOTONIC (0: not reached). The
 * output watch is fed every byte the guest writes to its serial port, under
 * the serial device's lock, so it needs no lock of its own.
 */
/*
 * Linux prints "Run /init as init process" (whatever the init's path) just
 * before it starts init. The mark's first byte occurs nowhere else in it,
 * which keeps the matcher a few instructions per byte.
 */
#define STATS_INIT_MARK "as init process"

struct boot_times {
	uint64_t start;                 /* microvm's main() began */
	/* Start-up phases, written by the main thread before any vCPU thread exists (docs/cli-runs.md). */
	uint64_t loaded;                /* the kernel and firmware tables are in guest memory (--restore: memory mapped) */
	uint64_t vm_created;            /* KVM's VM exists with its memory slots, irqchip and PIT */
	uint64_t vcpus_ready;           /* the devices and the vCPUs with their boot state are set up */
	uint64_t sandbox_ready;         /* the seccomp filters are ready (with --no-seccomp: none made) */
	atomic_ullong guest_start;      /* the first vCPU thread is about to enter KVM_RUN the first time */
	atomic_ullong first_output;     /* first byte the guest wrote to the serial port */
	atomic_ullong run_init;         /* the serial output contained STATS_INIT_MARK: Linux starts init */
	atomic_ullong guest_end;        /* the first stop request (guest exit, power-off, timeout, ...) */
	uint64_t exit;                  /* teardown done, about to exit */
	size_t mark_pos;                /* bytes of STATS_INIT_MARK matched so far */
};

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t stats_now_ns(void);

/* The time ms milliseconds from now on clock clk, for pthread's timed waits. */
struct timespec stats_deadline_ts(clockid_t clk, unsigned ms);

/*
 * Feed guest serial output (see struct boot_times). clock (stats_now_ns()
 * but in tests) is read only when a milestone is reached, not per write: a
 * clock read is a system call where the vDSO cannot read the clock itself
 * (measured in the nested KVM). Cheap once both milestones are set.
 */
void boot_times_output(struct boot_times *t, const uint8_t *buf, size_t len, uint64_t (*clock)(void));

/* Record t->guest_end = now unless it is already set. */
void boot_times_guest_end(struct boot_times *t, uint64_t now);

/* One row of the device tables: a bus range or "no device". */
struct stats_dev {
	const char *name;
	uint64_t base, size;            /* size 0: the "no device" row */
	uint64_t exits;
};

/* Everything --stats prints: filled by the VM from its counters, formatted by the functions below. */
struct stats_report {
	int exit_status;
	/* Milliseconds since microvm started, or < 0 when not reached. */
	double loaded_ms, vm_created_ms, vcpus_ready_ms, sandbox_ready_ms;
	double guest_start_ms, first_output_ms, run_init_ms, guest_end_ms, exit_ms;
	int nr_vcpus;
	uint64_t kind[VMEXIT_KIND_COUNT];
	int nr_pio, nr_mmio;            /* rows with exits > 0 only */
	struct stats_dev pio[BUS_MAX_RANGES + 1], mmio[BUS_MAX_RANGES + 1];
	int nr_quirks;
	struct { const char *name; uint64_t count; } quirks[QUIRK_KIND_COUNT];
};

/*
 * Fill r from the milestones (relative to t->start), the summed counters and
 * the buses (for the device names). Only devices with at least one exit
 * become rows, in address order; exits that hit no device are a last row
 * "(no device)".
 */
void stats_report_fill(struct stats_report *r, const struct boot_times *t,
		       const struct exit_stats *sum, int nr_vcpus, const struct bus *pio,
		       const struct bus *mmio, int exit_status);

/* The human-readable table, every line prefixed "microvm: stats: " (docs/cli-runs.md). */
void stats_print_text(FILE *out, const struct stats_report *r);

/* One line of JSON (docs/cli-runs.md has the schema), for scripts and benchmarks. */
void stats_print_json(FILE *out, const struct stats_report *r);

#endif
