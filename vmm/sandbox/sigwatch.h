/* sigwatch.h - while microvm stops the VM after a signal or a guest exit, a further signal ends it at once. */
#ifndef MICROVM_SIGWATCH_H
#define MICROVM_SIGWATCH_H

#include <pthread.h>
#include <stdbool.h>

struct sigwatch {
	int sfd;                         /* signalfd of the stop signals (not owned) */
	int done_efd;                    /* ends the watcher */
	void (*before_exit)(void *ctx);  /* e.g. restore the terminal; may be NULL */
	void *ctx;
	pthread_t thread;
	bool started;
};

/*
 * Start a thread that waits on sfd (a signalfd whose signals are blocked in
 * every thread). When one arrives it logs one line, calls before_exit(ctx)
 * and ends the process with _exit(128 + signal) without waiting for the stop
 * in progress (disk writes the guest has not flushed may be lost; flushed
 * ones are on disk). Returns 0 or -errno with err_msg().
 */
int sigwatch_start(struct sigwatch *w, int sfd, void (*before_exit)(void *ctx), void *ctx);

/* The stop is done: end the watcher (a signal arriving now stays pending). Idempotent. */
void sigwatch_stop(struct sigwatch *w);

#endif
