/* quirks.c - instructions microvm completes after a KVM emulation failure (hosts without VT-x/AMD-V). */
#include "vmm/quirks.h"
#include "io/ioloop.h"

#include "base/err.h"
#include "base/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RFLAGS_AC (1ULL << 18)
#define VECTOR_BP 3

bool quirk_classify(const uint8_t *insn, unsigned int len, struct quirk *q)
{
	memset(q, 0, sizeof(*q));
	if (len >= 1 && insn[0] == 0xcc) {
		*q = (struct quirk){ QUIRK_INT3, 1, "int3" };
	} else if (len >= 1 && insn[0] == 0x9b) {
		*q = (struct quirk){ QUIRK_FWAIT, 1, "fwait" };
	} else if (len >= 3 && insn[0] == 0x0f && insn[1] == 0x01 && insn[2] == 0xca) {
		*q = (struct quirk){ QUIRK_CLAC, 3, "clac" };
	} else if (len >= 3 && insn[0] == 0x0f && insn[1] == 0x01 && insn[2] == 0xcb) {
		*q = (struct quirk){ QUIRK_STAC, 3, "stac" };
	}
	return q->kind != QUIRK_NONE;
}

int quirk_complete(struct vcpu *vcpu, const struct quirk *q)
{
	int ret;

	switch (q->kind) {
	case QUIRK_INT3:
		/* #BP is a trap: it is delivered with RIP after the int3. */
		if ((ret = vcpu_advance_rip(vcpu, q->len)) < 0)
			return ret;
		return vcpu_inject_exception(vcpu, VECTOR_BP);
	case QUIRK_CLAC:
		if ((ret = vcpu_update_rflags(vcpu, 0, RFLAGS_AC)) < 0)
			return ret;
		return vcpu_advance_rip(vcpu, q->len);
	case QUIRK_STAC:
		if ((ret = vcpu_update_rflags(vcpu, RFLAGS_AC, 0)) < 0)
			return ret;
		return vcpu_advance_rip(vcpu, q->len);
	case QUIRK_FWAIT:
		return vcpu_advance_rip(vcpu, q->len);
	default:
		return -1;
	}
}

void quirk_format_bytes(const uint8_t *insn, unsigned int len, char *buf, unsigned int buflen)
{
	unsigned int pos = 0;

	if (!buflen)
		return;
	buf[0] = '\0';
	for (unsigned int i = 0; i < len && i < 15 && pos + 4 <= buflen; i++)
		pos += (unsigned int)snprintf(buf + pos, buflen - pos, i ? " %02x" : "%02x", insn[i]);
}

/* Append "word" (space-separated) to buf of size len; truncation leaves buf a valid string. */
static void append_word(char *buf, size_t len, const char *word, size_t wlen)
{
	size_t used;

	if (!len)
		return;
	used = strlen(buf);
	snprintf(buf + used, len - used, "%s%.*s", used ? " " : "", (int)wlen, word);
}

int quirk_guest_options(const struct host_profile *p, const char *cmdline, char *added,
			size_t added_len, char *kept, size_t kept_len)
{
	char tsc[32];
	const char *opts[4];
	int n = 0, count = 0;

	if (added_len)
		added[0] = '\0';
	if (kept_len)
		kept[0] = '\0';
	if (!p->probed)
		return 0;
	if (p->emulated_kernel) {
		/* Instructions the emulator cannot run, hidden from the kernel (docs/host-quirks.md). */
		opts[n++] = QUIRK_CLEARCPUID;
		/* KVM paravirt features stalled a boot in kvm_hypercall2. */
		opts[n++] = "nopv";
		/* The crypto self-tests stalled a boot entirely under emulation. */
		opts[n++] = "cryptomgr.notests";
	}
	/*
	 * On every host: the TSC frequency KVM gives the vCPU, instead of one timed
	 * against the PIT (failed under emulation, and a slow host can fail it too).
	 */
	if (p->tsc_khz) {
		snprintf(tsc, sizeof(tsc), "tsc_early_khz=%u", p->tsc_khz);
		opts[n++] = tsc;
	}
	for (int i = 0; i < n; i++) {
		const char *eq = strchr(opts[i], '=');
		size_t klen = eq ? (size_t)(eq - opts[i]) : strlen(opts[i]);
		if (cmdline_has_word(cmdline, opts[i], CMDLINE_KEY)) {
			append_word(kept, kept_len, opts[i], klen);
			continue;
		}
		append_word(added, added_len, opts[i], strlen(opts[i]));
		count++;
	}
	return count;
}

bool quirk_is_linux(const void *image, size_t len)
{
	static const char banner[] = "Linux version ";

	return image && memmem(image, len, banner, sizeof(banner) - 1) != NULL;
}

int quirk_apply_guest_options(const struct cmdline_parts *parts, char **cmdline, const void *image,
			      size_t image_len, size_t cmdline_max, bool enabled)
{
	struct host_profile p;
	char added[256], kept[128];
	char *next;
	int ret;

	if (!enabled)
		return 0;
	if (!quirk_is_linux(image, image_len)) {
#ifdef MICROVM_TEST_HOOKS
		const char *t = getenv(QUIRK_TEST_LINUX_ENV);
		if (!t || strcmp(t, "1"))
			return 0;
		log_info("%s=1: treating the kernel as Linux (for microvm's own tests)",
			 QUIRK_TEST_LINUX_ENV);
#else
		return 0;
#endif
	}
	if (host_probe(&p) < 0) {
		log_debug("host probe: %s", err_msg()); /* kvm_open() reports it properly later */
		return 0;
	}
	const char *who = p.emulated_kernel ? "host runs guest kernel code in KVM's instruction emulator"
					    : "the guest's TSC frequency is known";
	if (!quirk_guest_options(&p, *cmdline, added, sizeof(added), kept, sizeof(kept))) {
		if (kept[0])
			log_msg(p.emulated_kernel ? LOG_INFO : LOG_DEBUG, "%s: the command line already sets %s",
				who, kept);
		return 0;
	}
	struct cmdline_parts with = *parts;
	with.host_opts = added;
	if ((ret = cmdline_compose(&with, cmdline_max, &next)) < 0)
		return ret;
	if (ret == 1) {
		log_warn("%s, but adding %s would make the command line longer than the kernel's %zu "
			 "bytes; not added", who, added, cmdline_max);
		free(next);
		return 0;
	}
	/* Said once at info level where it matters (the emulated host), else for -v. */
	log_msg(p.emulated_kernel ? LOG_INFO : LOG_DEBUG,
		"%s: adding guest options %s%s%s (docs/host-quirks.md; --no-host-quirks turns this off)",
		who, added, kept[0] ? "; kept the command line's own " : "", kept);
	free(*cmdline);
	*cmdline = next;
	return 0;
}

int quirk_host_info(FILE *out)
{
	struct host_profile p;
	char caps[512], added[256], kept[128], uring[256];
	int ret;

	if ((ret = host_probe(&p)) < 0)
		return ret;
	if ((ret = host_kvm_caps(caps, sizeof(caps))) < 0)
		return ret;
	quirk_guest_options(&p, "", added, sizeof(added), kept, sizeof(kept));
	fprintf(out,
		"kvm_api_version: %d\n"
		"kvm_capabilities: %s\n"
		"probed: %s\n"
		"user_syscalls: %s\n"
		"emulated_kernel: %s\n"
		"host: %s\n"
		"syscall_from_user_mode: %s\n"
		"loop_cycles: cpl0 %llu, cpl3 %llu\n"
		"tsc_khz: %u\n"
		"probe_time_us: %u\n"
		"guest_options: %s\n"
		"io_uring: %s\n",
		p.api_version, caps, p.probed ? "yes" : "no", p.user_syscalls ? "yes" : "no",
		p.emulated_kernel ? "yes" : "no", p.summary, p.syscall_result,
		(unsigned long long)p.cpl0_cycles, (unsigned long long)p.cpl3_cycles, p.tsc_khz,
		p.probe_us, added[0] ? added : "(none)", io_loop_uring_status(uring, sizeof(uring)));
	return 0;
}
