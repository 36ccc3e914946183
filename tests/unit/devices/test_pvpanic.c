/* test_pvpanic.c - the pvpanic port: supported events on read, PANICKED and CRASH_LOADED on write. */
#include <criterion/criterion.h>
#include <string.h>

#include "devices/pvpanic.h"
#include "firmware/machine.h"

static struct pvpanic pv;
static int events;
static enum pvpanic_event last;

static void on_event(void *ctx, enum pvpanic_event ev)
{
	cr_assert_eq(ctx, &pv);
	events++;
	last = ev;
}

static void setup(void)
{
	events = 0;
	pvpanic_init(&pv, &(struct pvpanic_ops){ .event = on_event, .ctx = &pv });
}

TestSuite(pvpanic, .init = setup);

Test(pvpanic, read_offers_panicked_and_crash_loaded)
{
	uint8_t v = 0;

	pvpanic_io(&pv, 0, &v, 1, false);
	cr_assert_eq(v, 0x03);
	cr_assert_eq(v, MV_PVPANIC_EVENTS);
	cr_assert_eq(events, 0, "a read is no event");
}

Test(pvpanic, write_panicked)
{
	uint8_t v = MV_PVPANIC_PANICKED;

	pvpanic_io(&pv, 0, &v, 1, true);
	cr_assert_eq(events, 1);
	cr_assert_eq(last, PVPANIC_EV_PANICKED);
	v = MV_PVPANIC_PANICKED | MV_PVPANIC_CRASH_LOADED;
	pvpanic_io(&pv, 0, &v, 1, true);
	cr_assert_eq(last, PVPANIC_EV_PANICKED, "PANICKED wins over CRASH_LOADED");
}

Test(pvpanic, write_crash_loaded)
{
	uint8_t v = MV_PVPANIC_CRASH_LOADED;

	pvpanic_io(&pv, 0, &v, 1, true);
	cr_assert_eq(events, 1);
	cr_assert_eq(last, PVPANIC_EV_CRASH_LOADED);
}

Test(pvpanic, other_bits_ignored)
{
	uint8_t v = 0xfc;

	pvpanic_io(&pv, 0, &v, 1, true);
	v = 0;
	pvpanic_io(&pv, 0, &v, 1, true);
	cr_assert_eq(events, 0);
}

Test(pvpanic, the_port_is_qemus)
{
	cr_assert_eq(MV_PORT_PVPANIC, 0x505);
}
