// The corosync client libraries used by mirrorlogd: CPG (closed process groups) and quorum.
// libcpg, libquorum and libcorosync_common (cs_strerror) from libcpg-dev, libquorum-dev,
// libcorosync-common-dev.
#ifndef CCOROSYNC_H
#define CCOROSYNC_H

#include <sys/types.h>
#include <sys/uio.h>
#include <corosync/corotypes.h>
#include <corosync/cpg.h>
#include <corosync/quorum.h>

#endif
