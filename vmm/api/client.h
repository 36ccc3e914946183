/*
 * client.h - microvm as a client of another microvm's control API:
 * `microvm --shutdown SOCKET [--timeout SECONDS]`, the systemd unit's
 * ExecStop (systemd/microvm@.service, docs/api.md#shutdown-from-the-command-line).
 */
#ifndef MICROVM_API_CLIENT_H
#define MICROVM_API_CLIENT_H

#include <stdint.h>

/* --shutdown's wait without --timeout, and the longest it may wait (the API's deadline limit). */
#define API_CLIENT_SHUTDOWN_DEFAULT_MS 30000
#define API_CLIENT_SHUTDOWN_MAX_MS 3600000
/* microvm's own deadline for the request is this much after the client's, so it is never first. */
#define API_CLIENT_SHUTDOWN_GRACE_MS 10000

/*
 * Press the ACPI power button of the VM that serves its API on the socket
 * path (POST /vm/shutdown, with microvm's own deadline GRACE after ours),
 * then wait up to timeout_ms for that microvm to exit: its socket refuses
 * connections or is gone. Returns 0 once it has exited; -ETIMEDOUT if it
 * still runs at the deadline (err_msg() says so); -errno with err_msg()
 * when nothing answers on path or the VM refuses the request (the API's
 * reason, e.g. paused: 409).
 */
int api_client_shutdown(const char *path, uint64_t timeout_ms);

#endif
