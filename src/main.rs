//! `ordergrid`: parse the command line, set up logging and settings, build, run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use ordergrid::config::{EmulatorOverrides, HandlerSettings};
use ordergrid::emulator::{Emulator, cli};
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
    /// Run the local Azure Event Grid, or inspect a running one.
    #[command(args_conflicts_with_subcommands = true)]
    Emulator {
        #[command(subcommand)]
        action: Option<EmulatorAction>,
        #[command(flatten)]
        run: EmulatorArgs,
    },
}

#[derive(Args, Default)]
struct EmulatorArgs {
    /// Port on 127.0.0.1 [env: ORDERGRID_EMULATOR_PORT, default 7080]
    #[arg(long)]
    port: Option<u16>,
    /// Topics and subscriptions file [env: ORDERGRID_EMULATOR_SUBSCRIPTIONS, default infra/subscriptions.json]
    #[arg(long)]
    subscriptions: Option<PathBuf>,
    /// Data folder [env: ORDERGRID_EMULATOR_DATA, default .ordergrid/emulator]
    #[arg(long)]
    data: Option<PathBuf>,
    /// Functions host for AzureFunction destinations [env: ORDERGRID_FUNCTIONS_BASE_URL]
    #[arg(long)]
    functions_url: Option<String>,
    /// Multiply Azure's retry schedule, TTL and dead-letter delay [env: ORDERGRID_EMULATOR_TIME_SCALE]
    #[arg(long)]
    time_scale: Option<f64>,
}

#[derive(Subcommand)]
enum EmulatorAction {
    /// Topics, subscriptions, validation state and counters.
    Status(AdminUrl),
    /// Recent delivery attempts.
    Deliveries {
        #[command(flatten)]
        admin: AdminUrl,
        #[arg(long, default_value_t = 25)]
        limit: usize,
    },
    /// Events waiting for a retry or a dead-letter write.
    Retries(AdminUrl),
    /// Dead-letter blobs.
    DeadLetters(AdminUrl),
    /// Publish dead-lettered events again, to their subscription only.
    Redeliver {
        #[command(flatten)]
        admin: AdminUrl,
        /// Every dead letter of this subscription.
        #[arg(long, conflicts_with = "blob")]
        subscription: Option<String>,
        /// One blob: <container>/<name>, as `dead-letters` lists it.
        #[arg(long)]
        blob: Option<String>,
    },
}

#[derive(Args)]
struct AdminUrl {
    /// The emulator's base URL.
    #[arg(
        long,
        default_value = "http://127.0.0.1:7080",
        env = "ORDERGRID_EMULATOR_URL"
    )]
    url: String,
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
    let env = std::env::vars().collect();
    match cli.command {
        Command::Serve { port } => {
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
        Command::Emulator { action: None, run } => {
            let overrides = EmulatorOverrides {
                port: run.port,
                subscriptions_file: run.subscriptions,
                data_dir: run.data,
                functions_base_url: run.functions_url,
                time_scale: run.time_scale,
            };
            let settings = overrides.settings(&env)?;
            let emulator = Emulator::build(settings).await?;
            for keys in emulator.keys() {
                tracing::info!(
                    port = emulator.port(),
                    topic = %keys.topic,
                    endpoint = %emulator.topic_endpoint(&keys.topic),
                    "Event Grid emulator listening on 127.0.0.1; the topic keys are in the data folder's topic-keys.json"
                );
            }
            emulator
                .run_until_stopped(ordergrid::shutdown::signal())
                .await
        }
        Command::Emulator {
            action: Some(action),
            ..
        } => {
            let out = match action {
                EmulatorAction::Status(a) => cli::status(&a.url).await?,
                EmulatorAction::Deliveries { admin, limit } => {
                    cli::deliveries(&admin.url, limit).await?
                }
                EmulatorAction::Retries(a) => cli::retries(&a.url).await?,
                EmulatorAction::DeadLetters(a) => cli::dead_letters(&a.url).await?,
                EmulatorAction::Redeliver {
                    admin,
                    subscription,
                    blob,
                } => cli::redeliver(&admin.url, subscription.as_deref(), blob.as_deref()).await?,
            };
            print!("{out}");
            Ok(())
        }
    }
}
