/* fdt.c - renders the machine description as a flattened device tree with libfdt's sequential writer. */
#include "firmware/fdt.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>

#include <libfdt.h>

#include "base/err.h"

#define SERIAL_CLOCK_HZ 1843200
#define SERIAL_PORTS    8
#define MAX_RAM_RANGES  2
_Static_assert(sizeof(((struct machine *)0)->ram) == MAX_RAM_RANGES * sizeof(struct mem_range),
	       "one reg pair per machine RAM range");

/* Map a libfdt error (a negative FDT_ERR_* code) to -errno with a message. */
static int fdt_fail(int fdt_err, size_t size)
{
	if (fdt_err == -FDT_ERR_NOSPACE)
		return err_set(ENOSPC, "device tree: does not fit in %zu bytes", size);
	return err_set(EINVAL, "device tree: %s", fdt_strerror(fdt_err));
}

/* One <address size> pair with #address-cells = #size-cells = 2. */
static int prop_reg(void *fdt, const uint64_t *pairs, int nr_pairs)
{
	fdt64_t cells[2 * MAX_RAM_RANGES];

	for (int i = 0; i < 2 * nr_pairs; i++)
		cells[i] = cpu_to_fdt64(pairs[i]);
	return fdt_property(fdt, "reg", cells, (int)(sizeof(cells[0]) * 2 * (size_t)nr_pairs));
}

static int node_memory(void *fdt, const struct machine *m)
{
	uint64_t pairs[2 * MAX_RAM_RANGES];
	int ret;

	for (int i = 0; i < m->nr_ram; i++) {
		pairs[2 * i] = m->ram[i].start;
		pairs[2 * i + 1] = m->ram[i].size;
	}
	if ((ret = fdt_begin_node(fdt, "memory@0")) < 0 ||
	    (ret = fdt_property_string(fdt, "device_type", "memory")) < 0 ||
	    (ret = prop_reg(fdt, pairs, m->nr_ram)) < 0 ||
	    (ret = fdt_end_node(fdt)) < 0)
		return ret;
	return 0;
}

static int node_cpus(void *fdt, const struct machine *m)
{
	char name[32];
	int ret;

	if ((ret = fdt_begin_node(fdt, "cpus")) < 0 ||
	    (ret = fdt_property_u32(fdt, "#address-cells", 1)) < 0 ||
	    (ret = fdt_property_u32(fdt, "#size-cells", 0)) < 0)
		return ret;
	for (int i = 0; i < m->ncpus; i++) {
		snprintf(name, sizeof(name), "cpu@%x", (unsigned)i);
		/* reg is the local APIC id; APIC ids are 0..ncpus-1. */
		if ((ret = fdt_begin_node(fdt, name)) < 0 ||
		    (ret = fdt_property_string(fdt, "device_type", "cpu")) < 0 ||
		    (ret = fdt_property_u32(fdt, "reg", (uint32_t)i)) < 0 ||
		    (ret = fdt_end_node(fdt)) < 0)
			return ret;
	}
	return fdt_end_node(fdt);
}

static int node_serial(void *fdt)
{
	const uint64_t reg[2] = { MV_PORT_COM1, SERIAL_PORTS };
	char name[32];
	int ret;

	snprintf(name, sizeof(name), "serial@%x", MV_PORT_COM1);
	if ((ret = fdt_begin_node(fdt, name)) < 0 ||
	    (ret = fdt_property_string(fdt, "compatible", "ns16550a")) < 0 ||
	    (ret = prop_reg(fdt, reg, 1)) < 0 ||
	    (ret = fdt_property_u32(fdt, "clock-frequency", SERIAL_CLOCK_HZ)) < 0 ||
	    (ret = fdt_property_u32(fdt, "interrupts", MV_IRQ_COM1)) < 0 ||
	    (ret = fdt_end_node(fdt)) < 0)
		return ret;
	return 0;
}

static int node_virtio(void *fdt, const struct mmio_dev *d)
{
	const uint64_t reg[2] = { d->base, d->size };
	char name[48];
	int ret;

	snprintf(name, sizeof(name), "virtio_mmio@%llx", (unsigned long long)d->base);
	if ((ret = fdt_begin_node(fdt, name)) < 0 ||
	    (ret = fdt_property_string(fdt, "compatible", "virtio,mmio")) < 0 ||
	    (ret = prop_reg(fdt, reg, 1)) < 0 ||
	    (ret = fdt_property_u32(fdt, "interrupts", d->irq)) < 0 ||
	    (ret = fdt_end_node(fdt)) < 0)
		return ret;
	return 0;
}

static int build(void *fdt, int size, const struct machine *m, const char *cmdline)
{
	char stdout_path[32];
	int ret;

	snprintf(stdout_path, sizeof(stdout_path), "/serial@%x", MV_PORT_COM1);
	if ((ret = fdt_create(fdt, size)) < 0 ||
	    (ret = fdt_finish_reservemap(fdt)) < 0 ||
	    (ret = fdt_begin_node(fdt, "")) < 0 ||
	    (ret = fdt_property_u32(fdt, "#address-cells", 2)) < 0 ||
	    (ret = fdt_property_u32(fdt, "#size-cells", 2)) < 0 ||
	    (ret = fdt_property_string(fdt, "compatible", "microvm,x86")) < 0)
		return ret;

	if ((ret = fdt_begin_node(fdt, "chosen")) < 0)
		return ret;
	if (cmdline && (ret = fdt_property_string(fdt, "bootargs", cmdline)) < 0)
		return ret;
	if ((ret = fdt_property_string(fdt, "stdout-path", stdout_path)) < 0 ||
	    (ret = fdt_end_node(fdt)) < 0)
		return ret;

	if ((ret = node_memory(fdt, m)) < 0 ||
	    (ret = node_cpus(fdt, m)) < 0 ||
	    (ret = node_serial(fdt)) < 0)
		return ret;
	for (int i = 0; i < m->nr_mmio_devs; i++)
		if ((ret = node_virtio(fdt, &m->mmio_devs[i])) < 0)
			return ret;

	if ((ret = fdt_end_node(fdt)) < 0 ||
	    (ret = fdt_finish(fdt)) < 0)
		return ret;
	return fdt_pack(fdt);
}

long fdt_build(const struct machine *m, const char *cmdline, void *buf, size_t size)
{
	if (m->nr_ram < 1 || m->nr_ram > MAX_RAM_RANGES)
		return err_set(EINVAL, "device tree: %d RAM ranges, must be 1..%d", m->nr_ram,
			       MAX_RAM_RANGES);
	if (m->nr_mmio_devs < 0 || m->nr_mmio_devs > MV_MAX_MMIO_DEVS)
		return err_set(EINVAL, "device tree: %d virtio-mmio devices, at most %d",
			       m->nr_mmio_devs, MV_MAX_MMIO_DEVS);
	/*
	 * libfdt sizes are ints. While writing, libfdt keeps the reservation map
	 * 16-byte aligned and fdt_pack() moves it to 8, so building may need up
	 * to 8 bytes more than the packed size this returns.
	 */
	int isize = size > INT_MAX ? INT_MAX : (int)size;
	int ret = build(buf, isize, m, cmdline);
	if (ret < 0)
		return fdt_fail(ret, size);
	return (long)fdt_totalsize(buf);
}
