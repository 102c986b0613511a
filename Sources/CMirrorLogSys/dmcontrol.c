#define _GNU_SOURCE
#include "CMirrorLogSys.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/dm-ioctl.h>
#include <sys/ioctl.h>

#define DM_BUFFER_SIZE (256 * 1024)

struct restart_job {
    char uuid[DM_UUID_LEN];
    int report_fd;
};

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

static void report(int fd, const char *text) {
    if (fd >= 0) {
        ssize_t ignored = write(fd, text, strlen(text));
        (void)ignored;
    }
}

static void *restart_thread(void *arg) {
    struct restart_job *job = arg;
    char line[512];
    char *buffer = malloc(DM_BUFFER_SIZE);
    int control = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
    if (!buffer || control < 0) {
        snprintf(line, sizeof(line), "error %s: cannot open /dev/mapper/control: %s\n", job->uuid, strerror(errno));
        goto out;
    }
    struct dm_ioctl *io = (struct dm_ioctl *)buffer;
    dm_init(io, DM_BUFFER_SIZE, NULL);
    if (ioctl(control, DM_LIST_DEVICES, io) < 0 || (io->flags & DM_BUFFER_FULL_FLAG)) {
        snprintf(line, sizeof(line), "error %s: cannot list dm devices: %s\n", job->uuid, strerror(errno));
        goto out;
    }
    /* Copy the names out: the buffer is reused for each table query. */
    char names[512][DM_NAME_LEN];
    int count = 0;
    char *data = buffer + io->data_start;
    if (io->data_size > io->data_start) {
        uint32_t offset = 0;
        while (count < 512) {
            struct dm_name_list *entry = (struct dm_name_list *)(data + offset);
            if (entry->dev == 0 && entry->name[0] == '\0') break;
            strncpy(names[count], entry->name, DM_NAME_LEN - 1);
            names[count][DM_NAME_LEN - 1] = '\0';
            count++;
            if (entry->next == 0) break;
            offset += entry->next;
        }
    }
    const char *found = NULL;
    for (int i = 0; i < count && !found; i++)
        if (table_uses_log(control, names[i], job->uuid, buffer)) found = names[i];
    if (!found) {
        snprintf(line, sizeof(line), "error %s: no dm device uses this log\n", job->uuid);
        goto out;
    }
    dm_init(io, sizeof(struct dm_ioctl), found);
    io->flags = DM_SUSPEND_FLAG;
    if (ioctl(control, DM_DEV_SUSPEND, io) < 0) {
        snprintf(line, sizeof(line), "error %s: suspend %s: %s\n", job->uuid, found, strerror(errno));
        goto out;
    }
    dm_init(io, sizeof(struct dm_ioctl), found);
    io->flags = 0;
    if (ioctl(control, DM_DEV_SUSPEND, io) < 0) {
        snprintf(line, sizeof(line), "error %s: resume %s: %s (the device stays suspended)\n", job->uuid, found, strerror(errno));
        goto out;
    }
    snprintf(line, sizeof(line), "ok %s %s\n", job->uuid, found);
out:
    report(job->report_fd, line);
    if (control >= 0) close(control);
    free(buffer);
    free(job);
    return NULL;
}

int mlsys_dm_restart_recovery_async(const char *log_uuid, int report_fd) {
    struct restart_job *job = calloc(1, sizeof(*job));
    if (!job) return -ENOMEM;
    strncpy(job->uuid, log_uuid, DM_UUID_LEN - 1);
    job->report_fd = report_fd;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    int r = pthread_create(&thread, &attr, restart_thread, job);
    pthread_attr_destroy(&attr);
    if (r != 0) {
        free(job);
        return -r;
    }
    return 0;
}
