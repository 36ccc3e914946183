/*
 * bench.c - the bench.* keys: timed loops for bench/vm.py's exit-handling
 * benchmark (docs/benchmarks.md). Each loop prints a start line before and
 * a done line after it; the host times the lines as they arrive, so the
 * figures do not depend on the guest knowing its TSC rate. The TSC cycles
 * the guest saw are printed too.
 *
 *   bench.loop=N   N iterations with a RAM write and no exit (the baseline:
 *                  what the loop costs the guest itself)
 *   bench.pio=N    N `outb` to the UART's scratch register (COM1 + 7)
 *   bench.mmio=N   N 32-bit writes of 0 to QueueSel of the first virtio-mmio
 *                  window holding a device (DSDT or FDT), the first window
 *                  without one
 *   bench.touch=M  write one word into every 4 KiB page of M MiB of RAM from
 *                  32 MiB up (the RAM must be there): guest memory a snapshot
 *                  has to save, for the restore benchmark; the line `read`
 *                  to action=echo then reads every one of those pages back
 *                  (a restored function's first request touching its
 *                  memory: the working-set benchmark) and prints
 *                  "echo: read M MiB, sum X"
 *
 * They run in that order (touch first), after the other checks.
 */
#include "guest.h"
#include "virtio.h"

#define PORT_COM1_SCR 0x3ff

static struct {
	bool any;
	uint64_t loop, pio, mmio, touch;
} cfg;

bool bench_parse(const char *key, size_t klen, const char *v, size_t n)
{
	uint64_t *slot = mem_eq_str(key, klen, "loop") ? &cfg.loop :
			 mem_eq_str(key, klen, "pio")  ? &cfg.pio :
			 mem_eq_str(key, klen, "mmio") ? &cfg.mmio :
			 mem_eq_str(key, klen, "touch") ? &cfg.touch : NULL;

	cfg.any = true;
	return slot && parse_num(v, n, false, slot) && *slot <= 1000000000ULL;
}

bool bench_wanted(void)
{
	return cfg.any;
}

bool bench_wants_fdt(int mode)
{
	return cfg.mmio && vfind_fdt(VFIND_AUTO, mode);
}

bool bench_wants_acpi(int mode)
{
	return cfg.mmio && vfind_acpi(VFIND_AUTO, mode);
}

/* The baseline loop's RAM target (external, so the writes are not dropped). */
volatile uint32_t bench_sink;

static void timed(const char *what, uint64_t n, uint64_t addr)
{
	gprintf("bench: %s %lu start\n", what, n);
	uint64_t t0 = rdtsc();
	for (uint64_t i = 0; i < n; i++) {
		if (what[0] == 'l')
			bench_sink = (uint32_t)i;
		else if (what[0] == 'p')
			outb(PORT_COM1_SCR, (uint8_t)i);
		else
			mmio_write32(addr, 0);
	}
	gprintf("bench: %s %lu done, %lu TSC cycles\n", what, n, rdtsc() - t0);
}

#define TOUCH_BASE ((uint64_t)32 << 20)

static void touch(const struct boot_info *bi, uint64_t mib)
{
	uint64_t end = TOUCH_BASE + (mib << 20);
	bool ram = false;

	for (int i = 0; i < bi->nr_mem; i++)
		ram |= bi->mem[i].type == 1 && bi->mem[i].addr <= TOUCH_BASE &&
		       bi->mem[i].addr + bi->mem[i].size >= end;
	if (!ram || !phys_ok(TOUCH_BASE, mib << 20)) {
		fail(FAIL_BENCH, "bench: touch: no RAM at 0x%lx-0x%lx", TOUCH_BASE, end);
		return;
	}
	for (uint64_t a = TOUCH_BASE; a < end; a += 4096)
		*(volatile uint64_t *)a = a ^ 0x5a5a5a5a5a5a5a5aULL;
	gprintf("bench: touched %lu MiB\n", mib);
}

void bench_run(const struct boot_info *bi, const struct fdt_info *fi, const struct acpi_info *ai)
{
	if (cfg.touch)
		touch(bi, cfg.touch);
	if (cfg.loop)
		timed("loop", cfg.loop, 0);
	if (cfg.pio)
		timed("pio", cfg.pio, 0);
	if (!cfg.mmio)
		return;
	const struct virtio_mmio_loc *locs;
	const char *from;
	int n = virtio_locate(bi, fi, ai, VFIND_AUTO, &locs, &from);
	uint64_t target = 0, empty = 0;
	for (int i = 0; i < n && !target; i++) {
		if (locs[i].size < 0x100 || !phys_ok(locs[i].base, locs[i].size) ||
		    vm_rd(locs[i].base, VM_MAGIC) != VIRTIO_MAGIC)
			continue;
		if (vm_rd(locs[i].base, VM_DEVICE_ID) != 0)
			target = locs[i].base;
		else if (!empty)
			empty = locs[i].base;
	}
	if (!target)
		target = empty;
	if (!target) {
		fail(FAIL_BENCH, "bench: no virtio-mmio window found (%d listed)", n);
		return;
	}
	gprintf("bench: mmio target QueueSel at 0x%lx (window from %s)\n", target + VM_QUEUE_SEL, from);
	timed("mmio", cfg.mmio, target + VM_QUEUE_SEL);
}

void bench_read_touched(void)
{
	uint64_t sum = 0, end = TOUCH_BASE + (cfg.touch << 20);

	for (uint64_t a = TOUCH_BASE; a < end; a += 4096)
		sum += *(volatile uint64_t *)a;
	gprintf("echo: read %lu MiB, sum %lx\n", cfg.touch, sum);
}
