/*
 * microvm-exit.c - report a status to microvm: write it to the exit-status port 0x510.
 *
 * Usage: microvm-exit STATUS   (STATUS 0..255)
 *
 * microvm ends the VM at the write and exits with STATUS (README, "Exit
 * status"; docs/cli-runs.md), so under microvm this program does not
 * return. Before the write it waits until the console has sent what was
 * written to it (tcdrain), so a script's last lines are not lost.
 * Elsewhere the write goes nowhere and it exits 0. The image's init
 * uses it to report a --run script's status. Needs root (CAP_SYS_RAWIO) and
 * a kernel with CONFIG_X86_IOPL_IOPERM=y. Built static by scripts/guest-image.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <termios.h>
#include <unistd.h>

#define PORT_EXIT 0x510 /* MV_PORT_EXIT in firmware/machine.h */

int main(int argc, char **argv)
{
	char *end;
	long status;

	if (argc != 2) {
		fprintf(stderr, "usage: microvm-exit STATUS (0..255): microvm exits with STATUS\n");
		return 2;
	}
	errno = 0;
	status = strtol(argv[1], &end, 10);
	if (errno || end == argv[1] || *end || status < 0 || status > 255) {
		fprintf(stderr, "microvm-exit: '%s' is not a status from 0 to 255\n", argv[1]);
		return 2;
	}
	if (ioperm(PORT_EXIT, 1, 1) < 0) {
		fprintf(stderr, "microvm-exit: ioperm(0x%x): %s (needs root and CONFIG_X86_IOPL_IOPERM)\n",
			PORT_EXIT, strerror(errno));
		return 1;
	}
	/*
	 * The VM ends at the write: first let the console's UART send what the
	 * script printed (it may still sit in the kernel's tty buffer). Not a
	 * terminal: nothing to wait for.
	 */
	tcdrain(STDOUT_FILENO);
	tcdrain(STDERR_FILENO);
	outb((unsigned char)status, PORT_EXIT);
	return 0;
}
