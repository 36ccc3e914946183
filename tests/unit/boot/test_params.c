/* test_params.c - boot_write_params(): command line, page tables, zero page fields and e820, setup_data, PVH start info. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "firmware/e820.h"
#include "helpers.h"
#include "base/err.h"

#define RAM (64 * MiB)
#define FDT_SIZE 0x345u

static struct guest_mem mem;
static struct machine mach;

static void setup(void)
{
	guest_setup(&mem, &mach, RAM);
}

static void teardown(void)
{
	guest_mem_unmap(&mem);
}

TestSuite(params, .init = setup, .fini = teardown);

static uint8_t *ram(uint64_t gpa, uint64_t len)
{
	uint8_t *p = gpa_to_host(&mem, gpa, len);
	cr_assert_not_null(p);
	return p;
}

static uint8_t zp8(size_t off) { return ram(MV_ZERO_PAGE_GPA + off, 1)[0]; }
static uint16_t zp16(size_t off) { return le16(ram(MV_ZERO_PAGE_GPA + off, 2)); }
static uint32_t zp32(size_t off) { return le32(ram(MV_ZERO_PAGE_GPA + off, 4)); }
static uint64_t zp64(size_t off) { return le64(ram(MV_ZERO_PAGE_GPA + off, 8)); }
static uint32_t si32(size_t off) { return le32(ram(MV_PVH_INFO_GPA + off, 4)); }
static uint64_t si64(size_t off) { return le64(ram(MV_PVH_INFO_GPA + off, 8)); }

/* A kernel as boot_load_kernel() returns it for a bzImage (protocol version given). */
static struct boot_kernel bz_kernel(uint16_t version, struct tbuf *image)
{
	struct tbz z = tbz_default();
	struct tbuf e = simple_elf(0x200000, 0x1000, 0, false, 0);
	struct boot_kernel k;

	z.version = version;
	z.payload = e.p;
	z.payload_len = e.len;
	*image = make_bzimage(&z);
	cr_assert_eq(boot_load_kernel(&mem, image->p, image->len, &k), 0, "%s", err_msg());
	tbuf_free(&e);
	return k;
}

static struct boot_kernel elf_kernel(bool pvh)
{
	struct tbuf e = simple_elf(0x200000, 0x1000, 0, pvh, 0x200000);
	struct boot_kernel k;

	cr_assert_eq(boot_load_kernel(&mem, e.p, e.len, &k), 0, "%s", err_msg());
	tbuf_free(&e);
	return k;
}

/* ---- command line ---- */

Test(params, cmdline_is_written)
{
	struct boot_kernel k = elf_kernel(false);
	struct boot_params_in in = { .cmdline = "console=ttyS0 quiet" };

	memset(ram(MV_CMDLINE_GPA, 64), 0xff, 64);
	cr_assert_eq(boot_write_params(&mem, &mach, &k, &in), 0, "%s", err_msg());
	cr_assert_str_eq((const char *)ram(MV_CMDLINE_GPA, 20), "console=ttyS0 quiet");
	cr_assert_eq(zp32(0x228), MV_CMDLINE_GPA);
	cr_assert_eq(zp32(0x0c8), 0);

	in.cmdline = NULL;   /* same as "" */
	cr_assert_eq(boot_write_params(&mem, &mach, &k, &in), 0, "%s", err_msg());
	cr_assert_eq(ram(MV_CMDLINE_GPA, 1)[0], 0);
}

Test(params, cmdline_too_long)
{
	struct tbuf image;
	struct boot_kernel k = bz_kernel(0x020f, &image);
	char *line = malloc(70001);

	memset(line, 'a', 70000);
	line[2048] = '\0';
	struct boot_params_in in = { .cmdline = line };
	cr_assert_eq(boot_write_params(&mem, &mach, &k, &in), -E2BIG);
	cr_assert_str_eq(err_msg(), "command line: 2048 bytes, the kernel accepts at most 2047");
	line[2047] = '\0';
	cr_assert_eq(boot_write_params(&mem, &mach, &k, &in), 0, "exactly the limit: %s", err_msg());
	cr_assert_eq(strlen((const char *)ram(MV_CMDLINE_GPA, 2048)), 2047);

	k = elf_kernel(false);
	line[2047] = line[2048] = 'a';
	line[70000] = '\0';
	cr_assert_eq(boot_write_params(&mem, &mach, &k, &in), -E2BIG);
	cr_assert_str_eq(err_msg(), "command line: 70000 bytes, the kernel accepts at most 65535");
	err_clear();
	/* Without a flag: vmm/vm.c adds "--cmdline: ". */
	cr_assert_eq(boot_check_cmdline(&k, line), -E2BIG);
	cr_assert_str_eq(err_msg(), "70000 bytes, the kernel accepts at most 65535");
	line[65535] = '\0';
	cr_assert_eq(boot_check_cmdline(&k, line), 0);
	cr_assert_eq(boot_check_cmdline(&k, NULL), 0);
	free(line);
	tbuf_free(&image);
}

/* ---- page tables ---- */

/* Translate va through the boot page tables in guest memory (2 MiB pages). */
static uint64_t walk(uint64_t va)
{
	uint64_t pml4e = le64(ram(MV_PML4_GPA + ((va >> 39) & 511) * 8, 8));
	cr_assert(pml4e & 1, "PML4 entry for 0x%llx not present", (unsigned long long)va);
	uint64_t pdpte = le64(ram((pml4e & ~0xfffULL) + ((va >> 30) & 511) * 8, 8));
	cr_assert(pdpte & 1, "PDPT entry for 0x%llx not present", (unsigned long long)va);
	cr_assert_eq(pdpte & 0x80, 0, "no 1 GiB pages");
	uint64_t pde = le64(ram((pdpte & ~0xfffULL) + ((va >> 21) & 511) * 8, 8));
	cr_assert(pde & 1, "PD entry for 0x%llx not present", (unsigned long long)va);
	cr_assert(pde & 0x80, "2 MiB page");
	cr_assert(pde & 2, "writable");
	return (pde & ~0x1fffffULL & 0x000fffffffffffffULL) | (va & 0x1fffff);
}

Test(params, identity_page_tables)
{
	struct boot_kernel k = elf_kernel(false);
	struct boot_params_in in = { .cmdline = "" };

	memset(ram(MV_PML4_GPA, 0x6000), 0xee, 0x6000);   /* stale bytes must go */
	cr_assert_eq(boot_write_params(&mem, &mach, &k, &in), 0, "%s", err_msg());
	const uint8_t *pml4 = ram(MV_PML4_GPA, 4096), *pdpt = ram(MV_PDPT_GPA, 4096);
	const uint8_t *pd = ram(MV_PD_GPA, 4 * 4096);

	cr_assert_eq(le64(pml4), MV_PDPT_GPA | 3);
	for (int i = 1; i < 512; i++)
		cr_assert_eq(le64(pml4 + i * 8), 0, "PML4[%d]", i);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(le64(pdpt + i * 8), (MV_PD_GPA + (uint64_t)i * 4096) | 3, "PDPT[%d]", i);
	for (int i = 4; i < 512; i++)
		cr_assert_eq(le64(pdpt + i * 8), 0, "PDPT[%d]", i);
	for (uint64_t i = 0; i < 2048; i++)
		cr_assert_eq(le64(pd + i * 8), (i << 21) | 0x83, "PD entry %llu", (unsigned long long)i);

	static const uint64_t probes[] = { 0, 0x1000, 0x200200, 0x12345678, 0xbfffffff, 0xfee00000,
					   0xffffffff };
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		cr_assert_eq(walk(probes[i]), probes[i], "0x%llx", (unsigned long long)probes[i]);
}

/* ---- Linux zero page ---- */

Test(params, zero_page_fields)
{
	struct tbuf image;
	struct boot_kernel k = bz_kernel(0x020f, &image);
	struct boot_params_in in = {
		.cmdline = "root=/dev/vda", .initrd_gpa = 0x3000000, .initrd_size = 0x12345,
		.rsdp_gpa = MV_ACPI_GPA, .fdt_gpa = MV_FDT_GPA, .fdt_size = FDT_SIZE,
	};

	memset(ram(MV_ZERO_PAGE_GPA, 4096), 0xee, 4096);
	cr_assert_eq(boot_write_params(&mem, &mach, &k, &in), 0, "%s", err_msg());

	/* The bzImage's header, with the loader's fields filled in. */
	static const struct { size_t off, len; } same[] = {
		{ 0x1f1, 9 },      /* setup_sects .. ram_size */
		{ 0x1fc, 0x14 },   /* root_dev .. kernel_version */
		{ 0x212, 6 },      /* setup_move_size, code32_start */
		{ 0x220, 8 },      /* bootsect_kludge .. ext_loader_type */
		{ 0x22c, 0x24 },   /* initrd_addr_max .. payload_length */
		{ 0x258, 0x14 },   /* pref_address .. kernel_info_offset */
	};
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
		cr_assert_eq(memcmp(ram(MV_ZERO_PAGE_GPA + same[i].off, same[i].len), image.p + same[i].off,
				    same[i].len), 0, "header bytes at 0x%zx", same[i].off);
	cr_assert_eq(memcmp(ram(MV_ZERO_PAGE_GPA + 0x202, 4), "HdrS", 4), 0);
	cr_assert_eq(zp16(0x206), 0x020f);
	cr_assert_eq(zp16(0x1fa), 0xffff, "vid_mode");
	cr_assert_eq(zp8(0x210), 0xff, "type_of_loader");
	cr_assert(zp8(0x211) & LOADED_HIGH);
	cr_assert_eq(zp32(0x228), MV_CMDLINE_GPA, "cmd_line_ptr");
	cr_assert_eq(zp32(0x0c8), 0, "ext_cmd_line_ptr");
	cr_assert_eq(zp32(0x218), 0x3000000, "ramdisk_image");
	cr_assert_eq(zp32(0x21c), 0x12345, "ramdisk_size");
	cr_assert_eq(zp32(0x0c0), 0, "ext_ramdisk_image");
	cr_assert_eq(zp32(0x0c4), 0, "ext_ramdisk_size");
	cr_assert_eq(zp64(0x070), MV_ACPI_GPA, "acpi_rsdp_addr");
	cr_assert_eq(zp64(0x250), MV_FDT_GPA, "setup_data");
	cr_assert_eq(zp8(0x1ef), 0, "sentinel");
	cr_assert_eq(zp8(0x000), 0, "screen_info cleared");
	cr_assert_eq(zp8(0xfff), 0, "last byte cleared");

	/* The e820 map is e820_build()'s. */
	struct e820_entry want[128];
	int n = e820_build(&mach, want, 128);
	cr_assert_gt(n, 0);
	cr_assert_eq(zp8(0x1e8), n, "e820_entries");
	for (int i = 0; i < n; i++) {
		size_t off = 0x2d0 + 20 * (size_t)i;
		cr_assert_eq(zp64(off), want[i].addr, "e820[%d].addr", i);
		cr_assert_eq(zp64(off + 8), want[i].size, "e820[%d].size", i);
		cr_assert_eq(zp32(off + 16), want[i].type, "e820[%d].type", i);
	}
	cr_assert_eq(zp64(0x2d0 + 20 * (size_t)n), 0, "nothing after the map");
	/* Known shape of a 64 MiB machine. */
	cr_assert_eq(zp64(0x2d0 + 20 * (size_t)(n - 1)), 0x100000);
	cr_assert_eq(zp64(0x2d0 + 20 * (size_t)(n - 1) + 8), RAM - 0x100000);

	/* The SETUP_DTB header in front of the FDT. */
	const uint8_t *sd = ram(MV_FDT_GPA, 16);
	cr_assert_eq(le64(sd), 0, "next");
	cr_assert_eq(le32(sd + 8), 2, "type SETUP_DTB");
	cr_assert_eq(le32(sd + 12), FDT_SIZE, "len");
	tbuf_free(&image);
}

Test(params, zero_page_without_initrd_or_fdt)
{
	struct boot_kernel k = elf_kernel(false);
	struct boot_params_in in = { .cmdline = "x" };

	memset(ram(MV_FDT_GPA, 16), 0xee, 16);
	cr_assert_eq(boot_write_params(&mem, &mach, &k, &in), 0, "%s", err_msg());
	cr_assert_eq(zp32(0x218), 0);
	cr_assert_eq(zp32(0x21c), 0);
	cr_assert_eq(zp64(0x250), 0, "no setup_data");
	cr_assert_eq(zp64(0x070), 0, "no RSDP");
	cr_assert_eq(ram(MV_FDT_GPA, 1)[0], 0xee, "setup_data header not written");
	/* The synthesized header of a plain ELF. */
	cr_assert_eq(memcmp(ram(MV_ZERO_PAGE_GPA + 0x202, 4), "HdrS", 4), 0);
	cr_assert_eq(zp16(0x1fe), 0xaa55);
	cr_assert_eq(zp16(0x206), 0x020f);
	cr_assert_eq(zp32(0x22c), 0x7fffffff, "initrd_addr_max");
	cr_assert_eq(zp32(0x230), 2 << 20, "kernel_alignment");
	cr_assert_eq(zp32(0x238), MV_CMDLINE_MAX - 1, "cmdline_size");
	cr_assert_eq(zp8(0x211) & LOADED_HIGH, LOADED_HIGH);
}

Test(params, initrd_above_4_gib_uses_the_ext_fields)
{
	struct guest_mem big;
	struct machine m;
	gpa_t starts[2] = { 0, 0x100000000ULL };
	uint64_t sizes[2] = { 0xc0000000ULL, 0x40000000ULL };

	cr_assert_eq(guest_mem_map(&big, starts, sizes, 2), 0, "%s", err_msg());
	cr_assert_eq(machine_init(&m, 4ULL << 30, 1), 0);
	struct boot_kernel k = elf_kernel(false);
	struct boot_params_in in = { .cmdline = "", .initrd_gpa = 0x123456000ULL, .initrd_size = 0x1000 };
	cr_assert_eq(boot_write_params(&big, &m, &k, &in), 0, "%s", err_msg());
	const uint8_t *bp = gpa_to_host(&big, MV_ZERO_PAGE_GPA, 4096);
	cr_assert_eq(le32(bp + 0x218), 0x23456000);
	cr_assert_eq(le32(bp + 0x0c0), 0x1);
	cr_assert_eq(le32(bp + 0x21c), 0x1000);
	/* e820: RAM above 4 GiB is the last entry. */
	unsigned n = bp[0x1e8];
	cr_assert_geq(n, 4);
	cr_assert_eq(le64(bp + 0x2d0 + 20 * (n - 1)), 0x100000000ULL);
	cr_assert_eq(le64(bp + 0x2d0 + 20 * (n - 1) + 8), 0x40000000ULL);
	cr_assert_eq(le32(bp + 0x2d0 + 20 * (n - 1) + 16), E820_RAM);
	guest_mem_unmap(&big);
}

Test(params, old_protocol_gets_no_setup_data_link)
{
	struct tbuf image;
	struct boot_kernel k = bz_kernel(0x0208, &image);
	struct boot_params_in in = { .cmdline = "", .fdt_gpa = MV_FDT_GPA, .fdt_size = FDT_SIZE };

	cr_assert_eq(boot_write_params(&mem, &mach, &k, &in), 0, "%s", err_msg());
	cr_assert_eq(zp64(0x250), 0, "setup_data is a 2.09 field");
	tbuf_free(&image);
}

Test(params, header_synthesized_for_a_bare_boot_kernel)
{
	struct boot_kernel k;
	struct boot_params_in in = { .cmdline = "" };

	memset(&k, 0, sizeof(k));
	k.mode = BOOT_LINUX64;
	k.cmdline_max = 100;
	cr_assert_eq(boot_write_params(&mem, &mach, &k, &in), 0, "%s", err_msg());
	cr_assert_eq(memcmp(ram(MV_ZERO_PAGE_GPA + 0x202, 4), "HdrS", 4), 0);
	cr_assert_eq(zp8(0x210), 0xff);
}

Test(params, bad_ranges)
{
	struct boot_kernel k = elf_kernel(false);
	struct boot_params_in in = { .cmdline = "", .fdt_gpa = RAM - 0x100, .fdt_size = 0x1000 };

	cr_assert_eq(boot_write_params(&mem, &mach, &k, &in), -EFAULT);
	cr_assert(strstr(err_msg(), "device tree at") != NULL, "%s", err_msg());
	in.fdt_gpa = 0;
	in.initrd_gpa = RAM - 0x1000;
	in.initrd_size = 0x2000;
	cr_assert_eq(boot_write_params(&mem, &mach, &k, &in), -EFAULT);
	cr_assert(strstr(err_msg(), "initrd at") != NULL, "%s", err_msg());
}

/* ---- PVH ---- */

Test(params, pvh_start_info)
{
	struct boot_kernel k = elf_kernel(true);
	struct boot_params_in in = {
		.cmdline = "pvh!", .initrd_gpa = 0x3000000, .initrd_size = 0x4321,
		.rsdp_gpa = MV_ACPI_GPA, .fdt_gpa = MV_FDT_GPA, .fdt_size = FDT_SIZE,
	};

	cr_assert_eq(k.mode, BOOT_PVH);
	memset(ram(MV_PVH_INFO_GPA, 4096), 0xee, 4096);
	memset(ram(MV_ZERO_PAGE_GPA, 4096), 0xee, 4096);
	memset(ram(MV_PML4_GPA, 8), 0xee, 8);
	cr_assert_eq(boot_write_params(&mem, &mach, &k, &in), 0, "%s", err_msg());

	cr_assert_eq(si32(0), 0x336ec578, "magic");
	cr_assert_eq(si32(4), 1, "version");
	cr_assert_eq(si32(8), 0, "flags");
	cr_assert_eq(si32(12), 1, "nr_modules");
	cr_assert_eq(si64(24), MV_CMDLINE_GPA, "cmdline_paddr");
	cr_assert_str_eq((const char *)ram(MV_CMDLINE_GPA, 5), "pvh!");
	cr_assert_eq(si64(32), MV_ACPI_GPA, "rsdp_paddr");
	cr_assert_eq(si32(52), 0, "reserved");

	uint64_t ml = si64(16);
	cr_assert(ml > MV_PVH_INFO_GPA && ml + 32 <= MV_PVH_INFO_GPA + 4096, "modlist in the same page");
	cr_assert_eq(ml % 8, 0);
	const uint8_t *mod = ram(ml, 32);
	cr_assert_eq(le64(mod), 0x3000000, "module paddr");
	cr_assert_eq(le64(mod + 8), 0x4321, "module size");
	cr_assert_eq(le64(mod + 16), 0, "module cmdline");
	cr_assert_eq(le64(mod + 24), 0, "reserved");

	struct e820_entry want[32];
	int n = e820_build(&mach, want, 32);
	uint64_t mm = si64(40);
	cr_assert_eq(si32(48), (uint32_t)n, "memmap_entries");
	cr_assert(mm >= ml + 32 && mm + 24 * (uint64_t)n <= MV_PVH_INFO_GPA + 4096, "memmap in the page");
	cr_assert_eq(mm % 8, 0);
	for (int i = 0; i < n; i++) {
		const uint8_t *e = ram(mm + 24 * (uint64_t)i, 24);
		cr_assert_eq(le64(e), want[i].addr, "memmap[%d].addr", i);
		cr_assert_eq(le64(e + 8), want[i].size, "memmap[%d].size", i);
		cr_assert_eq(le32(e + 16), want[i].type, "memmap[%d].type", i);
		cr_assert_eq(le32(e + 20), 0, "memmap[%d].reserved", i);
	}

	/* Nothing of the Linux protocol is written for PVH. */
	cr_assert_eq(ram(MV_ZERO_PAGE_GPA, 1)[0], 0xee, "zero page untouched");
	cr_assert_eq(ram(MV_PML4_GPA, 1)[0], 0xee, "page tables untouched");
}

Test(params, pvh_without_initrd)
{
	struct boot_kernel k = elf_kernel(true);
	struct boot_params_in in = { .cmdline = "" };

	memset(ram(MV_PVH_INFO_GPA, 4096), 0xee, 4096);
	cr_assert_eq(boot_write_params(&mem, &mach, &k, &in), 0, "%s", err_msg());
	cr_assert_eq(si32(12), 0, "nr_modules");
	cr_assert_eq(si64(16), 0, "modlist_paddr: not present");
	cr_assert_eq(si64(32), 0, "rsdp_paddr: not present");
	cr_assert_gt(si32(48), 0);
}
