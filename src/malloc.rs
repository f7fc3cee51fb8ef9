//! Why this exists: glibc's allocator, left at its defaults, made a 10,000-site `serve`
//! hold several times the memory it uses. Its mmap threshold grows every time a large
//! buffer (a page body, a sled segment) is freed, so later large buffers come from the
//! heap and stay there, and each thread can get an arena of its own. Measured with
//! `bench/scale.sh 1000` (release, 2 cores): peak RSS 238 MiB with the defaults, 111 MiB
//! with the three settings below, 141 MiB under jemalloc; crawl time unchanged within
//! noise. An operator's own `MALLOC_*` environment variables still win.

/// Applies the settings once, before the runtime starts its threads.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // (variable glibc reads, mallopt parameter, value)
        let settings = [
            ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 2),
            ("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 128 * 1024),
            ("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 128 * 1024),
        ];
        for (variable, parameter, value) in settings {
            if std::env::var_os(variable).is_none() {
                // SAFETY: mallopt only changes allocator parameters; it is called from
                // `main` before any other thread exists, and a refused value (return 0)
                // leaves glibc's default in place.
                unsafe {
                    libc::mallopt(parameter, value);
                }
            }
        }
    }
}
