/* acpi.c - check the ACPI tables as an OS would find them: RSDP -> XSDT -> MADT, FADT -> DSDT (\_S5). */
#include "guest.h"

#define HDR_LEN 36            /* struct acpi_table_header */
#define MAX_TABLE_LEN 0x10000 /* sanity bound: our tables are a few hundred bytes */

typedef uint32_t __attribute__((may_alias, aligned(1))) u32_any;
typedef uint64_t __attribute__((may_alias, aligned(1))) u64_any;

static uint32_t rd32(const uint8_t *p)
{
	return *(const u32_any *)p;
}

static uint64_t rd64(const uint8_t *p)
{
	return *(const u64_any *)p;
}

static uint8_t sum8(const uint8_t *p, uint32_t len)
{
	uint8_t s = 0;

	while (len--)
		s += *p++;
	return s;
}

/* Map and validate one table: readable, signature, sane length, checksum. */
static const uint8_t *table(uint64_t gpa, const char *sig, int code)
{
	if (!gpa || !phys_ok(gpa, HDR_LEN)) {
		fail(code, "acpi: %s at 0x%lx is not readable", sig, gpa);
		return NULL;
	}
	const uint8_t *t = phys(gpa);
	uint32_t len = rd32(t + 4);
	if (memcmp(t, sig, 4)) {
		fail(code, "acpi: table at 0x%lx is '%.*s', expected %s", gpa, 4, (const char *)t, sig);
		return NULL;
	}
	if (len < HDR_LEN || len > MAX_TABLE_LEN || !phys_ok(gpa, len)) {
		fail(code, "acpi: %s length %u", sig, len);
		return NULL;
	}
	if (sum8(t, len)) {
		fail(code, "acpi: %s checksum is wrong", sig);
		return NULL;
	}
	return t;
}

static void read_madt(const uint8_t *t, struct acpi_info *ai)
{
	uint32_t len = rd32(t + 4);

	ai->lapic_addr = rd32(t + 36);
	for (uint32_t off = 44; off + 2 <= len;) {
		const uint8_t *e = t + off;
		uint8_t type = e[0], elen = e[1];
		if (elen < 2 || off + elen > len) {
			fail(FAIL_ACPI_MADT, "acpi: MADT entry at +%u has length %u", off, elen);
			return;
		}
		if (type == 0 && elen >= 8 && (rd32(e + 4) & 1)) {          /* local APIC */
			if (ai->nr_cpus < ACPI_MAX_CPUS)
				ai->apic_ids[ai->nr_cpus] = e[3];
			ai->nr_cpus++;
		} else if (type == 9 && elen >= 16 && (rd32(e + 8) & 1)) {  /* local x2APIC */
			if (ai->nr_cpus < ACPI_MAX_CPUS)
				ai->apic_ids[ai->nr_cpus] = rd32(e + 4);
			ai->nr_cpus++;
		} else if (type == 1 && elen >= 12 && !ai->ioapic_addr) {  /* IOAPIC */
			ai->ioapic_addr = rd32(e + 4);
		} else if (type == 5 && elen >= 12) {                        /* LAPIC address override */
			ai->lapic_addr = rd64(e + 4);
		}
		off += elen;
	}
}

/* \_S5 package: NameOp "_S5_" PackageOp PkgLength NumElements then SLP_TYPa. */
static uint8_t find_s5(const uint8_t *t, uint32_t len)
{
	for (uint32_t i = HDR_LEN; i + 8 < len; i++) {
		if (t[i] != '_' || memcmp(t + i, "_S5_", 4) || t[i + 4] != 0x12)
			continue;
		uint32_t p = i + 5;
		p += 1 + (t[p] >> 6);       /* PkgLength: lead byte + 0..3 more */
		p += 1;                     /* NumElements */
		if (p + 1 >= len)
			return 0xff;
		switch (t[p]) {
		case 0x00: return 0;        /* ZeroOp */
		case 0x01: return 1;        /* OneOp */
		case 0x0a: return t[p + 1]; /* BytePrefix */
		default: return t[p];
		}
	}
	return 0xff;
}

/*
 * LNRO0005 (virtio-mmio) devices: after each _HID string "LNRO0005", the
 * first Memory32Fixed descriptor (0x86, length 9: info, base, size) and
 * Extended Interrupt descriptor (0x89, length >= 6: flags, count, irq...).
 * A byte scan, like find_s5: our DSDT is small.
 */
static void find_virtio(const uint8_t *t, uint32_t len, struct acpi_info *ai)
{
	for (uint32_t i = HDR_LEN; i + 9 < len && ai->nr_virtio < VIRTIO_MMIO_MAX; i++) {
		if (t[i] != 'L' || memcmp(t + i, "LNRO0005", 9))  /* with the string's NUL */
			continue;
		struct virtio_mmio_loc v = { 0, 0, 0 };
		uint32_t j = i + 9, end = j + 64 < len ? j + 64 : len;
		for (; j + 9 <= end; j++) {     /* an Extended Interrupt with one IRQ is 9 bytes */
			if (j + 12 <= end && t[j] == 0x86 && t[j + 1] == 9 && t[j + 2] == 0 && !v.size) {
				v.base = rd32(t + j + 4);
				v.size = rd32(t + j + 8);
				j += 11;
			} else if (t[j] == 0x89 && t[j + 2] == 0 && t[j + 1] >= 6 && t[j + 4] >= 1 && v.size) {
				v.irq = rd32(t + j + 5);
				break;
			}
		}
		if (!v.size)
			continue;
		ai->virtio[ai->nr_virtio++] = v;
		i += 8;
	}
}

/*
 * The Generic Event Device (ACPI0013): the GSIs of its first two Extended
 * Interrupt descriptors (the power button's, the generation ID's).
 */
static void find_ged(const uint8_t *t, uint32_t len, struct acpi_info *ai)
{
	for (uint32_t i = HDR_LEN; i + 9 < len; i++) {
		if (t[i] != 'A' || memcmp(t + i, "ACPI0013", 9))
			continue;
		uint32_t end = i + 9 + 64 < len ? i + 9 + 64 : len;
		int n = 0;
		for (uint32_t j = i + 9; j + 9 <= end && n < 2; j++)
			if (t[j] == 0x89 && t[j + 2] == 0 && t[j + 1] >= 6 && t[j + 4] >= 1) {
				uint32_t gsi = rd32(t + j + 5);
				if (n++ == 0)
					ai->ged_gsi = gsi;
				else
					ai->ged_genid_gsi = gsi;
				j += 2 + t[j + 1];
			}
		return;
	}
}

/* An AML integer constant at t[*p] (Zero, One, Byte/Word/DWord/QWordConst): its value; false if none. */
static bool aml_const(const uint8_t *t, uint32_t len, uint32_t *p, uint64_t *v)
{
	static const uint8_t width[] = { [0x0a] = 1, [0x0b] = 2, [0x0c] = 4, [0x0e] = 8 };
	uint8_t op = *p < len ? t[*p] : 0xff;

	if (op == 0x00 || op == 0x01) {
		*v = op;
		*p += 1;
		return true;
	}
	if (op >= sizeof(width) || !width[op] || *p + 1 + width[op] > len)
		return false;
	*v = 0;
	for (int k = width[op]; k > 0; k--)
		*v = (*v << 8) | t[*p + k];
	*p += 1 + width[op];
	return true;
}

/*
 * The VM Generation ID device: after the _CID string "VM_Gen_Counter", the
 * method ADDR returning Package(2) {low, high}: MethodOp PkgLength "ADDR"
 * flags ReturnOp PackageOp PkgLength 2 low high. A byte scan, like the others.
 */
static uint64_t find_vmgenid(const uint8_t *t, uint32_t len)
{
	static const char cid[] = "\x0dVM_Gen_Counter";   /* StringPrefix, the characters, NUL */

	for (uint32_t i = HDR_LEN; i + sizeof(cid) < len; i++) {
		if (t[i] != 0x0d || memcmp(t + i, cid, sizeof(cid)))
			continue;
		uint32_t end = i + sizeof(cid) + 96 < len ? i + sizeof(cid) + 96 : len;
		for (uint32_t j = i + sizeof(cid); j + 8 < end; j++) {
			if (t[j] != 0x14)
				continue;
			uint32_t p = j + 2 + (t[j + 1] >> 6);      /* past the PkgLength */
			if (p + 7 >= end || memcmp(t + p, "ADDR", 4) || t[p + 5] != 0xa4 || t[p + 6] != 0x12)
				continue;
			p += 7;
			p += 1 + (t[p] >> 6);                      /* the Package's PkgLength */
			if (p >= end || t[p] != 2)
				return 0;
			p++;
			uint64_t lo, hi;
			if (!aml_const(t, end, &p, &lo) || !aml_const(t, end, &p, &hi) || lo > 0xffffffffu ||
			    hi > 0xffffffffu)
				return 0;
			return lo | hi << 32;
		}
		return 0;
	}
	return 0;
}

/* A Generic Address Structure in system I/O space: its port, else 0. */
static uint16_t gas_port(const uint8_t *g)
{
	uint64_t addr = rd64(g + 4);

	return g[0] == 1 && addr && addr <= 0xffff ? (uint16_t)addr : 0;
}

static void read_fadt(const uint8_t *t, struct acpi_info *ai)
{
	uint32_t len = rd32(t + 4);
	uint64_t dsdt = len >= 148 ? rd64(t + 140) : 0;   /* X_DSDT, else DSDT */

	ai->have_fadt = true;
	if (!dsdt)
		dsdt = rd32(t + 40);
	if (len >= 129) {
		ai->reset_port = gas_port(t + 116);
		ai->reset_value = t[128];
	}
	if (len >= 256)
		ai->sleep_port = gas_port(t + 244);
	const uint8_t *d = table(dsdt, "DSDT", FAIL_ACPI_DSDT);
	if (d) {
		ai->s5_slp_typ = find_s5(d, rd32(d + 4));
		find_virtio(d, rd32(d + 4), ai);
		find_ged(d, rd32(d + 4), ai);
		ai->vmgenid_addr = find_vmgenid(d, rd32(d + 4));
	}
}

void acpi_read(uint64_t rsdp_gpa, struct acpi_info *ai)
{
	memset(ai, 0, sizeof(*ai));
	ai->s5_slp_typ = 0xff;
	if (!rsdp_gpa || !phys_ok(rsdp_gpa, 36)) {
		fail(FAIL_ACPI_RSDP, "acpi: no RSDP (address 0x%lx)", rsdp_gpa);
		return;
	}
	const uint8_t *r = phys(rsdp_gpa);
	if (memcmp(r, "RSD PTR ", 8) || sum8(r, 20)) {
		fail(FAIL_ACPI_RSDP, "acpi: RSDP at 0x%lx: bad signature or checksum", rsdp_gpa);
		return;
	}
	bool xsdt = r[15] >= 2;     /* revision 2+: XSDT, extended checksum */
	if (xsdt && (rd32(r + 20) < 36 || sum8(r, 36))) {
		fail(FAIL_ACPI_RSDP, "acpi: RSDP extended checksum is wrong");
		return;
	}
	const uint8_t *x = xsdt ? table(rd64(r + 24), "XSDT", FAIL_ACPI_XSDT)
				: table(rd32(r + 16), "RSDT", FAIL_ACPI_XSDT);
	if (!x)
		return;
	uint32_t esize = xsdt ? 8 : 4, n = (rd32(x + 4) - HDR_LEN) / esize;
	const uint8_t *madt = NULL;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = x + HDR_LEN + i * esize;
		uint64_t gpa = xsdt ? rd64(e) : rd32(e);
		if (!phys_ok(gpa, HDR_LEN)) {
			fail(FAIL_ACPI_XSDT, "acpi: XSDT entry %u points at 0x%lx", i, gpa);
			continue;
		}
		const uint8_t *h = phys(gpa);
		if (!memcmp(h, "APIC", 4))
			madt = table(gpa, "APIC", FAIL_ACPI_MADT);
		else if (!memcmp(h, "FACP", 4) && (h = table(gpa, "FACP", FAIL_ACPI_FADT)))
			read_fadt(h, ai);
	}
	if (!madt) {
		fail(FAIL_ACPI_MADT, "acpi: no valid MADT");
		return;
	}
	read_madt(madt, ai);
	ai->ok = true;
	gprintf("acpi: RSDP 0x%lx rev %u, %u tables, MADT %d CPUs, IOAPIC 0x%lx, FADT %s, S5 %u, "
		"%d LNRO0005\n", rsdp_gpa, r[15], n, ai->nr_cpus, ai->ioapic_addr,
		ai->have_fadt ? "yes" : "no", ai->s5_slp_typ, ai->nr_virtio);
}
