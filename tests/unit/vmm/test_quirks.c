/* test_quirks.c - the guest options microvm adds on hosts that emulate guest kernel code (vmm/quirks.c). */
#include <criterion/criterion.h>
#include <string.h>

#include "vmm/config.h"
#include "vmm/quirks.h"

static const struct host_profile emulated = {
	.probed = true, .user_syscalls = false, .emulated_kernel = true, .tsc_khz = 2445406,
};
static const struct host_profile hardware = {
	.probed = true, .user_syscalls = true, .emulated_kernel = false, .tsc_khz = 2445406,
};

#define ALL_OPTS QUIRK_CLEARCPUID " nopv cryptomgr.notests tsc_early_khz=2445406"

Test(guest_options, only_the_tsc_frequency_on_hardware_virtualization)
{
	char added[256] = "x", kept[128] = "x";
	struct host_profile no_tsc = hardware;

	cr_assert_eq(quirk_guest_options(&hardware, "console=ttyS0", added, sizeof(added), kept,
					 sizeof(kept)), 1);
	cr_assert_str_eq(added, "tsc_early_khz=2445406");
	cr_assert_str_empty(kept);
	cr_assert_eq(quirk_guest_options(&hardware, "tsc_early_khz=1 nopv", added, sizeof(added), kept,
					 sizeof(kept)), 0);
	cr_assert_str_empty(added);
	cr_assert_str_eq(kept, "tsc_early_khz");
	no_tsc.tsc_khz = 0;
	cr_assert_eq(quirk_guest_options(&no_tsc, "", added, sizeof(added), kept, sizeof(kept)), 0);
	cr_assert_str_empty(added);
}

Test(guest_options, not_probed_adds_nothing)
{
	struct host_profile p = { 0 };
	char added[256], kept[128];

	cr_assert_eq(quirk_guest_options(&p, "", added, sizeof(added), kept, sizeof(kept)), 0);
	cr_assert_str_empty(added);
}

Test(guest_options, all_on_emulated_host)
{
	char added[256], kept[128];

	cr_assert_eq(quirk_guest_options(&emulated, "console=ttyS0 root=/dev/vda", added,
					 sizeof(added), kept, sizeof(kept)), 4);
	cr_assert_str_eq(added, ALL_OPTS);
	cr_assert_str_empty(kept);
}

Test(guest_options, clearcpuid_names_linux_accepts)
{
	/* Names from /proc/cpuinfo (Linux >= 5.19); one clearcpuid= only (Linux reads the first). */
	cr_assert_str_eq(QUIRK_CLEARCPUID, "clearcpuid=cx16,xsave,smap,popcnt,ssse3");
	cr_assert_lt(strlen(QUIRK_CLEARCPUID) - strlen("clearcpuid="), 128, "Linux 6.1 parses 127 bytes");
}

Test(guest_options, no_tsc_option_without_frequency)
{
	struct host_profile p = emulated;
	char added[256], kept[128];

	p.tsc_khz = 0;
	cr_assert_eq(quirk_guest_options(&p, "", added, sizeof(added), kept, sizeof(kept)), 3);
	cr_assert_str_eq(added, QUIRK_CLEARCPUID " nopv cryptomgr.notests");
}

Test(guest_options, user_keys_win)
{
	char added[256], kept[128];

	cr_assert_eq(quirk_guest_options(&emulated, "clearcpuid=xsave nopv tsc_early_khz=1000 x=1",
					 added, sizeof(added), kept, sizeof(kept)), 1);
	cr_assert_str_eq(added, "cryptomgr.notests");
	cr_assert_str_eq(kept, "clearcpuid nopv tsc_early_khz");
}

Test(guest_options, key_match_is_whole_key)
{
	char added[256], kept[128];

	/* Not the same keys: a prefix, a suffix, a value. */
	cr_assert_eq(quirk_guest_options(&emulated, "nopvspin xclearcpuid=1 foo=nopv cryptomgr.notestsx",
					 added, sizeof(added), kept, sizeof(kept)), 4);
	cr_assert_str_eq(added, ALL_OPTS);
	cr_assert_eq(quirk_guest_options(&emulated, "cryptomgr.notests=1", added, sizeof(added), kept,
					 sizeof(kept)), 3);
	cr_assert_str_eq(kept, "cryptomgr.notests");
}

Test(guest_options, keys_after_dashdash_belong_to_init)
{
	char added[256], kept[128];

	cr_assert_eq(quirk_guest_options(&emulated, "console=ttyS0 -- nopv clearcpuid=1", added,
					 sizeof(added), kept, sizeof(kept)), 4);
	cr_assert_str_empty(kept);
}

Test(guest_options, small_buffers_stay_strings)
{
	char added[8], kept[4];

	cr_assert_eq(quirk_guest_options(&emulated, "nopv", added, sizeof(added), kept, sizeof(kept)), 3);
	cr_assert_eq(strlen(added), 7);
	cr_assert_str_eq(kept, "nop");
}

Test(is_linux, banner)
{
	static const char linux_img[] = "\x7f" "ELF....Linux version 6.1.0 (gcc) #1 SMP";
	static const char other[] = "\x7f" "ELF....microvm test guest, Linux boot protocol";

	cr_assert(quirk_is_linux(linux_img, sizeof(linux_img)));
	cr_assert_not(quirk_is_linux(other, sizeof(other)));
	cr_assert_not(quirk_is_linux(NULL, 0));
	cr_assert_not(quirk_is_linux(linux_img, 10), "banner beyond len");
}
