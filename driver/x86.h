/* x86.h - x86 state helpers shared inside driver/ (they use <linux/kvm.h>, which only driver/ includes). */
#ifndef MICROVM_DRIVER_X86_H
#define MICROVM_DRIVER_X86_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

/* A present, flat (base 0, limit 4 GiB, page granular) DPL-0 code or data segment; l/db as given. */
void x86_flat_segment(struct kvm_segment *s, uint16_t sel, uint8_t type, bool l, bool db);

/*
 * Make a CPUID table (from KVM_GET_SUPPORTED_CPUID) consistent where a feature
 * keeps its registers in an XSAVE component the table does not offer: each
 * AVX, AVX-512, AMX, MPX, PKU and CET bit is cleared unless XSAVE is there and
 * leaf 0xD's XCR0 mask has that feature's components; without XSAVE, OSXSAVE
 * and every leaf 0xD subleaf are cleared too. A CPU that reports AVX without
 * XSAVE (QEMU's -cpu max,xsave=off under TCG, a nested KVM) would otherwise
 * make a guest such as Debian's kernel pick AVX code (aesni_intel) and die of
 * #UD. Returns the number of feature bits cleared.
 */
int x86_cpuid_fix_deps(struct kvm_cpuid_entry2 *e, uint32_t n);

#endif
