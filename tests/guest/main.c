/* main.c - the test guest's main: parse the command line, run the selected checks, report, act. */
#include "guest.h"

#define PORT_ACPI_SLEEP_DEFAULT 0x600 /* MV_PORT_ACPI_SLEEP_CTL, used without a FADT */
#define SLP_TYP_DEFAULT 5             /* MV_ACPI_S5_SLP_TYP, used without \_S5 */
#define SLP_EN (1 << 5)
#define PORT_I8042_CMD 0x64
#define PORT_PVPANIC 0x505            /* MV_PORT_PVPANIC */
#define PVPANIC_PANICKED 1
#define CMDLINE_PRINT_MAX 200

enum action { ACT_NONE, ACT_EXIT, ACT_POWEROFF, ACT_RESET, ACT_ACPI_RESET, ACT_TRIPLE_FAULT, ACT_ECHO,
	      ACT_SPIN, ACT_PANIC, ACT_POWER_BUTTON, ACT_VMGENID };

struct config {
	int mode;                 /* 0: not checked */
	const char *image;        /* NULL: not checked */
	size_t image_len;
	bool want_mem, want_initrd_size, want_initrd_sum, want_cmdline_len;
	uint64_t mem_mib, initrd_size, initrd_sum, cmdline_len;
	bool fdt, acpi, int3, fwait, smap, unmapped, rtc, vmgenid;
	int cpus;                 /* 0: not checked */
	enum action action;
	uint32_t exit_value;
	int exit_width;
};

/* Parse a number: decimal, or hex with 0x (or always hex when hex is set). */
bool parse_num(const char *p, size_t len, bool hex, uint64_t *out)
{
	uint64_t v = 0;

	if (len > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		hex = true;
		p += 2;
		len -= 2;
	}
	if (!len)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = p[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (hex && c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (hex && c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return false;
		v = v * (hex ? 16 : 10) + d;
	}
	*out = v;
	return true;
}

static bool parse_action(struct config *c, const char *v, size_t n)
{
	static const struct { const char *name; int width; } exits[] = {
		{ "exit:", 32 }, { "exit8:", 8 }, { "exit16:", 16 },
	};
	uint64_t num;

	for (unsigned i = 0; i < sizeof(exits) / sizeof(exits[0]); i++) {
		size_t l = strlen(exits[i].name);
		if (n > l && !memcmp(v, exits[i].name, l)) {
			if (!parse_num(v + l, n - l, false, &num) || num > 0xffffffffu)
				return false;
			c->action = ACT_EXIT;
			c->exit_value = (uint32_t)num;
			c->exit_width = exits[i].width;
			return true;
		}
	}
	if (mem_eq_str(v, n, "poweroff"))
		c->action = ACT_POWEROFF;
	else if (mem_eq_str(v, n, "reset"))
		c->action = ACT_RESET;
	else if (mem_eq_str(v, n, "acpi-reset"))
		c->action = ACT_ACPI_RESET;
	else if (mem_eq_str(v, n, "triple-fault"))
		c->action = ACT_TRIPLE_FAULT;
	else if (mem_eq_str(v, n, "echo"))
		c->action = ACT_ECHO;
	else if (mem_eq_str(v, n, "spin"))
		c->action = ACT_SPIN;
	else if (mem_eq_str(v, n, "panic"))
		c->action = ACT_PANIC;
	else if (mem_eq_str(v, n, "power-button"))
		c->action = ACT_POWER_BUTTON;
	else if (mem_eq_str(v, n, "vmgenid"))
		c->action = ACT_VMGENID;
	else
		return false;
	return true;
}

/* The on/off keys (value 0 or 1): their flag in c, or NULL. */
static bool *bool_key(struct config *c, const char *key, size_t len)
{
	static const char *const names[] = {
		"expect.fdt", "expect.acpi", "check.int3", "check.fwait", "check.smap", "check.unmapped",
		"check.rtc", "check.vmgenid",
	};
	bool *const flags[] = { &c->fdt, &c->acpi, &c->int3, &c->fwait, &c->smap, &c->unmapped, &c->rtc,
				&c->vmgenid };

	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (mem_eq_str(key, len, names[i]))
			return flags[i];
	return NULL;
}

/* One key=value token. Keys outside expect./check./action are not ours and are ignored. */
static void parse_token(struct config *c, const char *t, size_t len)
{
	size_t k = 0;
	uint64_t num = 0;
	bool *flag;

	while (k < len && t[k] != '=')
		k++;
	const char *v = t + k + 1;
	size_t n = k < len ? len - k - 1 : 0;
	bool ok = k < len;

	if (ok && mem_eq_str(t, k, "expect.mode")) {
		if (mem_eq_str(v, n, "linux64"))
			c->mode = GUEST_MODE_LINUX64;
		else if (mem_eq_str(v, n, "pvh"))
			c->mode = GUEST_MODE_PVH;
		else
			ok = false;
	} else if (ok && mem_eq_str(t, k, "expect.image")) {
		c->image = v;
		c->image_len = n;
	} else if (ok && mem_eq_str(t, k, "expect.mem_mib")) {
		ok = c->want_mem = parse_num(v, n, false, &c->mem_mib);
	} else if (ok && mem_eq_str(t, k, "expect.initrd_size")) {
		ok = c->want_initrd_size = parse_num(v, n, false, &c->initrd_size);
	} else if (ok && mem_eq_str(t, k, "expect.initrd_sum")) {
		ok = c->want_initrd_sum = parse_num(v, n, true, &c->initrd_sum);
	} else if (ok && mem_eq_str(t, k, "expect.cmdline_len")) {
		ok = c->want_cmdline_len = parse_num(v, n, false, &c->cmdline_len);
	} else if (ok && mem_eq_str(t, k, "expect.cpus")) {
		ok = parse_num(v, n, false, &num) && num >= 1 && num <= ACPI_MAX_CPUS;
		c->cpus = (int)num;
	} else if (ok && (flag = bool_key(c, t, k))) {
		ok = parse_num(v, n, false, &num) && num <= 1;
		*flag = num == 1;
	} else if (ok && mem_eq_str(t, k, "action")) {
		ok = parse_action(c, v, n);
	} else if (ok && starts_with(t, "blk.")) {
		ok = blk_parse(t + 4, k - 4, v, n);
	} else if (ok && starts_with(t, "net.")) {
		ok = net_parse(t + 4, k - 4, v, n);
	} else if (ok && starts_with(t, "bench.")) {
		ok = bench_parse(t + 6, k - 6, v, n);
	} else if (ok && mem_eq_str(t, k, "microvm.run")) {
		ok = run_parse(v, n);
	} else if (starts_with(t, "expect.") || starts_with(t, "check.") || starts_with(t, "action") ||
		   starts_with(t, "blk.") || starts_with(t, "net.") || starts_with(t, "bench.") ||
		   starts_with(t, "microvm.run")) {
		ok = false;
	} else {
		return;
	}
	if (!ok)
		fail(FAIL_CMDLINE, "cmdline: bad or unknown key '%.*s'", (int)len, t);
}

static void parse_cmdline(struct config *c, const char *s)
{
	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == '\n')
			s++;
		const char *t = s;
		while (*s && *s != ' ' && *s != '\t' && *s != '\n')
			s++;
		if (s > t)
			parse_token(c, t, (size_t)(s - t));
	}
}

static const char *mode_name(int mode)
{
	return mode == GUEST_MODE_PVH ? "pvh" : "linux64";
}

/*
 * check.unmapped: MMIO in the hole between RAM and the device windows and a
 * port nothing decodes. Reads give all ones, as on a PC bus; writes vanish;
 * the VM goes on.
 */
#define UNMAPPED_GPA  0xcf000000UL
#define UNMAPPED_PORT 0x2f0

static void check_unmapped(const struct boot_info *bi)
{
	for (int i = 0; i < bi->nr_mem; i++)
		if (bi->mem[i].addr <= UNMAPPED_GPA && bi->mem[i].addr + bi->mem[i].size > UNMAPPED_GPA) {
			fail(FAIL_UNMAPPED, "unmapped: 0x%lx is in the memory map (use less --mem)", UNMAPPED_GPA);
			return;
		}
	uint32_t before = mmio_read32(UNMAPPED_GPA);
	mmio_write32(UNMAPPED_GPA, 0x12345678);
	mmio_write32(UNMAPPED_GPA + 0xffc, 0);
	uint32_t after = mmio_read32(UNMAPPED_GPA);
	uint8_t pb = inb(UNMAPPED_PORT);
	outb(UNMAPPED_PORT, 0x5a);
	outl(UNMAPPED_PORT, 0xdeadbeef);
	uint8_t pa = inb(UNMAPPED_PORT);
	if (before != 0xffffffffu || after != 0xffffffffu || pb != 0xff || pa != 0xff) {
		fail(FAIL_UNMAPPED, "unmapped: MMIO 0x%lx read 0x%x then 0x%x, port 0x%x read 0x%x then 0x%x "
		     "(expected all ones)", UNMAPPED_GPA, before, after, UNMAPPED_PORT, pb, pa);
		return;
	}
	gprintf("unmapped: MMIO 0x%lx and port 0x%x read all ones before and after writes: ok\n",
		UNMAPPED_GPA, UNMAPPED_PORT);
}

/* check.rtc: the CMOS clock at 0x70/0x71 is valid, never busy, 24-hour BCD, and says 2025-2099. */
static uint8_t cmos_rd(uint8_t reg)
{
	outb(0x70, reg);
	return inb(0x71);
}

static int from_bcd(uint8_t v)
{
	return (v >> 4) * 10 + (v & 15);
}

static void check_rtc(void)
{
	uint8_t a = cmos_rd(0x0a), b = cmos_rd(0x0b), d = cmos_rd(0x0d);
	int sec = from_bcd(cmos_rd(0x00)), min = from_bcd(cmos_rd(0x02)), hour = from_bcd(cmos_rd(0x04));
	int day = from_bcd(cmos_rd(0x07)), mon = from_bcd(cmos_rd(0x08));
	int year = from_bcd(cmos_rd(0x32)) * 100 + from_bcd(cmos_rd(0x09));

	if ((a & 0x80) || b != 0x02 || d != 0x80 || sec > 59 || min > 59 || hour > 23 || day < 1 ||
	    day > 31 || mon < 1 || mon > 12 || year < 2025 || year > 2099) {
		fail(FAIL_RTC, "rtc: status A 0x%x B 0x%x D 0x%x, %d-%d-%d %d:%d:%d", a, b, d, year, mon, day,
		     hour, min, sec);
		return;
	}
	gprintf("rtc: %d-%02d-%02d %02d:%02d:%02d UTC, valid, 24-hour BCD: ok\n", year, mon, day, hour, min, sec);
}

/*
 * check.vmgenid: the DSDT has a VM_Gen_Counter device whose ADDR points at 16
 * bytes in reserved memory (not RAM the OS may use), the GED has a second
 * interrupt for its notification, and the ID is not all zeroes.
 */
static void check_vmgenid(const struct boot_info *bi, const struct acpi_info *ai)
{
	uint64_t a = ai->vmgenid_addr;
	char hex[33];

	if (!a || !ai->ged_genid_gsi) {
		fail(FAIL_VMGENID, "vmgenid: no VM_Gen_Counter device with ADDR (0x%lx) or no GED interrupt for "
		     "it (GSI %u) in the DSDT", a, ai->ged_genid_gsi);
		return;
	}
	if (a % 8 || !phys_ok(a, 16)) {
		fail(FAIL_VMGENID, "vmgenid: ADDR 0x%lx is not 8-byte aligned or not readable", a);
		return;
	}
	for (int i = 0; i < bi->nr_mem; i++)
		if (bi->mem[i].type == MEM_TYPE_RAM && bi->mem[i].addr < a + 16 &&
		    a < bi->mem[i].addr + bi->mem[i].size) {
			fail(FAIL_VMGENID, "vmgenid: ADDR 0x%lx is in RAM the OS may use", a);
			return;
		}
	vmgenid_hex(a, hex);
	if (!memcmp(hex, "00000000000000000000000000000000", 32)) {
		fail(FAIL_VMGENID, "vmgenid: the ID at 0x%lx is all zeroes", a);
		return;
	}
	gprintf("vmgenid: id %s at 0x%lx, notified on GSI %u\n", hex, a, ai->ged_genid_gsi);
}

static void check_cpus(const struct config *c, const struct boot_info *bi,
		       const struct acpi_info *ai, const struct fdt_info *fi)
{
	if (ai->ok && ai->nr_cpus != c->cpus)
		fail(FAIL_ACPI_CPUS, "acpi: MADT has %d enabled CPUs, expected %d", ai->nr_cpus, c->cpus);
	if (fi->ok && fi->nr_cpus != c->cpus)
		fail(FAIL_FDT_CPUS, "fdt: %d cpu@ nodes, expected %d", fi->nr_cpus, c->cpus);
	/* The trampoline page must be RAM that nothing else uses. */
	bool ram = false;
	for (int i = 0; i < bi->nr_mem; i++)
		ram |= bi->mem[i].type == MEM_TYPE_RAM && bi->mem[i].addr <= AP_TRAMPOLINE_GPA &&
		       bi->mem[i].addr + bi->mem[i].size >= AP_TRAMPOLINE_GPA + 0x1000;
	if (!ram) {
		fail(FAIL_SMP, "smp: 0x%x is not RAM, cannot place the AP trampoline", AP_TRAMPOLINE_GPA);
		return;
	}
	if (c->cpus == 1)
		return;
	int got = ai->ok ? smp_start_aps(ai->apic_ids, ai->nr_cpus < ACPI_MAX_CPUS ? ai->nr_cpus
							: ACPI_MAX_CPUS, c->cpus - 1)
			 : smp_start_aps(NULL, 0, c->cpus - 1);
	if (got != c->cpus - 1)
		fail(FAIL_SMP, "smp: %d APs ran the trampoline, expected %d", got, c->cpus - 1);
}

/*
 * After a power-off or reset request the VM may run on for a moment, as a
 * real machine does: give the VMM up to ~1e9 TSC cycles before calling it a
 * failure (an upper bound, no calibration).
 */
static void settle(void)
{
	uint64_t deadline = rdtsc() + 1000000000ULL;

	for (uint32_t spins = 0; rdtsc() < deadline && spins < 20000000u; spins++)
		;
}

static __attribute__((noreturn)) void act(const struct config *c, const struct acpi_info *ai)
{
	switch (c->action) {
	case ACT_VMGENID:
		/* check.vmgenid found the device (the action implies the check). */
		watch_vmgenid(ai->ioapic_addr, ai->ged_genid_gsi, ai->vmgenid_addr);
	case ACT_NONE:
		guest_exit(0, 32);
	case ACT_EXIT:
		gprintf("exit: writing %u (%d-bit) to the exit port\n", c->exit_value, c->exit_width);
		guest_exit(c->exit_value, c->exit_width);
	case ACT_POWER_BUTTON:
		/* A graceful shutdown as an OS does it: wait for the button, then ACPI S5. */
		if (!ai->ged_gsi) {
			fail(FAIL_ACPI_DSDT, "power-button: no ACPI0013 with an interrupt in the DSDT");
			guest_exit(FAIL_ACPI_DSDT, 32);
		}
		wait_power_button(ai->ioapic_addr, ai->ged_gsi);
		/* fall through */
	case ACT_POWEROFF: {
		uint16_t port = ai->sleep_port ? ai->sleep_port : PORT_ACPI_SLEEP_DEFAULT;
		uint8_t typ = ai->s5_slp_typ != 0xff ? ai->s5_slp_typ : SLP_TYP_DEFAULT;
		gprintf("poweroff: writing 0x%x to port 0x%x\n", (typ << 2) | SLP_EN, port);
		outb(port, (uint8_t)((typ << 2) | SLP_EN));
		break;
	}
	case ACT_RESET:
		gprintf("reset: writing 0xfe to port 0x64\n");
		outb(PORT_I8042_CMD, 0xfe);
		break;
	case ACT_ACPI_RESET:
		if (!ai->reset_port) {
			fail(FAIL_ACPI_FADT, "acpi-reset: no FADT RESET_REG in I/O space");
			guest_exit(FAIL_ACPI_FADT, 32);
		}
		gprintf("acpi-reset: writing 0x%x to port 0x%x\n", ai->reset_value, ai->reset_port);
		outb(ai->reset_port, ai->reset_value);
		break;
	case ACT_TRIPLE_FAULT:
		gprintf("triple-fault: #DE with an empty IDT\n");
		triple_fault();
	case ACT_ECHO:
		run_echo(ai->ioapic_addr);
	case ACT_SPIN:
		/* For --timeout: busy forever (no hlt, no exits), until microvm stops the vCPU. */
		gprintf("spin: looping forever\n");
		for (;;)
			__asm__ volatile("pause");
	case ACT_PANIC: {
		/* What Linux's pvpanic driver does: read the supported events, write PANICKED. */
		uint8_t events = inb(PORT_PVPANIC);
		gprintf("panic: pvpanic port 0x%x reads 0x%x, writing 0x%x\n", PORT_PVPANIC, events,
			PVPANIC_PANICKED);
		if (!(events & PVPANIC_PANICKED)) {
			fail(FAIL_ACTION, "panic: pvpanic does not offer PANICKED (reads 0x%x)", events);
			guest_exit(FAIL_ACTION, 32);
		}
		outb(PORT_PVPANIC, PVPANIC_PANICKED);
		break;
	}
	}
	settle();
	fail(FAIL_ACTION, "the VM is still running after the action");
	guest_exit(FAIL_ACTION, 32);
}

__attribute__((noreturn)) void guest_main(int mode, uint64_t params);

void guest_main(int mode, uint64_t params)
{
	static struct boot_info bi;
	static struct config c;
	static struct acpi_info ai;
	static struct fdt_info fi;

	idt_init();
	gprintf("microvm test guest: image %s at 0x%lx, entered in %s mode\n", guest_image_name,
		(uint64_t)(uintptr_t)__image_start, mode_name(mode));
	boot_info_read(&bi, mode, params);
	size_t len = strlen(bi.cmdline);
	gprintf("cmdline: %.*s%s\n", CMDLINE_PRINT_MAX, bi.cmdline,
		len > CMDLINE_PRINT_MAX ? "..." : "");
	parse_cmdline(&c, bi.cmdline);

	if (c.mode && c.mode != mode)
		fail(FAIL_MODE, "entered in %s mode, expected %s", mode_name(mode), mode_name(c.mode));
	if (c.image && !mem_eq_str(c.image, c.image_len, guest_image_name))
		fail(FAIL_IMAGE, "this is image %s, expected %.*s", guest_image_name,
		     (int)c.image_len, c.image);
	if (bi.cmdline_size && len > bi.cmdline_size)
		fail(FAIL_CMDLINE_LEN, "command line is %lu bytes, the setup header allows %lu",
		     (uint64_t)len, bi.cmdline_size);
	if (c.want_cmdline_len && len != c.cmdline_len)
		fail(FAIL_CMDLINE_LEN, "command line is %lu bytes, expected %lu", (uint64_t)len,
		     c.cmdline_len);
	if (c.want_mem)
		check_memory(&bi, c.mem_mib);
	if (c.want_initrd_size || c.want_initrd_sum || bi.have_initrd)
		check_initrd(&bi, c.want_initrd_size, c.initrd_size, c.want_initrd_sum, c.initrd_sum);
	ai.s5_slp_typ = 0xff;
	/* Other users of the tables (CPU list, ports, IOAPIC) fall back to defaults without them. */
	if (c.acpi || (bi.rsdp && (c.cpus || c.action == ACT_POWEROFF || blk_wants_acpi(mode) || net_wants_acpi(mode) ||
				   bench_wants_acpi(mode) ||
				   c.action == ACT_ACPI_RESET || c.action == ACT_ECHO || c.action == ACT_POWER_BUTTON ||
				   c.vmgenid || c.action == ACT_VMGENID)))
		acpi_read(bi.rsdp, &ai);
	if (!c.fdt && (blk_wants_fdt(mode) || net_wants_fdt(mode) ||
		       bench_wants_fdt(mode)))
		fdt_read(&bi, &fi);
	if (c.fdt) {
		fdt_read(&bi, &fi);
		if (fi.ok && !fi.serial)
			fail(FAIL_FDT_SERIAL, "fdt: no /serial@3f8 node");
		if (fi.ok && (!fi.have_bootargs || !fi.bootargs_match))
			fail(FAIL_FDT_BOOTARGS, "fdt: /chosen/bootargs %s the command line",
			     fi.have_bootargs ? "differs from" : "missing, expected");
		if (fi.ok && c.want_mem && fi.mem_total != c.mem_mib << 20)
			fail(FAIL_FDT_MEMORY, "fdt: /memory has %lu bytes, expected %lu MiB",
			     fi.mem_total, c.mem_mib);
	}
	if (c.acpi && ai.ok && !ai.ioapic_addr)
		fail(FAIL_ACPI_IOAPIC, "acpi: MADT has no IOAPIC");
	if (c.acpi && ai.ok && !ai.have_fadt)
		fail(FAIL_ACPI_FADT, "acpi: no FADT (FACP) in the XSDT");
	if (c.cpus)
		check_cpus(&c, &bi, &ai, &fi);
	if (c.int3)
		check_int3();
	if (c.fwait)
		check_fwait();
	if (c.smap)
		check_smap();
	if (c.unmapped)
		check_unmapped(&bi);
	if (c.rtc)
		check_rtc();
	if (c.vmgenid || c.action == ACT_VMGENID)
		check_vmgenid(&bi, &ai);
	if (blk_wanted())
		blk_run(&bi, &fi, &ai);
	if (net_wanted())
		net_run(&bi, &fi, &ai);
	if (bench_wanted())
		bench_run(&bi, &fi, &ai);
	int run_status = run_wanted() ? run_read() : -1;

	if (first_failure()) {
		gprintf("FAIL: exit status %d\n", first_failure());
		guest_exit((uint32_t)first_failure(), 32);
	}
	gprintf("PASS\n");
	if (run_status >= 0) {
		/* As the image's init does: the script's status to the exit port. */
		gprintf("run: reporting the script's status %d on the exit port\n", run_status);
		guest_exit((uint32_t)run_status, 8);
	}
	act(&c, &ai);
}
