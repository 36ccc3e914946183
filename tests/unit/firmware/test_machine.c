/* test_machine.c - the machine description (RAM split, limits, virtio-mmio windows and pins) and its e820 map. */
#include <criterion/criterion.h>
#include <errno.h>

#include "firmware/e820.h"
#include "firmware/machine.h"
#include "base/err.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

Test(machine, small_ram_is_one_range)
{
	struct machine m;

	cr_assert_eq(machine_init(&m, 256 * MiB, 1), 0);
	cr_assert_eq(m.ram_size, 256 * MiB);
	cr_assert_eq(m.ncpus, 1);
	cr_assert_eq(m.nr_ram, 1);
	cr_assert_eq(m.ram[0].start, 0);
	cr_assert_eq(m.ram[0].size, 256 * MiB);
	cr_assert_eq(machine_low_ram_end(&m), 256 * MiB);
	cr_assert_eq(m.nr_mmio_devs, 0);
}

Test(machine, three_gib_fits_below_the_hole)
{
	struct machine m;

	cr_assert_eq(machine_init(&m, 3 * GiB, 2), 0);
	cr_assert_eq(m.nr_ram, 1);
	cr_assert_eq(m.ram[0].size, MV_MMIO_HOLE_START);
	cr_assert_eq(machine_low_ram_end(&m), MV_MMIO_HOLE_START);
}

Test(machine, more_than_three_gib_continues_at_4g)
{
	struct machine m;

	cr_assert_eq(machine_init(&m, 3 * GiB + MiB, 1), 0);
	cr_assert_eq(m.nr_ram, 2);
	cr_assert_eq(m.ram[0].start, 0);
	cr_assert_eq(m.ram[0].size, 3 * GiB);
	cr_assert_eq(m.ram[1].start, MV_HIGH_RAM_START);
	cr_assert_eq(m.ram[1].size, MiB);

	cr_assert_eq(machine_init(&m, 8 * GiB, 4), 0);
	cr_assert_eq(m.ram[0].size + m.ram[1].size, 8 * GiB);
	cr_assert_eq(m.ram[1].size, 5 * GiB);
	cr_assert_eq(machine_low_ram_end(&m), MV_MMIO_HOLE_START);
}

Test(machine, memory_limits)
{
	struct machine m;

	cr_assert_eq(machine_init(&m, MV_MEM_MIN, 1), 0);
	cr_assert_eq(machine_init(&m, MV_MEM_MAX, 1), 0);
	cr_assert_eq(m.ram[1].size, MV_MEM_MAX - MV_MMIO_HOLE_START);

	err_clear();
	cr_assert_eq(machine_init(&m, 1024, 1), -EINVAL);
	cr_assert_str_eq(err_msg(), "RAM size 1K: must be between 16 MiB and 1 TiB");
	cr_assert_eq(machine_init(&m, 15 * MiB, 1), -EINVAL);
	cr_assert_str_eq(err_msg(), "RAM size 15M: must be between 16 MiB and 1 TiB");
	cr_assert_eq(machine_init(&m, 0, 1), -EINVAL);
	cr_assert_str_eq(err_msg(), "RAM size 0: must be between 16 MiB and 1 TiB");
	cr_assert_eq(machine_init(&m, MV_MEM_MAX + MiB, 1), -EINVAL);
	cr_assert_eq(machine_init(&m, 2ULL << 40, 1), -EINVAL);
	cr_assert_str_eq(err_msg(), "RAM size 2T: must be between 16 MiB and 1 TiB");
}

Test(machine, memory_must_be_whole_mib)
{
	struct machine m;

	cr_assert_eq(machine_init(&m, 16 * MiB + 4096, 1), -EINVAL);
	cr_assert_str_eq(err_msg(), "RAM size 16388K: must be a multiple of 1 MiB");
	cr_assert_eq(machine_init(&m, 32 * MiB + 1, 1), -EINVAL);
	cr_assert_str_eq(err_msg(), "RAM size 33554433: must be a multiple of 1 MiB");
}

Test(machine, cpu_limits)
{
	struct machine m;

	cr_assert_eq(machine_init(&m, 256 * MiB, MV_MAX_VCPUS), 0);
	cr_assert_eq(m.ncpus, MV_MAX_VCPUS);
	cr_assert_eq(machine_init(&m, 256 * MiB, 0), -EINVAL);
	cr_assert_str_eq(err_msg(), "vCPU count 0: must be between 1 and 64");
	cr_assert_eq(machine_init(&m, 256 * MiB, 65), -EINVAL);
	cr_assert_str_eq(err_msg(), "vCPU count 65: must be between 1 and 64");
	cr_assert_eq(machine_init(&m, 256 * MiB, -1), -EINVAL);
}

/* The checks vmm/vm.c runs first: what is wrong, without the value or a flag (the caller prefixes "--mem 1K"). */
Test(machine, checks_without_the_value)
{
	char s[32];

	cr_assert_eq(machine_check_ram(MV_MEM_MIN), 0);
	cr_assert_eq(machine_check_ram(MV_MEM_MAX), 0);
	cr_assert_eq(machine_check_ram(1024), -EINVAL);
	cr_assert_str_eq(err_msg(), "must be between 16 MiB and 1 TiB");
	cr_assert_eq(machine_check_ram(16 * MiB + 4096), -EINVAL);
	cr_assert_str_eq(err_msg(), "must be a multiple of 1 MiB");
	cr_assert_eq(machine_check_cpus(1), 0);
	cr_assert_eq(machine_check_cpus(MV_MAX_VCPUS), 0);
	cr_assert_eq(machine_check_cpus(0), -EINVAL);
	cr_assert_str_eq(err_msg(), "must be between 1 and 64");
	cr_assert_eq(machine_check_cpus(MV_MAX_VCPUS + 1), -EINVAL);

	cr_assert_str_eq(machine_size_str(s, sizeof(s), 1024), "1K");
	cr_assert_str_eq(machine_size_str(s, sizeof(s), 15 * MiB), "15M");
	cr_assert_str_eq(machine_size_str(s, sizeof(s), 3 * GiB), "3G");
	cr_assert_str_eq(machine_size_str(s, sizeof(s), 2ULL << 40), "2T");
	cr_assert_str_eq(machine_size_str(s, sizeof(s), 16 * MiB + 4096), "16388K");
	cr_assert_str_eq(machine_size_str(s, sizeof(s), 32 * MiB + 1), "33554433");
	cr_assert_str_eq(machine_size_str(s, sizeof(s), 0), "0");
}

Test(machine, mmio_windows_and_pins)
{
	/* 5, 6, 7, then past 8 (RTC) and 9 (SCI); COM1's 4 is below the first. */
	static const uint32_t want[MV_MAX_MMIO_DEVS] = {
		5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
	};
	struct machine m;

	cr_assert_eq(machine_init(&m, 256 * MiB, 1), 0);
	for (int i = 0; i < MV_MAX_MMIO_DEVS; i++) {
		enum mmio_dev_type t = i % 2 ? MMIO_DEV_VIRTIO_NET : MMIO_DEV_VIRTIO_BLK;
		cr_assert_eq(machine_add_mmio_dev(&m, t), i);
		const struct mmio_dev *d = &m.mmio_devs[i];
		cr_assert_eq(d->type, t);
		cr_assert_eq(d->base, MV_VIRTIO_MMIO_BASE + (uint64_t)i * MV_VIRTIO_MMIO_SIZE);
		cr_assert_eq(d->size, MV_VIRTIO_MMIO_SIZE);
		cr_assert_eq(d->irq, want[i], "device %d: pin %u, want %u", i, d->irq, want[i]);
		cr_assert_neq(d->irq, MV_IRQ_COM1);
		cr_assert_neq(d->irq, MV_SCI_IRQ);
		cr_assert_lt(d->irq, MV_IOAPIC_PINS);
		/* Windows stay inside the 32-bit hole, below the IOAPIC. */
		cr_assert_geq(d->base, MV_MMIO_HOLE_START);
		cr_assert_leq(d->base + d->size, MV_IOAPIC_GPA);
	}
	cr_assert_eq(m.nr_mmio_devs, MV_MAX_MMIO_DEVS);

	err_clear();
	cr_assert_eq(machine_add_mmio_dev(&m, MMIO_DEV_VIRTIO_BLK), -ENOSPC);
	cr_assert_str_neq(err_msg(), "");
	cr_assert_eq(m.nr_mmio_devs, MV_MAX_MMIO_DEVS, "a failed add must not change the machine");
}

Test(machine, runs_out_of_pins)
{
	struct machine m;

	/* Fake a machine whose last device holds the last pin. */
	cr_assert_eq(machine_init(&m, 256 * MiB, 1), 0);
	cr_assert_eq(machine_add_mmio_dev(&m, MMIO_DEV_VIRTIO_BLK), 0);
	m.mmio_devs[0].irq = MV_IOAPIC_PINS - 1;
	err_clear();
	cr_assert_eq(machine_add_mmio_dev(&m, MMIO_DEV_VIRTIO_BLK), -ENOSPC);
	cr_assert_str_neq(err_msg(), "");
	cr_assert_eq(m.nr_mmio_devs, 1);
}

/* ---- e820 ---- */

static void check_common(const struct e820_entry *e)
{
	cr_assert_eq(e[0].addr, 0);
	cr_assert_eq(e[0].size, MV_EBDA_START);
	cr_assert_eq(e[0].type, E820_RAM);
	cr_assert_eq(e[1].addr, MV_EBDA_START);
	cr_assert_eq(e[1].addr + e[1].size, 1 * MiB);
	cr_assert_eq(e[1].type, E820_RESERVED);
	cr_assert_eq(e[2].addr, 1 * MiB);
	cr_assert_eq(e[2].type, E820_RAM);
}

Test(e820, small_ram)
{
	struct machine m;
	struct e820_entry e[8];

	cr_assert_eq(machine_init(&m, 256 * MiB, 1), 0);
	cr_assert_eq(e820_build(&m, e, 8), 3);
	check_common(e);
	cr_assert_eq(e[2].addr + e[2].size, 256 * MiB);
	/* The ACPI tables live in the reserved area. */
	cr_assert_geq(MV_ACPI_GPA, e[1].addr);
	cr_assert_leq(MV_ACPI_GPA + MV_ACPI_MAX, e[1].addr + e[1].size);
}

Test(e820, ram_above_4g)
{
	struct machine m;
	struct e820_entry e[8];
	uint64_t ram = 0;

	cr_assert_eq(machine_init(&m, 6 * GiB, 1), 0);
	cr_assert_eq(e820_build(&m, e, 8), 4);
	check_common(e);
	cr_assert_eq(e[2].addr + e[2].size, 3 * GiB);
	cr_assert_eq(e[3].addr, 4 * GiB);
	cr_assert_eq(e[3].size, 3 * GiB);
	cr_assert_eq(e[3].type, E820_RAM);
	for (int i = 0; i < 4; i++) {
		if (e[i].type == E820_RAM)
			ram += e[i].size;
		if (i)
			cr_assert_leq(e[i - 1].addr + e[i - 1].size, e[i].addr, "sorted, no overlap");
	}
	cr_assert_eq(ram, 6 * GiB - (1 * MiB - MV_EBDA_START));
}

Test(e820, too_small_array)
{
	struct machine m;
	struct e820_entry e[4];

	cr_assert_eq(machine_init(&m, 256 * MiB, 1), 0);
	cr_assert_eq(e820_build(&m, e, 2), -ENOSPC);
	cr_assert_eq(e820_build(&m, e, 0), -ENOSPC);
	cr_assert_eq(machine_init(&m, 4 * GiB, 1), 0);
	cr_assert_eq(e820_build(&m, e, 3), -ENOSPC);
	cr_assert_eq(e820_build(&m, e, 4), 4);
}
