#!/bin/sh
# microvm-run - run microvm's --run script in the guest and report its status
# (docs/cli-runs.md). Installed as /bin/microvm-run in the busybox image
# (scripts/guest-image; its init calls it) and as /usr/local/sbin/microvm-run
# in the Debian image (scripts/debian-guest; microvm-run.service calls it).
#
# microvm put the script on a read-only disk named by microvm.run=/dev/vdX on
# the kernel command line, after a header line "MICROVM-RUN v1 LEN". Without
# that word this exits 0 at once and does nothing. Otherwise it runs the
# script in /root, reports its status on microvm's exit-status port with
# microvm-exit (126: the disk is not a run disk), which ends the VM; if that
# write fails, it exits with the script's status and the caller powers off.
run_dev=
for word in $(cat /proc/cmdline); do
	case "$word" in microvm.run=*) run_dev=${word#microvm.run=} ;; esac
done
[ -n "$run_dev" ] || exit 0
status=126
tmp=${TMPDIR:-/tmp}/microvm-run.$$.sh
header=$(head -n 1 "$run_dev" 2>/dev/null)
set -- $header
case "$#:$1 $2:$3" in
"3:MICROVM-RUN v1:"*[!0-9]*|"3:MICROVM-RUN v1:")
	echo "microvm-run: $run_dev: bad script length in '$header'" >&2 ;;
"3:MICROVM-RUN v1:"*)
	tail -c +$(( ${#header} + 2 )) "$run_dev" | head -c "$3" > "$tmp"
	echo "microvm-run: running the --run script ($3 bytes from $run_dev)"
	(cd /root && sh "$tmp")
	status=$?
	rm -f "$tmp"
	echo "microvm-run: the --run script exited with status $status" ;;
*)
	echo "microvm-run: $run_dev: not a microvm run disk (first line '$header')" >&2 ;;
esac
sync
microvm-exit "$status"
echo "microvm-run: microvm-exit $status failed; powering off (microvm then exits 123)" >&2
exit "$status"
