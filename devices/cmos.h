/*
 * cmos.h - the MC146818-style CMOS real-time clock at ports 0x70/0x71: the host's
 * UTC time, read-only, always valid and never "update in progress".
 *
 * Without it a Linux guest reads 0xff from the ports, loops some 20000 times
 * waiting for an update to end (40000 VM exits, measured) and boots with the
 * clock at 1970. Written from the MC146818A data sheet's register map, as
 * the PC's CMOS has it: 0x00 seconds, 0x02 minutes, 0x04 hours, 0x06 day of
 * week, 0x07 day of month, 0x08 month, 0x09 year, 0x0a-0x0d status A-D,
 * 0x32 century; the other bytes up to 0x7f are plain RAM.
 */
#ifndef MICROVM_CMOS_H
#define MICROVM_CMOS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define CMOS_SIZE 128

struct cmos {
	pthread_mutex_t lock;
	uint8_t index;              /* last write to 0x70, bit 7 (NMI disable) masked */
	uint8_t ram[CMOS_SIZE];     /* bytes that are not the clock or its status */
	time_t (*now)(void);        /* the clock's source; time() unless a test sets it */
};

void cmos_init(struct cmos *c);
void cmos_destroy(struct cmos *c);

/*
 * Bus handler (opaque = struct cmos *), registered at MV_PORT_CMOS with size
 * 2: offset 0 selects a register (bit 7, NMI disable, is ignored; reads give
 * 0xff as on a PC), offset 1 reads or writes it. Time registers are BCD,
 * 24-hour (status B = 0x02); status A never shows an update in progress;
 * status D says the clock is valid. Writes to the clock and status A-D are
 * ignored (the guest cannot set the host's time); other bytes are RAM.
 */
void cmos_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/* The selected register and the RAM bytes, for snapshots (the clock itself is the host's). */
struct cmos_state {
	uint8_t index;
	uint8_t ram[CMOS_SIZE];
};

void cmos_save(struct cmos *c, struct cmos_state *st);
void cmos_load(struct cmos *c, const struct cmos_state *st);

#endif
