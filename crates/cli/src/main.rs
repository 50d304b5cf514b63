//! `clawgate`: run the gateway, and talk to it as a client.

mod chat;
mod client;
mod commands;
mod more;
mod reload;
mod service;
mod ui;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "clawgate",
    version,
    about = "The OpenClaw gateway, rebuilt in Rust: one port on 127.0.0.1:18789, secure by default"
)]
pub(crate) struct Cli {
    /// Config file (default: $CLAWGATE_HOME/config.yaml, or $CLAWGATE_CONFIG)
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run or query the gateway
    Gateway {
        #[command(subcommand)]
        command: GatewayCommand,
    },
    /// Ask the gateway for its health snapshot
    Health(ConnArgs),
    /// Gateway status summary
    Status(ConnArgs),
    /// Check config, permissions, bind safety, port and reachability
    Doctor,
    /// Print the browser URL (with the token in the fragment) for the Control UI and open it
    Dashboard {
        /// Only print the URL; do not start a browser
        #[arg(long)]
        no_open: bool,
    },
    /// The browser Control UI
    Ui {
        #[command(subcommand)]
        command: UiCommand,
    },
    /// Run one agent turn through the gateway, streaming the reply
    Agent {
        /// The message to send
        #[arg(long, short = 'm')]
        message: String,
        /// Session key (default: the main session)
        #[arg(long)]
        session: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Messaging channels
    Channels {
        #[command(subcommand)]
        command: ChannelsCommand,
    },
    /// Approve unknown senders of a channel (dmPolicy: pairing)
    Pairing {
        #[command(subcommand)]
        command: PairingCommand,
    },
    /// Send a message on a channel
    Message {
        #[command(subcommand)]
        command: MessageCommand,
    },
    /// Interactive chat with the agent (Ctrl-C stops a reply, /reset, /model)
    Chat {
        /// Session key (default: the main session)
        #[arg(long)]
        session: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    // --- logs, sessions, models, devices, completions, man (issue 11 §4) ---
    /// Tail the gateway's log file (logs.tail); --follow keeps polling
    Logs {
        /// Keep printing new lines until Ctrl-C
        #[arg(long, short = 'f')]
        follow: bool,
        /// Max lines to show first
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=5000))]
        limit: u64,
        /// Max bytes to read per poll
        #[arg(long, default_value_t = 250_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        max_bytes: u64,
        /// Polling interval in ms (with --follow)
        #[arg(long, default_value_t = 1000)]
        interval: u64,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Stored conversation sessions (list, history)
    Sessions {
        #[command(subcommand)]
        command: Option<SessionsCommand>,
        #[command(flatten)]
        list: SessionsListArgs,
    },
    /// Configured models
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Device pairing: browsers and apps waiting for approval, and paired devices
    Devices {
        #[command(subcommand)]
        command: DevicesCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff), e.g. `clawgate man > clawgate.1; man ./clawgate.1`
    Man,
}

#[derive(Args, Clone)]
struct SessionsListArgs {
    /// Max sessions to show
    #[arg(long, default_value_t = 100)]
    limit: u64,
    /// Only sessions updated within the past N minutes
    #[arg(long, value_name = "MINUTES")]
    active: Option<u64>,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// List stored sessions, most recent first
    List(SessionsListArgs),
    /// A session's transcript
    History {
        /// Session key, e.g. agent:main:main
        key: String,
        /// Max messages
        #[arg(long, default_value_t = 50)]
        limit: u64,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// List the configured models
    List {
        /// Only this provider
        #[arg(long)]
        provider: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Subcommand)]
enum DevicesCommand {
    /// Pending and paired devices
    List(ConnArgs),
    /// Approve a pending device pairing request
    Approve {
        request_id: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Reject a pending device pairing request
    Reject {
        request_id: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Remove a paired device (its tokens stop working, its connections close)
    Remove {
        device_id: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Subcommand)]
enum GatewayCommand {
    /// Run the gateway in the foreground
    Run {
        /// Bind address (overrides gateway.host)
        #[arg(long)]
        host: Option<String>,
        /// Port (overrides gateway.port; 0 picks a free one)
        #[arg(long)]
        port: Option<u16>,
    },
    /// Is it running, reachable, and does auth work? With the fix for each failure
    Status(ConnArgs),
    /// Re-read config.yaml in the running gateway (like SIGHUP): live keys apply at once,
    /// the rest is listed as needing a restart
    Reload(ConnArgs),
    /// Install clawgate as a service: a systemd unit (user or system), or a launchd plist
    Install {
        /// A user unit in ~/.config/systemd/user (default)
        #[arg(long, conflicts_with = "system")]
        user: bool,
        /// A system unit in /etc/systemd/system (needs root; runs as $SUDO_USER, or as a
        /// dynamic account with its state in /var/lib/clawgate)
        #[arg(long)]
        system: bool,
        /// Print the unit (or plist) and write nothing
        #[arg(long)]
        print: bool,
        /// A macOS launchd plist instead of a systemd unit
        #[arg(long)]
        launchd: bool,
        /// Write into this directory instead of the standard one (packaging)
        #[arg(long, value_name = "DIR")]
        unit_dir: Option<PathBuf>,
    },
    /// Remove the unit (or plist) written by `gateway install`; the state is kept
    Uninstall {
        /// The user unit (default)
        #[arg(long, conflicts_with = "system")]
        user: bool,
        /// The system unit in /etc/systemd/system
        #[arg(long)]
        system: bool,
        /// The launchd plist
        #[arg(long)]
        launchd: bool,
        /// The directory given to `install --unit-dir`
        #[arg(long, value_name = "DIR")]
        unit_dir: Option<PathBuf>,
    },
    /// Exit 0 when the gateway on this machine answers /healthz (a container HEALTHCHECK)
    Healthcheck {
        /// Port (default: gateway.port)
        #[arg(long)]
        port: Option<u16>,
    },
    /// Call one RPC method and print its result
    Call {
        /// Method name, e.g. health, status, system-presence
        method: String,
        /// Params as JSON
        #[arg(long, default_value = "{}")]
        params: String,
        #[command(flatten)]
        conn: ConnArgs,
        /// Seconds to wait for the reply
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
}

#[derive(Subcommand)]
enum UiCommand {
    /// Install OpenClaw's Control UI (npm package `openclaw`, dist/control-ui) and point
    /// gateway.controlUi.root at it
    Install {
        /// openclaw version (default: the release clawgate is compatible with)
        #[arg(long)]
        version: Option<String>,
        /// npm registry URL (default https://registry.npmjs.org)
        #[arg(long)]
        registry: Option<String>,
        /// Use an existing OpenClaw install (package directory or its dist/control-ui)
        #[arg(long, value_name = "DIR", conflicts_with_all = ["version", "registry"])]
        from: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ChannelsCommand {
    /// Channel health: running, connected, last activity, stalls, outbox
    Status(ConnArgs),
}

#[derive(Subcommand)]
enum PairingCommand {
    /// Pending pairing requests (--approved: the senders already approved)
    List {
        /// Only this channel (e.g. telegram)
        channel: Option<String>,
        /// List the approved senders instead of the pending requests
        #[arg(long)]
        approved: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Approve a pairing code: the sender may then talk to the agent, and is told so
    Approve {
        channel: String,
        code: String,
        /// Do not send the sender a notice on its channel
        #[arg(long)]
        no_notify: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Reject a pairing code: the request is dropped, the sender is not allowed
    Reject {
        channel: String,
        code: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Subcommand)]
enum MessageCommand {
    /// Send a text message
    Send {
        #[arg(long)]
        channel: String,
        /// Chat id (e.g. a Telegram chat id)
        #[arg(long)]
        to: String,
        #[arg(long)]
        text: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Edit a message the bot sent (where the channel can: Slack, Telegram)
    Edit {
        #[arg(long)]
        channel: String,
        /// Chat id the message is in
        #[arg(long, alias = "target")]
        to: String,
        /// The platform message id (a Slack `ts`, a Telegram message id)
        #[arg(long)]
        message_id: String,
        /// The new text
        #[arg(long, alias = "message")]
        text: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Args, Clone, Default)]
pub struct ConnArgs {
    /// Gateway WebSocket URL (default ws://127.0.0.1:<gateway.port>, or $CLAWGATE_GATEWAY_URL)
    #[arg(long)]
    url: Option<String>,
    /// Gateway token (default: $CLAWGATE_GATEWAY_TOKEN, gateway.auth.token, or the token file)
    #[arg(long)]
    token: Option<String>,
    /// Gateway password (password auth mode)
    #[arg(long)]
    password: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

fn scope(system: bool) -> service::Scope {
    if system {
        service::Scope::System
    } else {
        service::Scope::User
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let config = cli.config.clone();
    let code = rt.block_on(async move {
        match cli.command {
            Command::Gateway { command } => match command {
                GatewayCommand::Run { host, port } => {
                    commands::run_gateway(config, host, port).await
                }
                GatewayCommand::Status(conn) => commands::gateway_status(config, conn).await,
                GatewayCommand::Reload(conn) => reload::gateway_reload(config, conn).await,
                GatewayCommand::Install {
                    user: _,
                    system,
                    print,
                    launchd,
                    unit_dir,
                } => service::install(
                    config,
                    service::InstallArgs {
                        scope: scope(system),
                        print,
                        launchd,
                        unit_dir,
                    },
                ),
                GatewayCommand::Uninstall {
                    user: _,
                    system,
                    launchd,
                    unit_dir,
                } => service::uninstall(scope(system), launchd, unit_dir),
                GatewayCommand::Healthcheck { port } => service::healthcheck(config, port).await,
                GatewayCommand::Call {
                    method,
                    params,
                    conn,
                    timeout,
                } => commands::call(config, conn, &method, &params, timeout).await,
            },
            Command::Health(conn) => commands::health(config, conn).await,
            Command::Status(conn) => commands::status(config, conn).await,
            Command::Doctor => commands::doctor(config).await,
            Command::Dashboard { no_open } => commands::dashboard(config, no_open),
            Command::Ui {
                command:
                    UiCommand::Install {
                        version,
                        registry,
                        from,
                    },
            } => ui::install(config, version, registry, from).await,
            Command::Agent {
                message,
                session,
                conn,
            } => chat::agent(config, conn, message, session).await,
            Command::Chat { session, conn } => chat::chat(config, conn, session).await,
            Command::Channels {
                command: ChannelsCommand::Status(conn),
            } => commands::channels_status(config, conn).await,
            Command::Pairing {
                command:
                    PairingCommand::List {
                        channel,
                        approved,
                        conn,
                    },
            } => {
                if approved {
                    more::pairing_approved(config, conn, channel).await
                } else {
                    commands::pairing_list(config, conn, channel).await
                }
            }
            Command::Pairing {
                command:
                    PairingCommand::Approve {
                        channel,
                        code,
                        no_notify,
                        conn,
                    },
            } => commands::pairing_approve(config, conn, &channel, &code, !no_notify).await,
            Command::Pairing {
                command:
                    PairingCommand::Reject {
                        channel,
                        code,
                        conn,
                    },
            } => more::pairing_reject(config, conn, &channel, &code).await,
            Command::Message {
                command:
                    MessageCommand::Send {
                        channel,
                        to,
                        text,
                        conn,
                    },
            } => commands::message_send(config, conn, &channel, &to, &text).await,
            Command::Message {
                command:
                    MessageCommand::Edit {
                        channel,
                        to,
                        message_id,
                        text,
                        conn,
                    },
            } => commands::message_edit(config, conn, &channel, &to, &message_id, &text).await,
            // --- logs, sessions, models, devices, completions, man (issue 11 §4) ---
            Command::Logs {
                follow,
                limit,
                max_bytes,
                interval,
                conn,
            } => more::logs(config, conn, follow, limit, max_bytes, interval).await,
            Command::Sessions { command, list } => match command {
                None => more::sessions_list(config, list.conn, list.limit, list.active).await,
                Some(SessionsCommand::List(l)) => {
                    more::sessions_list(config, l.conn, l.limit, l.active).await
                }
                Some(SessionsCommand::History { key, limit, conn }) => {
                    more::sessions_history(config, conn, &key, limit).await
                }
            },
            Command::Models {
                command: ModelsCommand::List { provider, conn },
            } => more::models_list(config, conn, provider).await,
            Command::Devices { command } => match command {
                DevicesCommand::List(conn) => more::devices_list(config, conn).await,
                DevicesCommand::Approve { request_id, conn } => {
                    more::devices_action(config, conn, "approve", &request_id).await
                }
                DevicesCommand::Reject { request_id, conn } => {
                    more::devices_action(config, conn, "reject", &request_id).await
                }
                DevicesCommand::Remove { device_id, conn } => {
                    more::devices_action(config, conn, "remove", &device_id).await
                }
            },
            Command::Completions { shell } => more::completions(shell),
            Command::Man => more::man(),
        }
    });
    // The gateway's own tasks may still hold the runtime; do not wait for them.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    ExitCode::from(code)
}
