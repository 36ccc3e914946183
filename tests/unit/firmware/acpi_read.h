/* acpi_read.h - test-side readers for ACPI tables, by spec offsets (not firmware/'s structs, so the layout is checked independently). */
#ifndef MICROVM_TEST_ACPI_READ_H
#define MICROVM_TEST_ACPI_READ_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "firmware/acpi.h"
#include "firmware/machine.h"

#define ACPI_HDR_LEN 36

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16;
}

static inline uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static inline uint8_t sum8(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	while (len--)
		s = (uint8_t)(s + *p++);
	return s;
}

/* The tables produced for a machine, located through the RSDP and XSDT. */
struct tables {
	uint8_t buf[64 * 1024];
	long len;
	uint64_t base;
	const uint8_t *rsdp, *xsdt, *fadt, *madt, *dsdt;
};

/* Host pointer of a table at guest address gpa, or NULL if outside [0, len). */
static inline const uint8_t *at(const struct tables *t, uint64_t gpa)
{
	if (gpa < t->base || gpa - t->base + ACPI_HDR_LEN > (uint64_t)t->len)
		return NULL;
	return t->buf + (gpa - t->base);
}

/* Build into t->buf and follow the pointers; the caller asserts on what is NULL. */
static inline long tables_build(struct tables *t, const struct machine *m)
{
	memset(t, 0, sizeof(*t));
	t->base = MV_ACPI_GPA;
	t->len = acpi_build(m, t->buf, sizeof(t->buf), t->base);
	if (t->len < 0)
		return t->len;
	t->rsdp = t->buf;
	t->xsdt = at(t, rd64(t->rsdp + 24));
	if (!t->xsdt)
		return t->len;
	uint32_t n = (rd32(t->xsdt + 4) - ACPI_HDR_LEN) / 8;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *p = at(t, rd64(t->xsdt + ACPI_HDR_LEN + 8 * i));
		if (p && !memcmp(p, "FACP", 4))
			t->fadt = p;
		else if (p && !memcmp(p, "APIC", 4))
			t->madt = p;
	}
	if (t->fadt)
		t->dsdt = at(t, rd64(t->fadt + 140));
	return t->len;
}

#endif
