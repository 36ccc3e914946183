/* machine.c - builds the one machine description (RAM ranges, vCPUs, virtio-mmio windows and pins). */
#include "firmware/machine.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"

const char *machine_size_str(char *buf, size_t len, uint64_t v)
{
	static const char suffix[] = "TGMK";

	for (int i = 0; i < 4; i++) {
		unsigned shift = 10u * (unsigned)(4 - i);
		uint64_t unit = 1ULL << shift;
		if (v && v % unit == 0) {
			snprintf(buf, len, "%llu%c", (unsigned long long)(v >> shift), suffix[i]);
			return buf;
		}
	}
	snprintf(buf, len, "%llu", (unsigned long long)v);
	return buf;
}

int machine_check_ram(uint64_t ram_size)
{
	if (ram_size < MV_MEM_MIN || ram_size > MV_MEM_MAX)
		return err_set(EINVAL, "must be between %llu MiB and %llu TiB", MV_MEM_MIN >> 20,
			       MV_MEM_MAX >> 40);
	if (ram_size % (1ULL << 20))
		return err_set(EINVAL, "must be a multiple of 1 MiB");
	return 0;
}

int machine_check_cpus(int ncpus)
{
	if (ncpus < 1 || ncpus > MV_MAX_VCPUS)
		return err_set(EINVAL, "must be between 1 and %d", MV_MAX_VCPUS);
	return 0;
}

int machine_init(struct machine *m, uint64_t ram_size, int ncpus)
{
	char s[32];
	int ret;

	memset(m, 0, sizeof(*m));
	if ((ret = machine_check_ram(ram_size)) < 0)
		return err_prefix(ret, "RAM size %s", machine_size_str(s, sizeof(s), ram_size));
	if ((ret = machine_check_cpus(ncpus)) < 0)
		return err_prefix(ret, "vCPU count %d", ncpus);

	m->ram_size = ram_size;
	m->ncpus = ncpus;
	m->ram[0].start = 0;
	if (ram_size <= MV_MMIO_HOLE_START) {
		m->ram[0].size = ram_size;
		m->nr_ram = 1;
	} else {
		/* The 32-bit MMIO hole pushes the rest of RAM above 4 GiB. */
		m->ram[0].size = MV_MMIO_HOLE_START;
		m->ram[1].start = MV_HIGH_RAM_START;
		m->ram[1].size = ram_size - MV_MMIO_HOLE_START;
		m->nr_ram = 2;
	}
	return 0;
}

/*
 * Next IOAPIC pin after the pins already handed out. ISA IRQs are identity
 * mapped, so the pins the legacy devices own are never given to virtio:
 * COM1's, 8 (RTC, by convention) and the SCI; nor are the GED's (the
 * generation ID's line is below MV_IRQ_VIRTIO_FIRST).
 */
_Static_assert(MV_IRQ_GED_GENID < MV_IRQ_VIRTIO_FIRST, "the GED's generation-ID line is never a virtio pin");
static int next_free_pin(const struct machine *m)
{
	uint32_t pin = MV_IRQ_VIRTIO_FIRST;

	if (m->nr_mmio_devs > 0)
		pin = m->mmio_devs[m->nr_mmio_devs - 1].irq + 1;
	for (; pin < MV_IOAPIC_PINS; pin++) {
		if (pin == MV_IRQ_COM1 || pin == 8 || pin == MV_SCI_IRQ || pin == MV_IRQ_GED)
			continue;
		return (int)pin;
	}
	return -1;
}

int machine_add_mmio_dev(struct machine *m, enum mmio_dev_type type)
{
	int i = m->nr_mmio_devs;

	if (i >= MV_MAX_MMIO_DEVS)
		return err_set(ENOSPC, "virtio-mmio: at most %d devices", MV_MAX_MMIO_DEVS);
	int pin = next_free_pin(m);
	if (pin < 0)
		return err_set(ENOSPC, "virtio-mmio: no free IOAPIC pin for device %d (pins %d..%d used)",
			       i, MV_IRQ_VIRTIO_FIRST, MV_IOAPIC_PINS - 1);

	m->mmio_devs[i] = (struct mmio_dev){
		.type = type,
		.base = MV_VIRTIO_MMIO_BASE + (uint64_t)i * MV_VIRTIO_MMIO_SIZE,
		.size = MV_VIRTIO_MMIO_SIZE,
		.irq = (uint32_t)pin,
	};
	m->nr_mmio_devs = i + 1;
	return i;
}

uint64_t machine_low_ram_end(const struct machine *m)
{
	return m->ram[0].start + m->ram[0].size;
}
