/* test_iasl.c - an independent reader: iasl (acpica-tools) must disassemble our DSDT, FADT and MADT cleanly. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "firmware/acpi.h"
#include "firmware/machine.h"
#include "tests/unit/firmware/acpi_read.h"
#include "base/err.h"

static struct tables T;
static char dir[] = "/tmp/microvm-iasl-XXXXXX";

static const char *iasl_path(void)
{
	/* tests/unit/firmware/meson.build passes find_program('iasl')'s result, or "". */
	const char *p = getenv("IASL");

	if (!p || !*p)
		cr_assert_fail("iasl not found when the build was configured: install acpica-tools "
			       "(the CI image has it) and run `meson setup --reconfigure`");
	return p;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f, "%s", path);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

/* Whole file as a NUL-terminated string (caller frees). */
static char *read_text(const char *path)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s was not written", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	long n = ftell(f);
	cr_assert_geq(n, 0);
	rewind(f);
	char *s = malloc((size_t)n + 1);
	cr_assert_not_null(s);
	cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	return s;
}

/* Run `iasl -d NAME.dat` in dir; return the .dsl text (caller frees). */
static char *disassemble(const char *name, const uint8_t *table)
{
	char dat[128], dsl[128], log[128];

	snprintf(dat, sizeof(dat), "%s/%s.dat", dir, name);
	snprintf(dsl, sizeof(dsl), "%s/%s.dsl", dir, name);
	snprintf(log, sizeof(log), "%s/%s.log", dir, name);
	write_file(dat, table, rd32(table + 4));

	const char *iasl = iasl_path();
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 || chdir(dir) < 0)
			_exit(126);
		execl(iasl, iasl, "-d", dat, (char *)NULL);
		_exit(127);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	char *out = read_text(log);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "iasl -d %s.dat failed (status 0x%x):\n%s", name, status, out);
	free(out);
	char *text = read_text(dsl);
	/* iasl notes a bad table checksum in the disassembly instead of failing. */
	cr_assert_null(strstr(text, "Incorrect checksum"), "%s:\n%s", name, text);
	return text;
}

static void setup(void)
{
	struct machine m;

	cr_assert_not_null(mkdtemp(dir), "mkdtemp");
	cr_assert_eq(machine_init(&m, 512ULL << 20, 4), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(machine_add_mmio_dev(&m, MMIO_DEV_VIRTIO_BLK), i);
	cr_assert_gt(tables_build(&T, &m), 0, "%s", err_msg());
	cr_assert_not_null(T.fadt);
	cr_assert_not_null(T.madt);
	cr_assert_not_null(T.dsdt);
}

static void teardown(void)
{
	static const char *const names[] = { "dsdt", "facp", "apic" };
	static const char *const ext[] = { "dat", "dsl", "log" };
	char path[160];

	for (size_t i = 0; i < 3; i++)
		for (size_t j = 0; j < 3; j++) {
			snprintf(path, sizeof(path), "%s/%s.%s", dir, names[i], ext[j]);
			unlink(path);
		}
	rmdir(dir);
}

/* The value after the last ':' on the first line that contains label ("" if none). */
static const char *field(const char *text, const char *label, char *out, size_t len)
{
	const char *p = strstr(text, label);

	out[0] = '\0';
	if (!p)
		return out;
	const char *eol = strchr(p, '\n');
	size_t n = eol ? (size_t)(eol - p) : strlen(p);
	const char *colon = memrchr(p, ':', n);
	if (!colon)
		return out;
	colon++;
	while (*colon == ' ')
		colon++;
	n -= (size_t)(colon - p);
	while (n && (colon[n - 1] == ' ' || colon[n - 1] == '\r'))
		n--;
	snprintf(out, len, "%.*s", (int)n, colon);
	return out;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

Test(iasl, dsdt, .init = setup, .fini = teardown)
{
	char *s = disassemble("dsdt", T.dsdt);

	cr_assert(strstr(s, "PNP0501"), "no PNP0501 in:\n%s", s);
	cr_assert_eq(count(s, "\"LNRO0005\""), 3, "want 3 LNRO0005 in:\n%s", s);
	cr_assert(strstr(s, "_S5_"), "no _S5_ in:\n%s", s);
	cr_assert(strstr(s, "IRQNoFlags"), "no COM1 IRQ in:\n%s", s);
	cr_assert(strstr(s, "0x03F8"), "no COM1 port in:\n%s", s);
	cr_assert_eq(count(s, "\"QEMU0001\""), 1, "want one pvpanic QEMU0001 in:\n%s", s);
	cr_assert(strstr(s, "IO (Decode16,\n                    0x0505,"), "no pvpanic port in:\n%s", s);
	cr_assert(strstr(s, "Memory32Fixed (ReadWrite"), "no Memory32Fixed in:\n%s", s);
	cr_assert(strstr(s, "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive"),
		  "no Interrupt() in:\n%s", s);
	/* The power button: a GED whose _EVT notifies PNP0C0C. */
	cr_assert(strstr(s, "\"ACPI0013\""), "no GED in:\n%s", s);
	cr_assert(strstr(s, "EisaId (\"PNP0C0C\")"), "no power button in:\n%s", s);
	cr_assert(strstr(s, "Method (_EVT, 1, NotSerialized)"), "no _EVT in:\n%s", s);
	cr_assert(strstr(s, "Notify (\\_SB.PWRB, 0x80)") || strstr(s, "Notify (PWRB, 0x80)"),
		  "no Notify in:\n%s", s);
	cr_assert(strstr(s, "0x00000017,"), "no GED interrupt 23 in:\n%s", s);
	/* _EVT dispatches on the GSI: 23 the power button, 3 the generation ID. */
	cr_assert(strstr(s, "If ((Arg0 == 0x17))"), "no dispatch on GSI 23 in:\n%s", s);
	cr_assert(strstr(s, "If ((Arg0 == 0x03))"), "no dispatch on GSI 3 in:\n%s", s);
	cr_assert(strstr(s, "0x00000003,"), "no GED interrupt 3 in:\n%s", s);
	cr_assert(strstr(s, "Notify (\\_SB.VGEN, 0x80)") || strstr(s, "Notify (VGEN, 0x80)"),
		  "no generation-ID Notify in:\n%s", s);
	/* The VM generation ID device, as Microsoft's specification and Linux's vmgenid read it. */
	cr_assert(strstr(s, "Device (VGEN)"), "no VGEN in:\n%s", s);
	cr_assert(strstr(s, "Name (_CID, \"VM_Gen_Counter\")"), "no _CID in:\n%s", s);
	cr_assert(strstr(s, "Name (_HID, \"MCRVVGID\")"), "no _HID in:\n%s", s);
	cr_assert(strstr(s, "Method (ADDR, 0, NotSerialized)"), "no ADDR in:\n%s", s);
	cr_assert(strstr(s, "Return (Package (0x02)"), "ADDR returns no Package in:\n%s", s);
	cr_assert(strstr(s, "0x000DFFF0,"), "no ID address in:\n%s", s);
	free(s);
}

Test(iasl, fadt, .init = setup, .fini = teardown)
{
	char *s = disassemble("facp", T.fadt);

	char v[64];

	/* Labels as iasl prints them; the values are what we wrote. */
	cr_assert_str_eq(field(s, "Hardware Reduced", v, sizeof(v)), "1", "%s", s);
	cr_assert_str_eq(field(s, "Reset Register Supported", v, sizeof(v)), "1", "%s", s);
	cr_assert_str_eq(field(s, "CMOS RTC Not Present", v, sizeof(v)), "1", "%s", s);
	cr_assert_str_eq(field(s, "Value to cause reset", v, sizeof(v)), "01", "%s", s);
	cr_assert_str_eq(field(s, "SCI Interrupt", v, sizeof(v)), "0009", "%s", s);
	/* The GAS fields follow on the lines after its title. */
	const char *sleep = strstr(s, "Sleep Control Register");
	cr_assert_not_null(sleep, "%s", s);
	sleep = strchr(sleep, '\n');
	cr_assert_not_null(sleep, "%s", s);
	cr_assert_str_eq(field(sleep, "Address", v, sizeof(v)), "0000000000000600", "%s", s);
	free(s);
}

Test(iasl, madt, .init = setup, .fini = teardown)
{
	char *s = disassemble("apic", T.madt);

	cr_assert_eq(count(s, "Subtable Type : 00 [Processor Local APIC]"), 4, "%s", s);
	cr_assert_eq(count(s, "Subtable Type : 01 [I/O APIC]"), 1, "%s", s);
	free(s);
}
