/* test_acpi.c - the ACPI tables: pointers, lengths, checksums, FADT/MADT fields, DSDT contents, buffer limits. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "firmware/acpi.h"
#include "firmware/machine.h"
#include "tests/unit/firmware/acpi_read.h"
#include "base/err.h"

static struct tables T;

static void make(struct machine *m, int ncpus, int ndevs)
{
	cr_assert_eq(machine_init(m, 256ULL << 20, ncpus), 0);
	for (int i = 0; i < ndevs; i++)
		cr_assert_eq(machine_add_mmio_dev(m, MMIO_DEV_VIRTIO_BLK), i);
	long n = tables_build(&T, m);
	cr_assert_gt(n, 0, "acpi_build: %ld (%s)", n, err_msg());
	cr_assert_not_null(T.xsdt, "RSDP does not point at the XSDT");
	cr_assert_not_null(T.fadt, "XSDT has no FADT");
	cr_assert_not_null(T.madt, "XSDT has no MADT");
	cr_assert_not_null(T.dsdt, "FADT X_DSDT does not point into the tables");
}

/* A table: signature, length inside the buffer, checksum, 16-byte aligned. */
static void check_table(const uint8_t *p, const char *sig, uint8_t revision)
{
	uint32_t len = rd32(p + 4);

	cr_assert_eq(memcmp(p, sig, 4), 0, "signature %.4s, want %s", (const char *)p, sig);
	cr_assert_geq(len, ACPI_HDR_LEN);
	cr_assert_leq((long)(p - T.buf) + len, T.len, "%s runs past the end", sig);
	cr_assert_eq(sum8(p, len), 0, "%s checksum", sig);
	cr_assert_eq((p - T.buf) % 16, 0, "%s not 16-byte aligned", sig);
	cr_assert_eq(p[8], revision, "%s revision %u", sig, p[8]);
	cr_assert_eq(memcmp(p + 10, "MCRVM ", 6), 0, "%s OEM ID", sig);
}

static size_t count(const uint8_t *hay, size_t len, const void *needle, size_t nlen)
{
	size_t n = 0;

	for (size_t i = 0; i + nlen <= len; i++)
		n += !memcmp(hay + i, needle, nlen);
	return n;
}

Test(acpi, rsdp)
{
	struct machine m;

	make(&m, 1, 0);
	cr_assert_eq(memcmp(T.rsdp, "RSD PTR ", 8), 0);
	cr_assert_eq(sum8(T.rsdp, 20), 0, "RSDP checksum (first 20 bytes)");
	cr_assert_eq(sum8(T.rsdp, 36), 0, "RSDP extended checksum");
	cr_assert_eq(memcmp(T.rsdp + 9, "MCRVM ", 6), 0);
	cr_assert_eq(T.rsdp[15], 2, "revision");
	cr_assert_eq(rd32(T.rsdp + 16), 0, "no RSDT");
	cr_assert_eq(rd32(T.rsdp + 20), 36, "length");
	cr_assert_eq(rd64(T.rsdp + 24), MV_ACPI_GPA + (uint64_t)(T.xsdt - T.buf));
	cr_assert_leq((uint64_t)T.len, MV_ACPI_MAX);
}

Test(acpi, every_table_checks_out)
{
	struct machine m;

	make(&m, 4, 3);
	check_table(T.xsdt, "XSDT", 1);
	check_table(T.fadt, "FACP", 6);
	check_table(T.madt, "APIC", 5);
	check_table(T.dsdt, "DSDT", 2);
	cr_assert_eq(rd32(T.xsdt + 4), ACPI_HDR_LEN + 2 * 8, "XSDT has exactly FADT and MADT");
	cr_assert_eq(rd32(T.fadt + 4), 276);
	/* The DSDT is last and acpi_build() returns the end of it. */
	cr_assert_eq((long)(T.dsdt - T.buf) + rd32(T.dsdt + 4), T.len);
}

Test(acpi, fadt_fields)
{
	struct machine m;
	const uint8_t *f;

	make(&m, 1, 1);
	f = T.fadt;
	uint64_t dsdt_gpa = MV_ACPI_GPA + (uint64_t)(T.dsdt - T.buf);
	cr_assert_eq(rd32(f + 40), dsdt_gpa, "DSDT");
	cr_assert_eq(rd64(f + 140), dsdt_gpa, "X_DSDT");
	cr_assert_eq(rd16(f + 46), MV_SCI_IRQ, "SCI_INT");
	uint32_t flags = rd32(f + 112);
	cr_assert(flags & (1u << 20), "HW_REDUCED_ACPI");
	cr_assert(flags & (1u << 10), "RESET_REG_SUP");
	uint16_t boot_arch = rd16(f + 109);
	cr_assert(boot_arch & (1u << 2), "VGA Not Present");
	cr_assert(boot_arch & (1u << 5), "CMOS RTC Not Present");
	cr_assert_not(boot_arch & (1u << 1), "no 8042 flag");

	/* RESET_REG: SystemIO, 8 bits, byte access, at the reset port. */
	cr_assert_eq(f[116], 1);
	cr_assert_eq(f[117], 8);
	cr_assert_eq(f[118], 0);
	cr_assert_eq(f[119], 1);
	cr_assert_eq(rd64(f + 120), MV_PORT_ACPI_RESET);
	cr_assert_eq(f[128], MV_ACPI_RESET_VALUE, "RESET_VALUE");

	const struct { size_t off; uint16_t port; } regs[] = {
		{ 244, MV_PORT_ACPI_SLEEP_CTL }, /* SLEEP_CONTROL_REG */
		{ 256, MV_PORT_ACPI_SLEEP_STS }, /* SLEEP_STATUS_REG */
	};
	for (size_t i = 0; i < 2; i++) {
		const uint8_t *g = f + regs[i].off;
		cr_assert_eq(g[0], 1, "SystemIO");
		cr_assert_eq(g[1], 8, "8 bits");
		cr_assert_eq(g[3], 1, "byte access");
		cr_assert_eq(rd64(g + 4), regs[i].port);
	}
	cr_assert_eq(memcmp(f + 268, "microvm", 7), 0, "hypervisor vendor identity");
	/* No legacy PM blocks, no FACS. */
	cr_assert_eq(rd32(f + 36), 0);
	cr_assert_eq(rd32(f + 56), 0);
	cr_assert_eq(rd32(f + 64), 0);
	cr_assert_eq(rd32(f + 76), 0);
	cr_assert_eq(rd64(f + 132), 0);
}

static void check_madt(int ncpus)
{
	struct machine m;
	int lapics = 0, ioapics = 0, isos = 0, nmis = 0;

	make(&m, ncpus, 2);
	const uint8_t *t = T.madt;
	uint32_t len = rd32(t + 4);
	cr_assert_eq(rd32(t + 36), MV_LAPIC_GPA, "local APIC address");
	cr_assert_eq(rd32(t + 40), 1, "PCAT_COMPAT");
	uint32_t off = 44;
	while (off < len) {
		const uint8_t *e = t + off;
		cr_assert_geq(e[1], 2);
		cr_assert_leq(off + e[1], len, "entry at +%u overruns the MADT", off);
		switch (e[0]) {
		case 0:
			cr_assert_eq(e[1], 8);
			cr_assert_eq(e[2], lapics, "processor UID");
			cr_assert_eq(e[3], lapics, "APIC ID");
			cr_assert_eq(rd32(e + 4), 1, "enabled");
			lapics++;
			break;
		case 1:
			cr_assert_eq(e[1], 12);
			cr_assert_eq(e[2], ncpus, "IOAPIC id follows the local APIC ids");
			cr_assert_eq(rd32(e + 4), MV_IOAPIC_GPA);
			cr_assert_eq(rd32(e + 8), 0, "GSI base");
			ioapics++;
			break;
		case 2:
			cr_assert_eq(e[1], 10);
			cr_assert_eq(e[2], 0, "ISA");
			cr_assert_eq(e[3], 0, "IRQ 0");
			cr_assert_eq(rd32(e + 4), 2, "GSI 2");
			isos++;
			break;
		case 4:
			cr_assert_eq(e[1], 6);
			cr_assert_eq(e[2], 0xff, "all processors");
			cr_assert_eq(e[5], 1, "LINT1");
			nmis++;
			break;
		default:
			cr_assert_fail("unexpected MADT entry type %u", e[0]);
		}
		off += e[1];
	}
	cr_assert_eq(off, len, "entries fill the MADT exactly");
	cr_assert_eq(lapics, ncpus);
	cr_assert_eq(ioapics, 1);
	cr_assert_eq(isos, 1);
	cr_assert_eq(nmis, 1);
}

Test(acpi, madt_one_cpu)
{
	check_madt(1);
}

Test(acpi, madt_four_cpus)
{
	check_madt(4);
}

Test(acpi, madt_max_cpus)
{
	check_madt(MV_MAX_VCPUS);
}

Test(acpi, dsdt_contents)
{
	static const uint8_t pnp0501[] = { 0x0c, 0x41, 0xd0, 0x05, 0x01 }; /* DWordConst 0x0105D041 */
	static const uint8_t s5[] = {
		0x08, '\\', '_', 'S', '5', '_',     /* Name(\_S5_, */
		0x12, 0x05, 0x02, 0x0a, MV_ACPI_S5_SLP_TYP, 0x00, /* Package(2){5, 0}) */
	};
	static const uint8_t com1_io[] = { 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x00, 0x08 };
	static const uint8_t com1_irq[] = { 0x22, 1 << MV_IRQ_COM1, 0x00 };
	/* IO(Decode16, 0x505, 0x505, 1, 1): Linux's pvpanic-mmio takes an IO resource. */
	static const uint8_t pvpanic_io[] = { 0x47, 0x01, 0x05, 0x05, 0x05, 0x05, 0x01, 0x01 };
	struct machine m;

	for (int ndevs = 0; ndevs <= MV_MAX_MMIO_DEVS; ndevs += 3) {
		make(&m, 2, ndevs);
		const uint8_t *d = T.dsdt;
		size_t len = rd32(d + 4);
		cr_assert_eq(count(d, len, pnp0501, sizeof(pnp0501)), 1, "one PNP0501");
		cr_assert_eq(count(d, len, "\x0dLNRO0005", 10), (size_t)ndevs, "one LNRO0005 per device");
		cr_assert_eq(count(d, len, s5, sizeof(s5)), 1, "\\_S5 package");
		cr_assert_eq(count(d, len, "\\_SB_", 5), 1, "\\_SB scope");
		cr_assert_eq(count(d, len, com1_io, sizeof(com1_io)), 1, "COM1 IO descriptor");
		cr_assert_eq(count(d, len, com1_irq, sizeof(com1_irq)), 1, "COM1 IRQ descriptor");
		cr_assert_eq(count(d, len, "\x0dQEMU0001", 10), 1, "one pvpanic QEMU0001");
		cr_assert_eq(count(d, len, "PEVT", 4), 1, "Device(PEVT)");
		static const uint8_t ged_irq[9] = { 0x89, 6, 0, 0x03, 1, MV_IRQ_GED, 0, 0, 0 };
		static const uint8_t pwrb[] = { 0x0c, 0x41, 0xd0, 0x0c, 0x0c }; /* EisaId("PNP0C0C") */
		cr_assert_eq(count(d, len, "\x0d" "ACPI0013", 10), 1, "one GED ACPI0013");
		cr_assert_eq(count(d, len, ged_irq, sizeof(ged_irq)), 1, "the GED's interrupt");
		cr_assert_eq(count(d, len, pwrb, sizeof(pwrb)), 1, "one power button PNP0C0C");
		cr_assert_eq(count(d, len, pvpanic_io, sizeof(pvpanic_io)), 1, "pvpanic IO descriptor");
		/* The GED's second line, the generation ID's, right after the power button's. */
		static const uint8_t ged_irqs[18] = {
			0x89, 6, 0, 0x03, 1, MV_IRQ_GED, 0, 0, 0,
			0x89, 6, 0, 0x03, 1, MV_IRQ_GED_GENID, 0, 0, 0,
		};
		cr_assert_eq(count(d, len, ged_irqs, sizeof(ged_irqs)), 1, "the GED's two interrupts, in order");
		/* _EVT: If (LEqual (Arg0, gsi)) { Notify (\_SB.dev, 0x80) } for each line. */
		static const uint8_t evt_pwrb[] = {
			0xa0, 18, 0x93, 0x68, 0x0a, MV_IRQ_GED,
			0x86, '\\', 0x2e, '_', 'S', 'B', '_', 'P', 'W', 'R', 'B', 0x0a, 0x80,
		};
		static const uint8_t evt_vgen[] = {
			0xa0, 18, 0x93, 0x68, 0x0a, MV_IRQ_GED_GENID,
			0x86, '\\', 0x2e, '_', 'S', 'B', '_', 'V', 'G', 'E', 'N', 0x0a, 0x80,
		};
		cr_assert_eq(count(d, len, evt_pwrb, sizeof(evt_pwrb)), 1, "_EVT notifies the power button");
		cr_assert_eq(count(d, len, evt_vgen, sizeof(evt_vgen)), 1, "_EVT notifies VGEN");
		/* VGEN: _CID as Linux's vmgenid matches it (after ACPICA upper-cases it), ADDR the ID's address. */
		static const uint8_t vgen_cid[] = "\x08_CID\x0dVM_Gen_Counter";
		static const uint8_t vgen_addr[] = {
			0x14, 16, 'A', 'D', 'D', 'R', 0x00, 0xa4, 0x12, 8, 0x02,
			0x0c, (uint8_t)MV_VMGENID_GPA, (uint8_t)(MV_VMGENID_GPA >> 8),
			(uint8_t)(MV_VMGENID_GPA >> 16), (uint8_t)(MV_VMGENID_GPA >> 24), 0x00,
		};
		cr_assert_eq(count(d, len, "VGEN", 4), 2, "Device(VGEN) and the Notify naming it");
		cr_assert_eq(count(d, len, vgen_cid, sizeof(vgen_cid)), 1, "_CID \"VM_Gen_Counter\" with its NUL");
		cr_assert_eq(count(d, len, "\x08_HID\x0dMCRVVGID", 15), 1, "VGEN's _HID");
		cr_assert_eq(count(d, len, vgen_addr, sizeof(vgen_addr)), 1, "ADDR returns {low, high} of the ID");
		for (int i = 0; i < ndevs; i++) {
			const struct mmio_dev *v = &m.mmio_devs[i];
			uint8_t mem[12] = { 0x86, 9, 0, 1 }, irq[9] = { 0x89, 6, 0, 0x03, 1 };
			for (int b = 0; b < 4; b++) {
				mem[4 + b] = (uint8_t)(v->base >> (8 * b));
				mem[8 + b] = (uint8_t)(v->size >> (8 * b));
				irq[5 + b] = (uint8_t)(v->irq >> (8 * b));
			}
			char name[8];
			snprintf(name, sizeof(name), "VR%02d", i);
			cr_assert_eq(count(d, len, name, 4), 1, "Device(%s)", name);
			cr_assert_eq(count(d, len, mem, sizeof(mem)), 1, "Memory32Fixed of device %d", i);
			cr_assert_eq(count(d, len, irq, sizeof(irq)), 1, "Interrupt of device %d", i);
		}
	}
}

Test(acpi, stale_buffer_bytes_do_not_leak)
{
	struct machine m;
	static uint8_t a[8192], b[8192];

	make(&m, 2, 2);
	memset(a, 0, sizeof(a));
	memset(b, 0xa5, sizeof(b));
	long na = acpi_build(&m, a, sizeof(a), MV_ACPI_GPA);
	long nb = acpi_build(&m, b, sizeof(b), MV_ACPI_GPA);
	cr_assert_gt(na, 0);
	cr_assert_eq(na, nb);
	cr_assert_eq(memcmp(a, b, (size_t)na), 0, "output depends on the old buffer contents");
}

Test(acpi, pointers_follow_base)
{
	struct machine m;
	static uint8_t buf[8192];

	make(&m, 1, 1);
	long n = acpi_build(&m, buf, sizeof(buf), 0x12340000);
	cr_assert_eq(n, T.len);
	uint64_t xsdt = rd64(buf + 24);
	cr_assert_eq(xsdt - 0x12340000, (uint64_t)(T.xsdt - T.buf));
	cr_assert_eq(rd64(buf + xsdt - 0x12340000 + ACPI_HDR_LEN) - 0x12340000,
		     (uint64_t)(T.fadt - T.buf));
	cr_assert_eq(sum8(buf, 36), 0);
}

Test(acpi, too_small_buffer)
{
	struct machine m;

	make(&m, 4, MV_MAX_MMIO_DEVS);
	size_t need = (size_t)T.len;
	/* Every size short of the full length must fail cleanly, inside the buffer. */
	for (size_t size = 0; size < need; size++) {
		uint8_t *buf = malloc(size ? size : 1);
		cr_assert_not_null(buf);
		err_clear();
		long n = acpi_build(&m, buf, size, MV_ACPI_GPA);
		cr_assert_eq(n, -ENOSPC, "size %zu: %ld", size, n);
		cr_assert_str_neq(err_msg(), "", "size %zu: no message", size);
		free(buf);
	}
	uint8_t *buf = malloc(need);
	cr_assert_not_null(buf);
	cr_assert_eq(acpi_build(&m, buf, need, MV_ACPI_GPA), (long)need);
	cr_assert_eq(memcmp(buf, T.buf, need), 0);
	free(buf);
}
