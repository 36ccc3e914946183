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

/* Feed guest serial output seen at time now (see struct boot_times). Cheap once both milestones are set. */
void boot_times_output(struct boot_times *t, const uint8_t *buf, size_t len, uint64_t now);

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
