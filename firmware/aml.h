/* aml.h - a small hand encoder for the ACPI Machine Language the DSDT needs (ACPI 6.x, chapters 6.4 and 20). */
#ifndef MICROVM_AML_H
#define MICROVM_AML_H

#include <stddef.h>
#include <stdint.h>

/*
 * An output cursor over a caller's buffer. Every aml_* call appends to it; the
 * first failure (buffer full, bad name) is remembered in err and every later
 * call does nothing, so a writer can emit a whole table and check once.
 */
struct aml {
	uint8_t *buf;
	size_t size;
	size_t len;  /* bytes written so far */
	int err;     /* 0, -ENOSPC (buffer full) or -EINVAL (bad name or string) */
};

void aml_init(struct aml *a, uint8_t *buf, size_t size);

/* Raw bytes. */
void aml_bytes(struct aml *a, const void *p, size_t n);

/*
 * A NameString: optional leading '\' (root), then NameSegs of 1..4 characters
 * separated by '.', each padded with '_' ("\\_SB.COM1", "_HID", "\\_S5").
 * A segment starts with A-Z or '_' and continues with A-Z, 0-9 or '_'.
 */
void aml_name_string(struct aml *a, const char *path);

/* The shortest constant for v: ZeroOp, OneOp, or Byte/Word/DWord/QWord prefix. */
void aml_integer(struct aml *a, uint64_t v);

/* DWordConst v, whatever its value (how iasl encodes EisaId()). */
void aml_dword(struct aml *a, uint32_t v);

/* StringPrefix, the ASCII characters (0x01..0x7f), NUL. */
void aml_string(struct aml *a, const char *s);

/* The 32-bit compressed EISA id of a 7-character PNP id ("PNP0501" -> 0x0105D041), or 0 if malformed. */
uint32_t aml_eisaid(const char *id);

/*
 * Objects with a PkgLength: the *_begin() call writes the opcode and returns
 * a mark; emit the contents; aml_end(mark) then writes the shortest PkgLength
 * covering them (1..4 bytes) in front.
 */
size_t aml_scope_begin(struct aml *a, const char *name);          /* Scope(name) { */
size_t aml_device_begin(struct aml *a, const char *name);         /* Device(name) { */
size_t aml_package_begin(struct aml *a, uint8_t nr_elements);     /* Package(n) { */
size_t aml_method_begin(struct aml *a, const char *name, uint8_t nr_args); /* Method(name, n, NotSerialized) { (n <= 7) */
void aml_end(struct aml *a, size_t mark);                         /* } */

/*
 * If (predicate) { ... }: aml_if_begin() writes IfOp and its PkgLength; the
 * caller emits the predicate, then the body, then aml_end(mark). No Else.
 */
size_t aml_if_begin(struct aml *a);

/* LEqual(x, y): the caller emits the two operands next. */
void aml_lequal(struct aml *a);

/* Arg0..Arg6 of the enclosing method (n <= 6). */
void aml_arg(struct aml *a, unsigned n);

/* Return(x): the caller emits the value next. */
void aml_return(struct aml *a);

/* Name(name, ...): the caller emits the value next. */
void aml_name(struct aml *a, const char *name);

/* Notify(path, value): in a method body. */
void aml_notify(struct aml *a, const char *path, uint8_t value);

/*
 * A resource template under construction: descriptors are collected here and
 * aml_name_resources() emits Name(name, Buffer(){...}) with the end tag and
 * its checksum appended.
 */
#define AML_RES_MAX 128
struct aml_res {
	uint8_t b[AML_RES_MAX];
	size_t len;
	int err;   /* -ENOSPC if the descriptors did not fit */
};

void aml_res_init(struct aml_res *r);
/* IO(Decode16, min, max, align, len): small item 0x08. */
void aml_res_io16(struct aml_res *r, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
/* IRQNoFlags() {irq}: small item 0x04, 2 data bytes; irq 0..15. */
void aml_res_irq_noflags(struct aml_res *r, unsigned irq);
/* Memory32Fixed(ReadWrite or ReadOnly, base, len): large item 0x06. */
void aml_res_mem32_fixed(struct aml_res *r, int writable, uint32_t base, uint32_t len);
/* Interrupt(ResourceConsumer, Edge, ActiveHigh, Exclusive) {gsi}: large item 0x09. */
void aml_res_ext_irq_edge_high(struct aml_res *r, uint32_t gsi);

/* Name(name, ResourceTemplate() {...}) from r, end tag included. */
void aml_name_resources(struct aml *a, const char *name, const struct aml_res *r);

#endif
