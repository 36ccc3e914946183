/* smp.c - local APIC access and starting the APs (INIT, SIPI, SIPI) at a real-mode trampoline. */
#include "guest.h"

#define MSR_APIC_BASE   0x1b
#define APIC_BASE_EN    (1u << 11)
#define APIC_ID         0x020
#define APIC_TPR        0x080
#define APIC_EOI        0x0b0
#define APIC_SVR        0x0f0
#define APIC_ICR_LO     0x300
#define APIC_ICR_HI     0x310
#define APIC_LVT0       0x350
#define SVR_ENABLE      0x100
#define LVT_MASKED      0x10000
#define ICR_PENDING     (1u << 12)
#define ICR_INIT        0x4500  /* delivery mode INIT, level assert */
#define ICR_SIPI        0x4600  /* delivery mode start-up, | vector */
#define ICR_ALL_BUT_SELF (3u << 18)

/*
 * How long to wait for the APs: a TSC deadline of 3e9 cycles (about a
 * second on any recent host; no calibration needed for an upper bound), and
 * a spin cap in case the TSC does not move.
 */
#define AP_WAIT_TSC     3000000000ULL
#define AP_WAIT_SPINS   50000000u

static uint64_t base;

uint64_t lapic_base(void)
{
	if (!base) {
		uint64_t msr = rdmsr(MSR_APIC_BASE);
		if (!(msr & APIC_BASE_EN))
			fail(FAIL_LAPIC, "lapic: IA32_APIC_BASE 0x%lx: APIC disabled", msr);
		base = msr & 0xffffff000ULL;
	}
	return base;
}

uint32_t lapic_id(void)
{
	return mmio_read32(lapic_base() + APIC_ID) >> 24;
}

void lapic_enable(void)
{
	uint64_t b = lapic_base();

	/* LINT0 may be ExtINT (an uninitialised 8259 behind it): mask it. */
	mmio_write32(b + APIC_LVT0, LVT_MASKED);
	mmio_write32(b + APIC_TPR, 0);
	mmio_write32(b + APIC_SVR, SVR_ENABLE | 0xff);
}

void lapic_eoi(void)
{
	mmio_write32(lapic_base() + APIC_EOI, 0);
}

static void ipi(uint32_t dest, uint32_t icr)
{
	uint64_t b = lapic_base();

	mmio_write32(b + APIC_ICR_HI, dest << 24);
	mmio_write32(b + APIC_ICR_LO, icr);
	for (int i = 0; i < 1000 && (mmio_read32(b + APIC_ICR_LO) & ICR_PENDING); i++)
		;
}

static void start_one(uint32_t dest, uint32_t shorthand)
{
	uint32_t vector = AP_TRAMPOLINE_GPA >> 12;

	/*
	 * No 10 ms / 200 us delays between the IPIs: KVM's local APIC queues
	 * INIT before SIPI, and a second SIPI to a running AP is ignored.
	 */
	ipi(dest, shorthand | ICR_INIT);
	ipi(dest, shorthand | ICR_SIPI | vector);
	ipi(dest, shorthand | ICR_SIPI | vector);
}

int smp_start_aps(const uint32_t *ids, int nr_ids, int expected)
{
	size_t len = (size_t)(ap_tramp_end - ap_tramp);
	volatile uint32_t *counter =
		(volatile uint32_t *)(uintptr_t)(AP_TRAMPOLINE_GPA + (ap_tramp_counter - ap_tramp));
	uint32_t self = lapic_id();
	int sent = 0;

	memcpy((void *)(uintptr_t)AP_TRAMPOLINE_GPA, ap_tramp, len);
	*counter = 0;
	lapic_enable();
	if (ids) {
		for (int i = 0; i < nr_ids; i++) {
			if (ids[i] == self)
				continue;
			start_one(ids[i], 0);
			sent++;
		}
	} else {
		start_one(0, ICR_ALL_BUT_SELF);
		sent = -1;
	}

	uint64_t deadline = rdtsc() + AP_WAIT_TSC;
	uint32_t spins = 0;
	while ((int)*counter < expected && rdtsc() < deadline && ++spins < AP_WAIT_SPINS)
		;
	int got = (int)(*counter & 0xffff);
	if (sent >= 0)
		gprintf("smp: BSP APIC ID %u, sent INIT/SIPI/SIPI to %d APs, %d started\n", self, sent, got);
	else
		gprintf("smp: BSP APIC ID %u, INIT/SIPI/SIPI to all but self, %d started\n", self, got);
	return got;
}
