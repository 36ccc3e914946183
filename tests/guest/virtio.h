/*
 * virtio.h - what the test guest's virtio drivers (blk.c, net.c) share: the
 * virtio-mmio (version 2) register layout, device status bits, split
 * virtqueue layout, register access by window base, and finding the windows
 * (FDT, DSDT or probing). Written from the virtio 1.2 specification (2.1-2.7,
 * 4.2).
 */
#ifndef GUEST_VIRTIO_H
#define GUEST_VIRTIO_H

#include "guest.h"

/* virtio-mmio registers (4.2.2). */
#define VM_MAGIC           0x000
#define VM_VERSION         0x004
#define VM_DEVICE_ID       0x008
#define VM_VENDOR_ID       0x00c
#define VM_DEVICE_FEATURES 0x010
#define VM_DEVICE_FEAT_SEL 0x014
#define VM_DRIVER_FEATURES 0x020
#define VM_DRIVER_FEAT_SEL 0x024
#define VM_QUEUE_SEL       0x030
#define VM_QUEUE_NUM_MAX   0x034
#define VM_QUEUE_NUM       0x038
#define VM_QUEUE_READY     0x044
#define VM_QUEUE_NOTIFY    0x050
#define VM_IRQ_STATUS      0x060
#define VM_IRQ_ACK         0x064
#define VM_STATUS          0x070
#define VM_QUEUE_DESC      0x080   /* low, high at +4 */
#define VM_QUEUE_DRIVER    0x090
#define VM_QUEUE_DEVICE    0x0a0
#define VM_CONFIG_GEN      0x0fc
#define VM_CONFIG          0x100
#define VIRTIO_MAGIC       0x74726976  /* "virt" */

/* Device IDs (5). */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLK 2

/* Device status (2.1). */
#define ST_ACK          1
#define ST_DRIVER       2
#define ST_DRIVER_OK    4
#define ST_FEATURES_OK  8
#define ST_NEEDS_RESET  64
#define ST_FAILED       128

#define F_VERSION_1  32

/* Split virtqueue descriptors (2.7.5). */
#define DESC_F_NEXT     1
#define DESC_F_WRITE    2
#define DESC_F_INDIRECT 4

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

/* Bounded waits: an upper bound in TSC cycles and in loop iterations, no calibration. */
#define WAIT_TSC   4000000000ULL
#define WAIT_SPINS 1000000000u /* a fallback only: 2M spins took tens of ms under TCG */
/*
 * The wait for a used buffer (wait_clock: the guest's own running time): long,
 * as only a lost request should reach it. A FLUSH is an fdatasync on the host;
 * in the nested KVM, through ext4 on an emulated disk next to other tests'
 * writes, one took over 3 s (the wait was 4e9 cycles then).
 */
#define WAIT_USED_TSC 40000000000ULL

static inline uint32_t vm_rd(uint64_t base, uint32_t reg)
{
	return mmio_read32(base + reg);
}

static inline void vm_wr(uint64_t base, uint32_t reg, uint32_t v)
{
	mmio_write32(base + reg, v);
}

static inline void vm_wr64(uint64_t base, uint32_t reg, uint64_t v)
{
	vm_wr(base, reg, (uint32_t)v);
	vm_wr(base, reg + 4, (uint32_t)(v >> 32));
}

static inline uint8_t vm_rd8(uint64_t base, uint32_t reg)
{
	return *(volatile uint8_t *)(uintptr_t)(base + reg);
}

static inline uint16_t vm_rd16(uint64_t base, uint32_t reg)
{
	return *(volatile uint16_t *)(uintptr_t)(base + reg);
}

static inline void compiler_barrier(void)
{
	__asm__ volatile("" : : : "memory");
}

/* A 32-bit (or, wide, 64-bit as two 32-bit reads) config field, stable across ConfigGeneration (4.2.2.2). */
uint64_t vm_cfg_read(uint64_t base, uint32_t off, bool wide);
/* Wait (bounded) until (Status & mask) == want; returns the last status read. */
uint32_t vm_wait_status(uint64_t base, uint32_t mask, uint32_t want);
/* 64 device feature bits (DeviceFeaturesSel 0 and 1). */
uint64_t vm_device_features(uint64_t base);
/* Write the 64 driver feature bits. */
void vm_driver_features(uint64_t base, uint64_t f);

/* How to find the virtio-mmio windows: auto (FDT in Linux mode, DSDT in PVH mode), or forced. */
enum vfind { VFIND_AUTO, VFIND_FDT, VFIND_ACPI, VFIND_PROBE };
bool vfind_parse(const char *v, size_t n, enum vfind *out);
bool vfind_fdt(enum vfind f, int mode);
bool vfind_acpi(enum vfind f, int mode);
/*
 * The windows from the FDT, the DSDT or probing 0xd0000000 + 4 KiB * i.
 * Returns their number and sets *locs and *from ("FDT", "DSDT", "probing"),
 * or -1 when a forced source is missing (nothing is reported: the caller
 * says so with its own failure code).
 */
int virtio_locate(const struct boot_info *bi, const struct fdt_info *fi, const struct acpi_info *ai,
		  enum vfind find, const struct virtio_mmio_loc **locs, const char **from);
/*
 * Check one window (size, magic, version 2); returns its DeviceID, or -1
 * after fail(code, "<tag>: ...").
 */
int virtio_window_id(const struct virtio_mmio_loc *loc, int code, const char *tag);

#endif
