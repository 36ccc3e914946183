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
 * needs another one the table lacks: without XSAVE no AVX-class feature can be
 * used (their state is enabled through XCR0), so AVX, FMA, F16C, AVX2, every
 * AVX-512 and AVX-VNNI bit, VAES and VPCLMULQDQ are cleared. A CPU that
 * reports AVX without XSAVE (QEMU's -cpu max,xsave=off under TCG, a nested
 * KVM) would otherwise make a guest such as Debian's kernel pick AVX code
 * (aesni_intel) and die of #UD. Returns the number of bits cleared.
 */
int x86_cpuid_fix_deps(struct kvm_cpuid_entry2 *e, uint32_t n);

#endif
