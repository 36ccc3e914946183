/* virtio.c - virtio-mmio helpers shared by the test guest's drivers (blk.c, net.c); see virtio.h. */
#include "virtio.h"

uint64_t vm_cfg_read(uint64_t base, uint32_t off, bool wide)
{
	uint32_t gen, lo, hi = 0;
	int tries = 0;

	do {
		gen = vm_rd(base, VM_CONFIG_GEN);
		lo = vm_rd(base, VM_CONFIG + off);
		if (wide)
			hi = vm_rd(base, VM_CONFIG + off + 4);
	} while (vm_rd(base, VM_CONFIG_GEN) != gen && ++tries < 4);
	return (uint64_t)hi << 32 | lo;
}

uint32_t vm_wait_status(uint64_t base, uint32_t mask, uint32_t want)
{
	uint64_t deadline = rdtsc() + WAIT_TSC;
	uint32_t st;

	for (uint32_t spins = 0;; spins++) {
		st = vm_rd(base, VM_STATUS);
		if ((st & mask) == want || rdtsc() > deadline || spins > WAIT_SPINS)
			return st;
	}
}

uint64_t vm_device_features(uint64_t base)
{
	vm_wr(base, VM_DEVICE_FEAT_SEL, 0);
	uint64_t f = vm_rd(base, VM_DEVICE_FEATURES);
	vm_wr(base, VM_DEVICE_FEAT_SEL, 1);
	return f | (uint64_t)vm_rd(base, VM_DEVICE_FEATURES) << 32;
}

void vm_driver_features(uint64_t base, uint64_t f)
{
	vm_wr(base, VM_DRIVER_FEAT_SEL, 0);
	vm_wr(base, VM_DRIVER_FEATURES, (uint32_t)f);
	vm_wr(base, VM_DRIVER_FEAT_SEL, 1);
	vm_wr(base, VM_DRIVER_FEATURES, (uint32_t)(f >> 32));
}

bool vfind_parse(const char *v, size_t n, enum vfind *out)
{
	if (mem_eq_str(v, n, "fdt"))
		*out = VFIND_FDT;
	else if (mem_eq_str(v, n, "acpi"))
		*out = VFIND_ACPI;
	else if (mem_eq_str(v, n, "probe"))
		*out = VFIND_PROBE;
	else
		return false;
	return true;
}

bool vfind_fdt(enum vfind f, int mode)
{
	return f == VFIND_FDT || (f == VFIND_AUTO && mode == GUEST_MODE_LINUX64);
}

bool vfind_acpi(enum vfind f, int mode)
{
	return f == VFIND_ACPI || (f == VFIND_AUTO && mode == GUEST_MODE_PVH);
}

int virtio_locate(const struct boot_info *bi, const struct fdt_info *fi, const struct acpi_info *ai,
		  enum vfind find, const struct virtio_mmio_loc **locs, const char **from)
{
	static struct virtio_mmio_loc scan[VIRTIO_MMIO_MAX];
	int n;

	if (vfind_fdt(find, bi->mode) && fi->ok) {
		*locs = fi->virtio;
		*from = "FDT";
		return fi->nr_virtio;
	}
	if (vfind_acpi(find, bi->mode) && ai->ok) {
		*locs = ai->virtio;
		*from = "DSDT";
		return ai->nr_virtio;
	}
	if (find != VFIND_AUTO && find != VFIND_PROBE)
		return -1;
	/* No tables: try the known windows for the magic. */
	n = 0;
	for (int i = 0; i < VIRTIO_MMIO_MAX; i++) {
		uint64_t base = 0xd0000000ULL + 0x1000ULL * (uint64_t)i;
		if (mmio_read32(base + VM_MAGIC) == VIRTIO_MAGIC)
			scan[n++] = (struct virtio_mmio_loc){ base, 0x1000, 0 };
	}
	*locs = scan;
	*from = "probing";
	return n;
}

int virtio_window_id(const struct virtio_mmio_loc *loc, int code, const char *tag)
{
	if (loc->size < VM_CONFIG + 0x20 || !phys_ok(loc->base, loc->size)) {
		fail(code, "%s: virtio-mmio window 0x%lx size 0x%lx is unusable", tag, loc->base, loc->size);
		return -1;
	}
	uint32_t magic = vm_rd(loc->base, VM_MAGIC), ver = vm_rd(loc->base, VM_VERSION);
	if (magic != VIRTIO_MAGIC || ver != 2) {
		fail(code, "%s: virtio-mmio at 0x%lx: magic 0x%x version %u, expected 0x%x version 2", tag,
		     loc->base, magic, ver, VIRTIO_MAGIC);
		return -1;
	}
	return (int)vm_rd(loc->base, VM_DEVICE_ID);
}
