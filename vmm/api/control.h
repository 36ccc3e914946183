/*
 * control.h - the control API's routes (--api-sock, docs/api.md): what a
 * request does to the VM. The HTTP transport is vmm/api/http.h; both run on the
 * main thread, inside its poll loop, so no route blocks a vCPU.
 *
 *   GET  /vm          state, uptime, configuration, I/O engine
 *   GET  /metrics     VM exits by kind, per-device counters, I/O engine; JSON, or the
 *                     Prometheus text format (?format=prometheus, Accept: text/plain: prom.h)
 *   POST /vm/pause    stop every vCPU (idempotent)
 *   POST /vm/resume   let them run again (idempotent)
 *   POST /vm/shutdown press the guest's ACPI power button; stop it (exit status 124) if it
 *                     has not powered off after {"timeout": SECONDS} (default 30)
 *   POST /vm/stop     stop the VM as SIGTERM does (in-flight writes synced), exit status 0
 */
#ifndef MICROVM_CONTROL_H
#define MICROVM_CONTROL_H

#include "vmm/api/http.h"
#include "vmm/vm.h"

/* The control API of one VM: its HTTP server and the VM its routes act on. */
struct control {
	struct api_server server;
	struct vmm *vmm;
};

/* The api_handler for a struct control (ctx). */
void control_handle(void *ctx, const struct api_request *req, struct api_response *resp);

/*
 * The door to hand vmm_build() for --api-sock: it opens the socket during the
 * build and serves it from vmm_run()'s main loop. ctl must outlive the VM.
 */
struct vmm_door control_door(struct control *ctl);

#endif
