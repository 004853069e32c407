use clap::Parser;
use studyon::config::{Cli, Command};

/// glibc adapts its mmap threshold upward after a large block is freed, so later 19 MiB
/// Argon2 blocks come from per-thread arenas and stay there: RSS grew by ~19 MiB for every
/// blocking thread that ever hashed a password (about 1 GB after a burst of signups). A fixed
/// threshold keeps blocks this large on mmap, given back to the system when freed.
fn keep_large_blocks_on_mmap() {
    /// Allocations from this size up are mapped, never kept in an arena.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    const MMAP_THRESHOLD: libc::c_int = 4 * 1024 * 1024;
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called once before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

fn main() -> anyhow::Result<()> {
    keep_large_blocks_on_mmap();
    let cli = Cli::parse();
    let settings = cli.settings;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&settings.log).unwrap_or_else(|_| "info".into()),
        )
        .init();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => {
            println!(
                "{}",
                serde_json::to_string_pretty(&studyon::http::openapi::document())?
            );
            Ok(())
        }
        Command::Config => {
            settings.validate()?;
            print!("{}", settings.redacted());
            Ok(())
        }
        Command::Migrate => actix_rt::System::new().block_on(async move {
            settings.validate()?;
            let store = studyon::store::open(&settings).await?;
            store.migrate().await?;
            store.close().await;
            println!(
                "migrations applied to {}",
                studyon::config::redact_url(&settings.database_url())
            );
            Ok(())
        }),
        Command::Serve => actix_rt::System::new().block_on(async move {
            let server = studyon::server::start(settings).await?;
            println!("StudyOn is running at {}", server.url());
            studyon::server::shutdown_signal().await;
            tracing::info!("shutdown signal received");
            server.shutdown().await;
            Ok(())
        }),
    }
}
