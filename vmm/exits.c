/* exits.c - the exit handler table (see exits.h). */
#include "vmm/exits.h"
#include "base/exit_codes.h"
#include "base/log.h"

#include <stdio.h>
#include <string.h>

typedef enum exit_action (*exit_handler_fn)(const struct exit_env *env, struct vcpu *vcpu,
					     const struct vm_exit *ex);

/* This vCPU's own counters, or NULL. */
static struct exit_stats *vstats(const struct exit_env *env, const struct vcpu *vcpu)
{
	if (!env->stats || !vcpu || vcpu->id < 0 || vcpu->id >= env->nr_stats)
		return NULL;
	return &env->stats[vcpu->id];
}

/* Index of the bus range r for the per-device counters (STATS_UNMAPPED for none). */
static unsigned int range_idx(const struct bus *bus, const struct bus_range *r)
{
	return r ? (unsigned int)(r - bus->range) : STATS_UNMAPPED;
}

/* Stop the VM, logging why, the vCPU's registers and the guest's last console lines. */
static enum exit_action fail(const struct exit_env *env, struct vcpu *vcpu, int status,
			     const char *why)
{
	char regs[256], tail[512];

	log_error("%s", why);
	if (vcpu && vcpu->fd >= 0) {
		vcpu_describe(vcpu, regs, sizeof(regs));
		log_error("%s", regs);
	}
	if (env->console_tail) {
		env->console_tail(env->ctx, tail, sizeof(tail));
		/* Only the last few lines: keep the report short. */
		char *p = tail + strlen(tail);
		int lines = 0;
		while (p > tail && lines < 6)
			if (*--p == '\n' && p[1] != '\0')
				lines++;
		if (*p == '\n')
			p++;
		if (*p) {
			log_error("last guest console output:");
			for (char *line = strtok(p, "\n"); line; line = strtok(NULL, "\n"))
				log_error("  | %s", line);
		}
	}
	env->stop(env->ctx, status, why);
	return EXIT_STOP;
}

static enum exit_action on_io(const struct exit_env *env, struct vcpu *vcpu, const struct vm_exit *ex)
{
	struct exit_stats *st = vstats(env, vcpu);

	if (st)
		st->pio[range_idx(env->pio, bus_find(env->pio, ex->io.port, ex->io.size))]++;
	/* rep ins/outs: one access per element. */
	for (uint32_t i = 0; i < ex->io.count; i++) {
		uint8_t *d = ex->io.data + (size_t)i * ex->io.size;
		if (!bus_access(env->pio, ex->io.port, d, ex->io.size, ex->io.write)) {
			if (env->unmapped_io)
				atomic_fetch_add(env->unmapped_io, 1);
			log_debug("unhandled port %s 0x%x (size %u)", ex->io.write ? "write" : "read",
				  ex->io.port, ex->io.size);
		}
	}
	return EXIT_CONTINUE;
}

static enum exit_action on_mmio(const struct exit_env *env, struct vcpu *vcpu, const struct vm_exit *ex)
{
	struct exit_stats *st = vstats(env, vcpu);

	if (st)
		st->mmio[range_idx(env->mmio, bus_find(env->mmio, ex->mmio.addr, ex->mmio.len))]++;
	if (!bus_access(env->mmio, ex->mmio.addr, ex->mmio.data, ex->mmio.len, ex->mmio.write)) {
		if (env->unmapped_io)
			atomic_fetch_add(env->unmapped_io, 1);
		log_debug("unhandled MMIO %s at 0x%llx (len %u)", ex->mmio.write ? "write" : "read",
			  (unsigned long long)ex->mmio.addr, ex->mmio.len);
	}
	return EXIT_CONTINUE;
}

static enum exit_action on_continue(const struct exit_env *env, struct vcpu *vcpu,
				    const struct vm_exit *ex)
{
	(void)env, (void)vcpu, (void)ex;
	return EXIT_CONTINUE;
}

static enum exit_action on_shutdown(const struct exit_env *env, struct vcpu *vcpu,
				    const struct vm_exit *ex)
{
	(void)ex;
	return fail(env, vcpu, MV_EXIT_TRIPLE_FAULT, "guest triple fault (KVM shutdown exit)");
}

static enum exit_action on_system_event(const struct exit_env *env, struct vcpu *vcpu,
					const struct vm_exit *ex)
{
	switch (ex->event.type) {
	case VMEXIT_EVENT_SHUTDOWN:
		env->stop(env->ctx, MV_EXIT_POWEROFF, "guest powered off");
		return EXIT_STOP;
	case VMEXIT_EVENT_RESET:
		env->stop(env->ctx, MV_EXIT_POWEROFF, "guest requested a reset");
		return EXIT_STOP;
	default: {
		char why[96];
		snprintf(why, sizeof(why), "guest crashed (KVM system event %u)", ex->event.type);
		return fail(env, vcpu, MV_EXIT_GUEST_ERROR, why);
	}
	}
}

static enum exit_action on_emulation_failure(const struct exit_env *env, struct vcpu *vcpu,
					     const struct vm_exit *ex)
{
	struct quirk q;
	char bytes[64], why[256];

	if (quirk_classify(ex->emul.insn, ex->emul.insn_len, &q)) {
		quirk_format_bytes(ex->emul.insn, q.len, bytes, sizeof(bytes));
		bool first = true;
		if (env->quirk_counts)
			first = atomic_fetch_add(&env->quirk_counts[q.kind], 1) == 0;
		struct exit_stats *st = vstats(env, vcpu);
		if (st) {
			st->quirk[q.kind]++;
			st->quirk_name[q.kind] = q.name;
		}
		if (first)
			log_info("KVM's instruction emulator cannot run '%s' (%s); microvm completes it "
				 "(this host runs guest kernel code in KVM's emulator; with VT-x/AMD-V "
				 "this never happens)", q.name, bytes);
		if (quirk_complete(vcpu, &q) == 0)
			return EXIT_CONTINUE;
		snprintf(why, sizeof(why), "cannot complete '%s' on vCPU %d", q.name, vcpu->id);
		return fail(env, vcpu, MV_EXIT_GUEST_ERROR, why);
	}
	quirk_format_bytes(ex->emul.insn, ex->emul.insn_len, bytes, sizeof(bytes));
	snprintf(why, sizeof(why),
		 "KVM could not emulate a guest instruction on vCPU %d (bytes: %s); "
		 "see docs/host-quirks.md", vcpu ? vcpu->id : -1,
		 ex->emul.insn_len ? bytes : "not reported");
	return fail(env, vcpu, MV_EXIT_GUEST_ERROR, why);
}

static enum exit_action on_internal_error(const struct exit_env *env, struct vcpu *vcpu,
					  const struct vm_exit *ex)
{
	char why[160];

	snprintf(why, sizeof(why), "KVM internal error on vCPU %d (suberror %u, data 0x%llx 0x%llx)",
		 vcpu ? vcpu->id : -1, ex->internal.suberror,
		 (unsigned long long)ex->internal.data[0], (unsigned long long)ex->internal.data[1]);
	return fail(env, vcpu, MV_EXIT_GUEST_ERROR, why);
}

static enum exit_action on_fail_entry(const struct exit_env *env, struct vcpu *vcpu,
				      const struct vm_exit *ex)
{
	char why[128];

	snprintf(why, sizeof(why), "KVM could not enter the guest on vCPU %d (reason 0x%llx)",
		 vcpu ? vcpu->id : -1, (unsigned long long)ex->fail_entry.reason);
	return fail(env, vcpu, MV_EXIT_GUEST_ERROR, why);
}

static enum exit_action on_unknown(const struct exit_env *env, struct vcpu *vcpu,
				   const struct vm_exit *ex)
{
	char why[96];

	snprintf(why, sizeof(why), "unhandled KVM exit reason %u on vCPU %d", ex->raw_reason,
		 vcpu ? vcpu->id : -1);
	return fail(env, vcpu, MV_EXIT_GUEST_ERROR, why);
}

static const exit_handler_fn handlers[VMEXIT_KIND_COUNT] = {
	[VMEXIT_UNKNOWN] = on_unknown,
	[VMEXIT_IO] = on_io,
	[VMEXIT_MMIO] = on_mmio,
	[VMEXIT_HLT] = on_continue, /* only without an in-kernel LAPIC; retry */
	[VMEXIT_SHUTDOWN] = on_shutdown,
	[VMEXIT_SYSTEM_EVENT] = on_system_event,
	[VMEXIT_EMULATION_FAILURE] = on_emulation_failure,
	[VMEXIT_INTERNAL_ERROR] = on_internal_error,
	[VMEXIT_FAIL_ENTRY] = on_fail_entry,
	[VMEXIT_INTR] = on_continue,
};

enum exit_action exit_dispatch(const struct exit_env *env, struct vcpu *vcpu, const struct vm_exit *ex)
{
	unsigned int kind = (unsigned int)ex->kind;

	struct exit_stats *st = vstats(env, vcpu);

	if (kind >= VMEXIT_KIND_COUNT)
		kind = VMEXIT_UNKNOWN;
	if (st)
		st->kind[kind]++;
	return handlers[kind](env, vcpu, ex);
}
