/* machine.h - the one description of the virtual machine: memory map, I/O ports, IRQ lines, devices. */
#ifndef MICROVM_MACHINE_H
#define MICROVM_MACHINE_H

/*
 * Every address, port and IRQ line the guest can see is defined here, once.
 * The e820 map, the ACPI tables, the device tree, the boot protocol structures
 * and the device models all read them from here (or from struct machine);
 * nothing else computes an address.
 *
 * Guest physical memory map:
 *
 *   0x0000_0000 .. 0x0009_fbff  RAM (low; holds the boot structures below)
 *   0x0009_fc00 .. 0x000f_ffff  reserved (EBDA/BIOS area; the VM generation ID and the ACPI tables live here)
 *   0x0010_0000 .. low_end      RAM (kernel, initrd)
 *   0xc000_0000 .. 0xffff_ffff  32-bit MMIO hole (virtio-mmio windows, IOAPIC, LAPIC)
 *   0x1_0000_0000 ..            RAM above 4 GiB when --mem > 3 GiB
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- boot structures in low RAM (written by boot/ and firmware/) ---- */
#define MV_GDT_GPA        0x1000ULL   /* boot GDT (driver/ fills it) */
#define MV_PVH_INFO_GPA   0x2000ULL   /* hvm_start_info + modlist + memmap, one page */
#define MV_BOOT_STACK_TOP 0x5ff0ULL   /* initial RSP/ESP of the boot vCPU (page 0x5000) */
#define MV_ZERO_PAGE_GPA  0x3000ULL   /* Linux boot_params, one page */
#define MV_PML4_GPA       0x9000ULL   /* identity map of the first 4 GiB, 2 MiB pages: */
#define MV_PDPT_GPA       0xa000ULL   /*   PML4, PDPT, */
#define MV_PD_GPA         0xb000ULL   /*   four page directories 0xb000..0xefff */
#define MV_CMDLINE_GPA    0x20000ULL  /* kernel command line, NUL terminated */
#define MV_CMDLINE_MAX    0x10000ULL  /*   room for it, including the NUL */
#define MV_FDT_GPA        0x30000ULL  /* setup_data header (SETUP_DTB) followed by the FDT */
#define MV_FDT_MAX        0x10000ULL  /*   room for both */
#define MV_EBDA_START     0x9fc00ULL  /* start of the reserved legacy area */
/*
 * The 16-byte VM generation ID (docs/firmware.md): in the reserved legacy area,
 * which no OS uses as RAM, just below the ACPI tables; 8-byte aligned (the
 * Microsoft specification), not on a 2 KiB boundary (where an OS looks for
 * option ROM signatures) and outside the 0xf0000 and EBDA ranges an OS scans.
 */
#define MV_VMGENID_GPA    0xdfff0ULL
#define MV_VMGENID_SIZE   16
#define MV_ACPI_GPA       0xe0000ULL  /* RSDP first, then XSDT, FADT, MADT, DSDT */
#define MV_ACPI_MAX       0x20000ULL  /*   up to 1 MiB */
#define MV_HIGH_MEM_START 0x100000ULL /* first byte a kernel or initrd may occupy */
#define MV_TSS_GPA        0xfffbd000ULL /* KVM_SET_TSS_ADDR: 3 pages inside the MMIO hole */
#define MV_IDENTITY_MAP_GPA 0xfffbc000ULL /* KVM_SET_IDENTITY_MAP_ADDR: 1 page */

/* ---- RAM limits ---- */
#define MV_MMIO_HOLE_START 0xc0000000ULL   /* low RAM ends here at most */
#define MV_HIGH_RAM_START  0x100000000ULL  /* RAM beyond the hole continues here */
#define MV_MEM_MIN         (16ULL << 20)
#define MV_MEM_MAX         (1ULL << 40)
#define MV_MEM_DEFAULT     (256ULL << 20)

/* ---- MMIO ---- */
#define MV_VIRTIO_MMIO_BASE 0xd0000000ULL  /* first virtio-mmio window */
#define MV_VIRTIO_MMIO_SIZE 0x1000ULL      /* one 4 KiB window per device */
#define MV_IOAPIC_GPA       0xfec00000ULL
#define MV_LAPIC_GPA        0xfee00000ULL

/* ---- I/O ports ---- */
#define MV_PORT_COM1          0x3f8  /* 16550A, 8 ports */
#define MV_PORT_I8042_DATA    0x60
#define MV_PORT_CMOS          0x70   /* CMOS RTC: index, data (devices/cmos.h) */
#define MV_PORT_I8042_CMD     0x64   /* write 0xfe: reset */
#define MV_PORT_PVPANIC       0x505  /* pvpanic (QEMU's ISA port; ACPI QEMU0001): 1 byte */
#define MV_PVPANIC_PANICKED     (1u << 0) /*   guest wrote: kernel panicked; read: event supported */
#define MV_PVPANIC_CRASH_LOADED (1u << 1) /*   guest wrote: panicked, a kdump kernel takes over */
#define MV_PVPANIC_EVENTS       (MV_PVPANIC_PANICKED | MV_PVPANIC_CRASH_LOADED) /* what a read returns */
#define MV_PORT_EXIT          0x510  /* guest exit status: write N (8/16/32 bit), microvm exits with N & 0xff */
#define MV_PORT_ACPI_SLEEP_CTL 0x600 /* FADT SLEEP_CONTROL_REG (1 byte) */
#define MV_PORT_ACPI_SLEEP_STS 0x601 /* FADT SLEEP_STATUS_REG (1 byte) */
#define MV_PORT_ACPI_RESET    0x602  /* FADT RESET_REG (1 byte) */
#define MV_ACPI_RESET_VALUE   0x1
#define MV_ACPI_S5_SLP_TYP    5      /* \_S5 SLP_TYP; sleep control value = (typ << 2) | SLP_EN(1 << 5) */

/* ---- interrupts (IOAPIC pins == GSIs; ISA IRQs identity-mapped) ---- */
#define MV_IRQ_COM1          4
#define MV_IRQ_VIRTIO_FIRST  5   /* virtio-mmio devices take 5, 6, 7, 10, 11, ... (see machine.c) */
#define MV_IOAPIC_PINS       24
#define MV_IRQ_GED           23  /* the ACPI Generic Event Device (ACPI0013): the power button */
#define MV_IRQ_GED_GENID     3   /* the GED's second line: a new VM generation ID (COM2's ISA IRQ; no COM2) */
#define MV_SCI_IRQ           9   /* FADT SCI_INT (unused by a hardware-reduced machine, but must be valid) */

#define MV_MAX_VCPUS      64
#define MV_MAX_MMIO_DEVS  16

struct mem_range {
	uint64_t start;
	uint64_t size;
};

enum mmio_dev_type {
	MMIO_DEV_VIRTIO_BLK = 2, /* virtio device IDs */
	MMIO_DEV_VIRTIO_NET = 1,
};

/* A virtio-mmio device: its 4 KiB register window and its IOAPIC pin. */
struct mmio_dev {
	enum mmio_dev_type type;
	uint64_t base;
	uint64_t size;
	uint32_t irq;
};

struct machine {
	uint64_t ram_size;         /* total RAM, bytes */
	int nr_ram;                /* 1 or 2 */
	struct mem_range ram[2];   /* [0] from 0, [1] from 4 GiB if any */
	int ncpus;                 /* vCPUs, 1..MV_MAX_VCPUS; APIC IDs 0..ncpus-1 */
	int nr_mmio_devs;
	struct mmio_dev mmio_devs[MV_MAX_MMIO_DEVS];
};

/*
 * Fill *m for ram_size bytes of RAM (a multiple of 1 MiB, MV_MEM_MIN..MV_MEM_MAX)
 * and ncpus vCPUs (1..MV_MAX_VCPUS). -EINVAL with err_msg() otherwise
 * ("RAM size 1K: must be between 16 MiB and 1 TiB", "vCPU count 0: must be between
 * 1 and 64"); a caller that knows where a value came from checks it first with
 * the two functions below and names the source itself.
 */
int machine_init(struct machine *m, uint64_t ram_size, int ncpus);

/*
 * 0 if a machine can have ram_size bytes of RAM, else -EINVAL with err_msg()
 * saying what the size must be ("must be a multiple of 1 MiB"), without the
 * size itself: the caller prefixes that (machine_size_str() prints it).
 */
int machine_check_ram(uint64_t ram_size);

/* The same for a vCPU count: 0, or -EINVAL with "must be between 1 and N". */
int machine_check_cpus(int ncpus);

/* A byte count the way a user would write it: "1K", "15M", "2T", "1000". Returns buf. */
const char *machine_size_str(char *buf, size_t len, uint64_t v);

/*
 * Add a virtio-mmio device: assigns the next 4 KiB window from
 * MV_VIRTIO_MMIO_BASE and the next free IOAPIC pin. Returns the device's
 * index, or -ENOSPC with err_msg() when windows or pins run out.
 */
int machine_add_mmio_dev(struct machine *m, enum mmio_dev_type type);

/* End of low RAM (exclusive), i.e. ram[0].start + ram[0].size. */
uint64_t machine_low_ram_end(const struct machine *m);

#endif
