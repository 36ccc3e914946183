/* internal.h - boot/ private: boot protocol structures and the pure parsers the loader is built from. */
#ifndef MICROVM_BOOT_INTERNAL_H
#define MICROVM_BOOT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "boot/boot.h"
#include "firmware/e820.h"

/*
 * Everything here works on byte buffers and touches no guest memory, so the
 * unit tests call it directly. Every function returns 0 or -errno and sets a
 * message with err_set() that does NOT name the file: boot_load_kernel()
 * prefixes "--kernel NAME: ".
 */

/* ------------------------------------------------------------------------ */
/* Linux x86 boot protocol (Documentation/arch/x86/boot.rst, zero-page.rst)  */
/* ------------------------------------------------------------------------ */

#define SETUP_HDR_OFFSET   0x1f1     /* the setup header starts here, in the file and in boot_params */
#define SETUP_HDR_END      0x290     /* boot_params reserves up to here for it */
#define SETUP_HDR_MAGIC    0x53726448 /* "HdrS" little endian, at 0x202 */
#define BOOT_FLAG_MAGIC    0xaa55
#define BZ_SECTOR          512
#define BZ_MIN_VERSION     0x0208    /* payload_offset/length need 2.08 */
#define BZ_DEFAULT_LOAD    0x100000ULL /* code32_start of a non-relocatable kernel */
#define BZ_ENTRY64_OFFSET  0x200     /* 64-bit entry relative to the protected-mode code */

/* loadflags */
#define LOADED_HIGH        0x01
#define CAN_USE_HEAP       0x80
/* xloadflags */
#define XLF_KERNEL_64      0x0001
#define XLF_CAN_BE_LOADED_ABOVE_4G 0x0002

#define SETUP_DTB          2         /* setup_data type of a flattened device tree */
#define E820_MAX_ZEROPAGE  128       /* e820_table[] entries in boot_params */

/* The setup header as it appears at 0x1f1 (boot protocol 2.15). */
struct setup_header {
	uint8_t  setup_sects;
	uint16_t root_flags;
	uint32_t syssize;
	uint16_t ram_size;
	uint16_t vid_mode;
	uint16_t root_dev;
	uint16_t boot_flag;
	uint16_t jump;
	uint32_t header;
	uint16_t version;
	uint32_t realmode_swtch;
	uint16_t start_sys_seg;
	uint16_t kernel_version;
	uint8_t  type_of_loader;
	uint8_t  loadflags;
	uint16_t setup_move_size;
	uint32_t code32_start;
	uint32_t ramdisk_image;
	uint32_t ramdisk_size;
	uint32_t bootsect_kludge;
	uint16_t heap_end_ptr;
	uint8_t  ext_loader_ver;
	uint8_t  ext_loader_type;
	uint32_t cmd_line_ptr;
	uint32_t initrd_addr_max;
	uint32_t kernel_alignment;
	uint8_t  relocatable_kernel;
	uint8_t  min_alignment;
	uint16_t xloadflags;
	uint32_t cmdline_size;
	uint32_t hardware_subarch;
	uint64_t hardware_subarch_data;
	uint32_t payload_offset;
	uint32_t payload_length;
	uint64_t setup_data;
	uint64_t pref_address;
	uint32_t init_size;
	uint32_t handover_offset;
	uint32_t kernel_info_offset;
} __attribute__((packed));

#define HDR_AT(field) (SETUP_HDR_OFFSET + offsetof(struct setup_header, field))
_Static_assert(HDR_AT(setup_sects) == 0x1f1, "setup_sects");
_Static_assert(HDR_AT(syssize) == 0x1f4, "syssize");
_Static_assert(HDR_AT(vid_mode) == 0x1fa, "vid_mode");
_Static_assert(HDR_AT(boot_flag) == 0x1fe, "boot_flag");
_Static_assert(HDR_AT(jump) == 0x200, "jump");
_Static_assert(HDR_AT(header) == 0x202, "header");
_Static_assert(HDR_AT(version) == 0x206, "version");
_Static_assert(HDR_AT(type_of_loader) == 0x210, "type_of_loader");
_Static_assert(HDR_AT(loadflags) == 0x211, "loadflags");
_Static_assert(HDR_AT(code32_start) == 0x214, "code32_start");
_Static_assert(HDR_AT(ramdisk_image) == 0x218, "ramdisk_image");
_Static_assert(HDR_AT(ramdisk_size) == 0x21c, "ramdisk_size");
_Static_assert(HDR_AT(heap_end_ptr) == 0x224, "heap_end_ptr");
_Static_assert(HDR_AT(cmd_line_ptr) == 0x228, "cmd_line_ptr");
_Static_assert(HDR_AT(initrd_addr_max) == 0x22c, "initrd_addr_max");
_Static_assert(HDR_AT(kernel_alignment) == 0x230, "kernel_alignment");
_Static_assert(HDR_AT(relocatable_kernel) == 0x234, "relocatable_kernel");
_Static_assert(HDR_AT(xloadflags) == 0x236, "xloadflags");
_Static_assert(HDR_AT(cmdline_size) == 0x238, "cmdline_size");
_Static_assert(HDR_AT(hardware_subarch) == 0x23c, "hardware_subarch");
_Static_assert(HDR_AT(payload_offset) == 0x248, "payload_offset");
_Static_assert(HDR_AT(payload_length) == 0x24c, "payload_length");
_Static_assert(HDR_AT(setup_data) == 0x250, "setup_data");
_Static_assert(HDR_AT(pref_address) == 0x258, "pref_address");
_Static_assert(HDR_AT(init_size) == 0x260, "init_size");
_Static_assert(HDR_AT(kernel_info_offset) == 0x268, "kernel_info_offset");
_Static_assert(SETUP_HDR_OFFSET + sizeof(struct setup_header) == 0x26c, "setup header ends at 0x26c");
_Static_assert(sizeof(struct setup_header) <= sizeof(((struct boot_kernel *)0)->setup_header),
	       "struct boot_kernel holds the whole setup header");
_Static_assert(sizeof(((struct boot_kernel *)0)->setup_header) == SETUP_HDR_END - SETUP_HDR_OFFSET,
	       "struct boot_kernel holds 0x1f1..0x290");

/* struct boot_params, the "zero page" the 64-bit entry finds in RSI. */
struct boot_params {
	uint8_t  screen_info[0x40];            /* 0x000 */
	uint8_t  apm_bios_info[0x14];          /* 0x040 */
	uint8_t  _pad2[4];                     /* 0x054 */
	uint64_t tboot_addr;                   /* 0x058 */
	uint8_t  ist_info[0x10];               /* 0x060 */
	uint64_t acpi_rsdp_addr;               /* 0x070 */
	uint8_t  _pad3[8];                     /* 0x078 */
	uint8_t  hd0_info[0x10];               /* 0x080 */
	uint8_t  hd1_info[0x10];               /* 0x090 */
	uint8_t  sys_desc_table[0x10];         /* 0x0a0 */
	uint8_t  olpc_ofw_header[0x10];        /* 0x0b0 */
	uint32_t ext_ramdisk_image;            /* 0x0c0 */
	uint32_t ext_ramdisk_size;             /* 0x0c4 */
	uint32_t ext_cmd_line_ptr;             /* 0x0c8 */
	uint8_t  _pad4[112];                   /* 0x0cc */
	uint32_t cc_blob_address;              /* 0x13c */
	uint8_t  edid_info[0x80];              /* 0x140 */
	uint8_t  efi_info[0x20];               /* 0x1c0 */
	uint32_t alt_mem_k;                    /* 0x1e0 */
	uint32_t scratch;                      /* 0x1e4 */
	uint8_t  e820_entries;                 /* 0x1e8 */
	uint8_t  eddbuf_entries;               /* 0x1e9 */
	uint8_t  edd_mbr_sig_buf_entries;      /* 0x1ea */
	uint8_t  kbd_status;                   /* 0x1eb */
	uint8_t  secure_boot;                  /* 0x1ec */
	uint8_t  _pad5[2];                     /* 0x1ed */
	uint8_t  sentinel;                     /* 0x1ef: must stay 0 */
	uint8_t  _pad6;                        /* 0x1f0 */
	struct setup_header hdr;               /* 0x1f1 */
	uint8_t  _pad7[SETUP_HDR_END - 0x26c]; /* 0x26c */
	uint32_t edd_mbr_sig_buffer[16];       /* 0x290 */
	struct e820_entry e820_table[E820_MAX_ZEROPAGE]; /* 0x2d0 */
	uint8_t  _pad8[48];                    /* 0xcd0 */
	uint8_t  eddbuf[0x1ec];                /* 0xd00 */
	uint8_t  _pad9[276];                   /* 0xeec */
} __attribute__((packed));

_Static_assert(sizeof(struct boot_params) == 4096, "boot_params is one page");
_Static_assert(offsetof(struct boot_params, acpi_rsdp_addr) == 0x070, "acpi_rsdp_addr");
_Static_assert(offsetof(struct boot_params, ext_ramdisk_image) == 0x0c0, "ext_ramdisk_image");
_Static_assert(offsetof(struct boot_params, ext_ramdisk_size) == 0x0c4, "ext_ramdisk_size");
_Static_assert(offsetof(struct boot_params, ext_cmd_line_ptr) == 0x0c8, "ext_cmd_line_ptr");
_Static_assert(offsetof(struct boot_params, cc_blob_address) == 0x13c, "cc_blob_address");
_Static_assert(offsetof(struct boot_params, e820_entries) == 0x1e8, "e820_entries");
_Static_assert(offsetof(struct boot_params, sentinel) == 0x1ef, "sentinel");
_Static_assert(offsetof(struct boot_params, hdr) == SETUP_HDR_OFFSET, "hdr");
_Static_assert(offsetof(struct boot_params, edd_mbr_sig_buffer) == 0x290, "edd_mbr_sig_buffer");
_Static_assert(offsetof(struct boot_params, e820_table) == 0x2d0, "e820_table");
_Static_assert(offsetof(struct boot_params, eddbuf) == 0xd00, "eddbuf");

/* setup_data list node (the FDT follows the header). */
struct setup_data {
	uint64_t next;
	uint32_t type;
	uint32_t len;
} __attribute__((packed));
_Static_assert(sizeof(struct setup_data) == 16, "setup_data header is 16 bytes");

/* ------------------------------------------------------------------------ */
/* PVH (Xen public/arch-x86/hvm/start_info.h, version 1)                     */
/* ------------------------------------------------------------------------ */

#define HVM_START_MAGIC 0x336ec578
#define HVM_START_VERSION 1
#define XEN_ELFNOTE_PHYS32_ENTRY 18

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};
_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info is 56 bytes");
_Static_assert(offsetof(struct hvm_start_info, memmap_paddr) == 40, "memmap_paddr");

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry is 32 bytes");

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "hvm_memmap_table_entry is 24 bytes");

/* Layout of the PVH page at MV_PVH_INFO_GPA: start info, one module, the memory map. */
#define PVH_MODLIST_GPA (MV_PVH_INFO_GPA + sizeof(struct hvm_start_info))
#define PVH_MEMMAP_GPA  (PVH_MODLIST_GPA + sizeof(struct hvm_modlist_entry))
#define PVH_MEMMAP_MAX  ((4096 - (PVH_MEMMAP_GPA - MV_PVH_INFO_GPA)) / sizeof(struct hvm_memmap_table_entry))

/* Page-table entry bits of the boot identity map. */
#define PTE_PRESENT 0x1ULL
#define PTE_RW      0x2ULL
#define PTE_PS      0x80ULL

/* ------------------------------------------------------------------------ */
/* bzimage.c                                                                 */
/* ------------------------------------------------------------------------ */

/* What the loader needs from a bzImage's setup header, with defaults for older protocols. */
struct bzimage_info {
	uint16_t version;          /* boot protocol, >= BZ_MIN_VERSION */
	unsigned setup_sects;      /* effective (0 in the file means 4) */
	size_t pm_offset;          /* file offset of the protected-mode code: (setup_sects + 1) * 512 */
	size_t pm_len;             /* its length: the rest of the file */
	uint8_t loadflags;
	uint16_t xloadflags;       /* 0 before protocol 2.12 */
	bool relocatable;
	uint32_t kernel_alignment;
	uint64_t pref_address;     /* BZ_DEFAULT_LOAD before protocol 2.10 */
	uint32_t init_size;        /* 0 before protocol 2.10 */
	uint32_t initrd_addr_max;
	uint32_t cmdline_size;
	size_t payload_offset;     /* file offset of the payload (pm_offset + payload_offset) */
	size_t payload_len;
	size_t hdr_len;            /* setup header bytes to copy from 0x1f1 (<= 0x290 - 0x1f1) */
};

/* true iff data looks like a bzImage ("HdrS" at 0x202). */
bool bzimage_detect(const uint8_t *data, size_t len);

/*
 * Parse and validate the setup header of a bzImage. Rejects files shorter than
 * the setup code they announce, protocols before 2.08 and payloads outside
 * the protected-mode code ("truncated bzImage: ...", "bzImage boot protocol
 * ... is too old ..."). Never reads outside data[0..len).
 */
int bzimage_parse(const uint8_t *data, size_t len, struct bzimage_info *bi);

/* The setup header a plain ELF kernel gets (see docs/loader.md), into hdr[0..0x290-0x1f1). */
void bzimage_default_header(uint8_t *hdr, size_t len);

/* ------------------------------------------------------------------------ */
/* elf.c                                                                     */
/* ------------------------------------------------------------------------ */

#define ELF_MAX_SEGMENTS 32   /* PT_LOAD segments accepted (vmlinux has about 5) */
#define ELF_MAX_PHDRS    512  /* program headers walked */

struct elf_segment {
	uint64_t paddr;
	uint64_t offset;   /* in the file */
	uint64_t filesz;   /* <= memsz; the rest is zeroed (bss) */
	uint64_t memsz;
};

struct elf_info {
	uint64_t entry;            /* e_entry */
	int nr_segs;               /* PT_LOAD segments with memsz > 0, >= 1 */
	struct elf_segment seg[ELF_MAX_SEGMENTS];
	uint64_t lowest;           /* lowest paddr of all segments */
	uint64_t highest;          /* one past the highest paddr + memsz */
	bool have_pvh;             /* a Xen PHYS32_ENTRY note was found */
	uint64_t pvh_entry;
};

/* true iff data starts with the ELF magic. */
bool elf_detect(const uint8_t *data, size_t len);

/*
 * Parse an ELF64 little-endian x86-64 ET_EXEC file: program headers, PT_LOAD
 * segments (file ranges inside the file, filesz <= memsz, paddr + memsz does
 * not wrap, segments do not overlap) and the PVH note in PT_NOTE segments.
 * Does not check guest RAM: the loader does.
 */
int elf_parse(const uint8_t *data, size_t len, struct elf_info *ei);

/*
 * Walk the notes in buf[0..len) (one PT_NOTE segment, entries aligned to
 * align = 4 or 8) looking for name "Xen", type XEN_ELFNOTE_PHYS32_ENTRY.
 * Returns 1 and *entry when found, 0 when absent, -EINVAL ("malformed ELF
 * note ...") when a note runs past the segment or the PVH note's descriptor
 * is not a 32-bit address (4 bytes, or 8 with the upper half zero).
 */
int elf_find_pvh_note(const uint8_t *buf, size_t len, size_t align, uint64_t *entry);

/* ------------------------------------------------------------------------ */
/* decompress.c                                                              */
/* ------------------------------------------------------------------------ */

enum comp_format {
	COMP_NONE,       /* unknown magic */
	COMP_GZIP,       /* 1f 8b */
	COMP_LZ4_LEGACY, /* 02 21 4c 18 (lz4 -l, what Linux uses) */
	COMP_LZ4_FRAME,  /* 04 22 4d 18 */
	COMP_ZSTD,       /* 28 b5 2f fd */
	COMP_XZ,         /* fd 37 7a 58 5a 00 */
};

#define LZ4_LEGACY_BLOCK_MAX (8u << 20)  /* a legacy block decompresses to at most 8 MiB */
#define DECOMPRESS_MAX (1ULL << 30)      /* no kernel needs more than 1 GiB */

/* Format by magic; COMP_NONE when none matches. */
enum comp_format comp_detect(const uint8_t *data, size_t len);

/* "gzip", "LZ4", "LZ4 frame", "zstd", "xz" ("unknown" for COMP_NONE). */
const char *comp_name(enum comp_format f);

/*
 * Decompress the first stream in data[0..len) into a new malloc()ed buffer
 * (*out, *out_len; the caller frees it). Decoders stop at the end of the
 * stream and ignore what follows (Linux appends the uncompressed size as 4
 * bytes). Returns -ENOTSUP for an unknown magic, -EFBIG when the output would
 * exceed max_out bytes, -EINVAL for corrupt or truncated input, -ENOMEM.
 * On error *out is NULL.
 */
int decompress(const uint8_t *data, size_t len, size_t max_out, uint8_t **out, size_t *out_len);

/* ------------------------------------------------------------------------ */
/* params.c                                                                  */
/* ------------------------------------------------------------------------ */

/* Write the identity map of the first 4 GiB (2 MiB pages) at MV_PML4_GPA/PDPT/PD. */
int boot_write_page_tables(const struct guest_mem *mem);

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* Little-endian reads from a byte buffer; the caller has checked the bounds. */
static inline uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t le64(const uint8_t *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* Bytes as MiB for messages ("6.1 MiB"). */
static inline double boot_mib(uint64_t bytes)
{
	return (double)bytes / (1024.0 * 1024.0);
}

#endif
