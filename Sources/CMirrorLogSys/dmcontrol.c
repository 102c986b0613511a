#define _GNU_SOURCE
#include "CMirrorLogSys.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/dm-ioctl.h>
#include <sys/ioctl.h>

#define DM_BUFFER_SIZE (256 * 1024)

static void dm_init(struct dm_ioctl *io, size_t size, const char *name) {
    memset(io, 0, size);
    io->version[0] = DM_VERSION_MAJOR;
    io->version[1] = 0;
    io->version[2] = 0;
    io->data_size = (uint32_t)size;
    io->data_start = sizeof(struct dm_ioctl);
    if (name) strncpy(io->name, name, DM_NAME_LEN - 1);
}

/* Does the table of `name` hold a mirror whose userspace log is `uuid`? */
static int table_uses_log(int control, const char *name, const char *uuid, char *buffer) {
    struct dm_ioctl *io = (struct dm_ioctl *)buffer;
    dm_init(io, DM_BUFFER_SIZE, name);
    io->flags = DM_STATUS_TABLE_FLAG;
    if (ioctl(control, DM_TABLE_STATUS, io) < 0) return 0;
    if (io->flags & DM_BUFFER_FULL_FLAG) return 0;
    char *data = buffer + io->data_start;
    uint32_t offset = 0;
    for (uint32_t i = 0; i < io->target_count; i++) {
        struct dm_target_spec *spec = (struct dm_target_spec *)(data + offset);
        const char *params = (const char *)(spec + 1);
        if (strcmp(spec->target_type, "mirror") == 0 && strncmp(params, "userspace ", 10) == 0) {
            /* "userspace <argc> <uuid> ..." */
            const char *p = strchr(params + 10, ' ');
            if (p) {
                p++;
                size_t n = strlen(uuid);
                if (strncmp(p, uuid, n) == 0 && (p[n] == ' ' || p[n] == '\0')) return 1;
            }
        }
        if (spec->next == 0) break;
        offset = spec->next;
    }
    return 0;
}

int mlsys_dm_device_names(int control, char *out, size_t size) {
    char *buffer = malloc(DM_BUFFER_SIZE);
    if (!buffer) return -ENOMEM;
    struct dm_ioctl *io = (struct dm_ioctl *)buffer;
    dm_init(io, DM_BUFFER_SIZE, NULL);
    if (ioctl(control, DM_LIST_DEVICES, io) < 0) {
        int e = errno;
        free(buffer);
        return -e;
    }
    if (io->flags & DM_BUFFER_FULL_FLAG) {
        free(buffer);
        return -ENOBUFS;
    }
    int count = 0;
    size_t used = 0;
    char *data = buffer + io->data_start;
    if (io->data_size > io->data_start) {
        uint32_t offset = 0;
        for (;;) {
            struct dm_name_list *entry = (struct dm_name_list *)(data + offset);
            if (entry->dev == 0 && entry->name[0] == '\0') break;
            size_t n = strnlen(entry->name, DM_NAME_LEN - 1);
            if (used + n + 1 > size) {
                free(buffer);
                return -ENOBUFS;
            }
            memcpy(out + used, entry->name, n);
            out[used + n] = '\0';
            used += n + 1;
            count++;
            if (entry->next == 0) break;
            offset += entry->next;
        }
    }
    free(buffer);
    return count;
}

int mlsys_dm_table_uses_log(int control, const char *name, const char *uuid) {
    char *buffer = malloc(DM_BUFFER_SIZE);
    if (!buffer) return -ENOMEM;
    int r = table_uses_log(control, name, uuid, buffer);
    free(buffer);
    return r;
}

int mlsys_dm_suspend(int control, const char *name, int suspend) {
    struct dm_ioctl io;
    dm_init(&io, sizeof(io), name);
    io.flags = suspend ? DM_SUSPEND_FLAG : 0;
    return ioctl(control, DM_DEV_SUSPEND, &io) < 0 ? -errno : 0;
}
