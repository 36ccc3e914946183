/* params.c - boot_write_params(): command line, identity page tables, Linux zero page or PVH start info. */
#include "boot/boot.h"
#include "boot/internal.h"

#include <errno.h>
#include <string.h>

#include "firmware/e820.h"
#include "base/err.h"

#define PAGE_SIZE 4096ULL
#define PD_COUNT  4          /* page directories: 4 x 1 GiB */
#define PD_ENTRIES 512

_Static_assert(MV_PD_GPA + PD_COUNT * PAGE_SIZE <= MV_CMDLINE_GPA, "page directories fit below the cmdline");
_Static_assert(MV_ZERO_PAGE_GPA + PAGE_SIZE <= MV_PML4_GPA, "zero page and page tables are apart");
_Static_assert(PVH_MEMMAP_MAX >= 8, "the PVH page holds a useful memory map");

int boot_write_page_tables(const struct guest_mem *mem)
{
	uint64_t *pml4 = gpa_to_host(mem, MV_PML4_GPA, PAGE_SIZE);
	uint64_t *pdpt = gpa_to_host(mem, MV_PDPT_GPA, PAGE_SIZE);
	uint64_t *pd = gpa_to_host(mem, MV_PD_GPA, PD_COUNT * PAGE_SIZE);

	if (!pml4 || !pdpt || !pd)
		return err_set(EFAULT, "boot page tables at 0x%llx are outside guest RAM",
			       (unsigned long long)MV_PML4_GPA);
	memset(pml4, 0, PAGE_SIZE);
	memset(pdpt, 0, PAGE_SIZE);
	pml4[0] = MV_PDPT_GPA | PTE_PRESENT | PTE_RW;
	for (uint64_t i = 0; i < PD_COUNT; i++)
		pdpt[i] = (MV_PD_GPA + i * PAGE_SIZE) | PTE_PRESENT | PTE_RW;
	/* 2048 entries of 2 MiB each: the first 4 GiB, identity mapped. */
	for (uint64_t i = 0; i < PD_COUNT * PD_ENTRIES; i++)
		pd[i] = (i << 21) | PTE_PRESENT | PTE_RW | PTE_PS;
	return 0;
}

int boot_check_cmdline(const struct boot_kernel *k, const char *cmdline)
{
	size_t n = cmdline ? strlen(cmdline) : 0;
	uint64_t max = k->cmdline_max;

	if (max > MV_CMDLINE_MAX - 1)
		max = MV_CMDLINE_MAX - 1;
	if (n > max)
		return err_set(E2BIG, "%zu bytes, the kernel accepts at most %llu", n,
			       (unsigned long long)max);
	return 0;
}

static int write_cmdline(const struct guest_mem *mem, const struct boot_kernel *k, const char *cmdline)
{
	int ret = boot_check_cmdline(k, cmdline);

	if (ret < 0)
		return err_prefix(ret, "command line");
	return guest_write(mem, MV_CMDLINE_GPA, cmdline, strlen(cmdline) + 1);
}

static int write_zero_page(const struct guest_mem *mem, const struct machine *m,
			   const struct boot_kernel *k, const struct boot_params_in *in)
{
	struct boot_params bp;
	struct e820_entry e820[E820_MAX_ZEROPAGE];
	int n, ret;

	memset(&bp, 0, sizeof(bp));
	_Static_assert(sizeof(k->setup_header) == SETUP_HDR_END - SETUP_HDR_OFFSET, "header copy");
	memcpy((uint8_t *)&bp + SETUP_HDR_OFFSET, k->setup_header, sizeof(k->setup_header));
	if (bp.hdr.header != SETUP_HDR_MAGIC)   /* a caller-made boot_kernel without a header */
		bzimage_default_header((uint8_t *)&bp + SETUP_HDR_OFFSET, sizeof(k->setup_header));

	bp.hdr.type_of_loader = 0xff;   /* "undefined" loader */
	bp.hdr.loadflags |= LOADED_HIGH;
	bp.hdr.vid_mode = 0xffff;       /* "normal" */
	bp.hdr.cmd_line_ptr = (uint32_t)MV_CMDLINE_GPA;
	bp.ext_cmd_line_ptr = (uint32_t)(MV_CMDLINE_GPA >> 32);
	bp.hdr.ramdisk_image = (uint32_t)in->initrd_gpa;
	bp.ext_ramdisk_image = (uint32_t)(in->initrd_gpa >> 32);
	bp.hdr.ramdisk_size = (uint32_t)in->initrd_size;
	bp.ext_ramdisk_size = (uint32_t)(in->initrd_size >> 32);
	if (in->initrd_size == 0)
		bp.hdr.ramdisk_image = bp.ext_ramdisk_image = 0;
	bp.acpi_rsdp_addr = in->rsdp_gpa;

	if ((n = e820_build(m, e820, E820_MAX_ZEROPAGE)) < 0)
		return n;
	for (int i = 0; i < n; i++)
		bp.e820_table[i] = e820[i];
	bp.e820_entries = (uint8_t)n;

	bp.hdr.setup_data = 0;
	if (in->fdt_gpa) {
		struct setup_data sd = { .next = 0, .type = SETUP_DTB, .len = in->fdt_size };
		if (!gpa_range_ok(mem, in->fdt_gpa, sizeof(sd) + (uint64_t)in->fdt_size))
			return err_set(EFAULT, "device tree at 0x%llx (+%u bytes) is outside guest RAM",
				       (unsigned long long)in->fdt_gpa, in->fdt_size);
		if ((ret = guest_write(mem, in->fdt_gpa, &sd, sizeof(sd))) < 0)
			return ret;
		/* setup_data exists from boot protocol 2.09 on; older kernels never look. */
		if (bp.hdr.version >= 0x0209)
			bp.hdr.setup_data = in->fdt_gpa;
	}
	return guest_write(mem, MV_ZERO_PAGE_GPA, &bp, sizeof(bp));
}

static int write_pvh_info(const struct guest_mem *mem, const struct machine *m,
			  const struct boot_params_in *in)
{
	uint8_t page[PAGE_SIZE];
	struct e820_entry e820[PVH_MEMMAP_MAX];
	struct hvm_start_info si = {
		.magic = HVM_START_MAGIC,
		.version = HVM_START_VERSION,
		.cmdline_paddr = MV_CMDLINE_GPA,
		.rsdp_paddr = in->rsdp_gpa,
		.memmap_paddr = PVH_MEMMAP_GPA,
	};
	int n;

	memset(page, 0, sizeof(page));
	if (in->initrd_size) {
		struct hvm_modlist_entry mod = { .paddr = in->initrd_gpa, .size = in->initrd_size };
		si.nr_modules = 1;
		si.modlist_paddr = PVH_MODLIST_GPA;
		memcpy(page + (PVH_MODLIST_GPA - MV_PVH_INFO_GPA), &mod, sizeof(mod));
	}
	if ((n = e820_build(m, e820, (int)PVH_MEMMAP_MAX)) < 0)
		return n;
	for (int i = 0; i < n; i++) {
		struct hvm_memmap_table_entry me = {
			/* hvm memmap types are the e820 types. */
			.addr = e820[i].addr, .size = e820[i].size, .type = e820[i].type,
		};
		memcpy(page + (PVH_MEMMAP_GPA - MV_PVH_INFO_GPA) + (size_t)i * sizeof(me), &me, sizeof(me));
	}
	si.memmap_entries = (uint32_t)n;
	memcpy(page, &si, sizeof(si));
	return guest_write(mem, MV_PVH_INFO_GPA, page, sizeof(page));
}

int boot_write_params(const struct guest_mem *mem, const struct machine *m,
		      const struct boot_kernel *k, const struct boot_params_in *in)
{
	int ret;

	if ((ret = write_cmdline(mem, k, in->cmdline ? in->cmdline : "")) < 0)
		return ret;
	if (in->initrd_size && !gpa_range_ok(mem, in->initrd_gpa, in->initrd_size))
		return err_set(EFAULT, "initrd at 0x%llx (+0x%llx bytes) is outside guest RAM",
			       (unsigned long long)in->initrd_gpa, (unsigned long long)in->initrd_size);
	if (k->mode == BOOT_PVH)
		return write_pvh_info(mem, m, in);
	if ((ret = boot_write_page_tables(mem)) < 0)
		return ret;
	return write_zero_page(mem, m, k, in);
}
