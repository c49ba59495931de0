//! The `nexus-gateway` binary: parse the command line, load the configuration, dispatch.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use nexus_gateway::admin;
use nexus_gateway::app::App;
use nexus_gateway::cli::{
    AgentsCommand, Cli, ClientsCommand, Command, ConfigCommand, KeysCommand, OwnerCommand,
    TelegramCommand, TokensCommand, UpstreamsCommand,
};
use nexus_gateway::config::Config;
use nexus_gateway::upstream::stdio::{SHIM_SUBCOMMAND, run_shim};
use tokio_util::sync::CancellationToken;

// glibc's allocator spent about a quarter of each /mcp call in malloc and free under load, and
// kept what it grew; mimalloc measured faster and flatter (BENCHMARKS.md, issue 12).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // The shim that runs a stdio upstream (see `upstream::stdio`): no configuration, no logging.
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() == Some(std::ffi::OsStr::new(SHIM_SUBCOMMAND)) {
        let rest: Vec<std::ffi::OsString> = args.skip_while(|arg| arg == "--").collect();
        let Some((command, command_args)) = rest.split_first() else {
            eprintln!("usage: nexus-gateway {SHIM_SUBCOMMAND} -- COMMAND [ARGS...]");
            return ExitCode::from(2);
        };
        let code = run_shim(command, command_args);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(errors) => {
            eprint!("{errors}");
            return ExitCode::from(2);
        }
    };
    let log = nexus_gateway::telemetry::init(config.log_format);
    let outcome = run(cli.command, config).await;
    // The log's last lines before the final error, not after it.
    drop(log);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    let output = match command {
        Command::Serve => return serve(config).await,
        Command::Owner(OwnerCommand::SetPassword { stdin }) => {
            admin::set_owner_password(&config, &read_passphrase(stdin)?).await?
        }
        Command::Keys(KeysCommand::Rotate) => admin::rotate_keys(&config).await?,
        Command::Tokens(TokensCommand::Issue { name, scope, ttl }) => {
            admin::issue_token(&config, &name, &scope, &ttl).await?
        }
        Command::Tokens(TokensCommand::List) => admin::list_tokens(&config).await?,
        Command::Tokens(TokensCommand::Revoke { name }) => {
            admin::revoke_token(&config, &name).await?
        }
        Command::Clients(ClientsCommand::List) => admin::list_clients(&config).await?,
        Command::Clients(ClientsCommand::Revoke { client_id }) => {
            admin::revoke_client(&config, &client_id).await?
        }
        Command::Agents(AgentsCommand::Add { name, targets }) => {
            admin::add_agent(&config, &name, &targets).await?
        }
        Command::Agents(AgentsCommand::List) => admin::list_agents(&config).await?,
        Command::Agents(AgentsCommand::Revoke { name }) => {
            admin::revoke_agent(&config, &name).await?
        }
        Command::Telegram(TelegramCommand::Check) => admin::telegram_check(&config).await?,
        Command::Config(ConfigCommand::Check) => admin::describe_config(&config),
        Command::Upstreams(UpstreamsCommand::List) => admin::list_upstreams(&config).await?,
        Command::Upstreams(UpstreamsCommand::Approve { name }) => {
            admin::approve_upstream(&config, &name).await?
        }
        Command::Upstreams(UpstreamsCommand::Import { file }) => {
            admin::import_upstreams(&file).await?
        }
        Command::MigrateStore { to } => admin::migrate_store(&config, &to).await?,
    };
    print!("{output}");
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let data_dir = config.data_dir.clone();
    let internal = match config.internal_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (internal_listen)"))?,
        ),
        None => None,
    };
    let mut app = App::build(config)
        .await
        .context("cannot start the gateway")?;
    if let Some(internal) = internal {
        app = app.with_internal_listener(internal);
    }
    if let Some(passphrase) = app.generated_owner_passphrase() {
        hand_over_passphrase(passphrase, &data_dir)?;
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    app.serve(listener, shutdown).await.context("server error")
}

/// Shows a generated passphrase once: on a terminal, printed; under a service manager (whose
/// stderr goes to a log store), written to a file only the service user can read.
fn hand_over_passphrase(passphrase: &str, data_dir: &std::path::Path) -> anyhow::Result<()> {
    if std::io::stderr().is_terminal() {
        eprintln!(
            "\n  No owner passphrase was set, so one was generated. It is shown only now:\n\n      {passphrase}\n\n  Change it with `nexus-gateway owner set-password`.\n"
        );
        return Ok(());
    }
    // On PostgreSQL nothing else needs the data directory, so it may not exist yet.
    let mut directory = std::fs::DirBuilder::new();
    directory.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut directory, 0o700);
    directory
        .create(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let path = data_dir.join("initial-owner-passphrase");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{passphrase}\n").as_bytes())?;
    eprintln!(
        "No owner passphrase was set, so one was generated and written to {} (readable by this user only). Read it, then delete the file or run `nexus-gateway owner set-password`.",
        path.display()
    );
    Ok(())
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
    shutdown.cancel();
}

fn read_passphrase(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read standard input")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to prompt on; pass --stdin to read the passphrase from standard input");
    }
    let first = rpassword::prompt_password("New owner passphrase: ")?;
    let second = rpassword::prompt_password("Repeat it: ")?;
    if first != second {
        bail!("the two passphrases differ");
    }
    Ok(first)
}
