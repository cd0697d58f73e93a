use clap::Parser;

fn main() -> std::process::ExitCode {
    return_large_allocations();
    let cli = crm::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crm::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// glibc raises its mmap threshold to the size of any large block freed, up to 32 MiB, and
/// from then on serves such blocks from per-thread arenas that it keeps: each 19 MiB argon2
/// hash then stays resident on every blocking thread that ever ran one (1.3 GB after a burst
/// of logins). A fixed threshold keeps every block of 1 MiB or more in its own mapping,
/// returned to the system when freed.
fn return_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before any thread starts.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
