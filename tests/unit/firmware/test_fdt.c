/* test_fdt.c - the device tree, read back with libfdt. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfdt.h>

#include "firmware/fdt.h"
#include "firmware/machine.h"
#include "base/err.h"

static uint8_t fdt[MV_FDT_MAX];

static void make(struct machine *m, uint64_t mem, int ncpus, int ndevs, const char *cmdline, long *len)
{
	cr_assert_eq(machine_init(m, mem, ncpus), 0);
	for (int i = 0; i < ndevs; i++)
		cr_assert_eq(machine_add_mmio_dev(m, i ? MMIO_DEV_VIRTIO_NET : MMIO_DEV_VIRTIO_BLK), i);
	memset(fdt, 0xa5, sizeof(fdt));
	*len = fdt_build(m, cmdline, fdt, sizeof(fdt));
	cr_assert_gt(*len, 0, "fdt_build: %ld (%s)", *len, err_msg());
	cr_assert_eq(fdt_check_header(fdt), 0);
	cr_assert_eq((long)fdt_totalsize(fdt), *len);
}

static int node(const char *path)
{
	int off = fdt_path_offset(fdt, path);

	cr_assert_geq(off, 0, "%s: %s", path, fdt_strerror(off));
	return off;
}

static uint32_t prop_u32(int off, const char *name)
{
	int len;
	const fdt32_t *p = fdt_getprop(fdt, off, name, &len);

	cr_assert_not_null(p, "no %s", name);
	cr_assert_eq(len, 4, "%s is %d bytes", name, len);
	return fdt32_to_cpu(*p);
}

static const char *prop_str(int off, const char *name)
{
	int len;
	const char *p = fdt_getprop(fdt, off, name, &len);

	cr_assert_not_null(p, "no %s", name);
	cr_assert_gt(len, 0);
	cr_assert_eq(p[len - 1], '\0', "%s not NUL terminated", name);
	return p;
}

/* reg as (address, size) pairs of two cells each; returns the number of pairs. */
static int prop_reg(int off, uint64_t *out, int max)
{
	int len;
	const fdt32_t *p = fdt_getprop(fdt, off, "reg", &len);

	cr_assert_not_null(p, "no reg");
	cr_assert_eq(len % 16, 0, "reg is %d bytes", len);
	int n = len / 16;
	cr_assert_leq(n, max);
	for (int i = 0; i < 2 * n; i++)
		out[i] = (uint64_t)fdt32_to_cpu(p[2 * i]) << 32 | fdt32_to_cpu(p[2 * i + 1]);
	return n;
}

Test(fdt, root_and_chosen)
{
	struct machine m;
	long len;

	make(&m, 256ULL << 20, 1, 0, "console=ttyS0 reboot=k", &len);
	int root = node("/");
	cr_assert_eq(prop_u32(root, "#address-cells"), 2);
	cr_assert_eq(prop_u32(root, "#size-cells"), 2);
	cr_assert_eq(fdt_node_check_compatible(fdt, root, "microvm,x86"), 0);

	int chosen = node("/chosen");
	cr_assert_str_eq(prop_str(chosen, "bootargs"), "console=ttyS0 reboot=k");
	/* stdout-path names the serial node. */
	cr_assert_eq(fdt_path_offset(fdt, prop_str(chosen, "stdout-path")), node("/serial@3f8"));
}

Test(fdt, no_cmdline_no_bootargs)
{
	struct machine m;
	long len;

	make(&m, 256ULL << 20, 1, 0, NULL, &len);
	cr_assert_null(fdt_getprop(fdt, node("/chosen"), "bootargs", NULL));
}

Test(fdt, memory_small)
{
	struct machine m;
	uint64_t reg[4];
	long len;

	make(&m, 256ULL << 20, 1, 0, NULL, &len);
	int mem = node("/memory@0");
	cr_assert_str_eq(prop_str(mem, "device_type"), "memory");
	cr_assert_eq(prop_reg(mem, reg, 2), 1);
	cr_assert_eq(reg[0], 0);
	cr_assert_eq(reg[1], 256ULL << 20);
}

Test(fdt, memory_above_4g)
{
	struct machine m;
	uint64_t reg[4];
	long len;

	make(&m, 8ULL << 30, 2, 0, NULL, &len);
	cr_assert_eq(prop_reg(node("/memory@0"), reg, 2), 2);
	cr_assert_eq(reg[0], 0);
	cr_assert_eq(reg[1], MV_MMIO_HOLE_START);
	cr_assert_eq(reg[2], MV_HIGH_RAM_START);
	cr_assert_eq(reg[3], (8ULL << 30) - MV_MMIO_HOLE_START);
}

Test(fdt, cpus)
{
	struct machine m;
	long len;
	int n = 0, child;

	make(&m, 256ULL << 20, 4, 0, NULL, &len);
	int cpus = node("/cpus");
	cr_assert_eq(prop_u32(cpus, "#address-cells"), 1);
	cr_assert_eq(prop_u32(cpus, "#size-cells"), 0);
	fdt_for_each_subnode(child, fdt, cpus) {
		cr_assert_str_eq(prop_str(child, "device_type"), "cpu");
		cr_assert_eq(prop_u32(child, "reg"), (uint32_t)n, "APIC id of cpu %d", n);
		n++;
	}
	cr_assert_eq(n, 4);
	node("/cpus/cpu@3");
}

Test(fdt, serial)
{
	struct machine m;
	uint64_t reg[2];
	long len;

	make(&m, 256ULL << 20, 1, 0, NULL, &len);
	int s = node("/serial@3f8");
	cr_assert_eq(fdt_node_check_compatible(fdt, s, "ns16550a"), 0);
	cr_assert_eq(prop_reg(s, reg, 1), 1);
	cr_assert_eq(reg[0], MV_PORT_COM1);
	cr_assert_eq(reg[1], 8);
	cr_assert_eq(prop_u32(s, "clock-frequency"), 1843200);
	cr_assert_eq(prop_u32(s, "interrupts"), MV_IRQ_COM1);
}

Test(fdt, virtio_mmio)
{
	struct machine m;
	uint64_t reg[2];
	long len;
	int n = 0;

	make(&m, 256ULL << 20, 1, 5, NULL, &len);
	for (int off = fdt_node_offset_by_compatible(fdt, -1, "virtio,mmio"); off >= 0;
	     off = fdt_node_offset_by_compatible(fdt, off, "virtio,mmio")) {
		const struct mmio_dev *d = &m.mmio_devs[n];
		char want[64];
		snprintf(want, sizeof(want), "virtio_mmio@%llx", (unsigned long long)d->base);
		cr_assert_str_eq(fdt_get_name(fdt, off, NULL), want);
		cr_assert_eq(prop_reg(off, reg, 1), 1);
		cr_assert_eq(reg[0], d->base);
		cr_assert_eq(reg[1], MV_VIRTIO_MMIO_SIZE);
		cr_assert_eq(prop_u32(off, "interrupts"), d->irq);
		n++;
	}
	cr_assert_eq(n, 5);
}

Test(fdt, max_machine_fits_its_slot)
{
	struct machine m;
	static char cmdline[4096];
	long len;

	memset(cmdline, 'x', sizeof(cmdline) - 1);
	make(&m, 8ULL << 30, MV_MAX_VCPUS, MV_MAX_MMIO_DEVS, cmdline, &len);
	/* vm.c puts a 16-byte setup_data header in front of the tree. */
	cr_assert_leq(len, (long)MV_FDT_MAX - 16);
}

Test(fdt, too_small_buffer)
{
	struct machine m;
	long len;

	make(&m, 256ULL << 20, 2, 3, "console=ttyS0", &len);
	for (size_t size = 0; size < (size_t)len; size++) {
		uint8_t *buf = malloc(size ? size : 1);
		cr_assert_not_null(buf);
		err_clear();
		long n = fdt_build(&m, "console=ttyS0", buf, size);
		cr_assert_eq(n, -ENOSPC, "size %zu: %ld (%s)", size, n, err_msg());
		cr_assert_str_neq(err_msg(), "");
		free(buf);
	}
	/*
	 * While it writes, libfdt keeps the reservation map 16-byte aligned;
	 * fdt_pack() then moves it to 8, so the writer may need 8 more bytes
	 * than the packed result.
	 */
	size_t room = (size_t)len + 8;
	uint8_t *buf = malloc(room);
	cr_assert_not_null(buf);
	cr_assert_eq(fdt_build(&m, "console=ttyS0", buf, room), len, "%s", err_msg());
	cr_assert_eq(memcmp(buf, fdt, (size_t)len), 0);
	free(buf);
}
