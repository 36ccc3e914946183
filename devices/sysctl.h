/* sysctl.h - the ways a guest ends the VM: exit-status port, i8042 reset, ACPI power-off and reset. */
#ifndef MICROVM_SYSCTL_H
#define MICROVM_SYSCTL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

enum sysctl_event {
	SYSCTL_EXIT_STATUS, /* status = what the guest wrote to MV_PORT_EXIT, & 0xff */
	SYSCTL_POWEROFF,    /* ACPI S5 through the FADT sleep control register */
	SYSCTL_RESET,       /* i8042 0xfe or the FADT reset register */
};

struct sysctl_ops {
	/* The guest asked to end the VM. Called on a vCPU thread. */
	void (*request)(void *ctx, enum sysctl_event ev, int status);
	void *ctx;
};

/* i8042 keyboard controller: just enough for Linux to probe it quickly and to reset through it. */
struct i8042 {
	pthread_mutex_t lock;
	uint8_t ctr;          /* controller configuration byte */
	uint8_t out;          /* output buffer */
	bool out_full;
	uint8_t pending_cmd;  /* command waiting for its data byte (0x60, 0xd1, 0xd4...), or 0 */
};

struct sysctl {
	struct sysctl_ops ops;
	struct i8042 kbd;
};

void sysctl_init(struct sysctl *sc, const struct sysctl_ops *ops);
void sysctl_destroy(struct sysctl *sc);

/* Bus handlers (opaque = struct sysctl *). */
void sysctl_exit_port_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/* Registered at MV_PORT_I8042_DATA with size 5 (0x60..0x64); only offsets 0 and 4 decode. */
void sysctl_i8042_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/* Registered at MV_PORT_ACPI_SLEEP_CTL with size 3 (sleep control, sleep status, reset). */
void sysctl_acpi_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/* The i8042's bytes, for snapshots. */
struct i8042_state {
	uint8_t ctr, out, out_full, pending_cmd;
};

void sysctl_save(struct sysctl *sc, struct i8042_state *st);
void sysctl_load(struct sysctl *sc, const struct i8042_state *st);

#endif
