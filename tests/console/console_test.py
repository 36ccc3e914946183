#!/usr/bin/env python3
"""console_test.py - microvm on a real terminal (a pty): raw mode, Ctrl-A x, restored
terminal settings, and clean stops on SIGTERM. Exit 77 (skip) without /dev/kvm."""
import os
import pty
import select
import signal
import sys
import termios
import time


def skip_without_kvm():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
    except OSError as e:
        print(f"SKIP: /dev/kvm cannot be opened ({e.strerror}); guest tests need KVM")
        sys.exit(77)


def read_until(fd, pattern, timeout):
    """Read from fd until pattern (bytes) appears; returns everything read."""
    buf = b""
    deadline = time.monotonic() + timeout
    while pattern not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {pattern!r}; got {buf!r}")
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        buf += chunk
    return buf


def spawn(argv):
    """Run argv with a pty as its stdin/stdout/stderr; returns (pid, master fd, slave fd)."""
    master, slave = pty.openpty()
    pid = os.fork()
    if pid == 0:
        os.setsid()
        os.dup2(slave, 0)
        os.dup2(slave, 1)
        os.dup2(slave, 2)
        os.close(master)
        os.execv(argv[0], argv)
    return pid, master, slave


def wait_exit(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError("microvm did not exit")


def test_ctrl_a_x(microvm, kernel):
    pid, master, slave = spawn([microvm, "--kernel", kernel, "--cmdline", "action=echo"])
    before = termios.tcgetattr(slave)
    read_until(master, b"echo: ready", 30)
    # Raw mode: ICANON and ECHO are off while microvm runs.
    during = termios.tcgetattr(slave)
    assert not during[3] & termios.ICANON, "terminal not in raw mode (ICANON set)"
    assert not during[3] & termios.ECHO, "terminal not in raw mode (ECHO set)"
    # A line goes to the guest through the serial port's RX interrupt.
    os.write(master, b"hi there\n")
    read_until(master, b"echo: hi there", 30)
    # Ctrl-A x quits with status 0.
    os.write(master, b"\x01x")
    code = wait_exit(pid, 30)
    assert code == 0, f"Ctrl-A x: exit status {code}, want 0"
    after = termios.tcgetattr(slave)
    assert after == before, "terminal settings not restored after exit"
    os.close(master)
    os.close(slave)
    print("ok: raw mode, echo through RX interrupts, Ctrl-A x, terminal restored")


def test_sigterm(microvm, kernel):
    pid, master, slave = spawn([microvm, "--kernel", kernel, "--cmdline", "action=echo"])
    before = termios.tcgetattr(slave)
    read_until(master, b"echo: ready", 30)
    os.kill(pid, signal.SIGTERM)
    code = wait_exit(pid, 30)
    assert code == 128 + signal.SIGTERM, f"SIGTERM: exit status {code}, want {128 + signal.SIGTERM}"
    assert termios.tcgetattr(slave) == before, "terminal settings not restored after SIGTERM"
    os.close(master)
    os.close(slave)
    print("ok: SIGTERM stops the VM with status 143 and restores the terminal")


def main():
    skip_without_kvm()
    microvm, kernel = sys.argv[1], sys.argv[2]
    test_ctrl_a_x(microvm, kernel)
    test_sigterm(microvm, kernel)


if __name__ == "__main__":
    main()
