/* fuzz_boot.c - libFuzzer harness: a hostile kernel file through the whole loader (bzImage, ELF, PVH, compressed), initrd placement and boot structures. */
#include <stdlib.h>
#include <string.h>

#include "boot/boot.h"
#include "fuzz.h"
#include "base/err.h"

/*
 * Input: the kernel file itself (any format; boot_load_kernel() detects it).
 * Guest RAM: 16 MiB at 0 (the smallest --mem), one heap block, so every byte
 * the loader writes outside it is an AddressSanitizer report. On success the
 * harness goes on as vmm/vm.c does: command line check, a 64 KiB initrd,
 * boot_write_params() with a device tree slot.
 */

#define RAM_SIZE (16ULL << 20)
#define INITRD_SIZE (64u << 10)

static struct fz_ram ram;
static struct machine mach;
static uint8_t *initrd;

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const gpa_t start = 0;
	static const uint64_t size = RAM_SIZE;

	(void)argc, (void)argv;
	fz_quiet();
	/* Allocated once: 16 MiB per input would be most of the run time. */
	fz_ram_init(&ram, &start, &size, 1);
	if (machine_init(&mach, RAM_SIZE, 1) < 0)
		abort();
	initrd = malloc(INITRD_SIZE);
	if (!initrd)
		abort();
	memset(initrd, 0x11, INITRD_SIZE);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct boot_kernel k;
	uint64_t initrd_gpa = 0;

	if (boot_load_kernel(&ram.mem, data, size, &k) < 0) {
		FZ_CHECK(err_msg()[0] != '\0');
		return 0;
	}
	FZ_CHECK(k.mode == BOOT_LINUX64 || k.mode == BOOT_PVH);
	FZ_CHECK(k.load_start >= MV_HIGH_MEM_START && k.load_start <= k.load_end);
	FZ_CHECK(k.load_end <= RAM_SIZE);
	FZ_CHECK(k.entry < (1ULL << 32));
	FZ_CHECK(k.cmdline_max <= MV_CMDLINE_MAX - 1);
	FZ_CHECK(memchr(k.how, '\0', sizeof(k.how)) != NULL && k.how[0]);

	(void)boot_check_cmdline(&k, "console=ttyS0 panic=-1");
	if (boot_load_initrd(&ram.mem, &mach, &k, initrd, INITRD_SIZE, &initrd_gpa) == 0) {
		FZ_CHECK(initrd_gpa % 4096 == 0);
		FZ_CHECK(initrd_gpa >= k.load_end && initrd_gpa >= MV_HIGH_MEM_START);
		FZ_CHECK(initrd_gpa + INITRD_SIZE <= RAM_SIZE);
		FZ_CHECK(initrd_gpa + INITRD_SIZE - 1 <= k.initrd_addr_max);
	}
	struct boot_params_in in = {
		.cmdline = "console=ttyS0",
		.initrd_gpa = initrd_gpa,
		.initrd_size = initrd_gpa ? INITRD_SIZE : 0,
		.rsdp_gpa = MV_ACPI_GPA,
		.fdt_gpa = MV_FDT_GPA,
		.fdt_size = 256,
	};
	(void)boot_write_params(&ram.mem, &mach, &k, &in);
	return 0;
}
