/* test_decompress.c - every decompressor: round trip with Linux's trailing size, corrupt and truncated input, the output cap. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "base/err.h"

#define DATA_LEN (300 * 1024 + 17)

/* Compressible but not trivial: patterned runs with some noise. */
static uint8_t *test_data(size_t n)
{
	uint8_t *p = malloc(n);
	uint32_t x = 12345;

	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245 + 12345;
		p[i] = (i % 97 < 60) ? (uint8_t)(i / 97) : (uint8_t)(x >> 24);
	}
	return p;
}

static struct tbuf compress_as(enum comp_format f, const uint8_t *p, size_t n)
{
	switch (f) {
	case COMP_GZIP: return gzip_of(p, n);
	case COMP_LZ4_LEGACY: return lz4legacy_of(p, n, 64 * 1024);
	case COMP_LZ4_FRAME: return lz4frame_of(p, n);
	case COMP_ZSTD: return zstd_of(p, n);
	case COMP_XZ: return xz_of(p, n);
	default: cr_assert_fail("no such format");
	}
	return (struct tbuf){ 0 };
}

ParameterizedTestParameters(decompress, round_trip)
{
	static enum comp_format fmts[] = { COMP_GZIP, COMP_LZ4_LEGACY, COMP_LZ4_FRAME, COMP_ZSTD, COMP_XZ };
	return cr_make_param_array(enum comp_format, fmts, sizeof(fmts) / sizeof(fmts[0]));
}

ParameterizedTest(enum comp_format *f, decompress, round_trip)
{
	uint8_t *data = test_data(DATA_LEN);
	struct tbuf c = compress_as(*f, data, DATA_LEN);
	uint8_t *out;
	size_t out_len;

	cr_assert_eq(comp_detect(c.p, c.len), *f);
	cr_assert_eq(decompress(c.p, c.len, 1 << 30, &out, &out_len), 0, "%s: %s", comp_name(*f), err_msg());
	cr_assert_eq(out_len, DATA_LEN, "%s", comp_name(*f));
	cr_assert_eq(memcmp(out, data, DATA_LEN), 0, "%s", comp_name(*f));
	free(out);

	/* Linux appends the uncompressed size: it must be ignored. */
	append_size(&c, DATA_LEN);
	cr_assert_eq(decompress(c.p, c.len, 1 << 30, &out, &out_len), 0, "%s + size: %s", comp_name(*f),
		     err_msg());
	cr_assert_eq(out_len, DATA_LEN);
	cr_assert_eq(memcmp(out, data, DATA_LEN), 0);
	free(out);
	tbuf_free(&c);
	free(data);
}

ParameterizedTestParameters(decompress, corrupt)
{
	static enum comp_format fmts[] = { COMP_GZIP, COMP_LZ4_LEGACY, COMP_LZ4_FRAME, COMP_ZSTD, COMP_XZ };
	return cr_make_param_array(enum comp_format, fmts, sizeof(fmts) / sizeof(fmts[0]));
}

/* Flipped bytes in the middle: an error (the checksums catch what the decoders do not), never a crash. */
ParameterizedTest(enum comp_format *f, decompress, corrupt)
{
	uint8_t *data = test_data(DATA_LEN);
	struct tbuf c = compress_as(*f, data, DATA_LEN);
	uint8_t *out = (uint8_t *)1;
	size_t out_len;

	for (size_t i = c.len / 3; i < c.len / 3 + 16; i++)
		c.p[i] ^= 0x5a;
	err_clear();
	int ret = decompress(c.p, c.len, 1 << 30, &out, &out_len);
	if (*f == COMP_LZ4_LEGACY && ret == 0) {
		/* Legacy LZ4 has no checksum: garbage may decode, but never to the original. */
		cr_assert(out_len != DATA_LEN || memcmp(out, data, DATA_LEN) != 0);
		free(out);
	} else {
		cr_assert_eq(ret, -EINVAL, "%s: %d %s", comp_name(*f), ret, err_msg());
		cr_assert_null(out);
		cr_assert(strstr(err_msg(), "corrupt") != NULL || strstr(err_msg(), "truncated") != NULL,
			  "%s: %s", comp_name(*f), err_msg());
	}
	tbuf_free(&c);
	free(data);
}

ParameterizedTestParameters(decompress, truncated)
{
	static enum comp_format fmts[] = { COMP_GZIP, COMP_LZ4_LEGACY, COMP_LZ4_FRAME, COMP_ZSTD, COMP_XZ };
	return cr_make_param_array(enum comp_format, fmts, sizeof(fmts) / sizeof(fmts[0]));
}

/* Cut anywhere: an error, never a crash or a read past the end (exact-size buffers for ASan). */
ParameterizedTest(enum comp_format *f, decompress, truncated)
{
	uint8_t *data = test_data(DATA_LEN);
	struct tbuf c = compress_as(*f, data, DATA_LEN);
	size_t cuts[] = { 1, 2, 5, 7, 13, c.len / 2, c.len - 5, c.len - 1 };

	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		struct tbuf t = tbuf_prefix(&c, cuts[i]);
		uint8_t *out;
		size_t out_len;
		int ret = decompress(t.p, t.len, 1 << 30, &out, &out_len);
		/* LZ4 legacy has no end marker: a cut at a block boundary is a shorter valid stream. */
		if (*f == COMP_LZ4_LEGACY && ret == 0) {
			cr_assert_lt(out_len, DATA_LEN);
			free(out);
		} else {
			cr_assert_lt(ret, 0, "%s cut at %zu accepted", comp_name(*f), cuts[i]);
			cr_assert_neq(ret, -EFBIG);
		}
		tbuf_free(&t);
	}
	tbuf_free(&c);
	free(data);
}

ParameterizedTestParameters(decompress, output_cap)
{
	static enum comp_format fmts[] = { COMP_GZIP, COMP_LZ4_LEGACY, COMP_LZ4_FRAME, COMP_ZSTD, COMP_XZ };
	return cr_make_param_array(enum comp_format, fmts, sizeof(fmts) / sizeof(fmts[0]));
}

/* A small "bomb": 4 MiB of zeros with a 1 MiB cap. The exact size passes, one byte less does not. */
ParameterizedTest(enum comp_format *f, decompress, output_cap)
{
	size_t n = 4 << 20;
	uint8_t *zeros = calloc(1, n);
	struct tbuf c = compress_as(*f, zeros, n);
	uint8_t *out = (uint8_t *)1;
	size_t out_len;

	cr_assert_lt(c.len, 64 * 1024, "%s: zeros compress well", comp_name(*f));
	cr_assert_eq(decompress(c.p, c.len, 1 << 20, &out, &out_len), -EFBIG, "%s", comp_name(*f));
	cr_assert_null(out);
	cr_assert(strstr(err_msg(), "larger than 1 MiB") != NULL, "%s", err_msg());
	cr_assert_eq(decompress(c.p, c.len, n - 1, &out, &out_len), -EFBIG, "%s: one byte over",
		     comp_name(*f));
	cr_assert_eq(decompress(c.p, c.len, n, &out, &out_len), 0, "%s: exactly at the cap: %s",
		     comp_name(*f), err_msg());
	cr_assert_eq(out_len, n);
	free(out);
	tbuf_free(&c);
	free(zeros);
}

Test(decompress, lz4_legacy_multi_block)
{
	size_t n = 5 * 100000 + 123;
	uint8_t *data = test_data(n);
	struct tbuf c = lz4legacy_of(data, n, 100000);   /* 6 blocks, the last one short */
	uint8_t *out;
	size_t out_len;

	append_size(&c, (uint32_t)n);
	cr_assert_eq(decompress(c.p, c.len, 1 << 30, &out, &out_len), 0, "%s", err_msg());
	cr_assert_eq(out_len, n);
	cr_assert_eq(memcmp(out, data, n), 0);
	free(out);
	tbuf_free(&c);
	free(data);
}

Test(decompress, lz4_legacy_stops_at_a_second_magic)
{
	uint8_t *data = test_data(1000);
	struct tbuf c = lz4legacy_of(data, 1000, 1000);
	size_t first = c.len;
	uint8_t *out;
	size_t out_len;

	/* A second stream follows; it is not decoded. */
	c.p = realloc(c.p, c.len * 2);
	memcpy(c.p + first, c.p, first);
	c.len = first * 2;
	cr_assert_eq(decompress(c.p, c.len, 1 << 30, &out, &out_len), 0, "%s", err_msg());
	cr_assert_eq(out_len, 1000);
	cr_assert_eq(memcmp(out, data, 1000), 0);
	free(out);
	tbuf_free(&c);
	free(data);
}

Test(decompress, lz4_legacy_bad_block_sizes)
{
	uint8_t s[12] = { 0x02, 0x21, 0x4c, 0x18 };
	uint8_t *out;
	size_t out_len;

	put32(s + 4, 0);            /* empty block */
	cr_assert_eq(decompress(s, 12, 1 << 30, &out, &out_len), -EINVAL);
	put32(s + 4, 0x7fffffff);   /* larger than any 8 MiB block compresses to */
	cr_assert_eq(decompress(s, 12, 1 << 30, &out, &out_len), -EINVAL);
	put32(s + 4, 100);          /* longer than the data */
	cr_assert_eq(decompress(s, 12, 1 << 30, &out, &out_len), -EINVAL);
	cr_assert(strstr(err_msg(), "ends early") != NULL, "%s", err_msg());
}

Test(decompress, trailing_bytes_after_the_stream)
{
	uint8_t *data = test_data(5000);
	static const enum comp_format fmts[] = { COMP_GZIP, COMP_ZSTD, COMP_XZ, COMP_LZ4_FRAME };

	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
		struct tbuf c = compress_as(fmts[i], data, 5000);
		uint8_t *out;
		size_t out_len;

		/* More than the 4 Linux appends: padding up to a sector, say. */
		c.p = realloc(c.p, c.len + 300);
		memset(c.p + c.len, 0xa5, 300);
		c.len += 300;
		cr_assert_eq(decompress(c.p, c.len, 1 << 30, &out, &out_len), 0, "%s: %s",
			     comp_name(fmts[i]), err_msg());
		cr_assert_eq(out_len, 5000);
		cr_assert_eq(memcmp(out, data, 5000), 0);
		free(out);
		tbuf_free(&c);
	}
	free(data);
}

Test(decompress, unknown_magic)
{
	static const uint8_t junk[] = "BAD!this is not compressed";
	uint8_t *out = (uint8_t *)1;
	size_t out_len = 7;

	cr_assert_eq(comp_detect(junk, sizeof(junk)), COMP_NONE);
	cr_assert_eq(decompress(junk, sizeof(junk), 1 << 30, &out, &out_len), -ENOTSUP);
	cr_assert_null(out);
	cr_assert_eq(out_len, 0);
	cr_assert_eq(decompress(junk, 0, 1 << 30, &out, &out_len), -ENOTSUP, "empty input");
	cr_assert_eq(decompress((const uint8_t *)"\x1f", 1, 1 << 30, &out, &out_len), -ENOTSUP,
		     "half a gzip magic");
}

Test(decompress, detect_and_names)
{
	cr_assert_eq(comp_detect((const uint8_t *)"\x1f\x8b", 2), COMP_GZIP);
	cr_assert_eq(comp_detect((const uint8_t *)"\x02\x21\x4c\x18", 4), COMP_LZ4_LEGACY);
	cr_assert_eq(comp_detect((const uint8_t *)"\x04\x22\x4d\x18", 4), COMP_LZ4_FRAME);
	cr_assert_eq(comp_detect((const uint8_t *)"\x28\xb5\x2f\xfd", 4), COMP_ZSTD);
	cr_assert_eq(comp_detect((const uint8_t *)"\xfd" "7zXZ\0", 6), COMP_XZ);
	cr_assert_eq(comp_detect((const uint8_t *)"\xfd" "7zXZ", 5), COMP_NONE, "xz magic cut short");
	cr_assert_eq(comp_detect((const uint8_t *)"\x28\xb5\x2f", 3), COMP_NONE);
	cr_assert_str_eq(comp_name(COMP_GZIP), "gzip");
	cr_assert_str_eq(comp_name(COMP_LZ4_LEGACY), "LZ4");
	cr_assert_str_eq(comp_name(COMP_ZSTD), "zstd");
	cr_assert_str_eq(comp_name(COMP_XZ), "xz");
}
