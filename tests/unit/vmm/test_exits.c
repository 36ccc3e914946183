/* test_exits.c - decoding fabricated struct kvm_run areas and dispatching them. */
#include <criterion/criterion.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>

#include "driver/vcpu.h"
#include "vmm/bus.h"
#include "base/exit_codes.h"
#include "vmm/exits.h"
#include "vmm/quirks.h"

#define RUN_SIZE 4096

static uint8_t run_area[RUN_SIZE] __attribute__((aligned(64)));
static struct kvm_run *run = (struct kvm_run *)run_area;

static int stops, stop_status;
static uint8_t last_port_write;
static int port_calls;

static void stop(void *ctx, int status, const char *why)
{
	(void)ctx, (void)why;
	stops++;
	stop_status = status;
}

static void port_dev(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	(void)opaque, (void)offset;
	port_calls++;
	if (is_write)
		last_port_write = data[0];
	else
		memset(data, 0x11, len);
}

static struct bus pio, mmio;
static struct exit_stats stats[2]; /* per vCPU */
static atomic_ullong unmapped;
static struct exit_env env;
static struct vcpu fake_vcpu = { .fd = -1, .id = 0 };

static void setup(void)
{
	memset(run_area, 0, sizeof(run_area));
	stops = 0;
	stop_status = -1;
	port_calls = 0;
	bus_init(&pio, "port");
	bus_init(&mmio, "MMIO");
	bus_register(&pio, 0x3f8, 8, port_dev, NULL, "dev");
	memset(stats, 0, sizeof(stats));
	unmapped = 0;
	env = (struct exit_env){ .pio = &pio, .mmio = &mmio, .stop = stop,
				 .stats = stats, .nr_stats = 2, .unmapped_io = &unmapped };
}

TestSuite(exits, .init = setup);

static void fabricate_io(uint16_t port, uint8_t size, uint32_t count, bool out, uint64_t off)
{
	run->exit_reason = KVM_EXIT_IO;
	run->io.port = port;
	run->io.size = size;
	run->io.count = count;
	run->io.direction = out ? KVM_EXIT_IO_OUT : KVM_EXIT_IO_IN;
	run->io.data_offset = off;
}

Test(exits, io_write_reaches_device)
{
	struct vm_exit ex;

	fabricate_io(0x3f8, 1, 1, true, 1024);
	run_area[1024] = 'Q';
	vmexit_decode(run, RUN_SIZE, &ex);
	cr_assert_eq(ex.kind, VMEXIT_IO);
	cr_assert(ex.io.write);
	cr_assert_eq(exit_dispatch(&env, &fake_vcpu, &ex), EXIT_CONTINUE);
	cr_assert_eq(last_port_write, 'Q');
	cr_assert_eq(stats[0].kind[VMEXIT_IO], 1);
}

Test(exits, rep_ins_fills_every_element)
{
	struct vm_exit ex;

	fabricate_io(0x3f8, 1, 5, false, 2048);
	vmexit_decode(run, RUN_SIZE, &ex);
	cr_assert_eq(exit_dispatch(&env, &fake_vcpu, &ex), EXIT_CONTINUE);
	cr_assert_eq(port_calls, 5);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(run_area[2048 + i], 0x11);
}

Test(exits, io_data_outside_run_area_is_an_error)
{
	struct vm_exit ex;

	fabricate_io(0x3f8, 4, 2, true, RUN_SIZE - 4);
	vmexit_decode(run, RUN_SIZE, &ex);
	cr_assert_eq(ex.kind, VMEXIT_INTERNAL_ERROR);
	fabricate_io(0x3f8, 3, 1, true, 1024);
	vmexit_decode(run, RUN_SIZE, &ex);
	cr_assert_eq(ex.kind, VMEXIT_INTERNAL_ERROR, "size 3 is not an I/O size");
	fabricate_io(0x3f8, 1, 1, true, (uint64_t)RUN_SIZE + 100);
	vmexit_decode(run, RUN_SIZE, &ex);
	cr_assert_eq(ex.kind, VMEXIT_INTERNAL_ERROR);
}

Test(exits, unmapped_port_read_all_ones_and_counted)
{
	struct vm_exit ex;

	fabricate_io(0x80, 2, 1, false, 1024);
	vmexit_decode(run, RUN_SIZE, &ex);
	cr_assert_eq(exit_dispatch(&env, &fake_vcpu, &ex), EXIT_CONTINUE);
	cr_assert_eq(run_area[1024], 0xff);
	cr_assert_eq(run_area[1025], 0xff);
	cr_assert_eq(unmapped, 1);
	cr_assert_eq(stops, 0);
}

Test(exits, unmapped_mmio_continues)
{
	struct vm_exit ex;

	run->exit_reason = KVM_EXIT_MMIO;
	run->mmio.phys_addr = 0xd0000000;
	run->mmio.len = 4;
	run->mmio.is_write = 0;
	vmexit_decode(run, RUN_SIZE, &ex);
	cr_assert_eq(ex.kind, VMEXIT_MMIO);
	cr_assert_eq(exit_dispatch(&env, &fake_vcpu, &ex), EXIT_CONTINUE);
	cr_assert_eq(run->mmio.data[0], 0xff);
	cr_assert_eq(unmapped, 1);
}

Test(exits, triple_fault_stops_with_120)
{
	struct vm_exit ex;

	run->exit_reason = KVM_EXIT_SHUTDOWN;
	vmexit_decode(run, RUN_SIZE, &ex);
	cr_assert_eq(exit_dispatch(&env, &fake_vcpu, &ex), EXIT_STOP);
	cr_assert_eq(stops, 1);
	cr_assert_eq(stop_status, MV_EXIT_TRIPLE_FAULT);
}

Test(exits, system_events)
{
	struct vm_exit ex;

	run->exit_reason = KVM_EXIT_SYSTEM_EVENT;
	run->system_event.type = KVM_SYSTEM_EVENT_SHUTDOWN;
	vmexit_decode(run, RUN_SIZE, &ex);
	cr_assert_eq(exit_dispatch(&env, &fake_vcpu, &ex), EXIT_STOP);
	cr_assert_eq(stop_status, MV_EXIT_POWEROFF);
	run->system_event.type = KVM_SYSTEM_EVENT_CRASH;
	vmexit_decode(run, RUN_SIZE, &ex);
	cr_assert_eq(exit_dispatch(&env, &fake_vcpu, &ex), EXIT_STOP);
	cr_assert_eq(stop_status, MV_EXIT_GUEST_ERROR);
}

Test(exits, unknown_reason_stops_with_121)
{
	struct vm_exit ex;

	run->exit_reason = 9999;
	vmexit_decode(run, RUN_SIZE, &ex);
	cr_assert_eq(ex.kind, VMEXIT_UNKNOWN);
	cr_assert_eq(ex.raw_reason, 9999);
	cr_assert_eq(exit_dispatch(&env, &fake_vcpu, &ex), EXIT_STOP);
	cr_assert_eq(stop_status, MV_EXIT_GUEST_ERROR);
	cr_assert_eq(stats[0].kind[VMEXIT_UNKNOWN], 1);
}

Test(exits, intr_continues)
{
	struct vm_exit ex;

	run->exit_reason = KVM_EXIT_INTR;
	vmexit_decode(run, RUN_SIZE, &ex);
	cr_assert_eq(exit_dispatch(&env, &fake_vcpu, &ex), EXIT_CONTINUE);
	cr_assert_eq(stops, 0);
}

Test(exits, emulation_failure_bytes_decoded)
{
	struct vm_exit ex;

	run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
	run->emulation_failure.suberror = KVM_INTERNAL_ERROR_EMULATION;
	run->emulation_failure.ndata = 3;
	run->emulation_failure.flags = KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
	run->emulation_failure.insn_size = 3;
	memcpy(run->emulation_failure.insn_bytes, "\x0f\x01\xca", 3);
	vmexit_decode(run, RUN_SIZE, &ex);
	cr_assert_eq(ex.kind, VMEXIT_EMULATION_FAILURE);
	cr_assert_eq(ex.emul.insn_len, 3);
	cr_assert_eq(ex.emul.insn[2], 0xca);
	/* Without the flag the bytes are not trusted. */
	run->emulation_failure.flags = 0;
	vmexit_decode(run, RUN_SIZE, &ex);
	cr_assert_eq(ex.emul.insn_len, 0);
	/* insn_size larger than the array is clamped. */
	run->emulation_failure.flags = KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
	run->emulation_failure.insn_size = 200;
	vmexit_decode(run, RUN_SIZE, &ex);
	cr_assert_eq(ex.emul.insn_len, 15);
}

Test(exits, unknown_instruction_emulation_failure_stops)
{
	struct vm_exit ex;

	run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
	run->emulation_failure.suberror = KVM_INTERNAL_ERROR_EMULATION;
	run->emulation_failure.ndata = 3;
	run->emulation_failure.flags = KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
	run->emulation_failure.insn_size = 5;
	memcpy(run->emulation_failure.insn_bytes, "\xf0\x48\x0f\xc7\x0e", 5); /* lock cmpxchg16b */
	vmexit_decode(run, RUN_SIZE, &ex);
	cr_assert_eq(exit_dispatch(&env, &fake_vcpu, &ex), EXIT_STOP);
	cr_assert_eq(stop_status, MV_EXIT_GUEST_ERROR);
}

Test(quirks, classify)
{
	struct quirk q;

	cr_assert(quirk_classify((const uint8_t *)"\xcc", 1, &q));
	cr_assert_eq(q.kind, QUIRK_INT3);
	cr_assert_eq(q.len, 1);
	cr_assert(quirk_classify((const uint8_t *)"\x0f\x01\xca\x90", 4, &q));
	cr_assert_eq(q.kind, QUIRK_CLAC);
	cr_assert_eq(q.len, 3);
	cr_assert(quirk_classify((const uint8_t *)"\x0f\x01\xcb", 3, &q));
	cr_assert_eq(q.kind, QUIRK_STAC);
	cr_assert(quirk_classify((const uint8_t *)"\x9b", 1, &q));
	cr_assert_eq(q.kind, QUIRK_FWAIT);
	cr_assert_not(quirk_classify((const uint8_t *)"\x0f\x01", 2, &q), "truncated clac");
	cr_assert_not(quirk_classify((const uint8_t *)"\x0f\x01\xd0", 3, &q), "xgetbv");
	cr_assert_not(quirk_classify((const uint8_t *)"\xcc", 0, &q), "no bytes");
	cr_assert_eq(q.kind, QUIRK_NONE);
}

Test(quirks, format_bytes)
{
	char buf[64];
	uint8_t many[20];

	quirk_format_bytes((const uint8_t *)"\x0f\x01\xca", 3, buf, sizeof(buf));
	cr_assert_str_eq(buf, "0f 01 ca");
	memset(many, 0xab, sizeof(many));
	quirk_format_bytes(many, 20, buf, 10);
	cr_assert_str_eq(buf, "ab ab ab", "truncated to the buffer");
}

/* Exits are counted per vCPU (no shared counters), per kind and per device range. */
Test(exits, counted_per_vcpu_and_device)
{
	struct vcpu other = { .fd = -1, .id = 1 }, stray = { .fd = -1, .id = 7 };
	struct vm_exit ex;

	fabricate_io(0x3f8, 1, 1, true, 1024);
	vmexit_decode(run, RUN_SIZE, &ex);
	exit_dispatch(&env, &fake_vcpu, &ex);
	exit_dispatch(&env, &other, &ex);
	exit_dispatch(&env, &other, &ex);
	exit_dispatch(&env, &stray, &ex);   /* id outside the array: handled, not counted */
	fabricate_io(0x80, 1, 1, true, 1024);
	vmexit_decode(run, RUN_SIZE, &ex);
	exit_dispatch(&env, &other, &ex);
	cr_assert_eq(port_calls, 4);
	cr_assert_eq(stats[0].kind[VMEXIT_IO], 1);
	cr_assert_eq(stats[1].kind[VMEXIT_IO], 3);
	cr_assert_eq(stats[0].pio[0], 1, "range 0 is the device at 0x3f8");
	cr_assert_eq(stats[1].pio[0], 2);
	cr_assert_eq(stats[1].pio[STATS_UNMAPPED], 1, "port 0x80 hits no device");

	struct exit_stats sum;
	exit_stats_sum(stats, 2, &sum);
	cr_assert_eq(sum.kind[VMEXIT_IO], 4);
	cr_assert_eq(sum.pio[0], 3);
	cr_assert_eq(sum.pio[STATS_UNMAPPED], 1);
}
