/* fdt.c - find the device tree through the Linux setup_data chain (SETUP_DTB) and walk it. */
#include "guest.h"

#define SETUP_DTB 2
#define SETUP_DATA_HDR 16      /* u64 next, u32 type, u32 len */
#define SETUP_CHAIN_MAX 16
#define FDT_MAGIC 0xd00dfeed
#define FDT_BEGIN_NODE 1
#define FDT_END_NODE 2
#define FDT_PROP 3
#define FDT_NOP 4
#define FDT_END 9
#define FDT_MAX_DEPTH 8

typedef uint32_t __attribute__((may_alias, aligned(1))) u32_any;
typedef uint64_t __attribute__((may_alias, aligned(1))) u64_any;

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A big-endian number of 1 or 2 cells. */
static uint64_t cells(const uint8_t *p, uint32_t n)
{
	return n == 2 ? (uint64_t)be32(p) << 32 | be32(p + 4) : be32(p);
}

static uint64_t find_dtb(const struct boot_info *bi, uint32_t *len)
{
	uint64_t sd = bi->setup_data;

	for (int hops = 0; sd && hops < SETUP_CHAIN_MAX; hops++) {
		if (!phys_ok(sd, SETUP_DATA_HDR)) {
			fail(FAIL_FDT_MISSING, "fdt: setup_data at 0x%lx is not readable", sd);
			return 0;
		}
		const uint8_t *h = phys(sd);
		if (*(const u32_any *)(h + 8) == SETUP_DTB) {
			*len = *(const u32_any *)(h + 12);
			return sd + SETUP_DATA_HDR;
		}
		sd = *(const u64_any *)h;
	}
	return 0;
}

struct walk {
	const uint8_t *strings;
	uint32_t strings_len;
	const char *names[FDT_MAX_DEPTH + 1]; /* node name per depth; [1] is the root "" */
	uint32_t addr_cells, size_cells;      /* of the root */
	bool in_virtio, virtio_compat;        /* inside a /virtio_mmio@ node; its compatible matched */
	struct virtio_mmio_loc vm;            /* that node's reg and interrupts */
};

static void prop(struct walk *w, struct fdt_info *fi, const struct boot_info *bi, int depth,
		 const char *name, const uint8_t *data, uint32_t len)
{
	if (depth == 1 && str_eq(name, "#address-cells") && len == 4)
		w->addr_cells = be32(data);
	else if (depth == 1 && str_eq(name, "#size-cells") && len == 4)
		w->size_cells = be32(data);
	else if (depth == 2 && str_eq(w->names[2], "chosen") && str_eq(name, "bootargs")) {
		fi->have_bootargs = true;
		fi->bootargs_match = len && data[len - 1] == '\0' && str_eq((const char *)data, bi->cmdline);
	} else if (depth == 2 && w->in_virtio) {
		if (str_eq(name, "compatible"))
			w->virtio_compat = len == 12 && !memcmp(data, "virtio,mmio", 12);
		else if (str_eq(name, "reg") && len >= 4 * (w->addr_cells + w->size_cells) &&
			 w->addr_cells >= 1 && w->addr_cells <= 2 && w->size_cells >= 1 && w->size_cells <= 2) {
			w->vm.base = cells(data, w->addr_cells);
			w->vm.size = cells(data + 4 * w->addr_cells, w->size_cells);
		} else if (str_eq(name, "interrupts") && len >= 4)
			w->vm.irq = be32(data);
	} else if (depth == 2 && starts_with(w->names[2], "memory") && str_eq(name, "reg")) {
		uint32_t step = 4 * (w->addr_cells + w->size_cells);
		if (w->addr_cells < 1 || w->addr_cells > 2 || w->size_cells < 1 || w->size_cells > 2)
			return;
		for (uint32_t off = 0; off + step <= len; off += step)
			fi->mem_total += cells(data + off + 4 * w->addr_cells, w->size_cells);
	}
}

static bool walk(const uint8_t *fdt, uint32_t total, struct fdt_info *fi, const struct boot_info *bi)
{
	uint32_t off_struct = be32(fdt + 8), off_strings = be32(fdt + 12);
	uint32_t size_strings = be32(fdt + 32), size_struct = be32(fdt + 36);
	struct walk w = { .addr_cells = 2, .size_cells = 1 };
	int depth = 0;

	if (off_struct > total || size_struct > total - off_struct ||
	    off_strings > total || size_strings > total - off_strings)
		return false;
	w.strings = fdt + off_strings;
	w.strings_len = size_strings;
	const uint8_t *p = fdt + off_struct, *end = p + size_struct;
	while (p + 4 <= end) {
		uint32_t tok = be32(p);
		p += 4;
		if (tok == FDT_BEGIN_NODE) {
			const char *name = (const char *)p;
			while (p < end && *p)
				p++;
			if (p == end || ++depth > FDT_MAX_DEPTH)
				return false;
			p = fdt + ((p + 1 - fdt + 3) & ~(ptrdiff_t)3);
			w.names[depth] = name;
			if (depth == 2 && str_eq(name, "serial@3f8"))
				fi->serial = true;
			if (depth == 3 && str_eq(w.names[2], "cpus") && starts_with(name, "cpu@"))
				fi->nr_cpus++;
			if (depth == 2 && starts_with(name, "virtio_mmio@")) {
				w.in_virtio = true;
				w.virtio_compat = false;
				w.vm = (struct virtio_mmio_loc){ 0, 0, 0 };
			}
		} else if (tok == FDT_END_NODE) {
			if (depth == 2 && w.in_virtio) {
				w.in_virtio = false;
				if (w.virtio_compat && fi->nr_virtio < VIRTIO_MMIO_MAX)
					fi->virtio[fi->nr_virtio++] = w.vm;
			}
			if (--depth < 0)
				return false;
		} else if (tok == FDT_PROP) {
			if (p + 8 > end)
				return false;
			uint32_t len = be32(p), nameoff = be32(p + 4);
			const uint8_t *data = p + 8;
			if (len > (uint32_t)(end - data) || nameoff >= w.strings_len)
				return false;
			p = fdt + ((data + len - fdt + 3) & ~(ptrdiff_t)3);
			prop(&w, fi, bi, depth, (const char *)w.strings + nameoff, data, len);
		} else if (tok == FDT_END) {
			return depth == 0;
		} else if (tok != FDT_NOP) {
			return false;
		}
	}
	return false;
}

void fdt_read(const struct boot_info *bi, struct fdt_info *fi)
{
	uint32_t len = 0;
	uint64_t gpa;

	memset(fi, 0, sizeof(*fi));
	if (bi->mode != GUEST_MODE_LINUX64) {
		fail(FAIL_FDT_MISSING, "fdt: PVH boot has no setup_data chain");
		return;
	}
	gpa = find_dtb(bi, &len);
	if (!gpa) {
		fail(FAIL_FDT_MISSING, "fdt: no SETUP_DTB in the setup_data chain (head 0x%lx)",
		     bi->setup_data);
		return;
	}
	if (len < 40 || !phys_ok(gpa, len)) {
		fail(FAIL_FDT_HEADER, "fdt: SETUP_DTB at 0x%lx has length %u", gpa, len);
		return;
	}
	const uint8_t *fdt = phys(gpa);
	uint32_t total = be32(fdt + 4);
	if (be32(fdt) != FDT_MAGIC || total > len || total < 40) {
		fail(FAIL_FDT_HEADER, "fdt: at 0x%lx magic 0x%x totalsize %u (setup_data len %u)",
		     gpa, be32(fdt), total, len);
		return;
	}
	if (!walk(fdt, total, fi, bi)) {
		fail(FAIL_FDT_STRUCT, "fdt: structure block is malformed");
		return;
	}
	fi->ok = true;
	gprintf("fdt: at 0x%lx, %u bytes, %d CPUs, serial@3f8 %s, %lu MiB of memory, %d virtio-mmio\n",
		gpa, total, fi->nr_cpus, fi->serial ? "yes" : "no", fi->mem_total >> 20, fi->nr_virtio);
}
