/* sysctl.c - exit-status port, i8042 reset, ACPI hardware-reduced power-off and reset. */
#include "devices/sysctl.h"
#include "firmware/machine.h"

#include <string.h>

#define I8042_STR_OBF 0x01
#define I8042_STR_SYS 0x04
#define I8042_STR_CMD 0x08

void sysctl_init(struct sysctl *sc, const struct sysctl_ops *ops)
{
	memset(sc, 0, sizeof(*sc));
	sc->ops = *ops;
	pthread_mutex_init(&sc->kbd.lock, NULL);
	/* Translation on, both ports disabled, no interrupts: nothing is attached. */
	sc->kbd.ctr = 0x40 | 0x20 | 0x10;
}

void sysctl_destroy(struct sysctl *sc)
{
	pthread_mutex_destroy(&sc->kbd.lock);
}

static uint32_t le_value(const uint8_t *data, uint32_t len)
{
	uint32_t v = 0;

	for (uint32_t i = 0; i < len && i < 4; i++)
		v |= (uint32_t)data[i] << (8 * i);
	return v;
}

void sysctl_exit_port_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct sysctl *sc = opaque;

	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	if (offset == 0)
		sc->ops.request(sc->ops.ctx, SYSCTL_EXIT_STATUS, (int)(le_value(data, len) & 0xff));
}

static void kbd_put_locked(struct i8042 *k, uint8_t v)
{
	k->out = v;
	k->out_full = true;
}

/* A command byte written to port 0x64. Returns true when it asks for a reset. */
static bool kbd_command_locked(struct i8042 *k, uint8_t cmd)
{
	switch (cmd) {
	case 0x20: /* read CTR */
		kbd_put_locked(k, k->ctr);
		return false;
	case 0x60: /* write CTR: data follows */
	case 0xd1: /* write output port: data follows (bit 0 clear = reset) */
	case 0xd2: /* write keyboard output buffer */
	case 0xd3: /* write aux output buffer */
	case 0xd4: /* write to aux device */
		k->pending_cmd = cmd;
		return false;
	case 0xa7: /* disable aux */
	case 0xa8: /* enable aux */
	case 0xad: /* disable kbd */
	case 0xae: /* enable kbd */
		return false;
	case 0xa9: /* test aux port: 0 = ok... but nothing is attached: report clock stuck low */
	case 0xab: /* test kbd port */
		kbd_put_locked(k, 0x01);
		return false;
	case 0xaa: /* controller self-test */
		kbd_put_locked(k, 0x55);
		return false;
	case 0xfe: /* pulse the reset line */
		return true;
	default:
		return false;
	}
}

void sysctl_i8042_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct sysctl *sc = opaque;
	struct i8042 *k = &sc->kbd;
	bool reset = false;

	if (len != 1 || (offset != 0 && offset != 4)) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&k->lock);
	if (!is_write) {
		if (offset == 4) {
			data[0] = (k->out_full ? I8042_STR_OBF : 0) | I8042_STR_SYS |
				  (k->pending_cmd ? I8042_STR_CMD : 0);
		} else {
			data[0] = k->out;
			k->out_full = false;
		}
	} else if (offset == 4) {
		k->pending_cmd = 0;
		reset = kbd_command_locked(k, data[0]);
	} else {
		uint8_t cmd = k->pending_cmd;
		k->pending_cmd = 0;
		if (cmd == 0x60)
			k->ctr = data[0];
		else if (cmd == 0xd1 && !(data[0] & 0x01))
			reset = true;
		else if (cmd == 0xd2 || cmd == 0xd3)
			kbd_put_locked(k, data[0]);
		/* Bytes for the keyboard or aux device: nothing attached, no answer. */
	}
	pthread_mutex_unlock(&k->lock);
	if (reset)
		sc->ops.request(sc->ops.ctx, SYSCTL_RESET, 0);
}

void sysctl_acpi_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct sysctl *sc = opaque;
	uint64_t port = MV_PORT_ACPI_SLEEP_CTL + offset;

	if (!is_write) {
		memset(data, 0, len); /* sleep status: never woken; reset reg reads 0 */
		return;
	}
	if (port == MV_PORT_ACPI_SLEEP_CTL) {
		uint8_t v = data[0];
		/* SLP_EN (bit 5) with SLP_TYP (bits 2..4) of \_S5 powers off. */
		if ((v & 0x20) && ((v >> 2) & 7) == MV_ACPI_S5_SLP_TYP)
			sc->ops.request(sc->ops.ctx, SYSCTL_POWEROFF, 0);
	} else if (port == MV_PORT_ACPI_RESET) {
		if (data[0] == MV_ACPI_RESET_VALUE)
			sc->ops.request(sc->ops.ctx, SYSCTL_RESET, 0);
	}
}

void sysctl_save(struct sysctl *sc, struct i8042_state *st)
{
	pthread_mutex_lock(&sc->kbd.lock);
	*st = (struct i8042_state){ .ctr = sc->kbd.ctr, .out = sc->kbd.out, .out_full = sc->kbd.out_full,
				    .pending_cmd = sc->kbd.pending_cmd };
	pthread_mutex_unlock(&sc->kbd.lock);
}

void sysctl_load(struct sysctl *sc, const struct i8042_state *st)
{
	pthread_mutex_lock(&sc->kbd.lock);
	sc->kbd.ctr = st->ctr;
	sc->kbd.out = st->out;
	sc->kbd.out_full = st->out_full != 0;
	sc->kbd.pending_cmd = st->pending_cmd;
	pthread_mutex_unlock(&sc->kbd.lock);
}
