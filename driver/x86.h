/* x86.h - x86 state helpers shared inside driver/ (they use <linux/kvm.h>, which only driver/ includes). */
#ifndef MICROVM_DRIVER_X86_H
#define MICROVM_DRIVER_X86_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

/* A present, flat (base 0, limit 4 GiB, page granular) DPL-0 code or data segment; l/db as given. */
void x86_flat_segment(struct kvm_segment *s, uint16_t sel, uint8_t type, bool l, bool db);

#endif
