//! `ordergrid`: parse the command line, set up logging and settings, build, run.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use ordergrid::config::HandlerSettings;
use ordergrid::functions::Handler;

#[derive(Parser)]
#[command(
    name = "ordergrid",
    version,
    about = "Event-driven order pipeline for Azure Event Grid and Azure Functions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Azure Functions custom handler (what host.json starts).
    Serve {
        /// Port to listen on; defaults to $FUNCTIONS_CUSTOMHANDLER_PORT, set by the host.
        #[arg(long)]
        port: Option<u16>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    ordergrid::telemetry::init_from_env();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "ordergrid stopped with an error");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { port } => {
            let env = std::env::vars().collect();
            let settings = HandlerSettings::from_env_with_port(&env, port)?;
            let handler = Handler::build(&settings).await?;
            tracing::info!(
                port = handler.port(),
                "custom handler listening on 127.0.0.1"
            );
            handler
                .run_until_stopped(ordergrid::shutdown::signal())
                .await
        }
    }
}
