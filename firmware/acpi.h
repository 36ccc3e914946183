/* acpi.h - ACPI tables (RSDP, XSDT, FADT, MADT, DSDT) rendered from the machine description. */
#ifndef MICROVM_ACPI_H
#define MICROVM_ACPI_H

#include <stddef.h>
#include <stdint.h>
#include "firmware/machine.h"

/*
 * Write the ACPI tables for m into buf, which the guest will see at guest
 * physical address base (buf[0] is at base). The RSDP is at base, the other
 * tables follow, 16-byte aligned. Tables: RSDP (rev 2) -> XSDT -> FADT
 * (hardware-reduced, sleep control/status and reset registers at the
 * MV_PORT_ACPI_* ports), MADT (one enabled local APIC per vCPU, one IOAPIC
 * at MV_IOAPIC_GPA with GSI base 0, an ISA override IRQ0 -> GSI2), DSDT
 * (\_S5, COM1 as PNP0501 with its ports and IRQ, pvpanic, the VM generation
 * ID device VGEN whose ADDR gives MV_VMGENID_GPA, the power button and the
 * GED that notifies it or VGEN, one LNRO0005 device per virtio-mmio device
 * with Memory32Fixed and Interrupt). All checksums and
 * lengths correct. Returns the number of bytes used, or -ENOSPC with
 * err_msg() if size is too small.
 */
long acpi_build(const struct machine *m, uint8_t *buf, size_t size, uint64_t base);

#endif
