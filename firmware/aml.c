/* aml.c - hand encoder for the few AML constructs the DSDT uses (see aml.h). */
#include "firmware/aml.h"

#include <errno.h>
#include <string.h>

/* AML opcodes (ACPI 6.x, 20.3). */
#define AML_ZERO_OP       0x00
#define AML_ONE_OP        0x01
#define AML_NAME_OP       0x08
#define AML_BYTE_PREFIX   0x0a
#define AML_WORD_PREFIX   0x0b
#define AML_DWORD_PREFIX  0x0c
#define AML_STRING_PREFIX 0x0d
#define AML_QWORD_PREFIX  0x0e
#define AML_SCOPE_OP      0x10
#define AML_BUFFER_OP     0x11
#define AML_PACKAGE_OP    0x12
#define AML_EXT_OP_PREFIX 0x5b
#define AML_METHOD_OP     0x14
#define AML_ARG0_OP       0x68 /* Arg0..Arg6: 0x68..0x6e */
#define AML_LEQUAL_OP     0x93
#define AML_IF_OP         0xa0
#define AML_RETURN_OP     0xa4
#define AML_NOTIFY_OP     0x86
#define AML_DEVICE_OP     0x82 /* after AML_EXT_OP_PREFIX */
#define AML_ROOT_CHAR     '\\'
#define AML_DUAL_NAME     0x2e
#define AML_MULTI_NAME    0x2f

/*
 * A PkgLength takes 1 to 4 bytes, known only when the contents are. One byte is
 * reserved and the contents are moved up if more are needed: the writer never
 * uses more of the buffer than the finished AML does, so an exact fit works.
 */
#define PKGLEN_MAX_BYTES 4

/* Resource descriptor tags (ACPI 6.x, 6.4). */
#define RES_IRQ_NOFLAGS  0x22 /* small item 0x04, length 2 */
#define RES_IO           0x47 /* small item 0x08, length 7 */
#define RES_END_TAG      0x79 /* small item 0x0f, length 1 */
#define RES_MEM32_FIXED  0x86 /* large item 0x06 */
#define RES_EXT_IRQ      0x89 /* large item 0x09 */

void aml_init(struct aml *a, uint8_t *buf, size_t size)
{
	a->buf = buf;
	a->size = size;
	a->len = 0;
	a->err = 0;
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (a->err)
		return;
	if (n > a->size - a->len) {
		a->err = -ENOSPC;
		return;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

static void put8(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

static void put_le(struct aml *a, uint64_t v, int n)
{
	uint8_t b[8];

	for (int i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	aml_bytes(a, b, (size_t)n);
}

static int seg_char_ok(char c, int first)
{
	if ((c >= 'A' && c <= 'Z') || c == '_')
		return 1;
	return !first && c >= '0' && c <= '9';
}

void aml_name_string(struct aml *a, const char *path)
{
	char segs[255][4];
	size_t nseg = 0;
	const char *p = path;

	if (a->err)
		return;
	if (*p == AML_ROOT_CHAR)
		p++;
	while (*p) {
		size_t n = 0;
		if (nseg == 255)
			goto bad;
		memset(segs[nseg], '_', 4);
		for (; *p && *p != '.'; p++, n++) {
			if (n == 4 || !seg_char_ok(*p, n == 0))
				goto bad;
			segs[nseg][n] = *p;
		}
		if (n == 0)
			goto bad;
		nseg++;
		if (*p == '.' && *++p == '\0')
			goto bad;
	}
	if (nseg == 0)
		goto bad;

	if (*path == AML_ROOT_CHAR)
		put8(a, AML_ROOT_CHAR);
	if (nseg == 2) {
		put8(a, AML_DUAL_NAME);
	} else if (nseg > 2) {
		put8(a, AML_MULTI_NAME);
		put8(a, (uint8_t)nseg);
	}
	aml_bytes(a, segs, nseg * 4);
	return;
bad:
	a->err = -EINVAL;
}

void aml_integer(struct aml *a, uint64_t v)
{
	if (v == 0) {
		put8(a, AML_ZERO_OP);
	} else if (v == 1) {
		put8(a, AML_ONE_OP);
	} else if (v <= UINT8_MAX) {
		put8(a, AML_BYTE_PREFIX);
		put_le(a, v, 1);
	} else if (v <= UINT16_MAX) {
		put8(a, AML_WORD_PREFIX);
		put_le(a, v, 2);
	} else if (v <= UINT32_MAX) {
		put8(a, AML_DWORD_PREFIX);
		put_le(a, v, 4);
	} else {
		put8(a, AML_QWORD_PREFIX);
		put_le(a, v, 8);
	}
}

void aml_dword(struct aml *a, uint32_t v)
{
	put8(a, AML_DWORD_PREFIX);
	put_le(a, v, 4);
}

void aml_string(struct aml *a, const char *s)
{
	if (a->err)
		return;
	for (const char *p = s; *p; p++) {
		if ((unsigned char)*p > 0x7f) {
			a->err = -EINVAL;
			return;
		}
	}
	put8(a, AML_STRING_PREFIX);
	aml_bytes(a, s, strlen(s) + 1);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

uint32_t aml_eisaid(const char *id)
{
	uint32_t v = 0;

	if (strlen(id) != 7)
		return 0;
	/* Three letters, 5 bits each ('A' = 1), then four hex digits: 32 bits, big-endian. */
	for (int i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z')
			return 0;
		v = (v << 5) | (uint32_t)(id[i] - 'A' + 1);
	}
	for (int i = 3; i < 7; i++) {
		int h = hexval(id[i]);
		if (h < 0)
			return 0;
		v = (v << 4) | (uint32_t)h;
	}
	/* AML stores the big-endian bytes as a little-endian DWord. */
	return __builtin_bswap32(v);
}

static size_t pkg_begin(struct aml *a)
{
	size_t mark = a->len;

	put8(a, 0);
	return mark;
}

void aml_end(struct aml *a, size_t mark)
{
	if (a->err)
		return;
	size_t body = a->len - mark - 1;
	/* PkgLength counts its own bytes. One byte holds 0..63; n bytes hold 4 + 8(n-1) bits. */
	size_t n, total = 0;
	for (n = 1; n <= PKGLEN_MAX_BYTES; n++) {
		total = body + n;
		if (n == 1 ? total <= 0x3f : total < (1ULL << (4 + 8 * (n - 1))))
			break;
	}
	if (n > PKGLEN_MAX_BYTES || n - 1 > a->size - a->len) {
		a->err = -ENOSPC;
		return;
	}
	uint8_t *p = a->buf + mark;
	memmove(p + n, p + 1, body);
	if (n == 1) {
		p[0] = (uint8_t)total;
	} else {
		p[0] = (uint8_t)(((n - 1) << 6) | (total & 0xf));
		for (size_t i = 1; i < n; i++)
			p[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	a->len += n - 1;
}

size_t aml_scope_begin(struct aml *a, const char *name)
{
	put8(a, AML_SCOPE_OP);
	size_t mark = pkg_begin(a);
	aml_name_string(a, name);
	return mark;
}

size_t aml_device_begin(struct aml *a, const char *name)
{
	put8(a, AML_EXT_OP_PREFIX);
	put8(a, AML_DEVICE_OP);
	size_t mark = pkg_begin(a);
	aml_name_string(a, name);
	return mark;
}

size_t aml_method_begin(struct aml *a, const char *name, uint8_t nr_args)
{
	put8(a, AML_METHOD_OP);
	size_t mark = pkg_begin(a);
	aml_name_string(a, name);
	if (nr_args > 7 && !a->err)
		a->err = -EINVAL;
	put8(a, (uint8_t)(nr_args & 7)); /* MethodFlags: ArgCount, NotSerialized, SyncLevel 0 */
	return mark;
}

void aml_notify(struct aml *a, const char *path, uint8_t value)
{
	put8(a, AML_NOTIFY_OP);
	aml_name_string(a, path);
	aml_integer(a, value);
}

size_t aml_if_begin(struct aml *a)
{
	put8(a, AML_IF_OP);
	return pkg_begin(a);
}

void aml_lequal(struct aml *a)
{
	put8(a, AML_LEQUAL_OP);
}

void aml_arg(struct aml *a, unsigned n)
{
	if (n > 6) {
		if (!a->err)
			a->err = -EINVAL;
		return;
	}
	put8(a, (uint8_t)(AML_ARG0_OP + n));
}

void aml_return(struct aml *a)
{
	put8(a, AML_RETURN_OP);
}

size_t aml_package_begin(struct aml *a, uint8_t nr_elements)
{
	put8(a, AML_PACKAGE_OP);
	size_t mark = pkg_begin(a);
	put8(a, nr_elements);
	return mark;
}

void aml_name(struct aml *a, const char *name)
{
	put8(a, AML_NAME_OP);
	aml_name_string(a, name);
}

/* ---- resource templates ---- */

void aml_res_init(struct aml_res *r)
{
	r->len = 0;
	r->err = 0;
}

static void res_put(struct aml_res *r, const uint8_t *b, size_t n)
{
	if (r->err)
		return;
	/* Keep two bytes for the end tag. */
	if (n + 2 > sizeof(r->b) - r->len) {
		r->err = -ENOSPC;
		return;
	}
	memcpy(r->b + r->len, b, n);
	r->len += n;
}

void aml_res_io16(struct aml_res *r, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
	const uint8_t d[8] = {
		RES_IO, 0x01 /* decodes 16 address bits */,
		(uint8_t)min, (uint8_t)(min >> 8), (uint8_t)max, (uint8_t)(max >> 8),
		align, len,
	};
	res_put(r, d, sizeof(d));
}

void aml_res_irq_noflags(struct aml_res *r, unsigned irq)
{
	if (irq > 15) {
		r->err = -EINVAL;
		return;
	}
	uint16_t mask = (uint16_t)(1u << irq);
	const uint8_t d[3] = { RES_IRQ_NOFLAGS, (uint8_t)mask, (uint8_t)(mask >> 8) };
	res_put(r, d, sizeof(d));
}

void aml_res_mem32_fixed(struct aml_res *r, int writable, uint32_t base, uint32_t len)
{
	const uint8_t d[12] = {
		RES_MEM32_FIXED, 9, 0, /* length of the data that follows */
		writable ? 1 : 0,
		(uint8_t)base, (uint8_t)(base >> 8), (uint8_t)(base >> 16), (uint8_t)(base >> 24),
		(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24),
	};
	res_put(r, d, sizeof(d));
}

void aml_res_ext_irq_edge_high(struct aml_res *r, uint32_t gsi)
{
	/* Flags: bit 0 consumer, bit 1 edge; active high (bit 2 clear), exclusive (bit 3 clear). */
	const uint8_t d[9] = {
		RES_EXT_IRQ, 6, 0, /* flags, table length and one DWord */
		0x03, 1,
		(uint8_t)gsi, (uint8_t)(gsi >> 8), (uint8_t)(gsi >> 16), (uint8_t)(gsi >> 24),
	};
	res_put(r, d, sizeof(d));
}

void aml_name_resources(struct aml *a, const char *name, const struct aml_res *r)
{
	uint8_t sum = 0;

	if (a->err)
		return;
	if (r->err) {
		a->err = r->err;
		return;
	}
	for (size_t i = 0; i < r->len; i++)
		sum = (uint8_t)(sum + r->b[i]);
	sum = (uint8_t)(sum + RES_END_TAG);
	/* The end tag's checksum makes the whole template sum to zero. */
	const uint8_t end[2] = { RES_END_TAG, (uint8_t)(0x100 - sum) };

	aml_name(a, name);
	put8(a, AML_BUFFER_OP);
	size_t mark = pkg_begin(a);
	aml_integer(a, r->len + sizeof(end));
	aml_bytes(a, r->b, r->len);
	aml_bytes(a, end, sizeof(end));
	aml_end(a, mark);
}
