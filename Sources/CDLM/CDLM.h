// The DLM's userspace library without threads (libdlm_lt from libdlm-dev): mirrorlogd dispatches
// lock completions from its own event loop (dlm_ls_get_fd + dlm_dispatch).
#ifndef CDLM_H
#define CDLM_H

#include <stdint.h>
#include <sys/types.h>
#include <libdlm.h>

#endif
