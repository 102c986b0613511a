#include "CULogLayout.h"
#include <linux/connector.h>
#include <linux/netlink.h>
#include <linux/dm-log-userspace.h>

culog_layout culog_get_layout(void) {
    culog_layout l;
    l.nlmsghdr_size = sizeof(struct nlmsghdr);
    l.cn_msg_size = sizeof(struct cn_msg);
    l.cn_msg_id_idx = offsetof(struct cn_msg, id.idx);
    l.cn_msg_id_val = offsetof(struct cn_msg, id.val);
    l.cn_msg_seq = offsetof(struct cn_msg, seq);
    l.cn_msg_ack = offsetof(struct cn_msg, ack);
    l.cn_msg_len = offsetof(struct cn_msg, len);
    l.cn_msg_flags = offsetof(struct cn_msg, flags);
    l.request_size = sizeof(struct dm_ulog_request);
    l.luid = offsetof(struct dm_ulog_request, luid);
    l.uuid = offsetof(struct dm_ulog_request, uuid);
    l.uuid_size = sizeof(((struct dm_ulog_request *)0)->uuid);
    l.version = offsetof(struct dm_ulog_request, version);
    l.error = offsetof(struct dm_ulog_request, error);
    l.seq = offsetof(struct dm_ulog_request, seq);
    l.request_type = offsetof(struct dm_ulog_request, request_type);
    l.data_size = offsetof(struct dm_ulog_request, data_size);
    l.request_version = DM_ULOG_REQUEST_VERSION;
    l.cn_idx_dm = CN_IDX_DM;
    l.cn_val_dm_userspace_log = CN_VAL_DM_USERSPACE_LOG;
    unsigned types[17] = {
        DM_ULOG_CTR, DM_ULOG_DTR, DM_ULOG_PRESUSPEND, DM_ULOG_POSTSUSPEND, DM_ULOG_RESUME,
        DM_ULOG_GET_REGION_SIZE, DM_ULOG_IS_CLEAN, DM_ULOG_IN_SYNC, DM_ULOG_FLUSH, DM_ULOG_MARK_REGION,
        DM_ULOG_CLEAR_REGION, DM_ULOG_GET_RESYNC_WORK, DM_ULOG_SET_REGION_SYNC, DM_ULOG_GET_SYNC_COUNT,
        DM_ULOG_STATUS_INFO, DM_ULOG_STATUS_TABLE, DM_ULOG_IS_REMOTE_RECOVERING };
    for (int i = 0; i < 17; i++) l.request_types[i] = types[i];
    l.request_mask = DM_ULOG_REQUEST_MASK;
    return l;
}
