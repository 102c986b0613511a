#ifndef CULOGLAYOUT_H
#define CULOGLAYOUT_H
#include <stddef.h>
/* Offsets and sizes of the kernel's uapi structs, for the layout tests. */
typedef struct {
    size_t nlmsghdr_size;
    size_t cn_msg_size;
    size_t cn_msg_id_idx, cn_msg_id_val, cn_msg_seq, cn_msg_ack, cn_msg_len, cn_msg_flags;
    size_t request_size;
    size_t luid, uuid, uuid_size, version, error, seq, request_type, data_size;
    unsigned request_version;
    unsigned cn_idx_dm, cn_val_dm_userspace_log;
    unsigned request_types[17];
    unsigned request_mask;
} culog_layout;

culog_layout culog_get_layout(void);
#endif
