/* lib.c - the test guest's small runtime: COM1 output, a printf subset, failures, exit port, strings. */
#include "guest.h"

#define COM1     0x3f8
#define COM1_LSR (COM1 + 5)
#define LSR_THRE 0x20
#define PORT_EXIT 0x510  /* MV_PORT_EXIT */

static int first_fail;

static void putc_serial(char c)
{
	/* An emulated UART is always ready; the bound only guards a stuck LSR. */
	for (int i = 0; i < 1000 && !(inb(COM1_LSR) & LSR_THRE); i++)
		;
	outb(COM1, (uint8_t)c);
}

static void put_str(const char *s, int prec)
{
	for (; *s && prec != 0; s++, prec--)
		putc_serial(*s);
}

static void put_num(uint64_t v, unsigned base, bool neg, int width, char pad)
{
	char buf[24];
	int n = 0;

	do {
		unsigned d = (unsigned)(v % base);
		buf[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v /= base;
	} while (v);
	if (neg)
		buf[n++] = '-';
	for (; width > n; width--)
		putc_serial(pad);
	while (n)
		putc_serial(buf[--n]);
}

/* %s %.*s %c %d %u %x with l/ll, width and '0' padding, %p, %%. */
void gvprintf(const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			putc_serial(*fmt);
			continue;
		}
		fmt++;
		char pad = ' ';
		int width = 0, prec = -1, lng = 0;
		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		if (*fmt == '.' && fmt[1] == '*') {
			prec = va_arg(ap, int);
			fmt += 2;
		}
		while (*fmt == 'l') {
			lng++;
			fmt++;
		}
		switch (*fmt) {
		case 's':
			put_str(va_arg(ap, const char *), prec);
			break;
		case 'c':
			putc_serial((char)va_arg(ap, int));
			break;
		case 'd': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			put_num(v < 0 ? -(uint64_t)v : (uint64_t)v, 10, v < 0, width, pad);
			break;
		}
		case 'u':
			put_num(lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, false, width, pad);
			break;
		case 'x':
			put_num(lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16, false, width, pad);
			break;
		case 'p':
			put_str("0x", -1);
			put_num((uintptr_t)va_arg(ap, void *), 16, false, width, pad);
			break;
		case '%':
			putc_serial('%');
			break;
		default:
			return;
		}
	}
}

void gprintf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	gvprintf(fmt, ap);
	va_end(ap);
}

void fail(int code, const char *fmt, ...)
{
	va_list ap;

	if (!first_fail)
		first_fail = code;
	put_str("FAIL: ", -1);
	va_start(ap, fmt);
	gvprintf(fmt, ap);
	va_end(ap);
	putc_serial('\n');
}

int first_failure(void)
{
	return first_fail;
}

void guest_exit(uint32_t code, int width)
{
	if (width == 8)
		outb(PORT_EXIT, (uint8_t)code);
	else if (width == 16)
		outw(PORT_EXIT, (uint16_t)code);
	else
		outl(PORT_EXIT, code);
	halt_forever();
}

size_t strlen(const char *s)
{
	const char *p = s;

	while (*p)
		p++;
	return (size_t)(p - s);
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;

	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	void *d = dst;

	/* One emulated instruction however long the copy. */
	__asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
	return dst;
}

void *memset(void *dst, int c, size_t n)
{
	void *d = dst;

	__asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return dst;
}

bool str_eq(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

bool mem_eq_str(const char *p, size_t len, const char *s)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] != p[i])
			return false;
	return s[i] == '\0';
}

bool starts_with(const char *s, const char *prefix)
{
	while (*prefix)
		if (*s++ != *prefix++)
			return false;
	return true;
}
