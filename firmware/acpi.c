/* acpi.c - renders the machine description as ACPI tables: RSDP, XSDT, FADT, MADT, DSDT. */
#include "firmware/acpi.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "firmware/aml.h"
#include "base/err.h"

/* The tables are little-endian and written field by field from host integers. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "ACPI writer assumes a little-endian host");

#define OEM_ID        "MCRVM "   /* 6 characters, space padded */
#define OEM_TABLE_ID  "MICROVM " /* 8 characters */
#define OEM_REVISION  1
#define CREATOR_ID    "MCRV"
#define CREATOR_REV   1
#define TABLE_ALIGN   16

/* ---- table layouts (ACPI 6.x chapter 5) ---- */

struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_header) == 36, "ACPI table header is 36 bytes");

struct acpi_rsdp {
	char signature[8];      /* "RSD PTR " */
	uint8_t checksum;       /* first 20 bytes sum to 0 */
	char oem_id[6];
	uint8_t revision;       /* 2: ACPI 2.0+ with XSDT */
	uint32_t rsdt_address;
	uint32_t length;        /* 36 */
	uint64_t xsdt_address;
	uint8_t extended_checksum; /* all 36 bytes sum to 0 */
	uint8_t reserved[3];
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP (rev 2) is 36 bytes");

/* Generic Address Structure. */
struct acpi_gas {
	uint8_t space_id;
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;
	uint64_t address;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_gas) == 12, "GAS is 12 bytes");

#define GAS_SYSTEM_IO   1
#define GAS_ACCESS_BYTE 1

struct acpi_xsdt {
	struct acpi_header h;
	uint64_t entry[2];      /* FADT, MADT */
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_xsdt) == 36 + 16, "XSDT with two entries is 52 bytes");

struct acpi_fadt {
	struct acpi_header h;
	uint32_t firmware_ctrl;
	uint32_t dsdt;
	uint8_t reserved0;
	uint8_t preferred_pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable;
	uint8_t acpi_disable;
	uint8_t s4bios_req;
	uint8_t pstate_cnt;
	uint32_t pm1a_evt_blk;
	uint32_t pm1b_evt_blk;
	uint32_t pm1a_cnt_blk;
	uint32_t pm1b_cnt_blk;
	uint32_t pm2_cnt_blk;
	uint32_t pm_tmr_blk;
	uint32_t gpe0_blk;
	uint32_t gpe1_blk;
	uint8_t pm1_evt_len;
	uint8_t pm1_cnt_len;
	uint8_t pm2_cnt_len;
	uint8_t pm_tmr_len;
	uint8_t gpe0_blk_len;
	uint8_t gpe1_blk_len;
	uint8_t gpe1_base;
	uint8_t cst_cnt;
	uint16_t p_lvl2_lat;
	uint16_t p_lvl3_lat;
	uint16_t flush_size;
	uint16_t flush_stride;
	uint8_t duty_offset;
	uint8_t duty_width;
	uint8_t day_alrm;
	uint8_t mon_alrm;
	uint8_t century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_pm1a_evt_blk;
	struct acpi_gas x_pm1b_evt_blk;
	struct acpi_gas x_pm1a_cnt_blk;
	struct acpi_gas x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk;
	struct acpi_gas x_pm_tmr_blk;
	struct acpi_gas x_gpe0_blk;
	struct acpi_gas x_gpe1_blk;
	struct acpi_gas sleep_control_reg;
	struct acpi_gas sleep_status_reg;
	uint64_t hypervisor_vendor_id;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT revision 6 is 276 bytes");
_Static_assert(__builtin_offsetof(struct acpi_fadt, sci_int) == 46, "FADT SCI_INT at 46");
_Static_assert(__builtin_offsetof(struct acpi_fadt, iapc_boot_arch) == 109, "FADT IAPC_BOOT_ARCH at 109");
_Static_assert(__builtin_offsetof(struct acpi_fadt, flags) == 112, "FADT Flags at 112");
_Static_assert(__builtin_offsetof(struct acpi_fadt, reset_reg) == 116, "FADT RESET_REG at 116");
_Static_assert(__builtin_offsetof(struct acpi_fadt, x_dsdt) == 140, "FADT X_DSDT at 140");
_Static_assert(__builtin_offsetof(struct acpi_fadt, sleep_control_reg) == 244, "FADT SLEEP_CONTROL_REG at 244");

#define FADT_REVISION        6
#define FADT_MINOR_VERSION   3   /* ACPI 6.3, like MADT revision 5 */
#define FADT_RESET_REG_SUP   (1u << 10)
#define FADT_HW_REDUCED_ACPI (1u << 20)
#define IAPC_VGA_NOT_PRESENT      (1u << 2)
#define IAPC_CMOS_RTC_NOT_PRESENT (1u << 5)

struct acpi_madt {
	struct acpi_header h;
	uint32_t lapic_address;
	uint32_t flags;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_madt) == 44, "MADT fixed part is 44 bytes");

#define MADT_REVISION     5   /* ACPI 6.x */
#define MADT_PCAT_COMPAT  1u

enum {
	MADT_TYPE_LAPIC = 0,
	MADT_TYPE_IOAPIC = 1,
	MADT_TYPE_ISO = 2,
	MADT_TYPE_LAPIC_NMI = 4,
};

struct madt_lapic {
	uint8_t type;
	uint8_t length;
	uint8_t processor_uid;
	uint8_t apic_id;
	uint32_t flags;         /* bit 0: enabled */
} __attribute__((packed));
_Static_assert(sizeof(struct madt_lapic) == 8, "MADT Processor Local APIC is 8 bytes");

struct madt_ioapic {
	uint8_t type;
	uint8_t length;
	uint8_t ioapic_id;
	uint8_t reserved;
	uint32_t address;
	uint32_t gsi_base;
} __attribute__((packed));
_Static_assert(sizeof(struct madt_ioapic) == 12, "MADT I/O APIC is 12 bytes");

struct madt_iso {
	uint8_t type;
	uint8_t length;
	uint8_t bus;            /* 0: ISA */
	uint8_t source;         /* bus-relative IRQ */
	uint32_t gsi;
	uint16_t flags;         /* 0: conforms to the bus */
} __attribute__((packed));
_Static_assert(sizeof(struct madt_iso) == 10, "MADT Interrupt Source Override is 10 bytes");

struct madt_lapic_nmi {
	uint8_t type;
	uint8_t length;
	uint8_t processor_uid;  /* 0xff: all processors */
	uint16_t flags;
	uint8_t lint;
} __attribute__((packed));
_Static_assert(sizeof(struct madt_lapic_nmi) == 6, "MADT Local APIC NMI is 6 bytes");

#define MADT_LAPIC_ENABLED   1u
#define MADT_ALL_PROCESSORS  0xff

/* ---- helpers ---- */

static uint8_t checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + b[i]);
	return (uint8_t)(0x100 - sum);
}

static void header_init(struct acpi_header *h, const char *sig, uint32_t length, uint8_t revision)
{
	memcpy(h->signature, sig, 4);
	h->length = length;
	h->revision = revision;
	h->checksum = 0;
	memcpy(h->oem_id, OEM_ID, 6);
	memcpy(h->oem_table_id, OEM_TABLE_ID, 8);
	h->oem_revision = OEM_REVISION;
	memcpy(h->creator_id, CREATOR_ID, 4);
	h->creator_revision = CREATOR_REV;
}

/* Called last for each table: the checksum covers every byte of it. */
static void header_checksum(void *table)
{
	struct acpi_header *h = table;

	h->checksum = 0;
	h->checksum = checksum(table, h->length);
}

static struct acpi_gas gas_io8(uint16_t port)
{
	return (struct acpi_gas){
		.space_id = GAS_SYSTEM_IO,
		.bit_width = 8,
		.bit_offset = 0,
		.access_size = GAS_ACCESS_BYTE,
		.address = port,
	};
}

static size_t align_up(size_t v)
{
	return (v + TABLE_ALIGN - 1) & ~(size_t)(TABLE_ALIGN - 1);
}

static int no_room(size_t size)
{
	return err_set(ENOSPC, "ACPI tables: do not fit in %zu bytes", size);
}

/* ---- tables ---- */

/* The DSDT at buf (room bytes): returns its length or -errno. */
static long build_dsdt(const struct machine *m, uint8_t *buf, size_t room)
{
	struct aml a;
	struct aml_res r;
	char name[16];

	if (room < sizeof(struct acpi_header))
		return -ENOSPC;
	memset(buf, 0, sizeof(struct acpi_header));
	aml_init(&a, buf + sizeof(struct acpi_header), room - sizeof(struct acpi_header));

	/* Linux's hardware-reduced power-off writes (SLP_TYP << 2) | SLP_EN to SLEEP_CONTROL_REG. */
	aml_name(&a, "\\_S5");
	size_t pkg = aml_package_begin(&a, 2);
	aml_integer(&a, MV_ACPI_S5_SLP_TYP);
	aml_integer(&a, 0);
	aml_end(&a, pkg);

	size_t sb = aml_scope_begin(&a, "\\_SB");

	size_t dev = aml_device_begin(&a, "COM1");
	aml_name(&a, "_HID");
	aml_dword(&a, aml_eisaid("PNP0501"));
	aml_name(&a, "_UID");
	aml_integer(&a, 0);
	aml_res_init(&r);
	aml_res_io16(&r, MV_PORT_COM1, MV_PORT_COM1, 0, 8);
	aml_res_irq_noflags(&r, MV_IRQ_COM1);
	aml_name_resources(&a, "_CRS", &r);
	aml_end(&a, dev);

	/*
	 * pvpanic at QEMU's ISA port: Linux's pvpanic-mmio driver (CONFIG_PVPANIC_MMIO)
	 * binds to QEMU0001 and accepts an IO resource as well as a memory one.
	 */
	dev = aml_device_begin(&a, "PEVT");
	aml_name(&a, "_HID");
	aml_string(&a, "QEMU0001");
	aml_name(&a, "_UID");
	aml_integer(&a, 0);
	aml_res_init(&r);
	aml_res_io16(&r, MV_PORT_PVPANIC, MV_PORT_PVPANIC, 1, 1);
	aml_name_resources(&a, "_CRS", &r);
	aml_end(&a, dev);

	/*
	 * The VM Generation ID device (Microsoft's "Virtual Machine Generation ID"
	 * specification): _CID "VM_Gen_Counter" (ACPICA upper-cases _HID and _CID
	 * strings; Linux's vmgenid driver matches "VM_GEN_COUNTER"), a _HID of
	 * microvm's own, and ADDR: a Package of two Integers, the low and high
	 * 32 bits of the 16-byte ID's guest-physical address. microvm writes a
	 * new random ID there at boot and at every restore, then notifies this
	 * device through the GED below.
	 */
	dev = aml_device_begin(&a, "VGEN");
	aml_name(&a, "_HID");
	aml_string(&a, "MCRVVGID");
	aml_name(&a, "_CID");
	aml_string(&a, "VM_Gen_Counter");
	aml_name(&a, "_DDN");
	aml_string(&a, "VM_Gen_Counter");
	size_t addr = aml_method_begin(&a, "ADDR", 0);
	aml_return(&a);
	pkg = aml_package_begin(&a, 2);
	aml_integer(&a, MV_VMGENID_GPA & 0xffffffffu);
	aml_integer(&a, MV_VMGENID_GPA >> 32);
	aml_end(&a, pkg);
	aml_end(&a, addr);
	aml_end(&a, dev);

	/*
	 * The power button of a hardware-reduced machine (no PM1 fixed events): a
	 * control-method power button (PNP0C0C) that a Generic Event Device
	 * notifies with 0x80 ("pressed"). The GED has one edge-triggered line per
	 * event; Linux's GED driver runs _EVT with the line's GSI as Arg0, and
	 * _EVT notifies the device that line belongs to:
	 *   MV_IRQ_GED: the power button (microvm pulses it for a graceful
	 *     shutdown, the control API's POST /vm/shutdown; Linux's button
	 *     driver turns it into KEY_POWER);
	 *   MV_IRQ_GED_GENID: VGEN with 0x80, after a restore wrote a new ID.
	 * The power button's line stays the first in _CRS.
	 */
	dev = aml_device_begin(&a, "PWRB");
	aml_name(&a, "_HID");
	aml_dword(&a, aml_eisaid("PNP0C0C"));
	aml_name(&a, "_UID");
	aml_integer(&a, 0);
	aml_end(&a, dev);
	dev = aml_device_begin(&a, "GED0");
	aml_name(&a, "_HID");
	aml_string(&a, "ACPI0013");
	aml_name(&a, "_UID");
	aml_integer(&a, 0);
	aml_res_init(&r);
	aml_res_ext_irq_edge_high(&r, MV_IRQ_GED);
	aml_res_ext_irq_edge_high(&r, MV_IRQ_GED_GENID);
	aml_name_resources(&a, "_CRS", &r);
	size_t evt = aml_method_begin(&a, "_EVT", 1);
	static const struct { uint32_t gsi; const char *dev; } events[] = {
		{ MV_IRQ_GED, "\\_SB.PWRB" },
		{ MV_IRQ_GED_GENID, "\\_SB.VGEN" },
	};
	for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		size_t cond = aml_if_begin(&a);
		aml_lequal(&a);
		aml_arg(&a, 0);
		aml_integer(&a, events[i].gsi);
		aml_notify(&a, events[i].dev, 0x80);
		aml_end(&a, cond);
	}
	aml_end(&a, evt);
	aml_end(&a, dev);

	for (int i = 0; i < m->nr_mmio_devs; i++) {
		const struct mmio_dev *d = &m->mmio_devs[i];

		snprintf(name, sizeof(name), "VR%02u", (unsigned)i);
		dev = aml_device_begin(&a, name);
		aml_name(&a, "_HID");
		aml_string(&a, "LNRO0005");
		aml_name(&a, "_UID");
		aml_integer(&a, (uint64_t)i);
		aml_res_init(&r);
		aml_res_mem32_fixed(&r, 1, (uint32_t)d->base, (uint32_t)d->size);
		aml_res_ext_irq_edge_high(&r, d->irq);
		aml_name_resources(&a, "_CRS", &r);
		aml_end(&a, dev);
	}
	aml_end(&a, sb);

	if (a.err == -ENOSPC)
		return -ENOSPC;
	if (a.err)
		return err_set(-a.err, "ACPI DSDT: bad AML name or string (bug)");

	size_t len = sizeof(struct acpi_header) + a.len;
	/* Revision 2: integers in this definition block are 64 bits wide. */
	header_init((struct acpi_header *)buf, "DSDT", (uint32_t)len, 2);
	header_checksum(buf);
	return (long)len;
}

static void build_fadt(struct acpi_fadt *f, uint64_t dsdt_gpa)
{
	memset(f, 0, sizeof(*f));
	header_init(&f->h, "FACP", sizeof(*f), FADT_REVISION);
	f->minor_version = FADT_MINOR_VERSION;
	/* The 32-bit pointer is optional when X_DSDT is set; fill it when it fits. */
	f->dsdt = dsdt_gpa <= UINT32_MAX ? (uint32_t)dsdt_gpa : 0;
	f->x_dsdt = dsdt_gpa;
	f->sci_int = MV_SCI_IRQ;
	f->flags = FADT_HW_REDUCED_ACPI | FADT_RESET_REG_SUP;
	/* No 8042 flag: the i8042 is only there for the reset command. */
	f->iapc_boot_arch = IAPC_VGA_NOT_PRESENT | IAPC_CMOS_RTC_NOT_PRESENT;
	f->reset_reg = gas_io8(MV_PORT_ACPI_RESET);
	f->reset_value = MV_ACPI_RESET_VALUE;
	f->sleep_control_reg = gas_io8(MV_PORT_ACPI_SLEEP_CTL);
	f->sleep_status_reg = gas_io8(MV_PORT_ACPI_SLEEP_STS);
	memcpy(&f->hypervisor_vendor_id, "microvm ", 8);
	header_checksum(f);
}

static size_t madt_size(const struct machine *m)
{
	return sizeof(struct acpi_madt) + (size_t)m->ncpus * sizeof(struct madt_lapic) +
	       sizeof(struct madt_ioapic) + sizeof(struct madt_iso) + sizeof(struct madt_lapic_nmi);
}

static void build_madt(const struct machine *m, uint8_t *buf)
{
	size_t len = madt_size(m);
	struct acpi_madt *madt = (struct acpi_madt *)buf;
	uint8_t *p = buf + sizeof(*madt);

	memset(buf, 0, len);
	header_init(&madt->h, "APIC", (uint32_t)len, MADT_REVISION);
	madt->lapic_address = (uint32_t)MV_LAPIC_GPA;
	madt->flags = MADT_PCAT_COMPAT;

	for (int i = 0; i < m->ncpus; i++) {
		struct madt_lapic e = {
			.type = MADT_TYPE_LAPIC, .length = sizeof(e),
			.processor_uid = (uint8_t)i, .apic_id = (uint8_t)i,
			.flags = MADT_LAPIC_ENABLED,
		};
		memcpy(p, &e, sizeof(e));
		p += sizeof(e);
	}
	struct madt_ioapic io = {
		.type = MADT_TYPE_IOAPIC, .length = sizeof(io),
		.ioapic_id = (uint8_t)m->ncpus, /* the first id after the local APICs */
		.address = (uint32_t)MV_IOAPIC_GPA, .gsi_base = 0,
	};
	memcpy(p, &io, sizeof(io));
	p += sizeof(io);
	/* The PIT's IRQ 0 is wired to IOAPIC pin 2, as on every PC. */
	struct madt_iso iso = {
		.type = MADT_TYPE_ISO, .length = sizeof(iso), .bus = 0, .source = 0, .gsi = 2, .flags = 0,
	};
	memcpy(p, &iso, sizeof(iso));
	p += sizeof(iso);
	struct madt_lapic_nmi nmi = {
		.type = MADT_TYPE_LAPIC_NMI, .length = sizeof(nmi),
		.processor_uid = MADT_ALL_PROCESSORS, .flags = 0, .lint = 1,
	};
	memcpy(p, &nmi, sizeof(nmi));
	header_checksum(buf);
}

static int check_machine(const struct machine *m)
{
	if (m->ncpus < 1 || m->ncpus > MV_MAX_VCPUS)
		return err_set(EINVAL, "ACPI tables: %d vCPUs, must be 1..%d", m->ncpus, MV_MAX_VCPUS);
	if (m->nr_mmio_devs < 0 || m->nr_mmio_devs > MV_MAX_MMIO_DEVS)
		return err_set(EINVAL, "ACPI tables: %d virtio-mmio devices, at most %d",
			       m->nr_mmio_devs, MV_MAX_MMIO_DEVS);
	for (int i = 0; i < m->nr_mmio_devs; i++) {
		const struct mmio_dev *d = &m->mmio_devs[i];
		/* Memory32Fixed can only describe windows below 4 GiB. */
		if (d->base > UINT32_MAX || d->size > UINT32_MAX - d->base)
			return err_set(EINVAL, "ACPI tables: virtio-mmio window 0x%llx above 4 GiB",
				       (unsigned long long)d->base);
	}
	return 0;
}

long acpi_build(const struct machine *m, uint8_t *buf, size_t size, uint64_t base)
{
	int ret;

	if ((ret = check_machine(m)) < 0)
		return ret;

	/* Layout: RSDP at 0, then each table 16-byte aligned. */
	size_t rsdp_off = 0;
	size_t xsdt_off = align_up(rsdp_off + sizeof(struct acpi_rsdp));
	size_t fadt_off = align_up(xsdt_off + sizeof(struct acpi_xsdt));
	size_t madt_off = align_up(fadt_off + sizeof(struct acpi_fadt));
	size_t dsdt_off = align_up(madt_off + madt_size(m));
	if (size < dsdt_off)
		return no_room(size);

	long dsdt_len = build_dsdt(m, buf + dsdt_off, size - dsdt_off);
	if (dsdt_len == -ENOSPC)
		return no_room(size);
	if (dsdt_len < 0)
		return dsdt_len;
	size_t end = dsdt_off + (size_t)dsdt_len;
	if (base > UINT64_MAX - end)
		return err_set(EINVAL, "ACPI tables: base 0x%llx too high", (unsigned long long)base);

	/* Zero the gaps between tables so the guest sees no stale bytes. */
	memset(buf, 0, dsdt_off);

	build_fadt((struct acpi_fadt *)(buf + fadt_off), base + dsdt_off);
	build_madt(m, buf + madt_off);

	struct acpi_xsdt *x = (struct acpi_xsdt *)(buf + xsdt_off);
	header_init(&x->h, "XSDT", sizeof(*x), 1);
	x->entry[0] = base + fadt_off;
	x->entry[1] = base + madt_off;
	header_checksum(x);

	struct acpi_rsdp *r = (struct acpi_rsdp *)(buf + rsdp_off);
	memcpy(r->signature, "RSD PTR ", 8);
	memcpy(r->oem_id, OEM_ID, 6);
	r->revision = 2;
	r->rsdt_address = 0;    /* ACPI 2.0+ guests use the XSDT */
	r->length = sizeof(*r);
	r->xsdt_address = base + xsdt_off;
	r->checksum = checksum(r, 20);
	r->extended_checksum = checksum(r, sizeof(*r));
	return (long)end;
}
