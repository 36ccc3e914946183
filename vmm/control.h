/*
 * control.h - the control API's routes (--api-sock, docs/api.md): what a
 * request does to the VM. The HTTP transport is vmm/api.h; both run on the
 * main thread, inside its poll loop, so no route blocks a vCPU.
 *
 *   GET  /vm          state, uptime, configuration, I/O engine
 *   GET  /metrics     VM exits by kind, per-device counters, I/O engine
 *   POST /vm/pause    stop every vCPU (idempotent)
 *   POST /vm/resume   let them run again (idempotent)
 *   POST /vm/shutdown press the guest's ACPI power button; stop it (exit status 124) if it
 *                     has not powered off after {"timeout": SECONDS} (default 30)
 *   POST /vm/stop     stop the VM as SIGTERM does (in-flight writes synced), exit status 0
 */
#ifndef MICROVM_CONTROL_H
#define MICROVM_CONTROL_H

#include "vmm/api.h"

/* The api_handler for a struct vmm (ctx). */
void control_handle(void *ctx, const struct api_request *req, struct api_response *resp);

#endif
