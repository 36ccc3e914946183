/* quirks.h - completing instructions that KVM's instruction emulator cannot run (see docs/host-quirks.md). */
#ifndef MICROVM_QUIRKS_H
#define MICROVM_QUIRKS_H

#include <stdbool.h>
#include <stdint.h>

#include "driver/vcpu.h"

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

#endif
