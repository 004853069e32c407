use clap::Parser;
use studyon::config::{Cli, Command};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = cli.settings;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&settings.log).unwrap_or_else(|_| "info".into()),
        )
        .init();
    match cli.command.unwrap_or(Command::Serve) {
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
