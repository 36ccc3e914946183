/* serial.c - 16550A UART: what Linux's 8250 driver probes and uses, interrupts for THRE and RX. */
#include "devices/serial.h"
#include "base/err.h"

#include <errno.h>

#include <string.h>

/* Register offsets. */
enum { RBR_THR_DLL = 0, IER_DLM = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

#define LCR_DLAB 0x80
#define IER_RDI 0x01   /* received data available */
#define IER_THRI 0x02  /* transmitter holding register empty */
#define IER_MASK 0x0f
#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_FIFO 0xc0
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

void serial_init(struct serial *s, const struct serial_ops *ops)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->ops = *ops;
	s->lcr = 0x03;                   /* 8N1 */
	s->mcr = MCR_OUT2;
	s->msr = MSR_DCD | MSR_DSR | MSR_CTS;
	s->dll = 0x0c;                   /* 9600 baud */
}

void serial_destroy(struct serial *s)
{
	pthread_mutex_destroy(&s->lock);
}

/* Interrupt identification, highest priority first. */
static uint8_t iir_locked(const struct serial *s)
{
	uint8_t fifo = (s->fcr & FCR_ENABLE) ? IIR_FIFO : 0;

	if ((s->ier & IER_RDI) && s->rx_count)
		return IIR_RDI | fifo;
	if ((s->ier & IER_THRI) && s->thre_pending)
		return IIR_THRI | fifo;
	return IIR_NONE | fifo;
}

static void update_irq_locked(struct serial *s)
{
	bool level = !(iir_locked(s) & IIR_NONE);

	/* OUT2 gates the interrupt line on PC serial ports. */
	if (!(s->mcr & MCR_OUT2) && !(s->mcr & MCR_LOOP))
		level = false;
	if (level != s->irq_level) {
		s->irq_level = level;
		if (s->ops.set_irq)
			s->ops.set_irq(s->ops.irq_ctx, level);
	}
}

static bool rx_push_locked(struct serial *s, uint8_t c)
{
	if (s->rx_count == SERIAL_RX_FIFO)
		return false;
	s->rx[(s->rx_head + s->rx_count) % SERIAL_RX_FIFO] = c;
	s->rx_count++;
	return true;
}

static uint8_t read_reg_locked(struct serial *s, unsigned int reg)
{
	uint8_t v;

	switch (reg) {
	case RBR_THR_DLL:
		if (s->lcr & LCR_DLAB)
			return s->dll;
		if (!s->rx_count)
			return 0;
		v = s->rx[s->rx_head];
		s->rx_head = (s->rx_head + 1) % SERIAL_RX_FIFO;
		s->rx_count--;
		return v;
	case IER_DLM:
		return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case IIR_FCR:
		v = iir_locked(s);
		/* Reading IIR while it reports THRE acknowledges that interrupt. */
		if ((v & 0x0f) == IIR_THRI)
			s->thre_pending = false;
		return v;
	case LCR:
		return s->lcr;
	case MCR:
		return s->mcr;
	case LSR:
		return (s->rx_count ? LSR_DR : 0) | LSR_THRE | LSR_TEMT | s->lsr_extra;
	case MSR:
		if (s->mcr & MCR_LOOP) {
			/* Loopback: outputs are wired back to the modem inputs. */
			v = 0;
			if (s->mcr & MCR_RTS)
				v |= MSR_CTS;
			if (s->mcr & MCR_DTR)
				v |= MSR_DSR;
			if (s->mcr & MCR_OUT1)
				v |= MSR_RI;
			if (s->mcr & MCR_OUT2)
				v |= MSR_DCD;
			return v;
		}
		return s->msr;
	default: /* SCR */
		return s->scr;
	}
}

static void write_reg_locked(struct serial *s, unsigned int reg, uint8_t v)
{
	switch (reg) {
	case RBR_THR_DLL:
		if (s->lcr & LCR_DLAB) {
			s->dll = v;
			return;
		}
		if (s->mcr & MCR_LOOP)
			rx_push_locked(s, v);
		else if (s->ops.output)
			s->ops.output(s->ops.out_ctx, &v, 1);
		/* The byte leaves at once, so THR is empty again. */
		s->thre_pending = true;
		return;
	case IER_DLM:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
			return;
		}
		/* Enabling THRI while THR is empty raises the interrupt, as on the chip. */
		if ((v & IER_THRI) && !(s->ier & IER_THRI))
			s->thre_pending = true;
		s->ier = v & IER_MASK;
		return;
	case IIR_FCR:
		s->fcr = v & (FCR_ENABLE | 0xc0);
		if (v & FCR_CLEAR_RX) {
			s->rx_head = 0;
			s->rx_count = 0;
		}
		return;
	case LCR:
		s->lcr = v;
		return;
	case MCR:
		s->mcr = v & 0x1f;
		return;
	case LSR:
	case MSR:
		return; /* read-only on the chip (factory test writes are ignored) */
	default:
		s->scr = v;
		return;
	}
}

void serial_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	/* Byte registers: wider accesses touch consecutive registers, as on the ISA bus. */
	for (uint32_t i = 0; i < len; i++) {
		uint64_t reg = offset + i;
		if (reg > SCR) {
			if (!is_write)
				data[i] = 0xff;
			continue;
		}
		if (is_write)
			write_reg_locked(s, (unsigned int)reg, data[i]);
		else
			data[i] = read_reg_locked(s, (unsigned int)reg);
	}
	update_irq_locked(s);
	pthread_mutex_unlock(&s->lock);
}

size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	while (n < len && rx_push_locked(s, buf[n]))
		n++;
	update_irq_locked(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t serial_rx_room(struct serial *s)
{
	size_t room;

	pthread_mutex_lock(&s->lock);
	room = SERIAL_RX_FIFO - s->rx_count;
	pthread_mutex_unlock(&s->lock);
	return room;
}

void serial_save(struct serial *s, struct serial_state *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&s->lock);
	st->ier = s->ier, st->lcr = s->lcr, st->mcr = s->mcr, st->lsr_extra = s->lsr_extra;
	st->msr = s->msr, st->scr = s->scr, st->dll = s->dll, st->dlm = s->dlm, st->fcr = s->fcr;
	st->thre_pending = s->thre_pending, st->irq_level = s->irq_level;
	st->rx_count = (uint32_t)s->rx_count;
	for (size_t i = 0; i < s->rx_count; i++)
		st->rx[i] = s->rx[(s->rx_head + i) % SERIAL_RX_FIFO];
	pthread_mutex_unlock(&s->lock);
}

int serial_load(struct serial *s, const struct serial_state *st)
{
	if (st->rx_count > SERIAL_RX_FIFO)
		return err_set(EINVAL, "serial state: %u bytes of input, at most %d", st->rx_count,
			       SERIAL_RX_FIFO);
	pthread_mutex_lock(&s->lock);
	s->ier = st->ier, s->lcr = st->lcr, s->mcr = st->mcr, s->lsr_extra = st->lsr_extra;
	s->msr = st->msr, s->scr = st->scr, s->dll = st->dll, s->dlm = st->dlm, s->fcr = st->fcr;
	s->thre_pending = st->thre_pending != 0, s->irq_level = st->irq_level != 0;
	memcpy(s->rx, st->rx, st->rx_count);
	s->rx_head = 0;
	s->rx_count = st->rx_count;
	pthread_mutex_unlock(&s->lock);
	return 0;
}
