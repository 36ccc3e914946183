/* test_sigwatch.c - a signal during the stop ends the process at once with 128+N; after the stop it does nothing. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/sandbox/sigwatch.h"

static int marker[2];

static void before_exit(void *ctx)
{
	(void)!write(marker[1], ctx, 1);
}

/* In a child: block the stop signals, watch them; kill_during / kill_after the watch. Returns the child's wait status. */
static int run_child(bool kill_during, bool kill_after)
{
	cr_assert_eq(pipe(marker), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		sigset_t set;
		struct sigwatch w;
		static char tag = 'R';

		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		pthread_sigmask(SIG_BLOCK, &set, NULL);
		int sfd = signalfd(-1, &set, SFD_CLOEXEC);
		if (sfd < 0 || sigwatch_start(&w, sfd, before_exit, &tag) < 0)
			_exit(90);
		if (kill_during) {
			kill(getpid(), SIGINT);
			sleep(20); /* the watcher ends the process long before */
			_exit(91);
		}
		sigwatch_stop(&w);
		sigwatch_stop(&w); /* idempotent */
		if (kill_after)
			kill(getpid(), SIGTERM); /* stays pending: blocked, nobody reads sfd */
		usleep(100 * 1000);
		_exit(0);
	}
	close(marker[1]);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return status;
}

Test(sigwatch, signal_during_the_stop_exits_128_plus_n_after_before_exit)
{
	int status = run_child(true, false);
	char c = 0;

	cr_assert(WIFEXITED(status), "child did not exit normally (status 0x%x)", status);
	cr_assert_eq(WEXITSTATUS(status), 128 + SIGINT);
	cr_assert_eq(read(marker[0], &c, 1), 1, "before_exit was not called");
	cr_assert_eq(c, 'R');
	close(marker[0]);
}

Test(sigwatch, after_stop_a_signal_does_nothing)
{
	int status = run_child(false, true);
	char c;

	cr_assert(WIFEXITED(status), "child did not exit normally (status 0x%x)", status);
	cr_assert_eq(WEXITSTATUS(status), 0);
	cr_assert_eq(read(marker[0], &c, 1), 0, "before_exit was called");
	close(marker[0]);
}
