/* test_serial.c - the 16550A model: what Linux's 8250 driver probes, interrupts, FIFO bounds. */
#include <criterion/criterion.h>
#include <string.h>

#include "devices/serial.h"

struct harness {
	struct serial s;
	bool irq;
	int irq_changes;
	char out[256];
	size_t out_len;
};

static void set_irq(void *ctx, bool level)
{
	struct harness *h = ctx;

	h->irq = level;
	h->irq_changes++;
}

static void output(void *ctx, const uint8_t *buf, size_t len)
{
	struct harness *h = ctx;

	for (size_t i = 0; i < len && h->out_len < sizeof(h->out) - 1; i++)
		h->out[h->out_len++] = (char)buf[i];
}

static struct harness h;

static void setup(void)
{
	memset(&h, 0, sizeof(h));
	serial_init(&h.s, &(struct serial_ops){ .set_irq = set_irq, .output = output,
						 .irq_ctx = &h, .out_ctx = &h });
}

static void teardown(void)
{
	serial_destroy(&h.s);
}

static uint8_t rd(unsigned reg)
{
	uint8_t v;

	serial_io(&h.s, reg, &v, 1, false);
	return v;
}

static void wr(unsigned reg, uint8_t v)
{
	serial_io(&h.s, reg, &v, 1, true);
}

TestSuite(serial, .init = setup, .fini = teardown);

Test(serial, transmit_goes_to_output)
{
	const char *msg = "hello\r\n";

	for (const char *p = msg; *p; p++) {
		cr_assert(rd(5) & 0x20, "THRE must be set before each byte");
		wr(0, (uint8_t)*p);
	}
	cr_assert_str_eq(h.out, msg);
}

Test(serial, divisor_latch_does_not_transmit)
{
	wr(3, 0x83);           /* DLAB */
	wr(0, 0x01);
	wr(1, 0x00);
	cr_assert_eq(rd(0), 0x01);
	cr_assert_eq(rd(1), 0x00);
	wr(3, 0x03);
	cr_assert_eq(h.out_len, 0);
	cr_assert_eq(rd(3), 0x03);
}

Test(serial, scratch_and_ier_read_back)
{
	/* 8250 autoconfig: scratch register and IER read-back. */
	wr(7, 0xa5);
	cr_assert_eq(rd(7), 0xa5);
	wr(1, 0x0f);
	cr_assert_eq(rd(1), 0x0f);
	wr(1, 0xff);
	cr_assert_eq(rd(1), 0x0f, "IER upper bits are reserved");
	wr(1, 0);
}

Test(serial, fifo_identifies_as_16550a)
{
	wr(2, 0x07);           /* enable + clear FIFOs */
	cr_assert_eq(rd(2) & 0xc0, 0xc0);
	wr(2, 0x00);
	cr_assert_eq(rd(2) & 0xc0, 0x00);
}

Test(serial, loopback_modem_lines)
{
	/* 8250 autoconfig checks MSR in loopback with OUT1/OUT2/RTS/DTR. */
	wr(4, 0x10 | 0x0a);    /* loop + OUT2 + RTS */
	cr_assert_eq(rd(6) & 0xf0, 0x90);
	wr(4, 0x1f);
	cr_assert_eq(rd(6) & 0xf0, 0xf0);
	wr(0, 'Z');            /* loopback transmit returns on receive */
	cr_assert_eq(h.out_len, 0);
	cr_assert(rd(5) & 0x01);
	cr_assert_eq(rd(0), 'Z');
	wr(4, 0x0b);
}

Test(serial, thre_interrupt_cycle)
{
	wr(4, 0x08);           /* OUT2 gates the IRQ */
	cr_assert_not(h.irq);
	wr(1, 0x02);           /* enable THRI: fires at once, THR is empty */
	cr_assert(h.irq);
	cr_assert_eq(rd(2) & 0x0f, 0x02);
	cr_assert_not(h.irq, "reading IIR acknowledges THRE");
	cr_assert_eq(rd(2) & 0x0f, 0x01);
	wr(0, 'a');            /* transmitting re-arms it */
	cr_assert(h.irq);
	wr(1, 0x00);
	cr_assert_not(h.irq);
}

Test(serial, rx_interrupt_and_order)
{
	wr(4, 0x08);
	wr(1, 0x01);
	cr_assert_not(h.irq);
	cr_assert_eq(serial_receive(&h.s, (const uint8_t *)"ab", 2), 2);
	cr_assert(h.irq);
	cr_assert_eq(rd(2) & 0x0f, 0x04);
	cr_assert(rd(5) & 0x01);
	cr_assert_eq(rd(0), 'a');
	cr_assert(h.irq, "still data");
	cr_assert_eq(rd(0), 'b');
	cr_assert_not(h.irq);
	cr_assert_not(rd(5) & 0x01);
	cr_assert_eq(rd(0), 0, "empty RBR reads 0");
}

Test(serial, rx_priority_over_thre)
{
	wr(4, 0x08);
	wr(1, 0x03);
	serial_receive(&h.s, (const uint8_t *)"x", 1);
	cr_assert_eq(rd(2) & 0x0f, 0x04);
	rd(0);
	cr_assert_eq(rd(2) & 0x0f, 0x02);
}

Test(serial, no_irq_without_out2)
{
	wr(4, 0x00);
	wr(1, 0x01);
	serial_receive(&h.s, (const uint8_t *)"x", 1);
	cr_assert_not(h.irq);
}

Test(serial, rx_fifo_is_bounded)
{
	uint8_t big[SERIAL_RX_FIFO + 100];

	memset(big, 'q', sizeof(big));
	cr_assert_eq(serial_receive(&h.s, big, sizeof(big)), SERIAL_RX_FIFO);
	cr_assert_eq(serial_rx_room(&h.s), 0);
	cr_assert_eq(serial_receive(&h.s, big, 1), 0);
	rd(0);
	cr_assert_eq(serial_rx_room(&h.s), 1);
	wr(2, 0x03);           /* FCR clear RX */
	cr_assert_eq(serial_rx_room(&h.s), SERIAL_RX_FIFO);
}

Test(serial, wide_and_out_of_range_accesses)
{
	uint8_t d[4] = { 0 };

	/* A 2-byte read at offset 6 covers MSR and SCR; beyond 7 reads all ones. */
	wr(7, 0x42);
	serial_io(&h.s, 6, d, 2, false);
	cr_assert_eq(d[1], 0x42);
	serial_io(&h.s, 6, d, 4, false);
	cr_assert_eq(d[2], 0xff);
	cr_assert_eq(d[3], 0xff);
}
