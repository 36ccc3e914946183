/* cmdline.h - the guest kernel's command line: built in one place from its parts, and read with one word scanner. */
#ifndef MICROVM_CMDLINE_H
#define MICROVM_CMDLINE_H

#include <stdbool.h>
#include <stddef.h>

#include "firmware/machine.h"
#include "vmm/config.h"

/*
 * Words. A command line is words separated by ASCII white space (space,
 * \t, \n, \v, \f, \r), as the kernel splits its parameters; double quotes
 * are not interpreted. The first word that is exactly "--" ends the
 * kernel's parameters: the kernel stops parsing there and hands the words
 * after it to init as its arguments. So a kernel option after "--" is not
 * given at all, and by default cmdline_has_word() does not look there.
 */

/* What cmdline_has_word() looks for: one of these three, */
#define CMDLINE_WORD      0u  /* a word equal to `word` ("acpi=off") */
#define CMDLINE_PREFIX    1u  /* a word that starts with `word` ("key=" finds "key=value") */
#define CMDLINE_KEY       2u  /* a word with the key of `word`: the text before the first '=', else the
                               * whole word ("nopv" finds "nopv" and "nopv=1", "tsc_early_khz=5" finds
                               * "tsc_early_khz=7", not "tsc_early_khzx") */
/* optionally with this one: */
#define CMDLINE_WITH_INIT 4u  /* init's words (after "--") count too: for a word init reads from the whole
                               * /proc/cmdline, such as microvm.run= */

/*
 * Has line a word that matches `word` as `how` says (above), among the
 * kernel's words only (before the first "--" word) unless how has
 * CMDLINE_WITH_INIT? Pure.
 */
bool cmdline_has_word(const char *line, const char *word, unsigned how);

/* The word --run adds: CMDLINE_RUN_KEY followed by the script disk ("microvm.run=/dev/vdb"). */
#define CMDLINE_RUN_KEY "microvm.run="

/*
 * The parts of the guest's command line. cmdline_compose() puts them
 * together in this order:
 *
 *  1. user: the user's --cmdline, as given (may be "");
 *  2. run_dev: --run's word, CMDLINE_RUN_KEY run_dev ("microvm.run=/dev/vdc");
 *  3. the devices' words: one "virtio_mmio.device=<size>K@0x<base>:<irq>"
 *     per virtio-mmio device of machine, in its order (vda.., then eth0..),
 *     with devices (--cmdline-devices) or when the user's kernel words have
 *     acpi=off (the kernel then finds the devices nowhere else);
 *  4. host_opts: the host quirks' options (vmm/quirks.h), inserted before
 *     the first "--" word, else appended, so they stay the kernel's (the
 *     white space before that "--" becomes " host_opts ": "a  -- b" gives
 *     "a nopv -- b").
 *
 * 2 and 3 are appended at the end, after a "--" of the user's if there is
 * one. Each part is one space from what comes before it (none at the very
 * start); an empty or NULL part adds nothing.
 */
struct cmdline_parts {
	const char *user;              /* never NULL */
	const char *run_dev;           /* "/dev/vdX"; NULL or "": no --run */
	bool devices;                  /* the devices' words even without acpi=off */
	const struct machine *machine; /* whose devices the words describe; NULL: no device words */
	const char *host_opts;         /* space-separated options; NULL or "": none */
};

/* The parts cfg and m give (no host options yet: they need the loaded kernel). Pure. */
struct cmdline_parts cmdline_parts(const struct vmm_config *cfg, const struct machine *m);

/*
 * The command line of p (above) in a new malloc'ed string at *out. max is
 * the kernel's limit in bytes without the NUL: when the host options would
 * make the line longer than max they are left out and 1 is returned (the
 * line is still the rest of p). Nothing else is cut: a line longer than max
 * without them is for the caller to refuse (boot_check_cmdline()). Returns
 * 0, 1 or -ENOMEM with err_msg() (*out NULL). Pure apart from malloc.
 */
int cmdline_compose(const struct cmdline_parts *p, size_t max, char **out);

#endif
