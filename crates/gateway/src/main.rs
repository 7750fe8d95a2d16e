//! `stox-gateway --config PATH`: the SIP ⇄ XMPP Jingle gateway.
//!
//! Start-up order: read the config (exit 2 with one line naming the problem),
//! open and migrate the SQLite store, bind the SIP listeners, connect to the
//! XMPP server as a component, then run [`app::run`] until SIGINT/SIGTERM.
//!
//! Subcommands that do not run the gateway: `user` (the registrar's users,
//! below), `sessions` and `check-config` (operators' reports and checks,
//! [`cli`]).

mod app;
mod cli;
mod config;
mod http;
mod log;
mod media;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "stox-gateway",
    version,
    about = "SIP <-> XMPP Jingle interworking gateway"
)]
struct Args {
    /// Path of the TOML configuration file.
    #[arg(long, short = 'c', value_name = "PATH")]
    config: PathBuf,
    /// Without a command: run the gateway.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// The registrar's users (kept in the store as digest HA1s only).
    #[command(subcommand)]
    User(UserCommand),
    /// Calls from the store (docs/sql.md): the call records, newest first,
    /// as a table or JSON lines; with --active the calls in progress.
    Sessions(cli::SessionsArgs),
    /// Loads and checks the config, then prints one line: OK, or the
    /// problem naming the file and the key (exit 0 or 1).
    CheckConfig,
}

#[derive(clap::Subcommand, Debug)]
enum UserCommand {
    /// Adds a user, or sets its password: `user@domain` of a registrar
    /// domain; the password is read from standard input (first line).
    Add { aor: String },
    /// Lists the users.
    List,
    /// Removes a user and its bindings.
    Remove { aor: String },
}

/// `stox-gateway user …`: exit 0 done, 1 failed, 2 refused.
fn user_command(cfg: &config::Config, cmd: UserCommand) -> ExitCode {
    let Some(registrar) = &cfg.registrar else {
        eprintln!("stox-gateway: no [registrar] in the config");
        return ExitCode::from(2);
    };
    let runtime = match cli::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let domains = registrar.domains.clone();
    let result: Result<String, (u8, String)> = runtime.block_on(async move {
        let store = stox_store::Store::open_at(&cfg.store.location(), cfg.store.options())
            .await
            .map_err(|e| (1, e.to_string()))?;
        let out = match cmd {
            UserCommand::Add { aor } => {
                let aor = aor.trim().to_ascii_lowercase();
                let Some((user, domain)) = aor.split_once('@') else {
                    return Err((2, format!("{aor:?} is not user@domain")));
                };
                if user.is_empty() || !domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
                    return Err((2, format!("{domain} is not one of registrar.domains")));
                }
                let mut password = String::new();
                std::io::stdin()
                    .read_line(&mut password)
                    .map_err(|e| (1, format!("reading the password: {e}")))?;
                let password = password.trim_end_matches(['\r', '\n']);
                if password.is_empty() {
                    return Err((2, "an empty password".into()));
                }
                let keys = stox_sipcore::registrar::UserKeys::derive(user, domain, password);
                let row = stox_store::registrar::UserRow {
                    aor: aor.clone(),
                    ha1_md5: keys.ha1_md5,
                    ha1_sha256: keys.ha1_sha256,
                };
                store
                    .put_user(&row, app::Clock::start().now())
                    .await
                    .map_err(|e| (1, e.to_string()))?;
                format!("{aor} set")
            }
            UserCommand::List => store
                .users()
                .await
                .map_err(|e| (1, e.to_string()))?
                .into_iter()
                .map(|u| u.aor)
                .collect::<Vec<_>>()
                .join("\n"),
            UserCommand::Remove { aor } => {
                let aor = aor.trim().to_ascii_lowercase();
                if !store
                    .remove_user(&aor)
                    .await
                    .map_err(|e| (1, e.to_string()))?
                {
                    return Err((1, format!("no user {aor}")));
                }
                format!("{aor} removed")
            }
        };
        store.close().await;
        Ok(out)
    });
    match result {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            ExitCode::SUCCESS
        }
        Err((code, msg)) => {
            eprintln!("stox-gateway: {msg}");
            ExitCode::from(code)
        }
    }
}

/// jemalloc rather than glibc's malloc (docs/decisions/0005): after a burst
/// of calls glibc kept every freed page (RSS stayed 16× its baseline and
/// grew with each burst); jemalloc hands them back and holds ~8 % less per
/// held call, at the same CPU per call.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The log filter when `RUST_LOG` is not set.
const DEFAULT_LOG: &str = "info";

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if let Some(Command::CheckConfig) = args.command {
        return cli::check_config(&args.config);
    }
    let cfg = match config::Config::load(&args.config) {
        Ok(cfg) => cfg,
        Err(msg) => {
            eprintln!("stox-gateway: {msg}");
            return ExitCode::from(2);
        }
    };
    match args.command {
        Some(Command::User(cmd)) => return user_command(&cfg, cmd),
        Some(Command::Sessions(opts)) => {
            return cli::sessions(&cfg.store, &opts, app::Clock::start().now());
        }
        Some(Command::CheckConfig) | None => {}
    }
    // Colours only on a terminal (not in log files).
    {
        use tracing_subscriber::util::SubscriberInitExt;
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
        log::subscriber(
            filter,
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::io::stderr,
        )
        .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stox-gateway: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The run loop is a task on the runtime's workers, not the main thread:
    // events from the socket tasks then wake it on the same worker (tokio's
    // LIFO slot) instead of crossing to another thread on every hand-off.
    let result = runtime.block_on(async {
        tokio::spawn(app::run(cfg))
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("run loop panicked: {e}")))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("stox-gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}
