/* bootinfo.c - read what the VMM handed over (Linux boot_params or PVH hvm_start_info); memory and initrd checks. */
#include "guest.h"

/* Linux boot_params (the "zero page") offsets, Documentation/arch/x86/zero-page.rst. */
#define BP_ACPI_RSDP_ADDR     0x070
#define BP_EXT_RAMDISK_IMAGE  0x0c0
#define BP_EXT_RAMDISK_SIZE   0x0c4
#define BP_EXT_CMD_LINE_PTR   0x0c8
#define BP_E820_ENTRIES       0x1e8
#define BP_RAMDISK_IMAGE      0x218
#define BP_RAMDISK_SIZE       0x21c
#define BP_HEADER             0x202  /* "HdrS" */
#define BP_VERSION            0x206
#define BP_TYPE_OF_LOADER     0x210
#define BP_CMD_LINE_PTR       0x228
#define BP_INITRD_ADDR_MAX    0x22c
#define BP_CMDLINE_SIZE       0x238
#define HDRS                  0x53726448
#define BP_SETUP_DATA         0x250
#define BP_E820_TABLE         0x2d0
#define BP_E820_MAX           128
#define BP_E820_ENTRY_SIZE    20   /* packed: u64 addr, u64 size, u32 type */

/* struct hvm_start_info (Xen public/arch-x86/hvm/start_info.h). */
#define PVH_MAGIC             0x336ec578
#define PVH_VERSION           4
#define PVH_NR_MODULES        12
#define PVH_MODLIST_PADDR     16
#define PVH_CMDLINE_PADDR     24
#define PVH_RSDP_PADDR        32
#define PVH_MEMMAP_PADDR      40
#define PVH_MEMMAP_ENTRIES    48
#define PVH_MEMMAP_ENTRY_SIZE 24   /* u64 addr, u64 size, u32 type, u32 reserved */
#define PVH_MODLIST_ENTRY_SIZE 32  /* u64 paddr, u64 size, u64 cmdline_paddr, u64 reserved */

#define MMIO_HOLE_START 0xc0000000ULL  /* MV_MMIO_HOLE_START: no RAM from here to 4 GiB */
#define FOUR_GIB        0x100000000ULL

typedef uint64_t __attribute__((may_alias, aligned(1))) u64_any;
typedef uint32_t __attribute__((may_alias, aligned(1))) u32_any;

static uint64_t rd64(uint64_t gpa)
{
	return *(const u64_any *)phys(gpa);
}

static uint32_t rd32(uint64_t gpa)
{
	return *(const u32_any *)phys(gpa);
}

static void add_mem(struct boot_info *bi, uint64_t addr, uint64_t size, uint32_t type)
{
	if (!size)
		return;
	if (bi->nr_mem == MEMMAP_MAX) {
		fail(FAIL_BOOT_INFO, "memory map has more than %d entries", MEMMAP_MAX);
		return;
	}
	bi->mem[bi->nr_mem++] = (struct mem_entry){ addr, size, type };
}

static void read_linux(struct boot_info *bi, uint64_t bp)
{
	unsigned n = *(const uint8_t *)phys(bp + BP_E820_ENTRIES);

	bi->cmdline_gpa = rd32(bp + BP_CMD_LINE_PTR) | (uint64_t)rd32(bp + BP_EXT_CMD_LINE_PTR) << 32;
	bi->initrd_addr = rd32(bp + BP_RAMDISK_IMAGE) | (uint64_t)rd32(bp + BP_EXT_RAMDISK_IMAGE) << 32;
	bi->initrd_size = rd32(bp + BP_RAMDISK_SIZE) | (uint64_t)rd32(bp + BP_EXT_RAMDISK_SIZE) << 32;
	bi->have_initrd = bi->initrd_size != 0;
	bi->rsdp = rd64(bp + BP_ACPI_RSDP_ADDR);
	bi->setup_data = rd64(bp + BP_SETUP_DATA);
	/* The loader copies the kernel's setup header into boot_params (and fills in its own). */
	if (rd32(bp + BP_HEADER) != HDRS) {
		fail(FAIL_BOOT_INFO, "boot_params has no setup header (no HdrS at 0x202)");
	} else {
		uint16_t version = *(const uint16_t *)phys(bp + BP_VERSION);
		bi->initrd_addr_max = rd32(bp + BP_INITRD_ADDR_MAX);
		if (version >= 0x206)
			bi->cmdline_size = rd32(bp + BP_CMDLINE_SIZE);
		if (!*(const uint8_t *)phys(bp + BP_TYPE_OF_LOADER))
			fail(FAIL_BOOT_INFO, "boot_params type_of_loader is 0 (a loader must set it)");
	}
	if (n > BP_E820_MAX) {
		fail(FAIL_BOOT_INFO, "boot_params e820_entries %u > %d", n, BP_E820_MAX);
		n = 0;
	}
	for (unsigned i = 0; i < n; i++) {
		uint64_t e = bp + BP_E820_TABLE + i * BP_E820_ENTRY_SIZE;
		add_mem(bi, rd64(e), rd64(e + 8), rd32(e + 16));
	}
}

static void read_pvh(struct boot_info *bi, uint64_t si)
{
	uint32_t version = rd32(si + 4);
	uint64_t map = rd64(si + PVH_MEMMAP_PADDR);
	uint32_t n = rd32(si + PVH_MEMMAP_ENTRIES);

	if (rd32(si) != PVH_MAGIC) {
		fail(FAIL_BOOT_INFO, "hvm_start_info at 0x%lx: magic 0x%x", si, rd32(si));
		return;
	}
	bi->cmdline_gpa = rd64(si + PVH_CMDLINE_PADDR);
	bi->rsdp = rd64(si + PVH_RSDP_PADDR);
	if (rd32(si + PVH_NR_MODULES)) {
		uint64_t mod = rd64(si + PVH_MODLIST_PADDR);
		if (phys_ok(mod, PVH_MODLIST_ENTRY_SIZE)) {
			bi->initrd_addr = rd64(mod);
			bi->initrd_size = rd64(mod + 8);
			bi->have_initrd = bi->initrd_size != 0;
		} else {
			fail(FAIL_BOOT_INFO, "hvm_start_info modlist_paddr 0x%lx", mod);
		}
	}
	if (version < 1) {
		fail(FAIL_BOOT_INFO, "hvm_start_info version %u has no memory map", version);
		return;
	}
	if (n > MEMMAP_MAX || !phys_ok(map, (uint64_t)n * PVH_MEMMAP_ENTRY_SIZE)) {
		fail(FAIL_BOOT_INFO, "hvm_start_info memmap 0x%lx, %u entries", map, n);
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint64_t e = map + (uint64_t)i * PVH_MEMMAP_ENTRY_SIZE;
		add_mem(bi, rd64(e), rd64(e + 8), rd32(e + 16));
	}
}

void boot_info_read(struct boot_info *bi, int mode, uint64_t params)
{
	memset(bi, 0, sizeof(*bi));
	bi->mode = mode;
	bi->params = params;
	bi->cmdline = "";
	if (!phys_ok(params, 4096)) {
		fail(FAIL_BOOT_INFO, "boot structure at 0x%lx", params);
		return;
	}
	if (mode == GUEST_MODE_PVH)
		read_pvh(bi, params);
	else
		read_linux(bi, params);
	if (bi->cmdline_gpa && phys_ok(bi->cmdline_gpa, 1))
		bi->cmdline = phys(bi->cmdline_gpa);
	else if (bi->cmdline_gpa)
		fail(FAIL_BOOT_INFO, "command line at 0x%lx", bi->cmdline_gpa);
}

void check_memory(const struct boot_info *bi, uint64_t mib)
{
	uint64_t ram = 0;
	bool ram_at_0 = false;

	for (int i = 0; i < bi->nr_mem; i++) {
		const struct mem_entry *e = &bi->mem[i];
		uint64_t end = e->addr + e->size;

		gprintf("mem: %016lx-%016lx type %u\n", e->addr, end - 1, e->type);
		/* Entries need not be sorted (Linux sorts them), but must not overlap. */
		for (int j = 0; j < i; j++)
			if (e->addr < bi->mem[j].addr + bi->mem[j].size && bi->mem[j].addr < end)
				fail(FAIL_E820, "memory map entries %d and %d overlap", j, i);
		if (end < e->addr)
			fail(FAIL_E820, "memory map entry %d wraps around", i);
		if (e->addr == 0 && e->type == MEM_TYPE_RAM)
			ram_at_0 = true;
		if (e->type != MEM_TYPE_RAM)
			continue;
		ram += e->size;
		if (e->addr < FOUR_GIB && end > MMIO_HOLE_START)
			fail(FAIL_E820, "RAM %lx-%lx reaches into the MMIO hole", e->addr, end - 1);
	}
	if (!ram_at_0)
		fail(FAIL_E820, "memory map has no RAM at address 0");
	uint64_t got = (ram + (1 << 20) - 1) >> 20;
	gprintf("mem: %lu KiB RAM in %d entries (%lu MiB)\n", ram >> 10, bi->nr_mem, got);
	if (got != mib)
		fail(FAIL_MEM, "memory map has %lu MiB of RAM, expected %lu", got, mib);
}

uint64_t rotsum64(const uint8_t *p, uint64_t len)
{
	const u64_any *w = (const u64_any *)p;
	uint64_t h = 0, n = len / 8, tail = 0;

	for (uint64_t i = 0; i < n; i++)
		h = ((h << 1) | (h >> 63)) + w[i];
	if (len % 8) {
		for (uint64_t i = n * 8; i < len; i++)
			tail |= (uint64_t)p[i] << (8 * (i - n * 8));
		h = ((h << 1) | (h >> 63)) + tail;
	}
	return h;
}

static bool in_one_ram_range(const struct boot_info *bi, uint64_t addr, uint64_t len)
{
	for (int i = 0; i < bi->nr_mem; i++) {
		const struct mem_entry *e = &bi->mem[i];
		if (e->type == MEM_TYPE_RAM && addr >= e->addr && addr - e->addr <= e->size &&
		    len <= e->size - (addr - e->addr))
			return true;
	}
	return false;
}

void check_initrd(const struct boot_info *bi, bool want_size, uint64_t size,
		  bool want_sum, uint64_t sum)
{
	uint64_t a = bi->initrd_addr, n = bi->initrd_size;

	if (!bi->have_initrd) {
		gprintf("initrd: none\n");
		if ((want_size && size) || want_sum)
			fail(FAIL_INITRD_SIZE, "no initrd, expected %lu bytes", size);
		return;
	}
	gprintf("initrd: %lu bytes at 0x%lx\n", n, a);
	if (want_size && n != size)
		fail(FAIL_INITRD_SIZE, "initrd is %lu bytes, expected %lu", n, size);
	if (a & 0xfff)
		fail(FAIL_INITRD_PLACE, "initrd at 0x%lx is not page aligned", a);
	if (!in_one_ram_range(bi, a, n))
		fail(FAIL_INITRD_PLACE, "initrd 0x%lx+%lu is not inside one RAM range", a, n);
	if (bi->initrd_addr_max && a + n - 1 > bi->initrd_addr_max)
		fail(FAIL_INITRD_PLACE, "initrd 0x%lx+%lu ends above initrd_addr_max 0x%lx", a, n,
		     bi->initrd_addr_max);
	if (a < (uintptr_t)__image_end && a + n > (uintptr_t)__image_start)
		fail(FAIL_INITRD_PLACE, "initrd 0x%lx+%lu overlaps the kernel", a, n);
	if (!want_sum)
		return;
	if (!phys_ok(a, n)) {
		fail(FAIL_INITRD_PLACE, "initrd 0x%lx+%lu is beyond 4 GiB", a, n);
		return;
	}
	uint64_t h = rotsum64(phys(a), n);
	gprintf("initrd: sum %lx\n", h);
	if (h != sum)
		fail(FAIL_INITRD_SUM, "initrd sum %lx, expected %lx", h, sum);
}
