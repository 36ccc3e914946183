/* irq.c - IDT and trap handling, the int3/fwait/smap instruction checks, serial RX by interrupt (echo). */
#include "guest.h"

#define SEL_CODE64    0x08
#define GATE_INTR     0x8e          /* present, DPL 0, 64-bit interrupt gate */
#define COM1          0x3f8
#define COM1_IER      (COM1 + 1)
#define COM1_MCR      (COM1 + 4)
#define COM1_LSR      (COM1 + 5)
#define LSR_DR        0x01
#define IER_RDA       0x01
#define MCR_DTR_RTS_OUT2 0x0b       /* OUT2 gates the IRQ line on PC UARTs */
#define COM1_IRQ      4             /* MV_IRQ_COM1 == IOAPIC pin */
#define IOAPIC_DEFAULT 0xfec00000ULL
#define IOREGSEL      0x00
#define IOWIN         0x10
#define RFLAGS_AC     (1ULL << 18)

struct idt_gate {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, zero;
};
_Static_assert(sizeof(struct idt_gate) == 16, "IDT gate is 16 bytes");

static struct idt_gate idt[NR_IDT_VECTORS];

static volatile int power_pressed;
static volatile int genid_notified;
static volatile bool bp_expected;
static volatile int bp_count;
static volatile uint64_t bp_rip;

#define RX_RING 256
static volatile uint8_t rx_ring[RX_RING];
static volatile uint32_t rx_head, rx_tail;

void idt_init(void)
{
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} desc = { sizeof(idt) - 1, (uintptr_t)idt };

	for (int v = 0; v < NR_IDT_VECTORS; v++) {
		uint64_t h = (uintptr_t)trap_stubs + 16 * (uint64_t)v;
		idt[v] = (struct idt_gate){ (uint16_t)h, SEL_CODE64, 0, GATE_INTR,
					    (uint16_t)(h >> 16), (uint32_t)(h >> 32), 0 };
	}
	__asm__ volatile("lidt %0" : : "m"(desc));
}

static void serial_rx(void)
{
	while (inb(COM1_LSR) & LSR_DR) {
		uint8_t c = inb(COM1);
		if (rx_head - rx_tail < RX_RING)
			rx_ring[rx_head++ % RX_RING] = c;
	}
}

void trap_handler(struct trap_frame *f)
{
	if (f->vector == 3 && bp_expected) {
		bp_count++;
		bp_rip = f->rip;
		return;
	}
	if (f->vector == VEC_SERIAL) {
		serial_rx();
		lapic_eoi();
		return;
	}
	if (f->vector == VEC_POWER) {
		power_pressed++;
		lapic_eoi();
		return;
	}
	if (f->vector == VEC_GENID) {
		genid_notified++;
		lapic_eoi();
		return;
	}
	uint64_t cr2;
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	fail(FAIL_EXCEPTION, "exception %lu (error 0x%lx) at RIP 0x%lx, CR2 0x%lx, RSP 0x%lx",
	     f->vector, f->error, f->rip, cr2, f->rsp);
	guest_exit(FAIL_EXCEPTION, 32);
}

void check_int3(void)
{
	bp_count = 0;
	bp_expected = true;
	do_int3();
	bp_expected = false;
	if (bp_count != 1)
		fail(FAIL_INT3, "int3: #BP handler ran %d times", bp_count);
	else if (bp_rip != (uintptr_t)int3_next)
		fail(FAIL_INT3, "int3: #BP return RIP 0x%lx, expected 0x%lx", bp_rip,
		     (uint64_t)(uintptr_t)int3_next);
	else
		gprintf("int3: ok, #BP handler returned to 0x%lx\n", bp_rip);
}

void check_fwait(void)
{
	uint64_t cr0;

	__asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
	if (cr0 & (1 << 3)) {    /* CR0.TS would make fwait #NM: not what we test */
		fail(FAIL_FWAIT, "fwait: CR0.TS is set (CR0 0x%lx)", cr0);
		return;
	}
	__asm__ volatile("fwait" : : : "memory");
	gprintf("fwait: ok\n");
}

static uint64_t rflags(void)
{
	uint64_t f;

	__asm__ volatile("pushfq; popq %0" : "=r"(f));
	return f;
}

void check_smap(void)
{
	uint32_t r[4];

	cpuid(7, 0, r);
	if (!(r[1] & (1u << 20))) {
		gprintf("smap: CPUID.7.EBX[20] is clear, stac/clac not tested\n");
		return;
	}
	__asm__ volatile("stac" : : : "cc");
	uint64_t set = rflags();
	__asm__ volatile("clac" : : : "cc");
	uint64_t clear = rflags();
	if (!(set & RFLAGS_AC) || (clear & RFLAGS_AC))
		fail(FAIL_SMAP, "smap: RFLAGS after stac 0x%lx, after clac 0x%lx", set, clear);
	else
		gprintf("smap: ok, stac/clac toggle RFLAGS.AC\n");
}

static void ioapic_write(uint64_t ioapic, uint32_t reg, uint32_t v)
{
	mmio_write32(ioapic + IOREGSEL, reg);
	mmio_write32(ioapic + IOWIN, v);
}

static int next_char(void)
{
	for (;;) {
		__asm__ volatile("cli");
		if (rx_tail != rx_head) {
			uint8_t c = rx_ring[rx_tail++ % RX_RING];
			__asm__ volatile("sti");
			return c;
		}
		/* sti's one-instruction shadow makes "sti; hlt" race-free. */
		__asm__ volatile("sti; hlt" : : : "memory");
	}
}

void run_echo(uint64_t ioapic)
{
	char line[128];
	size_t n = 0;

	if (!ioapic)
		ioapic = IOAPIC_DEFAULT;
	lapic_enable();
	/* Pin 4: vector VEC_SERIAL, fixed, physical, edge, active high, to us. */
	ioapic_write(ioapic, 0x11 + 2 * COM1_IRQ, lapic_id() << 24);
	ioapic_write(ioapic, 0x10 + 2 * COM1_IRQ, VEC_SERIAL);
	outb(COM1_MCR, MCR_DTR_RTS_OUT2);
	outb(COM1_IER, IER_RDA);
	serial_rx();  /* whatever arrived before the IRQ was routed */
	gprintf("echo: ready\n");
	for (;;) {
		int c = next_char();
		if (c == '\r')
			continue;
		if (c != '\n') {
			if (n < sizeof(line))
				line[n++] = (char)c;
			continue;
		}
		if (mem_eq_str(line, n, "read")) {
			bench_read_touched();
			n = 0;
			continue;
		}
		gprintf("echo: %.*s\n", (int)n, line);
		if (mem_eq_str(line, n, "quit")) {
			gprintf("echo: bye\n");
			guest_exit(0, 32);
		}
		n = 0;
	}
}

void wait_power_button(uint64_t ioapic, uint32_t gsi)
{
	if (!ioapic)
		ioapic = IOAPIC_DEFAULT;
	lapic_enable();
	/* The GED's pin: vector VEC_POWER, fixed, physical, edge, active high, to us. */
	ioapic_write(ioapic, 0x11 + 2 * gsi, lapic_id() << 24);
	ioapic_write(ioapic, 0x10 + 2 * gsi, VEC_POWER);
	gprintf("power: waiting for the power button (ACPI0013, GSI %u)\n", gsi);
	for (;;) {
		__asm__ volatile("cli");
		if (power_pressed) {
			__asm__ volatile("sti");
			break;
		}
		__asm__ volatile("sti; hlt" : : : "memory");
	}
	gprintf("power: button pressed\n");
}

void vmgenid_hex(uint64_t addr, char hex[33])
{
	static const char digits[] = "0123456789abcdef";
	const volatile uint8_t *id = phys(addr);

	for (int i = 0; i < 16; i++) {
		uint8_t b = id[i];
		hex[2 * i] = digits[b >> 4];
		hex[2 * i + 1] = digits[b & 15];
	}
	hex[32] = '\0';
}

void watch_vmgenid(uint64_t ioapic, uint32_t gsi, uint64_t addr)
{
	int seen = 0;
	char hex[33];

	if (!ioapic)
		ioapic = IOAPIC_DEFAULT;
	lapic_enable();
	/* The GED's second pin: vector VEC_GENID, fixed, physical, edge, active high, to us. */
	ioapic_write(ioapic, 0x11 + 2 * gsi, lapic_id() << 24);
	ioapic_write(ioapic, 0x10 + 2 * gsi, VEC_GENID);
	gprintf("vmgenid: waiting for notifications (ACPI0013, GSI %u)\n", gsi);
	for (;;) {
		__asm__ volatile("cli");
		if (genid_notified != seen) {
			seen = genid_notified;
			__asm__ volatile("sti");
			/* The ID is read after the interrupt, as an OS does on Notify(VGEN, 0x80). */
			vmgenid_hex(addr, hex);
			gprintf("vmgenid: notified %d, id %s\n", seen, hex);
			continue;
		}
		__asm__ volatile("sti; hlt" : : : "memory");
	}
}
