#ifndef CMIRRORLOGSYS_H
#define CMIRRORLOGSYS_H
#include <stdint.h>
#include <sys/types.h>

/* Linux constants and ioctls that Swift cannot import as macros. */

/* Socket for the netlink connector. Returns the fd or -errno. */
int mlsys_netlink_connector_socket(void);
/* Binds with nl_groups = 0 and joins multicast group `group`. Returns 0 or -errno. */
int mlsys_netlink_bind_and_join(int fd, uint32_t group);
/* Receives one datagram; *sender_port gets the sender's netlink port id. Returns bytes or -errno. */
ssize_t mlsys_netlink_recv(int fd, void *buffer, size_t length, uint32_t *sender_port, int dontwait);
/* Sends one datagram to the kernel (port 0). Returns bytes or -errno. */
ssize_t mlsys_netlink_send_to_kernel(int fd, const void *buffer, size_t length);
/* Returns the port id bound to fd, or 0. */
uint32_t mlsys_netlink_port_id(int fd);

/* Accepts one connection, non-blocking and close-on-exec. Returns the fd or -errno. */
int mlsys_accept_nonblocking(int listener);
/* The uid of the process at the other end of a Unix socket (SO_PEERCRED). Returns 0 or -errno. */
int mlsys_peer_uid(int fd, uint32_t *uid);

/* Opens a block device read-write with O_DIRECT. Returns fd or -errno. */
int mlsys_open_direct(const char *path);
/* Block device size in bytes and logical block size. Returns 0 or -errno. */
int mlsys_block_geometry(int fd, uint64_t *size_bytes, int *logical_block_size);
/* Device number of an fd (st_rdev) split into major/minor; is_block set if it is a block device. */
int mlsys_device_number(int fd, uint32_t *major, uint32_t *minor, int *is_block);
/* makedev for mknod of a private node. */
uint64_t mlsys_makedev(uint32_t major, uint32_t minor);
/* Aligned allocation for O_DIRECT buffers. */
void *mlsys_aligned_alloc(size_t alignment, size_t size);
void mlsys_aligned_free(void *p);

/* Signals through signalfd: blocks `signals` and returns an fd that reads them. Returns fd or -errno. */
int mlsys_signalfd(const int *signals, int count);
/* Reads one signal number from a signalfd, or -errno. */
int mlsys_signalfd_read(int fd);

/* flock(LOCK_EX | LOCK_NB). Returns 0 or -errno. */
int mlsys_lock_exclusive_nonblocking(int fd);

/* Writes a message to syslog (daemon facility) at the given priority. */
void mlsys_syslog(int priority, const char *message);
void mlsys_openlog(const char *ident);

/* Device-mapper control (DM ioctls on an open /dev/mapper/control). The policy of a recovery
 * restart (find the device, suspend, resume, report) is the caller's. */
/* The names of every dm device, NUL-separated, into `out`. Returns the count or -errno. */
int mlsys_dm_device_names(int control, char *out, size_t size);
/* 1 if the table of device `name` holds a mirror whose userspace log is `uuid`, else 0. */
int mlsys_dm_table_uses_log(int control, const char *name, const char *uuid);
/* Suspends (suspend != 0) or resumes dm device `name`. Returns 0 or -errno. */
int mlsys_dm_suspend(int control, const char *name, int suspend);

#endif /* CMIRRORLOGSYS_H */
