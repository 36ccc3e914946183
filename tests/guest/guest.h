/* guest.h - shared declarations of the microvm test guest (freestanding x86-64 kernel). */
#ifndef GUEST_H
#define GUEST_H

/*
 * The guest runs on KVM's instruction emulator here (~1-2 us per instruction),
 * so everything in it is written to execute few instructions: no calibration
 * loops, no copying of guest data it can read in place, checks run only when
 * the command line asks for them. See docs/test-guest.md.
 */

/* Shared with entry.S. */
#define GUEST_MODE_LINUX64 1   /* entered at +0x200 in long mode, RSI = boot_params */
#define GUEST_MODE_PVH     2   /* entered at the PVH note's entry, EBX = hvm_start_info */
#define VEC_SERIAL         0x30 /* IDT vector the IOAPIC routes COM1 (pin 4) to */
#define VEC_POWER          0x31 /* IDT vector the IOAPIC routes the GED's pin (power button) to */
#define VEC_GENID          0x32 /* IDT vector the IOAPIC routes the GED's generation-ID pin to */
#define NR_IDT_VECTORS     (VEC_GENID + 1)
#define AP_TRAMPOLINE_GPA  0x8000 /* real-mode AP start code (SIPI vector 0x08) */

#ifndef __ASSEMBLER__

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- exit codes written to the exit port, one per failing check ---- */
enum fail_code {
	FAIL_CMDLINE = 10,      /* unknown expect./check./action key, bad value */
	FAIL_MODE = 11,         /* expect.mode differs from how we were entered */
	FAIL_IMAGE = 12,        /* expect.image differs from this image */
	FAIL_CMDLINE_LEN = 13,  /* expect.cmdline_len differs */
	FAIL_BOOT_INFO = 14,    /* hvm_start_info / boot_params malformed */
	FAIL_MEM = 20,          /* RAM size differs from expect.mem_mib */
	FAIL_E820 = 21,         /* memory map malformed (overlap, RAM in the MMIO hole) */
	FAIL_INITRD_SIZE = 30,
	FAIL_INITRD_SUM = 31,
	FAIL_INITRD_PLACE = 32, /* not page aligned, not in RAM, overlaps the kernel */
	FAIL_FDT_MISSING = 40,
	FAIL_FDT_HEADER = 41,
	FAIL_FDT_SERIAL = 42,
	FAIL_FDT_CPUS = 43,
	FAIL_FDT_BOOTARGS = 44,
	FAIL_FDT_MEMORY = 45,
	FAIL_FDT_STRUCT = 46,
	FAIL_ACPI_RSDP = 50,
	FAIL_ACPI_XSDT = 51,
	FAIL_ACPI_MADT = 52,
	FAIL_ACPI_FADT = 53,
	FAIL_ACPI_DSDT = 54,
	FAIL_ACPI_CPUS = 55,
	FAIL_ACPI_IOAPIC = 56,
	FAIL_SMP = 60,          /* not all APs ran the trampoline */
	FAIL_LAPIC = 61,        /* local APIC disabled or not at its address */
	FAIL_INT3 = 70,
	FAIL_FWAIT = 71,
	FAIL_SMAP = 72,
	FAIL_ECHO = 80,
	FAIL_BENCH = 85,        /* bench.mmio: no virtio-mmio window */
	FAIL_ACTION = 90,       /* poweroff / reset / triple fault did not stop the VM */
	FAIL_EXCEPTION = 99,    /* unexpected CPU exception */
	FAIL_BLK_FIND = 100,    /* blk.count differs; no FDT/DSDT entry; bad magic, version or device ID */
	FAIL_BLK_INIT = 101,    /* feature negotiation or queue setup refused */
	FAIL_BLK_IO = 102,      /* a request did not complete (bounded wait) or its status is not OK */
	FAIL_BLK_DATA = 103,    /* data read differs from the pattern */
	FAIL_BLK_RO = 104,      /* blk.ro: no RO feature, or a write was not refused with IOERR */
	FAIL_BLK_ID = 105,      /* blk.id: GET_ID differs */
	FAIL_BLK_CAPACITY = 106,/* blk.capacity differs */
	FAIL_BLK_IOERR = 107,   /* blk.ioerr: the request did not get IOERR */
	FAIL_BLK_HOSTILE = 108, /* blk.hostile: no DEVICE_NEEDS_RESET, or no recovery after reset */
	FAIL_BLK_CMDLINE = 109, /* blk.cmdline_devices: virtio_mmio.device= tokens differ from the devices */
	FAIL_BLK_USED = 110,    /* used ring entry malformed (unknown id, wrong len) or InterruptStatus not set */
	FAIL_NET_FIND = 111,    /* net.count differs; no such ethN; bad magic or version */
	FAIL_NET_INIT = 112,    /* feature negotiation (VERSION_1, MAC, MRG_RXBUF) or queue setup refused */
	FAIL_NET_MAC = 113,     /* net.mac: config MAC differs */
	FAIL_NET_TX = 114,      /* a frame was not sent (bounded wait) or its used entry is malformed */
	FAIL_NET_ARP = 115,     /* no ARP reply from the peer (bounded wait), or a malformed one */
	FAIL_NET_PING = 116,    /* no echo reply (bounded wait), or a wrong one (checksums, id/seq, data) */
	FAIL_NET_RX = 117,      /* malformed used entry or header, or InterruptStatus not set */
	FAIL_NET_LINK = 118,    /* net.link: no VIRTIO_NET_F_STATUS or link down */
	FAIL_RUN = 119,         /* microvm.run=: bad device name, no such disk, bad header */
	FAIL_UNMAPPED = 125,    /* check.unmapped: a read where nothing decodes did not give all ones */
	FAIL_RTC = 127,         /* check.rtc: the CMOS clock is busy, invalid, or not in 2025-2099 */
	FAIL_BLK_ABUSE = 126,   /* blk.abuse: the device stopped answering, wrote after a reset, or did not recover */
	FAIL_VMGENID = 57,      /* check.vmgenid: no VM_Gen_Counter device, ADDR in RAM or unaligned, ID all zeroes */
};

/* ---- port and MMIO access ---- */
static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint32_t mmio_read32(uint64_t addr)
{
	return *(volatile uint32_t *)(uintptr_t)addr;
}

static inline void mmio_write32(uint64_t addr, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)addr = v;
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

/*
 * The clock of a bounded wait that polls memory (a used ring): TSC cycles spent in
 * the wait, leaving out any step between two reads longer than WAIT_JUMP_TSC or
 * backwards. Such a step is time the guest did not run: the VM paused (a snapshot
 * taken meanwhile), its vCPU descheduled on a loaded host, a nested KVM's TSC
 * adjusted. A lost request is still found, as the wait's own polling keeps counting.
 */
#define WAIT_JUMP_TSC 100000000ULL
struct wait_clock {
	uint64_t last, spent, limit;
};

static inline void wait_clock_start(struct wait_clock *c, uint64_t limit)
{
	c->last = rdtsc();
	c->spent = 0;
	c->limit = limit;
}

static inline bool wait_clock_expired(struct wait_clock *c)
{
	uint64_t now = rdtsc(), step = now - c->last;

	c->last = now;
	if (step < WAIT_JUMP_TSC)
		c->spent += step;
	return c->spent > c->limit;
}

static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return (uint64_t)hi << 32 | lo;
}

static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(leaf), "c"(sub));
}

/* Guest-physical memory is identity mapped (0..4 GiB): an address is a pointer. */
static inline const void *phys(uint64_t gpa)
{
	return (const void *)(uintptr_t)gpa;
}

/* True if [gpa, gpa+len) lies below 4 GiB, i.e. inside our identity map. */
static inline bool phys_ok(uint64_t gpa, uint64_t len)
{
	return gpa < (1ULL << 32) && len <= (1ULL << 32) - gpa;
}

/* ---- lib.c: output, strings ---- */
void gprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void gvprintf(const char *fmt, va_list ap);
/* Print "FAIL: <msg>" and remember code as the exit status if it is the first failure. */
void fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int first_failure(void);
/* Write code to the exit port with an 8/16/32-bit OUT and halt forever. */
__attribute__((noreturn)) void guest_exit(uint32_t code, int width);
__attribute__((noreturn)) void halt_forever(void);
size_t strlen(const char *s);
int memcmp(const void *a, const void *b, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
bool str_eq(const char *a, const char *b);
bool mem_eq_str(const char *p, size_t len, const char *s); /* p[0..len) == s */
bool starts_with(const char *s, const char *prefix);

/* ---- boot information, however we were entered (bootinfo.c) ---- */
#define MEMMAP_MAX 32
#define MEM_TYPE_RAM 1

struct mem_entry {
	uint64_t addr, size;
	uint32_t type;
};

struct boot_info {
	int mode;                   /* GUEST_MODE_* */
	uint64_t params;            /* boot_params or hvm_start_info address */
	const char *cmdline;        /* never NULL */
	uint64_t cmdline_gpa;       /* 0: none given */
	int nr_mem;
	struct mem_entry mem[MEMMAP_MAX];
	bool have_initrd;
	uint64_t initrd_addr, initrd_size;
	uint64_t rsdp;              /* 0: none */
	uint64_t setup_data;        /* Linux: head of the setup_data chain; 0: none */
	uint64_t initrd_addr_max;   /* Linux: from the setup header; 0: unknown */
	uint64_t cmdline_size;      /* Linux: from the setup header; 0: unknown */
};

/* Fill bi from the boot structure at params (checks what it reads). */
void boot_info_read(struct boot_info *bi, int mode, uint64_t params);
/* expect.mem_mib: RAM in the memory map == mib (rounded up to MiB), map well formed. */
void check_memory(const struct boot_info *bi, uint64_t mib);
/* Print where the initrd is; check size and (if want_sum) the rotate-add sum. */
void check_initrd(const struct boot_info *bi, bool want_size, uint64_t size,
		  bool want_sum, uint64_t sum);
/* The checksum run.py computes on the host: h = rol(h, 1) + next LE qword (tail zero padded). */
uint64_t rotsum64(const uint8_t *p, uint64_t len);

/* A virtio-mmio window as the firmware describes it (FDT node or DSDT LNRO0005 device). */
#define VIRTIO_MMIO_MAX 32
struct virtio_mmio_loc {
	uint64_t base, size;
	uint32_t irq;
};

/* ---- acpi.c ---- */
#define ACPI_MAX_CPUS 64

struct acpi_info {
	bool ok;                    /* RSDP, XSDT and MADT found and valid */
	int nr_cpus;                /* enabled local APICs in the MADT */
	uint32_t apic_ids[ACPI_MAX_CPUS];
	uint64_t lapic_addr;
	uint64_t ioapic_addr;       /* 0: none */
	bool have_fadt;
	uint16_t sleep_port;        /* FADT SLEEP_CONTROL_REG, 0: none */
	uint16_t reset_port;        /* FADT RESET_REG, 0: none */
	uint8_t reset_value;
	uint8_t s5_slp_typ;         /* from \_S5 in the DSDT, 0xff: not found */
	uint32_t ged_gsi;           /* the interrupt of the DSDT's ACPI0013 (power button), 0: none */
	uint32_t ged_genid_gsi;     /* its second interrupt (a new VM generation ID), 0: none */
	uint64_t vmgenid_addr;      /* VM_Gen_Counter's ADDR: the 16-byte ID's address, 0: no device */
	int nr_virtio;              /* LNRO0005 devices in the DSDT, in DSDT order */
	struct virtio_mmio_loc virtio[VIRTIO_MMIO_MAX];
};

/* Find and check RSDP -> XSDT -> MADT, FADT, DSDT; failures are reported with fail(). */
void acpi_read(uint64_t rsdp, struct acpi_info *ai);

/* ---- fdt.c ---- */
struct fdt_info {
	bool ok;
	int nr_cpus;
	bool serial;
	bool have_bootargs;
	bool bootargs_match;
	uint64_t mem_total;         /* sum of /memory reg sizes */
	int nr_virtio;              /* virtio_mmio@ nodes with compatible "virtio,mmio", in tree order */
	struct virtio_mmio_loc virtio[VIRTIO_MMIO_MAX];
};

/* Find the SETUP_DTB in the setup_data chain, check and walk the tree. */
void fdt_read(const struct boot_info *bi, struct fdt_info *fi);

/* ---- blk.c: virtio-mmio transport + virtio-blk driver (blk.* keys) ---- */
/* Parse one blk.* token (key without "blk.", value); false if unknown or malformed. */
bool blk_parse(const char *key, size_t klen, const char *v, size_t n);
bool blk_wanted(void);
bool blk_wants_fdt(int mode);   /* find the devices in the device tree (Linux mode default) */
bool blk_wants_acpi(int mode);  /* ... in the DSDT (PVH mode default) */
/* Find the devices (FDT, DSDT, or probing), run the blk.* checks in command-line order. */
void blk_run(const struct boot_info *bi, const struct fdt_info *fi, const struct acpi_info *ai);
bool parse_num(const char *p, size_t len, bool hex, uint64_t *out);

/* Find the block devices even without blk.* keys (microvm.run= needs them). */
void blk_enable(void);
/*
 * After blk_run(): read count (1..16) sectors of disk from sector, setting
 * the disk up first if no blk.* op did; sectors past the disk's end read as
 * zeros. Returns the 16-sector buffer (valid until the next blk call) or
 * NULL after fail().
 */
const uint8_t *blk_read_sectors(int disk, uint64_t sector, uint32_t count);

/* ---- run.c: microvm.run=/dev/vdX, the --run disk (docs/cli-runs.md) ---- */
bool run_parse(const char *v, size_t n);
bool run_wanted(void);
/* After blk_run(): read and check the run disk; the script's status, or -1 (none, or after fail()). */
int run_read(void);

/* ---- bench.c: timed loops for the exit-handling benchmark (bench.* keys) ---- */
extern volatile uint32_t bench_sink;
bool bench_parse(const char *key, size_t klen, const char *v, size_t n);
bool bench_wanted(void);
bool bench_wants_fdt(int mode);  /* bench.mmio needs the virtio-mmio windows */
bool bench_wants_acpi(int mode);
void bench_run(const struct boot_info *bi, const struct fdt_info *fi, const struct acpi_info *ai);
/* action=echo's line `read`: read back every page bench.touch wrote, print their sum. */
void bench_read_touched(void);

/* ---- net.c: virtio-net driver (net.* keys) ---- */
bool net_parse(const char *key, size_t klen, const char *v, size_t n);
bool net_wanted(void);
bool net_wants_fdt(int mode);
bool net_wants_acpi(int mode);
/* Find the network devices, set each up, run the net.* checks in command-line order. */
void net_run(const struct boot_info *bi, const struct fdt_info *fi, const struct acpi_info *ai);

/* ---- smp.c ---- */
uint64_t lapic_base(void);
uint32_t lapic_id(void);
void lapic_enable(void);
void lapic_eoi(void);
/*
 * Start APs with INIT-SIPI-SIPI at the trampoline and wait (bounded) until
 * they have counted themselves. ids: APIC IDs to start (the BSP's own is
 * skipped), or NULL to use the all-excluding-self shorthand. Returns the
 * number of APs that ran the trampoline.
 */
int smp_start_aps(const uint32_t *ids, int nr_ids, int expected);

/* ---- irq.c: IDT, exceptions, int3, serial RX ---- */
struct trap_frame {
	uint64_t r11, r10, r9, r8, rdi, rsi, rdx, rcx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};

void idt_init(void);
void check_int3(void);
void check_fwait(void);
void check_smap(void);
/* action=echo: serial RX by interrupt, echo lines until "quit". Does not return. */
__attribute__((noreturn)) void run_echo(uint64_t ioapic_addr);
/* action=power-button: route the GED's pin, wait (hlt) until its interrupt comes; then return. */
void wait_power_button(uint64_t ioapic_addr, uint32_t gsi);
/*
 * action=vmgenid: route the GED's generation-ID pin, then for ever: wait (hlt)
 * for its interrupts and print the ID at addr after each. Does not return.
 */
__attribute__((noreturn)) void watch_vmgenid(uint64_t ioapic_addr, uint32_t gsi, uint64_t addr);
/* The 16 bytes at addr as 32 lowercase hex digits and a NUL. */
void vmgenid_hex(uint64_t addr, char hex[33]);

/* ---- entry.S ---- */
extern const char guest_image_name[];
extern char __image_start[], __image_end[];
extern const uint8_t ap_tramp[], ap_tramp_end[], ap_tramp_counter[];
extern const char int3_next[];
extern const char trap_stubs[];
void do_int3(void);
__attribute__((noreturn)) void triple_fault(void);

#endif /* __ASSEMBLER__ */
#endif
