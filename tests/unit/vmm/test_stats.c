/* test_stats.c - boot milestones from serial output, summing per-vCPU counters, the --stats text and JSON. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/bus.h"
#include "vmm/stats.h"

/* The clock boot_times_output() reads: fake_now, counting the reads. */
static uint64_t fake_now;
static int clock_reads;

static uint64_t fake_clock(void)
{
	clock_reads++;
	return fake_now;
}

static void feed(struct boot_times *t, const char *s, uint64_t now)
{
	fake_now = now;
	boot_times_output(t, (const uint8_t *)s, strlen(s), fake_clock);
}

Test(stats, milestones_from_output)
{
	struct boot_times t = { .start = 1000 };

	feed(&t, "", 1500);
	cr_assert_eq(t.first_output, 0, "no byte, no first output");
	feed(&t, "Linux version 6.1\r\n", 2000);
	cr_assert_eq(t.first_output, 2000);
	feed(&t, "Run /init aas init pro", 3000);   /* a false start, then a prefix split across writes */
	cr_assert_eq(t.run_init, 0);
	feed(&t, "cess\r\n", 4000);
	cr_assert_eq(t.run_init, 4000);
	feed(&t, "Run /sbin/init as init process", 5000);
	cr_assert_eq(t.run_init, 4000, "the first one counts");
	cr_assert_eq(t.first_output, 2000, "the first one counts");
}

Test(stats, mark_byte_by_byte)
{
	struct boot_times t = { .start = 0 };
	const char *s = "Run /spin as as init process";

	for (size_t i = 0; s[i]; i++) {
		fake_now = 10 + i;
		boot_times_output(&t, (const uint8_t *)s + i, 1, fake_clock);
	}
	cr_assert_eq(t.run_init, 10 + strlen(s) - 1);
}

Test(stats, clock_read_only_at_milestones)
{
	struct boot_times t = { .start = 0 };

	clock_reads = 0;
	feed(&t, "a", 1);
	feed(&t, "b", 2);
	feed(&t, "cde", 3);
	cr_assert_eq(clock_reads, 1, "only the first output reads the clock (read %d times)", clock_reads);
	feed(&t, "as init process", 4);
	cr_assert_eq(clock_reads, 2);
	feed(&t, "more", 5);
	cr_assert_eq(clock_reads, 2, "both milestones set: no more reads");
	cr_assert_eq(t.first_output, 1);
	cr_assert_eq(t.run_init, 4);
}

Test(stats, guest_end_first_wins)
{
	struct boot_times t = { .start = 0 };

	boot_times_guest_end(&t, 7);
	boot_times_guest_end(&t, 9);
	cr_assert_eq(t.guest_end, 7);
}

static void nop(void *o, uint64_t off, uint8_t *d, uint32_t len, bool w)
{
	(void)o, (void)off, (void)d, (void)len, (void)w;
}

/* A report as the VM makes it: two vCPUs, COM1 and the exit port, one virtio window. */
static void make_report(struct stats_report *r, struct bus *pio, struct bus *mmio)
{
	static struct exit_stats per[2];
	struct exit_stats sum;
	struct boot_times t = { .start = 1000000 };

	memset(per, 0, sizeof(per));
	bus_init(pio, "port");
	bus_init(mmio, "MMIO");
	cr_assert_eq(bus_register(pio, 0x510, 4, nop, NULL, "exit-status port"), 0);
	cr_assert_eq(bus_register(pio, 0x3f8, 8, nop, NULL, "COM1"), 0); /* sorts before the exit port */
	cr_assert_eq(bus_register(mmio, 0xd0000000, 0x1000, nop, NULL, "virtio-blk"), 0);
	per[0].kind[VMEXIT_IO] = 100;
	per[0].pio[0] = 99;           /* COM1 */
	per[1].kind[VMEXIT_IO] = 2;
	per[1].pio[1] = 1;            /* exit port */
	per[1].pio[STATS_UNMAPPED] = 1;
	per[1].kind[VMEXIT_MMIO] = 5;
	per[1].mmio[0] = 5;
	per[0].kind[VMEXIT_INTR] = 3; /* microvm's own kicks: not guest exits */
	per[0].kind[VMEXIT_EMULATION_FAILURE] = 4;
	per[0].quirk[QUIRK_INT3] = 4;
	per[0].quirk_name[QUIRK_INT3] = "int3";
	t.loaded = 1000000 + 400000;            /* 0.4 ms */
	t.vm_created = 1000000 + 1250000;
	t.vcpus_ready = 1000000 + 1500000;
	t.sandbox_ready = 0;                    /* not reached (a start-up that failed there) */
	t.guest_start = 1000000 + 2500000;      /* 2.5 ms */
	t.first_output = 1000000 + 12345678;   /* 12.345678 ms */
	t.guest_end = 1000000 + 50000000;
	t.exit = 1000000 + 51000000;
	exit_stats_sum(per, 2, &sum);
	stats_report_fill(r, &t, &sum, 2, pio, mmio, 7);
}

static char *capture(void (*print)(FILE *, const struct stats_report *), const struct stats_report *r)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cr_assert_not_null(f);
	print(f, r);
	fclose(f);
	return buf;
}

Test(stats, report_rows)
{
	static struct stats_report r;
	struct bus pio, mmio;

	make_report(&r, &pio, &mmio);
	cr_assert_eq(r.nr_pio, 3);
	cr_assert_str_eq(r.pio[0].name, "COM1");
	cr_assert_eq(r.pio[0].exits, 99);
	cr_assert_str_eq(r.pio[1].name, "exit-status port");
	cr_assert_eq(r.pio[1].exits, 1);
	cr_assert_str_eq(r.pio[2].name, "(no device)");
	cr_assert_eq(r.nr_mmio, 1);
	cr_assert_eq(r.nr_quirks, 1);
	cr_assert_float_eq(r.loaded_ms, 0.4, 1e-9);
	cr_assert_float_eq(r.vm_created_ms, 1.25, 1e-9);
	cr_assert_float_eq(r.vcpus_ready_ms, 1.5, 1e-9);
	cr_assert_lt(r.sandbox_ready_ms, 0, "not reached");
	cr_assert_float_eq(r.guest_start_ms, 2.5, 1e-9);
	cr_assert_float_eq(r.first_output_ms, 12.345678, 1e-9);
	cr_assert_lt(r.run_init_ms, 0, "never seen");
	cr_assert_float_eq(r.exit_ms, 51.0, 1e-9);
}

Test(stats, text_table)
{
	static struct stats_report r;
	struct bus pio, mmio;

	make_report(&r, &pio, &mmio);
	char *s = capture(stats_print_text, &r);
	const char *want[] = {
		"microvm: stats: time since microvm started:\n",
		"microvm: stats:   guest loaded                  0.400 ms\n",
		"microvm: stats:   VM created                    1.250 ms\n",
		"microvm: stats:   vCPUs ready                   1.500 ms\n",
		"microvm: stats:   sandbox ready                     -\n",
		"microvm: stats:   guest started                 2.500 ms\n",
		"microvm: stats:   first guest output           12.346 ms\n",
		"microvm: stats:   init started                      -\n",
		"microvm: stats:   guest ended                  50.000 ms\n",
		"microvm: stats:   exit                         51.000 ms\n",
		"microvm: stats: VM exits (2 vCPUs): 111\n",
		"microvm: stats:   io                              102\n",
		"microvm: stats:   mmio                              5\n",
		"microvm: stats:   emulation-failure                 4\n",
		"microvm: stats: port I/O exits by device:\n",
		"microvm: stats:   COM1                   port 0x3f8-0x3ff                     99\n",
		"microvm: stats:   exit-status port       port 0x510-0x513                      1\n",
		"microvm: stats:   (no device)                                                  1\n",
		"microvm: stats: MMIO exits by device:\n",
		"microvm: stats:   virtio-blk             mmio 0xd0000000-0xd0000fff            5\n",
		"microvm: stats: emulation failures completed by microvm:\n",
		"microvm: stats:   int3                              4\n",
		"microvm: stats: exit status 7\n",
	};
	const char *p = s;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const char *q = strstr(p, want[i]);
		cr_assert_not_null(q, "missing or out of order: '%s' in:\n%s", want[i], s);
		p = q + strlen(want[i]);
	}
	cr_assert_null(strstr(s, "intr"), "kicks are not listed:\n%s", s);
	cr_assert_eq(*p, '\0', "nothing after the exit status:\n%s", s);
	free(s);
}

Test(stats, json_line)
{
	static struct stats_report r;
	struct bus pio, mmio;

	make_report(&r, &pio, &mmio);
	char *s = capture(stats_print_json, &r);
	cr_assert_str_eq(s,
		"{\"microvm_stats\":1,\"exit_status\":7,\"vcpus\":2,"
		"\"ms\":{\"loaded\":0.400,\"vm_created\":1.250,\"vcpus_ready\":1.500,\"sandbox_ready\":null,\"guest_start\":2.500,\"first_output\":12.346,\"run_init\":null,\"guest_end\":50.000,\"exit\":51.000},"
		"\"exits\":{\"total\":111,\"unknown\":0,\"io\":102,\"mmio\":5,\"hlt\":0,\"shutdown\":0,"
		"\"system-event\":0,\"emulation-failure\":4,\"internal-error\":0,\"fail-entry\":0},"
		"\"pio\":[{\"device\":\"COM1\",\"base\":1016,\"size\":8,\"exits\":99},"
		"{\"device\":\"exit-status port\",\"base\":1296,\"size\":4,\"exits\":1},"
		"{\"device\":\"(no device)\",\"exits\":1}],"
		"\"mmio\":[{\"device\":\"virtio-blk\",\"base\":3489660928,\"size\":4096,\"exits\":5}],"
		"\"quirks\":{\"int3\":4}}\n");
	free(s);
}

Test(stats, json_escapes_names)
{
	static struct stats_report r;

	memset(&r, 0, sizeof(r));
	r.loaded_ms = r.vm_created_ms = r.vcpus_ready_ms = r.sandbox_ready_ms = -1;
	r.guest_start_ms = r.first_output_ms = r.run_init_ms = r.guest_end_ms = r.exit_ms = -1;
	r.nr_pio = 1;
	r.pio[0] = (struct stats_dev){ "a\"b\\c\n", 1, 1, 2 };
	char *s = capture(stats_print_json, &r);
	cr_assert_not_null(strstr(s, "\"device\":\"a\\\"b\\\\c\\u000a\""), "%s", s);
	cr_assert_not_null(strstr(s, "\"first_output\":null"), "%s", s);
	free(s);
}
