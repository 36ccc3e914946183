/* console.h - the host side of the serial console: stdout writer, stdin reader, terminal mode. */
#ifndef MICROVM_CONSOLE_H
#define MICROVM_CONSOLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <termios.h>

#include "devices/serial.h"

#define CONSOLE_OUT_RING (256 * 1024)  /* guest output waiting for stdout */
#define CONSOLE_TAIL 2048              /* last bytes kept for error reports */
#define CONSOLE_STOP_WAIT_MS 2000      /* console_stop(): how long stdout may take the rest */

struct console {
	int in_fd, out_fd;
	struct serial *serial;
	/* Called when the user types the quit sequence (Ctrl-A x). */
	void (*quit)(void *ctx);
	void *quit_ctx;

	pthread_mutex_t lock;
	pthread_cond_t cond;            /* ring got data / ring got room */
	uint8_t ring[CONSOLE_OUT_RING];
	size_t head, count;
	uint64_t dropped;               /* bytes dropped because stdout did not keep up */
	uint8_t tail[CONSOLE_TAIL];     /* last output bytes, circular */
	size_t tail_pos;
	bool tail_full;
	bool stop;
	bool congested;                 /* the ring was full until a wait timed out: drop at once */

	bool tty;                       /* in_fd is a terminal we put in raw mode */
	struct termios saved;
	int stop_efd;                   /* wakes the input thread */
	int abandon_efd;                /* console_stop() gave up on stdout: the writer leaves */
	bool escape;                    /* the previous input byte was Ctrl-A */
	bool in_thread_started, out_thread_started;
	bool abandoned;                 /* the writer stayed blocked in write(): detached */
	pthread_t in_thread, out_thread;
};

/*
 * Prepare the console for serial s, reading in_fd and writing out_fd. When
 * in_fd is a terminal it is put in raw mode (restored by console_stop()).
 */
int console_init(struct console *c, struct serial *s, int in_fd, int out_fd,
		 void (*quit)(void *ctx), void *quit_ctx);

/* Start the writer and reader threads. */
int console_start(struct console *c);

/*
 * serial_ops.output: queue guest output. Never blocks for long: waits at most
 * 20 ms for room, then drops and counts the bytes; after such a drop, later
 * output is dropped at once until the ring is at most half full again.
 */
void console_output(void *ctx, const uint8_t *buf, size_t len);

/*
 * Stop the threads, write what is queued, restore the terminal. Waits at most
 * CONSOLE_STOP_WAIT_MS for stdout (a full pipe nobody reads): then the rest
 * is dropped and counted.
 */
void console_stop(struct console *c);

/* Put the terminal back as it was (if console_init() changed it); safe from any thread. */
void console_restore_terminal(struct console *c);

/* Copy the last guest output lines (at most len-1 bytes, NUL terminated). */
void console_tail(struct console *c, char *buf, size_t len);

#endif
