/*
 * run.c - microvm.run=/dev/vdX: the test guest's stand-in for a Linux init running a --run script.
 *
 * This host cannot run guest user programs (no system calls from guest user
 * mode), so the guest-level tests of --run use this instead of sh: it reads
 * the run disk through the blk driver, checks the header microvm wrote
 * ("MICROVM-RUN v1 LEN\n", docs/cli-runs.md) and takes the status from the
 * script's first `exit N` line (a "#!" line may come first), which main.c
 * then writes to the exit port, as the image's helper does for a real script.
 * A script without that line reports nothing (as an init that failed to run
 * it), and the guest goes on to its action= (e.g. poweroff).
 */
#include "guest.h"

#define RUN_MAGIC "MICROVM-RUN v1 "
#define READ_SECTORS 16   /* what we look at: header and the first 8 KiB of script */

static int run_disk = -1;

bool run_parse(const char *v, size_t n)
{
	/* /dev/vda .. /dev/vdd: the disks the blk driver handles. */
	if (n != 8 || !starts_with(v, "/dev/vd") || v[7] < 'a' || v[7] > 'd')
		return false;
	run_disk = v[7] - 'a';
	blk_enable();
	return true;
}

bool run_wanted(void)
{
	return run_disk >= 0;
}

int run_read(void)
{
	const char *d = (const char *)blk_read_sectors(run_disk, 0, READ_SECTORS);
	size_t ml = strlen(RUN_MAGIC), p, end;
	uint64_t len, status;

	if (!d)
		return -1;
	if (memcmp(d, RUN_MAGIC, ml)) {
		fail(FAIL_RUN, "run: vd%c does not start with '%s'", 'a' + run_disk, RUN_MAGIC);
		return -1;
	}
	for (p = ml; p < 40 && d[p] != '\n'; p++)
		;
	if (p == 40 || !parse_num(d + ml, p - ml, false, &len)) {
		fail(FAIL_RUN, "run: vd%c: malformed header line", 'a' + run_disk);
		return -1;
	}
	const char *script = d + p + 1;
	size_t room = READ_SECTORS * 512 - (p + 1);
	gprintf("run: vd%c holds a %lu-byte script\n", 'a' + run_disk, len);
	if (len > room)
		len = room;   /* the status line must come early; the rest is not looked at */
	for (p = 0; p < len; p = end + 1) {
		for (end = p; end < len && script[end] != '\n'; end++)
			;
		if (end - p > 5 && !memcmp(script + p, "exit ", 5) &&
		    parse_num(script + p + 5, end - p - 5, false, &status) && status <= 255) {
			gprintf("run: script line '%.*s'\n", (int)(end - p), script + p);
			return (int)status;
		}
		if (p == 0 && end - p >= 2 && script[0] == '#' && script[1] == '!')
			continue;
		break;        /* only the first line (after a #! line) counts */
	}
	/* Like an init whose script never reported: no status; the action (if any) follows. */
	gprintf("run: the script's first line is not 'exit N': no status reported\n");
	return -1;
}
