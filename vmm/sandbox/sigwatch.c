/* sigwatch.c - a second stop signal ends microvm at once (see sigwatch.h). */
#include "vmm/sandbox/sigwatch.h"
#include "base/err.h"
#include "base/log.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

static void *watch(void *arg)
{
	struct sigwatch *w = arg;

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = w->sfd, .events = POLLIN },
			{ .fd = w->done_efd, .events = POLLIN },
		};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_debug("sigwatch: poll: %s", strerror(errno));
			return NULL;
		}
		if (p[1].revents)
			return NULL;
		struct signalfd_siginfo si;
		if (!(p[0].revents & POLLIN) || read(w->sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		int sig = (int)si.ssi_signo;
		log_warn("received %s while stopping the VM: exiting now with status %d (guest writes "
			 "not yet flushed may be lost)", strsignal(sig), 128 + sig);
		if (w->before_exit)
			w->before_exit(w->ctx);
		_exit(128 + sig);
	}
}

int sigwatch_start(struct sigwatch *w, int sfd, void (*before_exit)(void *ctx), void *ctx)
{
	int e;

	memset(w, 0, sizeof(*w));
	w->sfd = sfd;
	w->before_exit = before_exit;
	w->ctx = ctx;
	w->done_efd = eventfd(0, EFD_CLOEXEC);
	if (w->done_efd < 0)
		return err_set(errno, "eventfd: %s", strerror(errno));
	if ((e = pthread_create(&w->thread, NULL, watch, w)) != 0) {
		close(w->done_efd);
		w->done_efd = -1;
		return err_set(e, "signal watcher thread: %s", strerror(e));
	}
	w->started = true;
	return 0;
}

void sigwatch_stop(struct sigwatch *w)
{
	uint64_t one = 1;

	if (!w->started)
		return;
	if (write(w->done_efd, &one, sizeof(one)) < 0)
		log_debug("sigwatch: cannot wake the watcher: %s", strerror(errno));
	pthread_join(w->thread, NULL);
	close(w->done_efd);
	w->done_efd = -1;
	w->started = false;
}
