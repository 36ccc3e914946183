/* quirks.c - instructions microvm completes after a KVM emulation failure (hosts without VT-x/AMD-V). */
#include "vmm/quirks.h"

#include <stdio.h>
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
