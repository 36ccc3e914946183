/* fdt.h - the flattened device tree rendered from the machine description (libfdt). */
#ifndef MICROVM_FDT_H
#define MICROVM_FDT_H

#include <stddef.h>
#include "firmware/machine.h"

/*
 * Write a device tree for m into buf (size bytes): root with
 * #address-cells = #size-cells = 2, compatible "microvm,x86"; /chosen with
 * bootargs = cmdline (if non-NULL) and stdout-path; /memory@0 with one reg
 * pair per RAM range; /cpus with one cpu@N (reg = APIC id) per vCPU;
 * /serial@3f8 (compatible "ns16550a", reg is the port, clock-frequency
 * 1843200, interrupts = MV_IRQ_COM1); one /virtio_mmio@ADDR
 * (compatible "virtio,mmio", reg, interrupts) per virtio-mmio device.
 * Returns the total size of the packed tree, or -ENOSPC/-EINVAL with err_msg().
 */
long fdt_build(const struct machine *m, const char *cmdline, void *buf, size_t size);

#endif
