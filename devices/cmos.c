/* cmos.c - the CMOS real-time clock (see cmos.h). */
#include "devices/cmos.h"

#include <string.h>

#define REG_SECONDS  0x00
#define REG_MINUTES  0x02
#define REG_HOURS    0x04
#define REG_WEEKDAY  0x06
#define REG_MDAY     0x07
#define REG_MONTH    0x08
#define REG_YEAR     0x09
#define REG_A        0x0a
#define REG_B        0x0b
#define REG_C        0x0c
#define REG_D        0x0d
#define REG_CENTURY  0x32

#define A_DIVIDER    0x26   /* 32.768 kHz time base, 1024 Hz periodic rate; UIP (bit 7) clear */
#define B_24H        0x02   /* 24-hour mode, BCD (DM clear), no interrupts */
#define D_VRT        0x80   /* valid RAM and time */

static time_t default_now(void)
{
	return time(NULL);
}

void cmos_init(struct cmos *c)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	c->now = default_now;
}

void cmos_destroy(struct cmos *c)
{
	pthread_mutex_destroy(&c->lock);
}

static uint8_t bcd(int v)
{
	return (uint8_t)(((v / 10) % 10) << 4 | (v % 10));
}

static bool is_clock(uint8_t reg)
{
	return reg <= REG_D || reg == REG_CENTURY;
}

/*
 * UTC date and time of t, by arithmetic only: gmtime_r() may read the time
 * zone files, which a vCPU thread's seccomp filter does not allow. Days since
 * 1970-01-01 to a civil date, counting in 400-year eras from 0000-03-01 so
 * that February ends each year.
 */
static void utc(time_t t, struct tm *tm)
{
	int64_t days = t / 86400, secs = t % 86400;

	if (secs < 0)
		secs += 86400, days--;
	memset(tm, 0, sizeof(*tm));
	tm->tm_hour = (int)(secs / 3600);
	tm->tm_min = (int)(secs / 60 % 60);
	tm->tm_sec = (int)(secs % 60);
	tm->tm_wday = (int)(((days % 7) + 11) % 7);          /* 1970-01-01 was a Thursday (4) */
	int64_t z = days + 719468;                             /* days since 0000-03-01 */
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;                        /* day of the era, 0..146096 */
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100); /* from March 1st */
	int64_t mp = (5 * doy + 2) / 153;                      /* March = 0 */
	tm->tm_mday = (int)(doy - (153 * mp + 2) / 5 + 1);
	tm->tm_mon = (int)(mp < 10 ? mp + 2 : mp - 10);        /* 0 = January */
	tm->tm_year = (int)(yoe + era * 400 + (tm->tm_mon < 2) - 1900);
}

static uint8_t read_reg(struct cmos *c, uint8_t reg)
{
	struct tm tm;

	if (!is_clock(reg))
		return c->ram[reg];
	switch (reg) {
	case REG_A:
		return A_DIVIDER;
	case REG_B:
		return B_24H;
	case REG_C:
		return 0;
	case REG_D:
		return D_VRT;
	}
	utc(c->now(), &tm);
	switch (reg) {
	case REG_SECONDS: return bcd(tm.tm_sec > 59 ? 59 : tm.tm_sec);
	case REG_MINUTES: return bcd(tm.tm_min);
	case REG_HOURS:   return bcd(tm.tm_hour);
	case REG_WEEKDAY: return bcd(tm.tm_wday + 1);
	case REG_MDAY:    return bcd(tm.tm_mday);
	case REG_MONTH:   return bcd(tm.tm_mon + 1);
	case REG_YEAR:    return bcd(tm.tm_year % 100);
	case REG_CENTURY: return bcd((tm.tm_year + 1900) / 100);
	}
	return 0;   /* the alarm registers (1, 3, 5) */
}

void cmos_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct cmos *c = opaque;

	if (!len)
		return;
	pthread_mutex_lock(&c->lock);
	if (offset == 0) {
		if (is_write)
			c->index = data[0] & 0x7f;
		else
			memset(data, 0xff, len);
	} else if (offset == 1) {
		if (is_write) {
			if (!is_clock(c->index))
				c->ram[c->index] = data[0];
		} else {
			memset(data, 0, len);
			data[0] = read_reg(c, c->index);
		}
	} else if (!is_write) {
		memset(data, 0xff, len);
	}
	pthread_mutex_unlock(&c->lock);
}

void cmos_save(struct cmos *c, struct cmos_state *st)
{
	pthread_mutex_lock(&c->lock);
	st->index = c->index;
	memcpy(st->ram, c->ram, sizeof(st->ram));
	pthread_mutex_unlock(&c->lock);
}

void cmos_load(struct cmos *c, const struct cmos_state *st)
{
	pthread_mutex_lock(&c->lock);
	c->index = st->index & 0x7f;
	memcpy(c->ram, st->ram, sizeof(c->ram));
	pthread_mutex_unlock(&c->lock);
}
