/* decompress.c - host-side decompression of kernel payloads (gzip, LZ4 legacy and frame, zstd, xz), bounded. */
#include "boot/internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <lz4frame.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include "base/err.h"

#define LZ4_LEGACY_MAGIC 0x184c2102u
#define XZ_MEMLIMIT (256ULL << 20)   /* decoder memory; xz -9 needs about 65 MiB */

enum comp_format comp_detect(const uint8_t *d, size_t len)
{
	if (len >= 2 && d[0] == 0x1f && d[1] == 0x8b)
		return COMP_GZIP;
	if (len >= 4 && memcmp(d, "\x02\x21\x4c\x18", 4) == 0)
		return COMP_LZ4_LEGACY;
	if (len >= 4 && memcmp(d, "\x04\x22\x4d\x18", 4) == 0)
		return COMP_LZ4_FRAME;
	if (len >= 4 && memcmp(d, "\x28\xb5\x2f\xfd", 4) == 0)
		return COMP_ZSTD;
	if (len >= 6 && memcmp(d, "\xfd" "7zXZ\0", 6) == 0)
		return COMP_XZ;
	return COMP_NONE;
}

const char *comp_name(enum comp_format f)
{
	switch (f) {
	case COMP_GZIP: return "gzip";
	case COMP_LZ4_LEGACY: return "LZ4";
	case COMP_LZ4_FRAME: return "LZ4 frame";
	case COMP_ZSTD: return "zstd";
	case COMP_XZ: return "xz";
	case COMP_NONE: break;
	}
	return "unknown";
}

/*
 * The output buffer. Its capacity never exceeds max + 1 for the stream
 * decoders: producing byte max + 1 proves the output is too large, without
 * the ambiguity of a decoder stopped by a full buffer.
 */
struct outbuf {
	uint8_t *p;
	size_t len, cap, max;
	size_t first;   /* first capacity to try: a guess from the input size */
};

static int too_big(const struct outbuf *o)
{
	return err_set(EFBIG, "the decompressed data is larger than %.0f MiB", boot_mib(o->max));
}

/* Make room for at least one more byte (up to max + 1 in all). */
static int grow(struct outbuf *o)
{
	size_t limit = o->max + 1;

	if (o->len < o->cap)
		return 0;
	if (o->cap >= limit)
		return too_big(o);
	size_t cap = o->cap ? o->cap : o->first;
	while (cap <= o->len)
		cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
	if (cap > limit)
		cap = limit;
	uint8_t *p = realloc(o->p, cap);
	if (!p)
		return err_set(ENOMEM, "out of memory for %.1f MiB of decompressed data", boot_mib(cap));
	o->p = p;
	o->cap = cap;
	return 0;
}

static int truncated(size_t done)
{
	return err_set(EINVAL, "the compressed data ends early (truncated file?) after %zu output bytes",
		       done);
}

static int gunzip(const uint8_t *in, size_t len, struct outbuf *o)
{
	z_stream z;
	size_t pos = 0;
	int ret, zr;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)   /* 16: gzip wrapper only */
		return err_set(ENOMEM, "cannot set up the gzip decoder");
	for (;;) {
		if ((ret = grow(o)) < 0)
			goto out;
		if (z.avail_in == 0 && pos < len) {
			size_t n = len - pos > UINT_MAX ? UINT_MAX : len - pos;
			z.next_in = (Bytef *)(uintptr_t)(in + pos);
			z.avail_in = (uInt)n;
			pos += n;
		}
		size_t room = o->cap - o->len > UINT_MAX ? UINT_MAX : o->cap - o->len;
		z.next_out = o->p + o->len;
		z.avail_out = (uInt)room;
		zr = inflate(&z, Z_NO_FLUSH);
		o->len += room - z.avail_out;
		if (zr == Z_STREAM_END) {
			ret = 0;   /* whatever follows (Linux's size word) is ignored */
			goto out;
		}
		if (zr == Z_BUF_ERROR && z.avail_in == 0 && pos == len) {
			ret = truncated(o->len);
			goto out;
		}
		if (zr != Z_OK && zr != Z_BUF_ERROR) {
			ret = zr == Z_MEM_ERROR ? err_set(ENOMEM, "out of memory in the gzip decoder")
				: err_set(EINVAL, "corrupt data (%s)", z.msg ? z.msg : "zlib error");
			goto out;
		}
	}
out:
	inflateEnd(&z);
	return ret;
}

/*
 * LZ4 legacy format (lz4 -l, Linux's choice): the magic, then blocks of
 * [le32 compressed size][data], each decompressing to at most 8 MiB. It has no
 * end marker: the data ends, or a size word equals the magic (a second stream,
 * not followed), or the size word is the last 4 bytes (Linux's size trailer).
 */
static int unlz4_legacy(const uint8_t *in, size_t len, struct outbuf *o)
{
	size_t pos = 4;
	const size_t bound = (size_t)LZ4_compressBound(LZ4_LEGACY_BLOCK_MAX);

	while (len - pos >= 4) {
		uint32_t csize = le32(in + pos);
		if (csize == LZ4_LEGACY_MAGIC || len - pos == 4)
			break;
		pos += 4;
		if (csize == 0 || csize > bound)
			return err_set(EINVAL, "corrupt data (LZ4 block of %u bytes at offset 0x%zx)",
				       csize, pos - 4);
		if (csize > len - pos)
			return truncated(o->len);
		/* Room for a whole block; the cap is checked after it (it may overshoot by < 8 MiB). */
		if (o->cap - o->len < LZ4_LEGACY_BLOCK_MAX) {
			if (o->len > SIZE_MAX - LZ4_LEGACY_BLOCK_MAX)
				return too_big(o);
			size_t cap = o->len + LZ4_LEGACY_BLOCK_MAX;
			uint8_t *p = realloc(o->p, cap);
			if (!p)
				return err_set(ENOMEM, "out of memory for %.1f MiB of decompressed data",
					       boot_mib(cap));
			o->p = p;
			o->cap = cap;
		}
		int n = LZ4_decompress_safe((const char *)in + pos, (char *)o->p + o->len, (int)csize,
					    (int)LZ4_LEGACY_BLOCK_MAX);
		if (n < 0)
			return err_set(EINVAL, "corrupt data (LZ4 block at offset 0x%zx)", pos - 4);
		o->len += (size_t)n;
		pos += csize;
		if (o->len > o->max)
			return too_big(o);
	}
	return 0;
}

static int unlz4_frame(const uint8_t *in, size_t len, struct outbuf *o)
{
	LZ4F_dctx *dctx;
	size_t pos = 0;
	int ret;

	if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)))
		return err_set(ENOMEM, "cannot set up the LZ4 frame decoder");
	for (;;) {
		if ((ret = grow(o)) < 0)
			break;
		size_t dst = o->cap - o->len, src = len - pos;
		size_t r = LZ4F_decompress(dctx, o->p + o->len, &dst, in + pos, &src, NULL);
		if (LZ4F_isError(r)) {
			ret = err_set(EINVAL, "corrupt data (%s)", LZ4F_getErrorName(r));
			break;
		}
		o->len += dst;
		pos += src;
		if (r == 0) {   /* end of the frame */
			ret = 0;
			break;
		}
		/* No progress although there is room: it needs input there is not. */
		if (src == 0 && dst == 0) {
			ret = pos == len ? truncated(o->len)
				: err_set(EINVAL, "corrupt data (the LZ4 frame decoder is stuck)");
			break;
		}
	}
	LZ4F_freeDecompressionContext(dctx);
	return ret;
}

static int unzstd(const uint8_t *in, size_t len, struct outbuf *o)
{
	ZSTD_DStream *ds = ZSTD_createDStream();
	ZSTD_inBuffer ib = { in, len, 0 };
	int ret;

	if (!ds)
		return err_set(ENOMEM, "cannot set up the zstd decoder");
	ZSTD_initDStream(ds);
	for (;;) {
		if ((ret = grow(o)) < 0)
			break;
		ZSTD_outBuffer ob = { o->p + o->len, o->cap - o->len, 0 };
		size_t r = ZSTD_decompressStream(ds, &ob, &ib);
		if (ZSTD_isError(r)) {
			ret = err_set(EINVAL, "corrupt data (%s)", ZSTD_getErrorName(r));
			break;
		}
		o->len += ob.pos;
		if (r == 0) {   /* end of the first frame; the rest is ignored */
			ret = 0;
			break;
		}
		/* Output not full and all input read: the frame wants more. */
		if (ib.pos == ib.size && ob.pos < ob.size) {
			ret = truncated(o->len);
			break;
		}
	}
	ZSTD_freeDStream(ds);
	return ret;
}

static int unxz(const uint8_t *in, size_t len, struct outbuf *o)
{
	lzma_stream s = LZMA_STREAM_INIT;
	int ret;

	/* No LZMA_CONCATENATED: the decoder stops after the first stream. */
	if (lzma_stream_decoder(&s, XZ_MEMLIMIT, 0) != LZMA_OK)
		return err_set(ENOMEM, "cannot set up the xz decoder");
	s.next_in = in;
	s.avail_in = len;
	for (;;) {
		if ((ret = grow(o)) < 0)
			break;
		s.next_out = o->p + o->len;
		s.avail_out = o->cap - o->len;
		size_t room = s.avail_out;
		lzma_ret r = lzma_code(&s, LZMA_FINISH);
		o->len += room - s.avail_out;
		if (r == LZMA_STREAM_END) {
			ret = 0;
			break;
		}
		if (r == LZMA_OK)
			continue;   /* output full: grow() decides */
		switch (r) {
		case LZMA_BUF_ERROR:
			ret = truncated(o->len);
			break;
		case LZMA_MEM_ERROR:
			ret = err_set(ENOMEM, "out of memory in the xz decoder");
			break;
		case LZMA_MEMLIMIT_ERROR:
			ret = err_set(EINVAL, "the xz stream needs more than %llu MiB to decode",
				      XZ_MEMLIMIT >> 20);
			break;
		case LZMA_OPTIONS_ERROR:
			ret = err_set(EINVAL, "unsupported xz options");
			break;
		default:
			ret = err_set(EINVAL, "corrupt data (xz error %d)", (int)r);
			break;
		}
		break;
	}
	lzma_end(&s);
	return ret;
}

int decompress(const uint8_t *data, size_t len, size_t max_out, uint8_t **out, size_t *out_len)
{
	struct outbuf o = { .max = max_out, .first = 1 << 16 };
	enum comp_format f = comp_detect(data, len);
	int ret;

	*out = NULL;
	*out_len = 0;
	if (max_out == 0 || max_out >= SIZE_MAX - LZ4_LEGACY_BLOCK_MAX)
		return err_set(EINVAL, "decompress: bad output limit %zu", max_out);
	if (len < (SIZE_MAX >> 3) && len * 4 > o.first)
		o.first = len * 4;   /* kernels compress 3-5x */
	switch (f) {
	case COMP_GZIP: ret = gunzip(data, len, &o); break;
	case COMP_LZ4_LEGACY: ret = unlz4_legacy(data, len, &o); break;
	case COMP_LZ4_FRAME: ret = unlz4_frame(data, len, &o); break;
	case COMP_ZSTD: ret = unzstd(data, len, &o); break;
	case COMP_XZ: ret = unxz(data, len, &o); break;
	default:
		return err_set(ENOTSUP, "unknown compression format");
	}
	/* A stream that ends exactly when the buffer (max + 1) is full is still one byte too many. */
	if (ret == 0 && o.len > o.max)
		ret = too_big(&o);
	if (ret < 0) {
		free(o.p);
		return ret;
	}
	*out = o.p;
	*out_len = o.len;
	return 0;
}
