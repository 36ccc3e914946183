/* serial.h - a 16550A UART model (COM1): registers, FIFO, interrupts, loopback. */
#ifndef MICROVM_SERIAL_H
#define MICROVM_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SERIAL_RX_FIFO 1024  /* bytes of host input held for the guest */

struct serial_ops {
	/* Drive the UART's interrupt line (called with the device lock held). */
	void (*set_irq)(void *ctx, bool level);
	/* Bytes the guest transmitted (called with the device lock held; must not block long). */
	void (*output)(void *ctx, const uint8_t *buf, size_t len);
	void *irq_ctx;   /* passed to set_irq */
	void *out_ctx;   /* passed to output */
};

struct serial {
	pthread_mutex_t lock;
	struct serial_ops ops;
	uint8_t ier, lcr, mcr, lsr_extra, msr, scr, dll, dlm, fcr;
	bool thre_pending;      /* THR-empty interrupt armed until IIR read or THR write */
	bool irq_level;
	uint8_t rx[SERIAL_RX_FIFO];
	size_t rx_head, rx_count;
};

void serial_init(struct serial *s, const struct serial_ops *ops);
void serial_destroy(struct serial *s);

/* Bus handler for the 8 registers at MV_PORT_COM1 (opaque = struct serial *). */
void serial_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/* Queue host input for the guest; returns how many bytes fit (the rest must be retried). */
size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len);

/* Free room in the receive FIFO. */
size_t serial_rx_room(struct serial *s);

/* The UART's registers and unread input, for snapshots (vmm/snapshot.h). */
struct serial_state {
	uint8_t ier, lcr, mcr, lsr_extra, msr, scr, dll, dlm, fcr, thre_pending, irq_level, pad;
	uint32_t rx_count;              /* bytes of rx[] in use, oldest first */
	uint8_t rx[SERIAL_RX_FIFO];
};

void serial_save(struct serial *s, struct serial_state *st);

/* Returns 0, or -EINVAL with err_msg() if rx_count is too large. The line level follows the IOAPIC's own saved state. */
int serial_load(struct serial *s, const struct serial_state *st);

#endif
