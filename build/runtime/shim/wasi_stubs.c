/*
 * WASI functions that Envoy does not offer, resolved inside the module.
 *
 * Envoy's wasm host provides only fd_write, fd_read, fd_seek, fd_close, fd_fdstat_get,
 * environ_get, environ_sizes_get, args_get, args_sizes_get, clock_time_get, random_get
 * and proc_exit. A module importing anything else fails to load. wasi-libc calls each
 * WASI function through a symbol named __imported_wasi_snapshot_preview1_<name>;
 * defining those symbols here makes the linker bind the calls to these local
 * functions instead of emitting imports. The signatures are the raw wasm ones.
 */
#include <stdint.h>
#include <string.h>

#define WASI_ERRNO_BADF 8
#define WASI_ERRNO_NOSYS 52
#define WASI_FILETYPE_CHARACTER_DEVICE 2

/* CPython's init_sys_streams() checks that fds 0-2 exist: report them as character
 * devices. Every other descriptor does not exist. */
int32_t __imported_wasi_snapshot_preview1_fd_filestat_get(int32_t fd, int32_t out) {
    if (fd < 0 || fd > 2) return WASI_ERRNO_BADF;
    uint8_t *stat = (uint8_t *)(uintptr_t)out;
    memset(stat, 0, 64);
    stat[16] = WASI_FILETYPE_CHARACTER_DEVICE;
    return 0;
}

/* No preopened directories: libc's preopen scan stops at the first EBADF. */
int32_t __imported_wasi_snapshot_preview1_fd_prestat_get(int32_t fd, int32_t out) {
    (void)fd; (void)out;
    return WASI_ERRNO_BADF;
}

int32_t __imported_wasi_snapshot_preview1_sched_yield(void) { return 0; }

/* Everything else: no file system, no sockets, no polling. */
int32_t __imported_wasi_snapshot_preview1_clock_res_get(int32_t a0, int32_t a1) { (void)a0; (void)a1; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_fd_advise(int32_t a0, int64_t a1, int64_t a2, int32_t a3) { (void)a0; (void)a1; (void)a2; (void)a3; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_fd_datasync(int32_t a0) { (void)a0; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_fd_fdstat_set_flags(int32_t a0, int32_t a1) { (void)a0; (void)a1; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_fd_filestat_set_size(int32_t a0, int64_t a1) { (void)a0; (void)a1; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_fd_filestat_set_times(int32_t a0, int64_t a1, int64_t a2, int32_t a3) { (void)a0; (void)a1; (void)a2; (void)a3; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_fd_pread(int32_t a0, int32_t a1, int32_t a2, int64_t a3, int32_t a4) { (void)a0; (void)a1; (void)a2; (void)a3; (void)a4; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_fd_prestat_dir_name(int32_t a0, int32_t a1, int32_t a2) { (void)a0; (void)a1; (void)a2; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_fd_pwrite(int32_t a0, int32_t a1, int32_t a2, int64_t a3, int32_t a4) { (void)a0; (void)a1; (void)a2; (void)a3; (void)a4; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_fd_readdir(int32_t a0, int32_t a1, int32_t a2, int64_t a3, int32_t a4) { (void)a0; (void)a1; (void)a2; (void)a3; (void)a4; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_fd_sync(int32_t a0) { (void)a0; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_fd_tell(int32_t a0, int32_t a1) { (void)a0; (void)a1; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_path_create_directory(int32_t a0, int32_t a1, int32_t a2) { (void)a0; (void)a1; (void)a2; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_path_filestat_get(int32_t a0, int32_t a1, int32_t a2, int32_t a3, int32_t a4) { (void)a0; (void)a1; (void)a2; (void)a3; (void)a4; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_path_filestat_set_times(int32_t a0, int32_t a1, int32_t a2, int32_t a3, int64_t a4, int64_t a5, int32_t a6) { (void)a0; (void)a1; (void)a2; (void)a3; (void)a4; (void)a5; (void)a6; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_path_link(int32_t a0, int32_t a1, int32_t a2, int32_t a3, int32_t a4, int32_t a5, int32_t a6) { (void)a0; (void)a1; (void)a2; (void)a3; (void)a4; (void)a5; (void)a6; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_path_open(int32_t a0, int32_t a1, int32_t a2, int32_t a3, int32_t a4, int64_t a5, int64_t a6, int32_t a7, int32_t a8) { (void)a0; (void)a1; (void)a2; (void)a3; (void)a4; (void)a5; (void)a6; (void)a7; (void)a8; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_path_readlink(int32_t a0, int32_t a1, int32_t a2, int32_t a3, int32_t a4, int32_t a5) { (void)a0; (void)a1; (void)a2; (void)a3; (void)a4; (void)a5; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_path_remove_directory(int32_t a0, int32_t a1, int32_t a2) { (void)a0; (void)a1; (void)a2; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_path_rename(int32_t a0, int32_t a1, int32_t a2, int32_t a3, int32_t a4, int32_t a5) { (void)a0; (void)a1; (void)a2; (void)a3; (void)a4; (void)a5; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_path_symlink(int32_t a0, int32_t a1, int32_t a2, int32_t a3, int32_t a4) { (void)a0; (void)a1; (void)a2; (void)a3; (void)a4; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_path_unlink_file(int32_t a0, int32_t a1, int32_t a2) { (void)a0; (void)a1; (void)a2; return WASI_ERRNO_NOSYS; }
int32_t __imported_wasi_snapshot_preview1_poll_oneoff(int32_t a0, int32_t a1, int32_t a2, int32_t a3) { (void)a0; (void)a1; (void)a2; (void)a3; return WASI_ERRNO_NOSYS; }
