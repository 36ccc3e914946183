/* boot.h - the built-in kernel loader: bzImage, ELF vmlinux, PVH ELF, initrd, boot structures. */
#ifndef MICROVM_BOOT_H
#define MICROVM_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "firmware/machine.h"
#include "base/guest_mem.h"

/* How the boot vCPU must be started. */
enum boot_mode {
	BOOT_LINUX64, /* 64-bit long mode, paging on (identity map), RSI = MV_ZERO_PAGE_GPA */
	BOOT_PVH,     /* 32-bit protected mode, paging off, EBX = MV_PVH_INFO_GPA */
};

/* Result of loading a kernel into guest memory. */
struct boot_kernel {
	enum boot_mode mode;
	uint64_t entry;          /* guest-physical entry point */
	uint64_t load_start;     /* lowest guest-physical byte occupied by the kernel */
	uint64_t load_end;       /* one past the highest */
	/* From the bzImage setup header when there is one, else defaults. */
	bool have_setup_header;
	uint8_t setup_header[0x290 - 0x1f1]; /* raw copy of bytes 0x1f1.. of the bzImage */
	uint64_t initrd_addr_max; /* highest address the initrd may end at (inclusive) */
	uint32_t cmdline_max;     /* max command line length without the NUL */
	char how[160];            /* which path was taken, for the log line */
};

/*
 * Load the kernel image (the whole file in data/len) into guest memory.
 * Detects the format by content:
 *   - bzImage ("HdrS" at 0x202): the compressed payload is decompressed on the
 *     host (gzip, LZ4 legacy, zstd, xz by magic) and the ELF inside is loaded
 *     as below; if the payload format is unknown, the protected-mode code is
 *     loaded and entered at its 64-bit entry (load address + 0x200), which
 *     needs XLF_KERNEL_64;
 *   - ELF64 x86-64: with a PVH note (XEN_ELFNOTE_PHYS32_ENTRY) -> BOOT_PVH,
 *     else PT_LOAD segments at p_paddr, 64-bit entry at e_entry -> BOOT_LINUX64;
 *   - gzip / zstd / xz / LZ4-frame compressed ELF: decompressed, then as ELF.
 * Every segment must lie inside RAM at or above MV_HIGH_MEM_START.
 * Returns 0 or -errno with err_msg() saying what is wrong with the file,
 * without naming it (the caller prefixes that); -ERANGE means a part of the
 * kernel lies past the end of guest RAM, so more RAM may help.
 */
int boot_load_kernel(const struct guest_mem *mem, const uint8_t *data, size_t len,
		     struct boot_kernel *out);

/*
 * Place the initrd (data/len) as high as possible, page aligned, ending at or
 * below min(initrd_addr_max + 1, end of low RAM) and above the kernel.
 * Returns 0 and its address in *gpa, or -ENOSPC ("N MiB does not fit: M MiB
 * free ...", without the file's name: the caller prefixes that) with err_msg().
 */
int boot_load_initrd(const struct guest_mem *mem, const struct machine *m,
		     const struct boot_kernel *k, const uint8_t *data, size_t len, uint64_t *gpa);

/*
 * Check the command line against what the kernel accepts (k->cmdline_max,
 * at most MV_CMDLINE_MAX - 1 bytes): 0, or -E2BIG with "N bytes, the kernel
 * accepts at most M" (the caller says what is that long). boot_write_params()
 * does the same check; call this right after boot_load_kernel() so the user
 * gets this message before anything else that embeds the command line (the
 * device tree) fails on it.
 */
int boot_check_cmdline(const struct boot_kernel *k, const char *cmdline);

/* Everything the boot structures point at. */
struct boot_params_in {
	const char *cmdline;     /* may be "" */
	uint64_t initrd_gpa, initrd_size;   /* size 0: none */
	uint64_t rsdp_gpa;       /* 0: none */
	uint64_t fdt_gpa;        /* guest address of the setup_data header; the FDT itself is
				  * already at fdt_gpa + 16; 0: none */
	uint32_t fdt_size;       /* FDT bytes */
};

/*
 * Write the command line (checked against k->cmdline_max: -E2BIG "command line:
 * N bytes, the kernel accepts at most M"), the identity-mapping page tables
 * (BOOT_LINUX64) and either the Linux zero page (boot_params with the e820
 * map, setup header, cmdline, initrd, acpi_rsdp_addr, setup_data chain) or
 * the PVH hvm_start_info (version 1, cmdline, modlist with the initrd,
 * memmap, rsdp). For BOOT_LINUX64 with fdt_gpa != 0 it also writes the
 * setup_data header (next 0, type SETUP_DTB, len fdt_size) at fdt_gpa and
 * links it from the zero page. Returns 0 or -errno with err_msg().
 */
int boot_write_params(const struct guest_mem *mem, const struct machine *m,
		      const struct boot_kernel *k, const struct boot_params_in *in);

#endif
