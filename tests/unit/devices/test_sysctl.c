/* test_sysctl.c - exit-status port, i8042 controller, ACPI sleep and reset registers. */
#include <criterion/criterion.h>
#include <string.h>

#include "devices/sysctl.h"
#include "firmware/machine.h"

static struct sysctl sc;
static int events, last_status;
static enum sysctl_event last_ev;

static void request(void *ctx, enum sysctl_event ev, int status)
{
	(void)ctx;
	events++;
	last_ev = ev;
	last_status = status;
}

static void setup(void)
{
	events = 0;
	last_status = -1;
	sysctl_init(&sc, &(struct sysctl_ops){ .request = request });
}

static void teardown(void)
{
	sysctl_destroy(&sc);
}

TestSuite(sysctl, .init = setup, .fini = teardown);

static uint8_t kbd_rd(unsigned off)
{
	uint8_t v;

	sysctl_i8042_io(&sc, off, &v, 1, false);
	return v;
}

static void kbd_wr(unsigned off, uint8_t v)
{
	sysctl_i8042_io(&sc, off, &v, 1, true);
}

Test(sysctl, exit_port_widths)
{
	uint8_t b = 42;
	uint8_t d[4] = { 0x01, 0x02, 0, 0 };

	sysctl_exit_port_io(&sc, 0, &b, 1, true);
	cr_assert_eq(events, 1);
	cr_assert_eq(last_ev, SYSCTL_EXIT_STATUS);
	cr_assert_eq(last_status, 42);
	sysctl_exit_port_io(&sc, 0, d, 4, true);
	cr_assert_eq(last_status, 0x01, "status is the low byte");
	sysctl_exit_port_io(&sc, 2, d, 2, true);
	cr_assert_eq(events, 2, "writes to the port's other bytes are ignored");
}

Test(sysctl, i8042_reset_command)
{
	cr_assert_eq(kbd_rd(4) & 0x01, 0, "no output pending");
	kbd_wr(4, 0xfe);
	cr_assert_eq(events, 1);
	cr_assert_eq(last_ev, SYSCTL_RESET);
}

Test(sysctl, i8042_output_port_reset)
{
	kbd_wr(4, 0xd1);
	kbd_wr(0, 0xff);
	cr_assert_eq(events, 0, "bit 0 set: no reset");
	kbd_wr(4, 0xd1);
	kbd_wr(0, 0xfe);
	cr_assert_eq(events, 1);
	cr_assert_eq(last_ev, SYSCTL_RESET);
}

Test(sysctl, i8042_ctr_and_self_test)
{
	kbd_wr(4, 0xaa);
	cr_assert(kbd_rd(4) & 0x01);
	cr_assert_eq(kbd_rd(0), 0x55);
	cr_assert_eq(kbd_rd(4) & 0x01, 0);
	kbd_wr(4, 0x60);
	kbd_wr(0, 0x47);
	kbd_wr(4, 0x20);
	cr_assert_eq(kbd_rd(0), 0x47);
	cr_assert_eq(events, 0);
}

Test(sysctl, acpi_s5_powers_off_only_with_slp_en_and_s5)
{
	uint8_t v;

	v = (uint8_t)(MV_ACPI_S5_SLP_TYP << 2);      /* no SLP_EN */
	sysctl_acpi_io(&sc, 0, &v, 1, true);
	cr_assert_eq(events, 0);
	v = (uint8_t)((3 << 2) | 0x20);              /* S3: ignored */
	sysctl_acpi_io(&sc, 0, &v, 1, true);
	cr_assert_eq(events, 0);
	v = (uint8_t)((MV_ACPI_S5_SLP_TYP << 2) | 0x20);
	sysctl_acpi_io(&sc, 0, &v, 1, true);
	cr_assert_eq(events, 1);
	cr_assert_eq(last_ev, SYSCTL_POWEROFF);
}

Test(sysctl, acpi_reset_register)
{
	uint8_t v = 0x55;

	sysctl_acpi_io(&sc, MV_PORT_ACPI_RESET - MV_PORT_ACPI_SLEEP_CTL, &v, 1, true);
	cr_assert_eq(events, 0, "wrong value");
	v = MV_ACPI_RESET_VALUE;
	sysctl_acpi_io(&sc, MV_PORT_ACPI_RESET - MV_PORT_ACPI_SLEEP_CTL, &v, 1, true);
	cr_assert_eq(events, 1);
	cr_assert_eq(last_ev, SYSCTL_RESET);
	sysctl_acpi_io(&sc, 1, &v, 1, false);
	cr_assert_eq(v, 0, "sleep status reads 0");
}
