#define _GNU_SOURCE
#include "CMirrorLogSys.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/netlink.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

int mlsys_netlink_connector_socket(void) {
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
    return fd < 0 ? -errno : fd;
}

int mlsys_netlink_bind_and_join(int fd, uint32_t group) {
    struct sockaddr_nl addr;
    memset(&addr, 0, sizeof(addr));
    addr.nl_family = AF_NETLINK;
    addr.nl_groups = 0;
    addr.nl_pid = 0; /* let the kernel choose a port id */
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) return -errno;
    int g = (int)group;
    if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g, sizeof(g)) < 0) return -errno;
    int size = 1 << 20;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    return 0;
}

ssize_t mlsys_netlink_recv(int fd, void *buffer, size_t length, uint32_t *sender_port, int dontwait) {
    struct sockaddr_nl addr;
    socklen_t len = sizeof(addr);
    memset(&addr, 0, sizeof(addr));
    ssize_t n = recvfrom(fd, buffer, length, dontwait ? MSG_DONTWAIT : 0, (struct sockaddr *)&addr, &len);
    if (n < 0) return -errno;
    *sender_port = addr.nl_pid;
    return n;
}

ssize_t mlsys_netlink_send_to_kernel(int fd, const void *buffer, size_t length) {
    struct sockaddr_nl addr;
    memset(&addr, 0, sizeof(addr));
    addr.nl_family = AF_NETLINK;
    addr.nl_pid = 0;
    addr.nl_groups = 0;
    ssize_t n = sendto(fd, buffer, length, 0, (struct sockaddr *)&addr, sizeof(addr));
    return n < 0 ? -errno : n;
}

uint32_t mlsys_netlink_port_id(int fd) {
    struct sockaddr_nl addr;
    socklen_t len = sizeof(addr);
    memset(&addr, 0, sizeof(addr));
    if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0) return 0;
    return addr.nl_pid;
}

int mlsys_open_direct(const char *path) {
    int fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC | O_SYNC);
    return fd < 0 ? -errno : fd;
}

int mlsys_block_geometry(int fd, uint64_t *size_bytes, int *logical_block_size) {
    struct stat st;
    if (fstat(fd, &st) < 0) return -errno;
    if (S_ISBLK(st.st_mode)) {
        if (ioctl(fd, BLKGETSIZE64, size_bytes) < 0) return -errno;
        if (ioctl(fd, BLKSSZGET, logical_block_size) < 0) return -errno;
    } else {
        *size_bytes = (uint64_t)st.st_size;
        *logical_block_size = 512;
    }
    return 0;
}

int mlsys_device_number(int fd, uint32_t *major_out, uint32_t *minor_out, int *is_block) {
    struct stat st;
    if (fstat(fd, &st) < 0) return -errno;
    *is_block = S_ISBLK(st.st_mode) ? 1 : 0;
    *major_out = major(st.st_rdev);
    *minor_out = minor(st.st_rdev);
    return 0;
}

uint64_t mlsys_makedev(uint32_t maj, uint32_t min) { return (uint64_t)makedev(maj, min); }

void *mlsys_aligned_alloc(size_t alignment, size_t size) {
    void *p = NULL;
    if (posix_memalign(&p, alignment, size) != 0) return NULL;
    memset(p, 0, size);
    return p;
}

void mlsys_aligned_free(void *p) { free(p); }

int mlsys_signalfd(const int *signals, int count) {
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) sigaddset(&set, signals[i]);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) return -errno;
    int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

int mlsys_signalfd_read(int fd) {
    struct signalfd_siginfo info;
    ssize_t n = read(fd, &info, sizeof(info));
    if (n < 0) return -errno;
    if (n != sizeof(info)) return -EIO;
    return (int)info.ssi_signo;
}

int mlsys_lock_exclusive_nonblocking(int fd) {
    return flock(fd, LOCK_EX | LOCK_NB) < 0 ? -errno : 0;
}

void mlsys_openlog(const char *ident) { openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON); }
void mlsys_syslog(int priority, const char *message) { syslog(priority, "%s", message); }

int mlsys_accept_nonblocking(int listener) {
    int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

int mlsys_peer_uid(int fd, uint32_t *uid) {
    struct ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -errno;
    *uid = credentials.uid;
    return 0;
}
