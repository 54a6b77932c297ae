//! The `ordergrid` command line: each command parses its flags, layers them over the
//! environment as the settings they stand for, builds its app with the one constructor, and
//! runs it. The commands that only read (`orders`, `emulator status …`) and `publish` are in
//! this folder; the apps they run are the wings (`functions`, `emulator`, `stack`).

mod emulator;
mod orders;
pub mod publish;
mod table;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use self::publish::{AuthMode, NewOrderFlags, PublishRequest};
use crate::emulator::admin::AdminClient;
use crate::emulator::settings as emulator_settings;
use crate::emulator::{Emulator, EmulatorSettings};
use crate::eventgrid::Schema;
use crate::functions::settings as handler_settings;
use crate::functions::{Handler, HandlerSettings};
use crate::settings::Layered;
use crate::stack::{LocalStack, StackSettings};
use crate::store::settings::StoreSettings;
use crate::store::{BlobStore, FolderStore, RecordStore};
use crate::trace::{Telemetry, TraceExport};
use crate::webpubsub_service::settings as webpubsub_settings;
use crate::webpubsub_service::{ServiceSettings, WebPubSubService};

#[derive(Parser)]
#[command(
    name = "ordergrid",
    version,
    about = "Event-driven order pipeline for Azure Event Grid and Azure Functions"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Azure Functions custom handler (what host.json starts).
    Serve {
        #[arg(long, help = handler_settings::PORT.help())]
        port: Option<u16>,
    },
    /// Run the whole order system locally: Event Grid emulator, Functions host stand-in, handler.
    Dev(DevArgs),
    /// Publish events to an Event Grid topic (local or Azure).
    Publish(Box<PublishArgs>),
    /// Look at the orders the local stack recorded.
    Orders {
        #[command(subcommand)]
        action: OrdersAction,
    },
    /// Run the local Azure Event Grid, or inspect a running one.
    #[command(args_conflicts_with_subcommands = true)]
    Emulator {
        #[command(subcommand)]
        action: Option<EmulatorAction>,
        #[command(flatten)]
        run: EmulatorArgs,
    },
    /// Run the local Azure Web PubSub service and print its connection string.
    Webpubsub {
        #[arg(long, help = webpubsub_settings::PORT.help())]
        port: Option<u16>,
        #[arg(long, help = webpubsub_settings::DATA.help())]
        data: Option<PathBuf>,
    },
}

#[derive(Args)]
struct DevArgs {
    /// Where the stack keeps its state (spool, orders, outbox, dead letters).
    #[arg(long, default_value = ".ordergrid")]
    data: PathBuf,
    /// The function app: host.json, the function folders, infra/subscriptions.json.
    #[arg(long, default_value = ".")]
    app: PathBuf,
    #[arg(long, help = emulator_settings::PORT.help())]
    emulator_port: Option<u16>,
    #[arg(long, value_parser = parse_https_port, help = emulator_settings::HTTPS_PORT.help())]
    emulator_https_port: Option<HttpsPort>,
    /// Functions host port (func start's default).
    #[arg(long, default_value_t = crate::devhost::DEFAULT_PORT)]
    host_port: u16,
    #[arg(long, help = emulator_settings::TIME_SCALE.help())]
    time_scale: Option<f64>,
    #[arg(long, help = webpubsub_settings::PORT.help())]
    webpubsub_port: Option<u16>,
}

#[derive(Args)]
struct PublishArgs {
    /// The topic endpoint, e.g. https://<topic>.<region>-1.eventgrid.azure.net/api/events
    /// [default: the orders topic of the stack running for --data, over HTTPS with --auth entra]
    #[arg(long, env = "ORDERGRID_TOPIC_ENDPOINT")]
    endpoint: Option<String>,
    #[arg(long, value_enum, default_value_t = AuthMode::Key)]
    auth: AuthMode,
    /// The topic's access key; for the local stack it is read from the data folder.
    #[arg(long, env = "ORDERGRID_TOPIC_KEY", hide_env_values = true)]
    key: Option<String>,
    /// The local stack's data folder: where its record (stack.json) and topic keys are.
    #[arg(long, default_value = crate::stack::DEFAULT_DATA_DIR)]
    data: PathBuf,
    #[arg(long, value_enum, default_value_t = SchemaFlag::Eventgrid)]
    schema: SchemaFlag,
    /// Events to send as they are: a JSON object or array; `-` reads stdin.
    #[arg(long)]
    file: Option<PathBuf>,
    #[arg(long, default_value = "NewOrder")]
    event_type: String,
    /// Defaults to orders/<order id>.
    #[arg(long)]
    subject: Option<String>,
    #[arg(long)]
    order_id: Option<String>,
    #[arg(long)]
    customer_id: Option<String>,
    /// The order value, sent as a JSON string exactly as typed ("150.00"), which the Functions host
    /// keeps exact (it reads JSON numbers as doubles); a negative one is rejected by the handler.
    #[arg(long, allow_hyphen_values = true)]
    value: Option<String>,
    #[arg(long)]
    currency: Option<String>,
    #[arg(long)]
    email: Option<String>,
    /// An order line, sku:quantity:unitPrice[:name]; repeatable.
    #[arg(long = "item")]
    items: Vec<String>,
}

#[derive(Subcommand)]
enum OrdersAction {
    /// Every order with its confirmation email's state, and rejected events.
    List(StorePath),
    /// One order's record and email ledger entry.
    Show {
        order_id: String,
        #[command(flatten)]
        store: StorePath,
    },
}

#[derive(Args)]
struct StorePath {
    /// The folder store [default: the one the stack recorded in .ordergrid/stack.json uses, else
    /// .ordergrid/store]; with ORDERGRID_STORE=blob, the blob store ORDERGRID_STORAGE names is
    /// read instead.
    #[arg(long, env = "ORDERGRID_STORE_PATH")]
    store: Option<PathBuf>,
}

impl StorePath {
    /// `--store`, else the folder store of the stack recorded in the default data folder (the
    /// record is read even if that stack has stopped: its records stay), else `.ordergrid/store`.
    fn folder(&self) -> PathBuf {
        let data = std::path::Path::new(crate::stack::DEFAULT_DATA_DIR);
        self.store.clone().unwrap_or_else(|| {
            crate::stack::record::recorded(data)
                .and_then(|r| r.store_dir)
                .unwrap_or_else(|| data.join("store"))
        })
    }
}

#[derive(Args, Default)]
struct EmulatorArgs {
    #[arg(long, help = emulator_settings::PORT.help())]
    port: Option<u16>,
    #[arg(long, help = emulator_settings::SUBSCRIPTIONS.help())]
    subscriptions: Option<PathBuf>,
    #[arg(long, help = emulator_settings::DATA.help())]
    data: Option<PathBuf>,
    #[arg(long, help = emulator_settings::FUNCTIONS_BASE_URL.help())]
    functions_url: Option<String>,
    #[arg(long, help = emulator_settings::TIME_SCALE.help())]
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
    /// Dead letters: when, why, which event and order; or one in full.
    DeadLetters {
        #[command(flatten)]
        admin: AdminUrl,
        /// Print this dead letter in full: <container>/<blob>, as the listing's BLOB column names it.
        #[arg(long, value_name = "CONTAINER/BLOB")]
        show: Option<String>,
    },
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
    /// The emulator's base URL [default: the emulator of the stack running for --data].
    #[arg(long, env = "ORDERGRID_EMULATOR_URL")]
    url: Option<String>,
    /// The data folder of the stack to inspect (where its record, stack.json, is).
    #[arg(long, default_value = crate::stack::DEFAULT_DATA_DIR)]
    data: PathBuf,
}

impl AdminUrl {
    /// A client of `--url`, else of the running stack's emulator; fails, saying how to start
    /// or name one, when none runs.
    async fn client(&self) -> anyhow::Result<AdminClient> {
        Ok(match &self.url {
            Some(url) => AdminClient::new(url),
            None => AdminClient::new(&crate::stack::record::find(&self.data).await?.emulator_url),
        })
    }
}

/// The schema of the events `publish` sends.
#[derive(Clone, Copy, ValueEnum)]
enum SchemaFlag {
    /// The Event Grid schema.
    Eventgrid,
    /// CloudEvents 1.0.
    Cloudevents,
}

impl From<SchemaFlag> for Schema {
    fn from(flag: SchemaFlag) -> Self {
        match flag {
            SchemaFlag::Eventgrid => Schema::EventGrid,
            SchemaFlag::Cloudevents => Schema::CloudEvents,
        }
    }
}

mod memory {
    //! Long-running servers built against glibc ask its allocator to give large freed blocks
    //! back to the system (blocks of 128 KiB and more: smaller ones come from mimalloc, see
    //! `allocator` in `src/main.rs`). By default glibc raises its mmap threshold to the size of
    //! the largest block freed, up to 32 MiB, so after a burst of large request bodies those
    //! sizes are served from its heaps and kept: `tests/emulator/memory.rs` measured an emulator
    //! that was 235 MiB larger than idle after two bursts, and whose peak grew with the burst's
    //! size. With the threshold fixed at 128 KiB the same bursts peak at the same size and leave
    //! it 36 MiB larger than idle. The tunable is only read when a process starts, so the command
    //! runs itself again once, with `GLIBC_TUNABLES` set (the handler it starts inherits it).
    //! musl, which the deployed build uses, ignores it, as does a command already started with
    //! it.

    use std::os::unix::process::CommandExt as _;

    const TUNABLE: &str = "glibc.malloc.mmap_threshold=131072";

    pub fn return_large_blocks() {
        if !cfg!(target_env = "gnu") {
            return;
        }
        let current = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        if current.contains("glibc.malloc.mmap_threshold") {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let tunables = match current.as_str() {
            "" => TUNABLE.to_owned(),
            other => format!("{other}:{TUNABLE}"),
        };
        // Only returns if the command could not be run again: go on as it is.
        let _ = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("GLIBC_TUNABLES", tunables)
            .exec();
    }
}

/// A port, or `off`, as `ORDERGRID_EMULATOR_HTTPS_PORT` reads it.
#[derive(Clone)]
struct HttpsPort(String);

fn parse_https_port(text: &str) -> Result<HttpsPort, String> {
    match text {
        "off" => Ok(HttpsPort(text.into())),
        port => port
            .parse::<u16>()
            .map(|_| HttpsPort(text.into()))
            .map_err(|_| format!("{port:?} is not a port number or off")),
    }
}

/// Parses the command line and the environment, sets up logging, runs the command.
/// `on_idle` runs on a runtime worker each time it runs out of work (the binary's allocator
/// gives memory back there).
pub fn main(on_idle: fn()) -> ExitCode {
    let cli = Cli::parse();
    if let Command::Dev(_) | Command::Emulator { action: None, .. } | Command::Webpubsub { .. } =
        &cli.command
    {
        memory::return_large_blocks();
    }
    let env: HashMap<String, String> = std::env::vars().collect();
    let format = crate::telemetry::init_from_env(&env);
    let result = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(on_idle)
        .build()
    {
        Ok(runtime) => runtime.block_on(run(cli, env)),
        Err(e) => Err(anyhow::Error::new(e).context("failed to start the async runtime")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(format, &e);
            ExitCode::FAILURE
        }
    }
}

/// Says why the command failed, once, on stderr. With text logs (a terminal, or
/// `ORDERGRID_LOG_FORMAT=text`) it is one plain `error: …` line with the whole cause chain, for a
/// person; with JSON logs (`json`, or `auto` when not on a terminal, as under the Functions host)
/// it is one JSON log line at ERROR with the chain in `error`, so that stderr stays one JSON
/// object per line for whatever reads it, and the host records it as an error like any other.
fn report(format: crate::telemetry::LogFormat, error: &anyhow::Error) {
    match format {
        crate::telemetry::LogFormat::Json => {
            tracing::error!(error = %format!("{error:#}"), "ordergrid stopped with an error");
        }
        crate::telemetry::LogFormat::Text => eprintln!("error: {error:#}"),
    }
}

async fn run(cli: Cli, env: HashMap<String, String>) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { port } => {
            let env = Layered::over(&env).set_some(&handler_settings::PORT, port);
            let settings = HandlerSettings::from_env(env.env())?;
            let telemetry =
                Telemetry::start(&TraceExport::from_env(env.env()), "ordergrid-handler", None)?;
            let handler = Handler::build(&settings, telemetry.tracer()).await?;
            let exit_with_parent = env
                .env()
                .get(crate::shutdown::EXIT_WITH_PARENT)
                .is_some_and(|v| v == "true");
            // Before the port is logged: the host may stop the handler as soon as it sees it.
            let shutdown = crate::shutdown::signal_or_parent_exit(exit_with_parent);
            tracing::info!(
                port = handler.port(),
                "custom handler listening on 127.0.0.1"
            );
            let served = handler.run_until_stopped(shutdown).await;
            telemetry.shutdown();
            served
        }
        Command::Dev(args) => {
            let settings = StackSettings {
                app_root: args.app,
                data_dir: args.data,
                host_port: args.host_port,
            };
            let env = Layered::over(&env)
                .set_some(&emulator_settings::PORT, args.emulator_port)
                .set_some(
                    &emulator_settings::HTTPS_PORT,
                    args.emulator_https_port.map(|p| p.0),
                )
                .set_some(&emulator_settings::TIME_SCALE, args.time_scale)
                .set_some(&webpubsub_settings::PORT, args.webpubsub_port);
            let stack = LocalStack::build(settings, env.env()).await?;
            let shutdown = crate::shutdown::signal();
            stack.write_record()?;
            println!("{}", stack.summary());
            stack.run_until_stopped(shutdown).await
        }
        Command::Publish(args) => {
            let target = publish::target(args.endpoint, args.auth, &args.data).await?;
            let trace = TraceExport::from_env(
                Layered::over(&env)
                    .set_some(&crate::trace::TRACE_SINK, target.trace_sink)
                    .env(),
            );
            let request = PublishRequest {
                endpoint: target.endpoint,
                auth: args.auth,
                key: args.key,
                emulator_data: target.emulator_data,
                schema: args.schema.into(),
                event_type: args.event_type,
                subject: args.subject,
                file: args.file,
                order: NewOrderFlags {
                    order_id: args.order_id,
                    customer_id: args.customer_id,
                    value: args.value,
                    currency: args.currency,
                    email: args.email,
                    items: args.items,
                },
                trace,
            };
            print!("{}", publish::run(request).await?);
            Ok(())
        }
        Command::Orders { action } => {
            let out = match action {
                OrdersAction::List(path) => {
                    orders::list(&*records_store(&env, &path.folder()).await?).await?
                }
                OrdersAction::Show { order_id, store } => {
                    orders::show(&*records_store(&env, &store.folder()).await?, &order_id).await?
                }
            };
            print!("{out}");
            Ok(())
        }
        Command::Emulator { action: None, run } => {
            let env = Layered::over(&env)
                .set_some(&emulator_settings::PORT, run.port)
                .set_some(
                    &emulator_settings::SUBSCRIPTIONS,
                    run.subscriptions.as_ref().map(|p| p.display()),
                )
                .set_some(
                    &emulator_settings::DATA,
                    run.data.as_ref().map(|p| p.display()),
                )
                .set_some(&emulator_settings::FUNCTIONS_BASE_URL, run.functions_url)
                .set_some(&emulator_settings::TIME_SCALE, run.time_scale);
            let settings = EmulatorSettings::from_env(env.env())?;
            let data = std::path::absolute(&settings.data_dir)?;
            let emulator = Emulator::build(settings).await?;
            let shutdown = crate::shutdown::signal();
            let record = crate::stack::record::StackRecord::of_emulator(&emulator, &data);
            record.write(&data).with_context(|| {
                format!(
                    "failed to write the emulator's record in {}",
                    data.display()
                )
            })?;
            for keys in emulator.keys() {
                tracing::info!(
                    port = emulator.port(),
                    topic = %keys.topic,
                    endpoint = %emulator.topic_endpoint(&keys.topic),
                    "Event Grid emulator listening on 127.0.0.1; the topic keys are in the data folder's topic-keys.json"
                );
            }
            if let (Some(https), Some(certificate)) = (emulator.https_url(), emulator.certificate())
            {
                let (identity_endpoint, _) = emulator.identity();
                tracing::info!(
                    https = %https,
                    ca = %certificate.ca().display(),
                    identity_endpoint = %identity_endpoint,
                    identity_header_file = %emulator.identity_header_file().display(),
                    "also serving HTTPS (Microsoft Entra ID tokens accepted there); SDK clients get tokens with \
                     IDENTITY_ENDPOINT and IDENTITY_HEADER set to the endpoint and the file's content"
                );
            }
            let result = emulator.run_until_stopped(shutdown).await;
            crate::stack::record::StackRecord::remove(&data);
            result
        }
        Command::Webpubsub { port, data } => {
            let env = Layered::over(&env)
                .set_some(&webpubsub_settings::PORT, port)
                .set_some(
                    &webpubsub_settings::DATA,
                    data.as_ref().map(|p| p.display()),
                );
            let service = WebPubSubService::build(ServiceSettings::from_env(env.env())?).await?;
            let shutdown = crate::shutdown::signal();
            tracing::info!(
                port = service.port(),
                "Web PubSub service listening on 127.0.0.1; its connection string is on stdout"
            );
            // Stdout, not the log: the connection string holds the key.
            println!("{}", service.connection_string());
            service.run_until_stopped(shutdown).await
        }
        Command::Emulator {
            action: Some(action),
            ..
        } => {
            let out = match action {
                EmulatorAction::Status(a) => emulator::status(&a.client().await?).await?,
                EmulatorAction::Deliveries { admin, limit } => {
                    emulator::deliveries(&admin.client().await?, limit).await?
                }
                EmulatorAction::Retries(a) => emulator::retries(&a.client().await?).await?,
                EmulatorAction::DeadLetters { admin, show: None } => {
                    emulator::dead_letters(&admin.client().await?).await?
                }
                EmulatorAction::DeadLetters {
                    admin,
                    show: Some(blob),
                } => emulator::dead_letter(&admin.client().await?, &blob).await?,
                EmulatorAction::Redeliver {
                    admin,
                    subscription,
                    blob,
                } => {
                    let client = admin.client().await?;
                    emulator::redeliver(&client, subscription.as_deref(), blob.as_deref()).await?
                }
            };
            print!("{out}");
            Ok(())
        }
    }
}

/// The store `ordergrid orders` reads: the handler's blob store when `ORDERGRID_STORE=blob`,
/// otherwise a snapshot of the folder store at `folder`.
async fn records_store(
    env: &HashMap<String, String>,
    folder: &std::path::Path,
) -> anyhow::Result<Box<dyn RecordStore>> {
    Ok(match StoreSettings::from_env(env)? {
        StoreSettings::Blob { connection, timing } => {
            Box::new(BlobStore::open(&connection, timing).await?)
        }
        StoreSettings::Folder { .. } => Box::new(FolderStore::snapshot(folder)?),
    })
}
