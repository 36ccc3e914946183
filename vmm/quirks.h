/* quirks.h - completing instructions that KVM's instruction emulator cannot run (see docs/host-quirks.md). */
#ifndef MICROVM_QUIRKS_H
#define MICROVM_QUIRKS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <stddef.h>

#include "driver/probe.h"
#include "driver/vcpu.h"
#include "vmm/cmdline.h"

enum quirk_kind {
	QUIRK_NONE = 0,
	QUIRK_INT3,   /* cc: RIP += 1, inject #BP */
	QUIRK_CLAC,   /* 0f 01 ca: RFLAGS.AC = 0, RIP += 3 */
	QUIRK_STAC,   /* 0f 01 cb: RFLAGS.AC = 1, RIP += 3 */
	QUIRK_FWAIT,  /* 9b: no x87 exception can be pending, RIP += 1 */
	QUIRK_KIND_COUNT
};

struct quirk {
	enum quirk_kind kind;
	unsigned int len;     /* instruction length */
	const char *name;     /* mnemonic for the log */
};

/*
 * Recognise an instruction microvm can complete from the bytes KVM reported
 * with an emulation failure. Pure. Returns false (q->kind = QUIRK_NONE) when
 * the bytes are unknown or len is 0.
 */
bool quirk_classify(const uint8_t *insn, unsigned int len, struct quirk *q);

/* Complete the instruction on the vCPU (registers, exception injection). */
int quirk_complete(struct vcpu *vcpu, const struct quirk *q);

/* Format up to 15 instruction bytes as "cc 0f 01 ..." into buf. */
void quirk_format_bytes(const uint8_t *insn, unsigned int len, char *buf, unsigned int buflen);

/*
 * Guest kernel options for a host whose guest kernel code runs in KVM's
 * instruction emulator (docs/host-quirks.md), in the order they are added.
 * tsc_early_khz is added only when the TSC frequency is known.
 */
#define QUIRK_CLEARCPUID "clearcpuid=cx16,xsave,smap,popcnt,ssse3"

/*
 * The options microvm adds to a Linux command line on the host described by
 * p: none unless p->probed; with p->emulated_kernel QUIRK_CLEARCPUID, "nopv"
 * and "cryptomgr.notests"; on every probed host "tsc_early_khz=<p->tsc_khz>"
 * (when known: no calibration loop against the PIT), minus
 * every option whose key (the text before '=', or the whole word) the
 * cmdline already has among the kernel's words (before any "--":
 * cmdline_has_word() with CMDLINE_KEY, vmm/cmdline.h). Pure. Writes the added options,
 * space-separated, to `added` and the keys left to the user to `kept` (both
 * "" when none; truncated to their sizes). Returns how many were added.
 */
int quirk_guest_options(const struct host_profile *p, const char *cmdline, char *added,
			size_t added_len, char *kept, size_t kept_len);

/* Tests only: =1 makes quirk_apply_guest_options() treat any kernel as Linux. */
#define QUIRK_TEST_LINUX_ENV "MICROVM_TEST_ASSUME_LINUX"

/* Does the loaded kernel image carry the Linux banner ("Linux version ")? Pure. */
bool quirk_is_linux(const void *image, size_t len);

/*
 * If enabled and the kernel image is Linux (or QUIRK_TEST_LINUX_ENV is 1),
 * probe the host (host_probe) and, when it has options for the guest
 * (quirk_guest_options() of *cmdline), replace *cmdline (malloc'ed, owned by
 * the caller: cmdline_compose() of parts) with cmdline_compose() of parts
 * plus those options as the host's part, logging them once (info level where
 * guest kernel code is emulated, else debug). Nothing is added if that would
 * make the command line longer than cmdline_max (a warning says so).
 * Returns 0 or -ENOMEM.
 */
int quirk_apply_guest_options(const struct cmdline_parts *parts, char **cmdline, const void *image,
			      size_t image_len, size_t cmdline_max, bool enabled);

/*
 * --host-info: probe the host and print its profile, the KVM API version and
 * capabilities, and the guest options microvm would add, to out. Returns 0 or
 * -errno with err_msg() (no usable /dev/kvm).
 */
int quirk_host_info(FILE *out);

#endif
