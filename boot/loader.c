/* loader.c - boot_load_kernel() and boot_load_initrd(): picks the format, places the kernel and initrd in guest RAM. */
#include "boot/boot.h"
#include "boot/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

#define PAGE_SIZE 4096ULL
#define FOUR_GIB  (1ULL << 32)

static uint64_t ram_bytes(const struct guest_mem *mem)
{
	uint64_t n = 0;

	for (int i = 0; i < mem->nr; i++)
		n += mem->region[i].size;
	return n;
}

/*
 * The one message for a kernel range that is not usable RAM: -EINVAL below
 * 1 MiB (only relinking helps), -ERANGE past the end of RAM (more RAM may).
 */
static int outside_ram(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	if (gpa < MV_HIGH_MEM_START)
		return err_set(EINVAL, "segment at 0x%llx (+0x%llx bytes) is below 1 MiB, "
			       "where microvm keeps the boot structures; relink the kernel at or "
			       "above 0x100000", (unsigned long long)gpa, (unsigned long long)len);
	return err_set(ERANGE, "segment at 0x%llx (+0x%llx bytes) is outside guest RAM (%llu MiB)",
		       (unsigned long long)gpa, (unsigned long long)len,
		       (unsigned long long)(ram_bytes(mem) >> 20));
}

static bool usable(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	return gpa >= MV_HIGH_MEM_START && gpa_range_ok(mem, gpa, len);
}

/* Largest output a decompressor may produce: the kernel has to fit in RAM anyway. */
static size_t decompress_cap(const struct guest_mem *mem)
{
	uint64_t cap = ram_bytes(mem);

	if (cap > DECOMPRESS_MAX)
		cap = DECOMPRESS_MAX;
	return cap ? (size_t)cap : 1;
}

/*
 * Copy the PT_LOAD segments of a parsed ELF into guest RAM and zero their bss.
 * All segments are checked before the first byte is written.
 */
static int load_segments(const struct guest_mem *mem, const uint8_t *data,
			 const struct elf_info *ei, uint64_t entry, struct boot_kernel *out)
{
	bool entry_inside = false;

	for (int i = 0; i < ei->nr_segs; i++) {
		const struct elf_segment *s = &ei->seg[i];
		if (!usable(mem, s->paddr, s->memsz))
			return outside_ram(mem, s->paddr, s->memsz);
		if (entry >= s->paddr && entry - s->paddr < s->memsz)
			entry_inside = true;
	}
	if (!entry_inside)
		return err_set(EINVAL, "the entry point 0x%llx is not inside a loaded segment",
			       (unsigned long long)entry);
	if (entry >= FOUR_GIB)
		return err_set(EINVAL, "the entry point 0x%llx is above 4 GiB, outside the "
			       "boot page tables", (unsigned long long)entry);
	for (int i = 0; i < ei->nr_segs; i++) {
		const struct elf_segment *s = &ei->seg[i];
		uint8_t *dst = gpa_to_host(mem, s->paddr, s->memsz);   /* checked above */
		memcpy(dst, data + s->offset, s->filesz);
		memset(dst + s->filesz, 0, s->memsz - s->filesz);
	}
	out->entry = entry;
	out->load_start = ei->lowest;
	out->load_end = ei->highest;
	return 0;
}

/* A plain (possibly decompressed) ELF: PVH when it has the note, else the 64-bit protocol. */
static int load_elf(const struct guest_mem *mem, const uint8_t *data, size_t len,
		    const char *what, struct boot_kernel *out)
{
	struct elf_info ei;
	int ret;

	if ((ret = elf_parse(data, len, &ei)) < 0)
		return ret;
	if (ei.have_pvh) {
		if ((ret = load_segments(mem, data, &ei, ei.pvh_entry, out)) < 0)
			return ret;
		out->mode = BOOT_PVH;
		snprintf(out->how, sizeof(out->how), "%s: PVH note found, entering at 0x%llx "
			 "(32-bit PVH boot protocol)", what, (unsigned long long)out->entry);
	} else {
		if ((ret = load_segments(mem, data, &ei, ei.entry, out)) < 0)
			return ret;
		out->mode = BOOT_LINUX64;
		snprintf(out->how, sizeof(out->how), "%s: no PVH note, entering at 0x%llx "
			 "(64-bit boot protocol)", what, (unsigned long long)out->entry);
	}
	/* The synthesized header only feeds the zero page; have_setup_header stays false. */
	bzimage_default_header(out->setup_header, sizeof(out->setup_header));
	out->initrd_addr_max = 0x7fffffff;
	out->cmdline_max = (uint32_t)(MV_CMDLINE_MAX - 1);
	return 0;
}

/* Unknown payload: load the protected-mode code and enter its own 64-bit entry. */
static int load_bz_fallback(const struct guest_mem *mem, const uint8_t *data,
			    const struct bzimage_info *bi, struct boot_kernel *out)
{
	uint64_t load = BZ_DEFAULT_LOAD;

	if (!(bi->xloadflags & XLF_KERNEL_64))
		return err_set(ENOEXEC, "unknown payload format and no 64-bit entry point "
			       "(XLF_KERNEL_64 not set); microvm needs a gzip, LZ4, zstd or xz payload "
			       "or a 64-bit bzImage");
	if (bi->relocatable) {
		uint64_t a = bi->kernel_alignment;
		if (a == 0 || (a & (a - 1)))
			return err_set(EINVAL, "kernel_alignment 0x%llx is not a power of two",
				       (unsigned long long)a);
		load = bi->pref_address;
		if (load < MV_HIGH_MEM_START)
			load = MV_HIGH_MEM_START;
		if (load > UINT64_MAX - (a - 1))
			return outside_ram(mem, load, bi->pm_len);
		load = (load + a - 1) & ~(a - 1);
	}
	uint64_t need = bi->init_size > bi->pm_len ? bi->init_size : bi->pm_len;
	if (!usable(mem, load, need))
		return outside_ram(mem, load, need);
	if (load + need > FOUR_GIB)
		return err_set(EINVAL, "the kernel at 0x%llx would run past 4 GiB, outside "
			       "the boot page tables", (unsigned long long)load);
	/* The rest of init_size is the kernel's to clear: touching it would commit host memory. */
	uint8_t *dst = gpa_to_host(mem, load, bi->pm_len);
	memcpy(dst, data + bi->pm_offset, bi->pm_len);
	out->mode = BOOT_LINUX64;
	out->entry = load + BZ_ENTRY64_OFFSET;
	out->load_start = load;
	out->load_end = load + need;
	/* Tell the kernel where it was put, as a 32-bit loader would. */
	uint32_t code32 = (uint32_t)load;   /* below 4 GiB: RAM there ends at 3 GiB */
	/* Offset first: setup_header + 0x214 alone would point past the array (undefined behaviour). */
	memcpy(out->setup_header + (HDR_AT(code32_start) - SETUP_HDR_OFFSET), &code32, sizeof(code32));
	snprintf(out->how, sizeof(out->how), "bzImage: unknown payload format, entering the bzImage's "
		 "own 64-bit entry at 0x%llx", (unsigned long long)out->entry);
	return 0;
}

static int load_bzimage(const struct guest_mem *mem, const uint8_t *data, size_t len,
			struct boot_kernel *out)
{
	struct bzimage_info bi;
	struct elf_info ei;
	uint8_t *dec = NULL;
	size_t dec_len;
	const uint8_t *elf;
	size_t elf_len;
	enum comp_format f = COMP_NONE;
	int ret;

	if ((ret = bzimage_parse(data, len, &bi)) < 0)
		return ret;
	memcpy(out->setup_header, data + SETUP_HDR_OFFSET, bi.hdr_len);
	out->have_setup_header = true;
	out->initrd_addr_max = bi.initrd_addr_max;
	out->cmdline_max = bi.cmdline_size < MV_CMDLINE_MAX - 1 ? bi.cmdline_size
								 : (uint32_t)(MV_CMDLINE_MAX - 1);

	const uint8_t *payload = data + bi.payload_offset;
	if (elf_detect(payload, bi.payload_len)) {
		elf = payload;   /* CONFIG_KERNEL_UNCOMPRESSED */
		elf_len = bi.payload_len;
	} else {
		f = comp_detect(payload, bi.payload_len);
		if (f == COMP_NONE)
			return load_bz_fallback(mem, data, &bi, out);
		ret = decompress(payload, bi.payload_len, decompress_cap(mem), &dec, &dec_len);
		if (ret < 0)
			return err_prefix(ret, "cannot decompress the %s payload", comp_name(f));
		elf = dec;
		elf_len = dec_len;
	}

	if ((ret = elf_parse(elf, elf_len, &ei)) < 0) {
		ret = err_prefix(ret, "%s payload", f == COMP_NONE ? "uncompressed" : comp_name(f));
		goto out;
	}
	/* A bzImage always takes the 64-bit protocol: its zero page is what Linux expects. */
	if ((ret = load_segments(mem, elf, &ei, ei.entry, out)) < 0)
		goto out;
	out->mode = BOOT_LINUX64;
	if (f == COMP_NONE)
		snprintf(out->how, sizeof(out->how), "bzImage: uncompressed ELF payload (%.2f MiB), "
			 "entering the ELF at 0x%llx (64-bit boot protocol)", boot_mib(elf_len),
			 (unsigned long long)out->entry);
	else
		snprintf(out->how, sizeof(out->how), "bzImage: %s payload (%.2f MiB -> %.2f MiB) "
			 "decompressed on the host, entering the ELF at 0x%llx (64-bit boot protocol)",
			 comp_name(f), boot_mib(bi.payload_len), boot_mib(elf_len),
			 (unsigned long long)out->entry);
out:
	free(dec);
	return ret;
}

int boot_load_kernel(const struct guest_mem *mem, const uint8_t *data, size_t len,
		     struct boot_kernel *out)
{
	memset(out, 0, sizeof(*out));
	if (bzimage_detect(data, len))
		return load_bzimage(mem, data, len, out);
	if (elf_detect(data, len))
		return load_elf(mem, data, len, "ELF", out);

	enum comp_format f = comp_detect(data, len);
	if (f == COMP_NONE)
		return err_set(ENOEXEC, "not a bzImage or an x86-64 ELF kernel");

	uint8_t *dec;
	size_t dec_len;
	int ret = decompress(data, len, decompress_cap(mem), &dec, &dec_len);
	if (ret < 0)
		return err_prefix(ret, "cannot decompress the %s file", comp_name(f));
	if (!elf_detect(dec, dec_len)) {
		ret = err_set(ENOEXEC, "not a bzImage or an x86-64 ELF kernel (%s-compressed "
			      "data without an ELF inside)", comp_name(f));
	} else {
		char what[128];
		snprintf(what, sizeof(what), "%s-compressed ELF (%.2f MiB -> %.2f MiB, decompressed on "
			 "the host)", comp_name(f), boot_mib(len), boot_mib(dec_len));
		ret = load_elf(mem, dec, dec_len, what, out);
	}
	free(dec);
	return ret;
}

int boot_load_initrd(const struct guest_mem *mem, const struct machine *m,
		     const struct boot_kernel *k, const uint8_t *data, size_t len, uint64_t *gpa)
{
	uint64_t top = machine_low_ram_end(m);
	uint64_t bottom = k->load_end > MV_HIGH_MEM_START ? k->load_end : MV_HIGH_MEM_START;

	/* initrd_addr_max is the highest byte the initrd may occupy. */
	if ((uint64_t)k->initrd_addr_max + 1 < top)
		top = (uint64_t)k->initrd_addr_max + 1;
	/* top need not be page aligned: only the start is, and it rounds down. */
	bottom = (bottom + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	uint64_t room = top > bottom ? top - bottom : 0;
	if (len > room)
		return err_set(ENOSPC, "%.2f MiB does not fit: %.2f MiB free between the "
			       "kernel and the initrd limit", boot_mib(len), boot_mib(room));
	uint64_t at = (top - len) & ~(PAGE_SIZE - 1);
	int ret = guest_write(mem, at, data, len);
	if (ret < 0)
		return ret;
	*gpa = at;
	return 0;
}
