//! The command line: the clap definitions (also the source of `--help`, completions and
//! the man page) and `run`, which parses, calls the library ([`crate::ops`]), and hands
//! the value it returns to [`crate::render`] (one `render::show` per command) and to
//! [`exit`] for the exit code. Nothing here formats output: the commands stay library
//! calls, and what they print is decided in one place.

pub mod complete;
pub mod exit;
mod fast;
pub mod man;
mod route;

use crate::config::session::Session;
use crate::error::{Error, ErrorKind, Result};
use crate::ops;
use crate::playpen::Playpen;
use crate::render::boot::BootAction;
use crate::render::{self, Report, Style, commands as shown, status as shown_status};
use crate::service::outcome::Outcome;
use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "servicectl",
    version,
    about = "Run a project's services inside one checkout (a playpen)",
    long_about = "servicectl runs a project's services (web server, database, cache, daemons) inside one \
checkout of the project, a playpen, with its own ports (PORT_PREFIX + offset), its own var/ and its \
own processes.\n\nServices come as packages under ext/services/NAME-VERSION/; their sh config fragments \
are evaluated, their typed variables checked, their config templates rendered, and their programs \
started through argv0 symlinks in var/linkfarm/ with pidfiles and output files in var/run/.",
    after_help = "Examples:\n  servicectl init ~/src/myproject          make a new playpen\n  servicectl start                          start the role's services\n  servicectl status --json                  what runs, as JSON\n  servicectl --playpen DIR restart web      restart one service of another playpen\n\nWith no service names, commands act on the role's playpen_services (etc/roles/ROLE/config).\nExit codes: 0 ok, 1 failure, 2 usage, 3 (status) not all running, 4 unknown service."
)]
pub struct Cli {
    /// The playpen to act on (default: $PLAYPEN_ROOT, else the nearest parent directory holding etc/role or ext/services)
    #[arg(long, global = true, value_name = "DIR")]
    pub playpen: Option<PathBuf>,

    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Make a new, empty playpen in DIR
    Init {
        dir: PathBuf,
        /// The playpen's role (written to etc/role)
        #[arg(long, default_value = "dev")]
        role: String,
    },
    /// Start services (and what they depend on); already running ones are left alone
    Start {
        /// Services to start (default: the role's playpen_services)
        services: Vec<String>,
    },
    /// Stop services (dependants first); already stopped ones are left alone
    Stop {
        /// Services to stop (default: the role's playpen_services)
        services: Vec<String>,
    },
    /// Restart services: SIGHUP if service_hup=1, else service_restart, else stop + start
    Restart {
        /// Services to restart (default: the role's playpen_services)
        services: Vec<String>,
    },
    /// Show whether services run (exit 0: all running, 3: some not, 4: unknown service)
    Status {
        /// Services to show (default: the role's playpen_services)
        services: Vec<String>,
    },
    /// Check that services work: their ping script, else the status check
    Ping {
        /// Services to ping (default: the role's playpen_services)
        services: Vec<String>,
    },
    /// Show a service's evaluated configuration and which file set each value
    PrintConfig {
        service: String,
        /// Also show variables inherited from the environment servicectl runs in
        #[arg(long)]
        all: bool,
    },
    /// Validate services' configuration (config, typed variables, programs, templates, dependencies) without starting anything
    Check {
        services: Vec<String>,
        /// Check every installed service, not only the role's
        #[arg(long)]
        all: bool,
    },
    /// Print `export` lines for what the playpen's configs add to the environment, or a service's
    Env {
        service: Option<String>,
        /// Also print the variables inherited from servicectl's own environment
        #[arg(long)]
        all: bool,
    },
    /// List required variables that are still unset, per service (exit 1 when any)
    MissingEnv {
        services: Vec<String>,
        /// Add each variable's description, type, constraints and default
        #[arg(long, short)]
        verbose: bool,
        /// Print a sh snippet setting each missing variable to its default (append it to the role config)
        #[arg(long, conflicts_with = "verbose")]
        script: bool,
    },
    /// Render config templates (__NAME__ placeholders) into var/, as start does
    SubConf {
        /// Render with this service's environment (default: the playpen's)
        #[arg(long, value_name = "NAME")]
        service: Option<String>,
        /// Templates, relative to the playpen (e.g. etc/nginx/nginx.conf); default: the service's service_config_files
        files: Vec<String>,
    },
    /// Register an installed service: validate its config, create its var/ directories (package managers call this)
    NewService {
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Unregister a service: stop it, remove its registration, symlink, pidfile and start record (safe to repeat)
    RemoveService {
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Edit a service's config fragment (services/NAME/config) with $VISUAL or $EDITOR; it is installed only when `check` passes, else the edit is kept for --recover
    Edit {
        service: String,
        /// After a good edit, restart the service as `servicectl restart NAME` does
        #[arg(long, conflicts_with = "discard")]
        restart: bool,
        /// Reopen the kept copy of an edit that did not pass its check
        #[arg(long, conflicts_with = "discard")]
        recover: bool,
        /// Drop the kept copy of an edit that did not pass its check (safe to repeat)
        #[arg(long)]
        discard: bool,
    },
    /// Install or remove a service package the way a package manager would
    #[command(subcommand)]
    Package(PackageCommand),
    /// Before upgrading packages: stop the services that must not run meanwhile, and record them
    PreUpgrade {
        #[arg(required = true)]
        packages: Vec<String>,
    },
    /// After upgrading packages: start what pre-upgrade stopped, restart what must restart
    PostUpgrade {
        #[arg(required = true)]
        packages: Vec<String>,
    },
    /// Print a shell completion script
    Completions { shell: clap_complete::Shell },
    /// Supervise the playpen: adopt what runs, bring the role's enabled services up, keep them running (restart policies), until `servicectl shutdown`
    Supervise {
        /// Detach and return once the control socket accepts (log: var/run/servicectl.supervise.output)
        #[arg(long)]
        daemon: bool,
        /// Adopt what runs, start nothing
        #[arg(long)]
        no_start: bool,
    },
    /// The supervisor's output keeper: keeps the services' output pipes and writes and rotates their files (started by `supervise`)
    #[command(name = "keep-output", hide = true)]
    KeepOutput {
        /// A connection to the supervisor that started it
        #[arg(long)]
        client_fd: Option<i32>,
    },
    /// Stop every service (dependants first) and end the supervisor
    Shutdown,
    /// Mark services enabled in var/servicectl/state: `up` and `start` (without names) start them
    Enable {
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Mark services disabled in var/servicectl/state: `up` stops them, `start` (without names) leaves them out
    Disable {
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Bring every service of the role to its desired state: start the enabled, stop the disabled (safe to repeat)
    Up,
    /// Stop every service of the role, dependants first; none is restarted (safe to repeat)
    Down,
    /// Wait until services are ready (their ping passes, or they run): exit 0, or 1 at the timeout naming those that are not
    Wait {
        /// Services to wait for (default: the role's, or every service the supervisor keeps running)
        services: Vec<String>,
        /// Seconds to wait at most
        #[arg(long, default_value_t = 60.0, value_name = "S")]
        timeout: f64,
    },
    /// Print the end of services' output files (var/run/NAME.output), each line prefixed with its service when several
    Logs {
        /// Services (default: the role's)
        services: Vec<String>,
        /// Keep printing what is appended, across rotations
        #[arg(short = 'f', long)]
        follow: bool,
        /// Lines of each file to print first
        #[arg(short = 'n', long, default_value_t = 10, value_name = "LINES")]
        lines: usize,
    },
    /// Show every typed port of the services: its number, how it was worked out (set, PORT_PREFIX + offset, default) and whether something listens on it now
    Ports {
        /// Services to show (default: the role's playpen_services, else every installed service)
        services: Vec<String>,
        /// Show every installed service, not only the role's
        #[arg(long)]
        all: bool,
    },
    /// Start services (and what they depend on), wait until they are ready, run CMD with the playpen's environment, then stop what this started; exits with CMD's status
    #[command(
        after_help = "Examples:\n  servicectl run -- cargo test                  the role's services around a test suite\n  servicectl run redis -- sh -c 'redis-cli -p \"$REDIS_PORT\" ping'\n\nCMD gets what `servicectl env` exports plus every typed port of the services (REDIS_PORT:\nquote it, as above, so that CMD's shell expands it, not yours), servicectl's terminal,\nstdin and current directory. Services that ran before stay running. A signal before CMD\nruns cancels the run; SIGINT and SIGTERM while it runs go to CMD, and the services are\nstopped after it ends.\nExit: CMD's status (128+N when signal N ended it, 127 not found, 126 not executable),\n1 when a service could not be made ready (CMD is not run), 2 without `--`."
    )]
    Run {
        /// Services to bring up (default: the role's playpen_services)
        services: Vec<String>,
        /// The command and its arguments, after `--`
        #[arg(last = true, value_name = "CMD")]
        command: Vec<std::ffi::OsString>,
    },
    /// List every playpen of this user (the registry in $XDG_STATE_HOME/servicectl/playpens): PLAYPEN_TAG, PORT_PREFIX (leased or set), supervisor PID, services running/known, ports listening
    #[command(
        after_help = "Playpens are registered by `init`, `start`, `supervise` and a PORT_PREFIX=auto lease; \none whose directory is gone is left out. Reads files and the kernel's socket table only: \nno process is started, no config evaluated (TAG and PORT_PREFIX are as last recorded)."
    )]
    Playpens,
    /// Write the services as units of another service manager
    #[command(subcommand)]
    Export(ExportCommand),
    /// Start the playpen's supervisor at boot: a systemd unit servicectl-TAG.service, else a @reboot crontab line
    #[command(subcommand)]
    Boot(BootCommand),
    /// Print the man page (roff), made from these definitions; scripts/gen-man writes it to share/man/servicectl.1
    #[command(name = "__man", hide = true)]
    Man,
    /// Print what may stand in place of the last WORD (completion scripts call this)
    #[command(name = "__complete", hide = true)]
    Complete {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        words: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// systemd units: one per service (cron: .timer + .service, inetd tcp: .socket with Accept=yes), an environment file each, and a target named after PLAYPEN_TAG
    Systemd {
        /// Services to export, with what they depend on (default: the role's playpen_services)
        services: Vec<String>,
        /// Where to write the units (default: var/export/systemd/ of the playpen)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum BootCommand {
    /// Install what starts `servicectl supervise` at boot (not now); safe to repeat
    Enable {
        /// systemd: a unit (system unit as root, else a user unit; the default where systemd runs or SERVICECTL_UNIT_DIR is set); cron: a @reboot line in the user's crontab
        #[arg(long, value_enum)]
        via: Option<BootVia>,
    },
    /// Remove the unit and the crontab line, whichever is installed (a running supervisor is left alone); safe to repeat
    Disable,
    /// Say what is installed to start the playpen at boot, and whether its supervisor runs
    Status,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum BootVia {
    Systemd,
    Cron,
}

#[derive(Subcommand, Debug)]
pub enum PackageCommand {
    /// Copy a package directory into ext/ (all or nothing), then new-service each of its services; upgrades an installed version
    Install { dir: PathBuf },
    /// Remove-service each of the package's services, then remove its files from ext/
    Remove { name: String },
}

/// Parse the arguments and run; returns the process exit code.
pub fn main() -> i32 {
    let parsed = fast::status(std::env::args_os().skip(1)).map_or_else(Cli::try_parse, Ok);
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            render::error(&e);
            exit::for_error(&e)
        }
    };
    // The work is done; output that could not be written only changes the exit code
    // when it is not a reader that went away (`| head -1` ends the output, quietly).
    match render::stdout_failure() {
        Some(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            render::error(&Error::new(
                ErrorKind::Io,
                format!("cannot write to standard output: {e}"),
            ));
            code.max(exit::FAILED)
        }
        _ => code,
    }
}

fn open(cli: &Cli) -> Result<Session> {
    Session::open(Playpen::discover(cli.playpen.as_deref())?)
}

/// The role config of the session's playpen (where output tells people to list services
/// and set variables).
fn role_config(session: &Session) -> PathBuf {
    session
        .playpen
        .role_config(&session.playpen.role().unwrap_or_default())
}

/// Run one parsed command: call the library, hand its value to [`render::show`], pick
/// the exit code ([`exit`]).
pub fn run(cli: Cli) -> Result<i32> {
    let json = cli.json;
    if let Some(code) = route::route(&cli)? {
        return Ok(code);
    }
    let show = |report: &dyn Report| render::show(report, json);
    match &cli.command {
        Command::Init { dir, role } => {
            let (playpen, found) = Playpen::init_found(dir, role)?;
            // A registry that cannot be written must not undo a playpen just made.
            if let Err(e) = crate::playpen::roster::note(&playpen.root, None, None) {
                render::warning(&e.to_string());
            }
            show(&shown::Initialized {
                playpen: &playpen,
                role,
                found: found.as_deref(),
            });
            Ok(exit::OK)
        }
        Command::Start { services } => act(&cli, services, ops::start),
        Command::Stop { services } => act(&cli, services, ops::stop),
        Command::Restart { services } => act(&cli, services, ops::restart),
        Command::Status { services } => {
            let mut session = open(&cli)?;
            match ops::status(&mut session, services) {
                Ok(statuses) => {
                    let lease = crate::config::lease::current(&session.playpen).unwrap_or(None);
                    show(&shown_status::Statuses(&statuses, lease));
                    Ok(exit::for_status(&statuses))
                }
                Err(e) => {
                    show(&render::Failed(&e));
                    Ok(exit::for_error(&e))
                }
            }
        }
        Command::Ping { services } => {
            let mut session = open(&cli)?;
            let (results, warnings) = ops::ping(&mut session, services)?;
            show(&shown_status::Pings {
                results: &results,
                warnings: &warnings,
                role_config: role_config(&session),
            });
            let failed = results.iter().any(|(_, r)| !r.as_ref().is_ok_and(|p| p.ok));
            Ok(exit::failed_if(failed))
        }
        Command::PrintConfig { service, all } => {
            let mut session = open(&cli)?;
            let prepared = ops::print_config(&mut session, service)?;
            show(&shown::ConfigShown {
                service,
                prepared: &prepared,
                all: *all,
            });
            Ok(exit::OK)
        }
        Command::Check { services, all } => {
            let mut session = open(&cli)?;
            let findings = ops::check(&mut session, services, *all)?;
            show(&shown::Findings(&findings));
            Ok(exit::failed_if(findings.iter().any(|f| !f.ok)))
        }
        Command::Env { service, all } => {
            let mut session = open(&cli)?;
            show(&ops::environment(&mut session, service.as_deref(), *all)?);
            Ok(exit::OK)
        }
        Command::MissingEnv {
            services,
            verbose,
            script,
        } => {
            let mut session = open(&cli)?;
            let report = ops::missing_env(&mut session, services)?;
            let form = match (*script, *verbose) {
                (true, _) => shown::MissingForm::Script,
                (false, true) => shown::MissingForm::Verbose,
                (false, false) => shown::MissingForm::Names,
            };
            show(&shown::MissingReport {
                report: &report,
                form,
                role_config: role_config(&session),
            });
            Ok(exit::failed_if(
                report.iter().any(|r| !r.missing.is_empty()),
            ))
        }
        Command::SubConf { service, files } => {
            let mut session = open(&cli)?;
            let written = ops::sub_conf(&mut session, service.as_deref(), files)?;
            show(&shown::Rendered(&written));
            Ok(exit::OK)
        }
        Command::Edit {
            service,
            restart,
            recover,
            discard,
        } => {
            let mut session = open(&cli)?;
            let edited = if *discard {
                ops::edit::discard(&mut session, service)?
            } else {
                ops::edit::edit(&mut session, service, *recover, &ops::edit::run_editor)?
            };
            drop(session);
            let restarted = match (edited.result, *restart) {
                (ops::edit::EditResult::Installed, true) => {
                    Some(route::restart(&cli, std::slice::from_ref(service))?)
                }
                _ => None,
            };
            show(&render::edit::EditShown {
                edited: &edited,
                restart: restarted.as_ref().map(|(r, w)| (r, w.as_slice())),
            });
            let restart_failed = restarted
                .as_ref()
                .is_some_and(|(r, _)| r.iter().any(|(_, r)| r.is_err()));
            Ok(exit::failed_if(
                !edited.result.is_success() || restart_failed,
            ))
        }
        Command::NewService { services } => {
            let mut session = open(&cli)?;
            let (reports, failure) = each(services, |name| {
                ops::package::new_service(&mut session, name)
            });
            let role_config = role_config(&session);
            shown_unless_failed(
                json,
                failure.as_ref(),
                &shown::Registered {
                    reports: &reports,
                    role_config: &role_config,
                },
            );
            failure.map_or(Ok(exit::OK), Err)
        }
        Command::RemoveService { services } => {
            let mut session = open(&cli)?;
            let (reports, failure) = each(services, |name| {
                ops::package::remove_service(&mut session, name)
            });
            shown_unless_failed(json, failure.as_ref(), &shown::Unregistered(&reports));
            failure.map_or(Ok(exit::OK), Err)
        }
        Command::Package(PackageCommand::Install { dir }) => {
            let mut session = open(&cli)?;
            let report = ops::package::install(&mut session, dir)?;
            show(&shown::Installed {
                report: &report,
                role_config: &role_config(&session),
            });
            Ok(exit::OK)
        }
        Command::Package(PackageCommand::Remove { name }) => {
            let mut session = open(&cli)?;
            let removed = ops::package::remove(&mut session, name)?;
            show(&shown::PackageRemoved {
                package: name,
                removed: &removed,
            });
            Ok(exit::OK)
        }
        Command::PreUpgrade { packages } | Command::PostUpgrade { packages } => {
            let mut session = open(&cli)?;
            let report = if matches!(cli.command, Command::PreUpgrade { .. }) {
                ops::upgrade::pre_upgrade(&mut session, packages)?
            } else {
                ops::upgrade::post_upgrade(&mut session, packages)?
            };
            show(&shown::Upgraded(&report));
            Ok(exit::OK)
        }
        Command::Ports { services, all } => {
            let mut session = open(&cli)?;
            show(&shown::Ports(&ops::ports::ports(
                &mut session,
                services,
                *all,
            )?));
            Ok(exit::OK)
        }
        Command::Playpens => {
            show(&render::devloop::Playpens(&ops::playpens::playpens()?));
            Ok(exit::OK)
        }
        Command::Run { services, command } => {
            if command.is_empty() {
                render::error(&run_without_separator(services));
                return Ok(exit::USAGE);
            }
            let mut session = open(&cli)?;
            let report = ops::run::run(&mut session, services, command, &|_, _| {})?;
            show(&render::devloop::Ran(&report));
            Ok(report.exit_code())
        }
        Command::Export(ExportCommand::Systemd { services, dir }) => {
            let mut session = open(&cli)?;
            show(&ops::export::systemd(
                &mut session,
                services,
                dir.as_deref(),
            )?);
            Ok(exit::OK)
        }
        Command::Boot(command) => {
            let mut session = open(&cli)?;
            let (boot, action) = match command {
                BootCommand::Enable { via } => {
                    let via = match via {
                        Some(BootVia::Systemd) => ops::boot::Via::Systemd,
                        Some(BootVia::Cron) => ops::boot::Via::Cron,
                        None => ops::boot::default_via(),
                    };
                    (ops::boot::enable(&mut session, via)?, BootAction::Enable)
                }
                BootCommand::Disable => (ops::boot::disable(&mut session)?, BootAction::Disable),
                BootCommand::Status => (ops::boot::status(&mut session)?, BootAction::Status),
            };
            let supervisor = crate::control::connect(&session.playpen.root)?.is_some();
            show(&render::boot::BootShown {
                boot: &boot,
                action,
                supervisor,
            });
            let installed = boot.unit.is_some() || boot.crontab.is_some();
            Ok(match action {
                BootAction::Status if !installed => exit::NOT_RUNNING,
                _ => exit::OK,
            })
        }
        Command::Man => {
            render::out(&man::page());
            Ok(exit::OK)
        }
        Command::Supervise { daemon, no_start } => {
            let playpen = Playpen::discover(cli.playpen.as_deref())?;
            let options = crate::supervise::Options {
                daemon: *daemon,
                no_start: *no_start,
            };
            crate::supervise::supervise(&playpen, options)
        }
        Command::KeepOutput { client_fd } => {
            let playpen = Playpen::discover(cli.playpen.as_deref())?;
            crate::supervise::keeper::keep_output(&playpen, *client_fd)
        }
        Command::Shutdown
        | Command::Enable { .. }
        | Command::Disable { .. }
        | Command::Up
        | Command::Down
        | Command::Wait { .. }
        | Command::Logs { .. } => route::direct(&cli),
        Command::Completions { shell } => {
            let script = match shell {
                clap_complete::Shell::Bash => complete::BASH.to_string(),
                clap_complete::Shell::Zsh => complete::ZSH.to_string(),
                clap_complete::Shell::Fish => complete::FISH.to_string(),
                // Static scripts (commands and options, no service names), into a
                // buffer: generate panics when it cannot write.
                other => {
                    let mut script = Vec::new();
                    clap_complete::generate(*other, &mut Cli::command(), "servicectl", &mut script);
                    String::from_utf8_lossy(&script).into_owned()
                }
            };
            render::out(&script);
            Ok(exit::OK)
        }
        Command::Complete { words } => {
            let lines: String = complete::candidates(words)
                .iter()
                .map(|c| format!("{c}\n"))
                .collect();
            render::out(&lines);
            Ok(exit::OK)
        }
    }
}

/// `run` without `--`: the words given were taken for service names; say where the
/// command goes.
fn run_without_separator(words: &[String]) -> Error {
    let example = if words.is_empty() {
        "servicectl run -- CMD [ARG…]".to_string()
    } else {
        format!("servicectl run -- {}", words.join(" "))
    };
    Error::new(
        ErrorKind::Config,
        "run: no command: the command to run goes after `--`",
    )
    .with_hint(format!(
        "write `servicectl run [NAME…] -- CMD [ARG…]`, e.g. `{example}` (names before `--` are services)"
    ))
}

/// Run `f` on each name until one fails: the reports of those done, and the failure.
fn each<R>(names: &[String], mut f: impl FnMut(&str) -> Result<R>) -> (Vec<R>, Option<Error>) {
    let mut done = Vec::new();
    for name in names {
        match f(name) {
            Ok(r) => done.push(r),
            Err(e) => return (done, Some(e)),
        }
    }
    (done, None)
}

/// A command that acts on several names one after the other: what was done is shown
/// (as text) even when a later name failed; the JSON document only when all succeeded
/// (the failure is the command's error).
fn shown_unless_failed(json: bool, failure: Option<&Error>, report: &dyn Report) {
    if !(json && failure.is_some()) {
        render::show(report, json);
    }
}

type Op =
    fn(&mut Session, &[String], ops::Progress) -> Result<(ops::Results<Outcome>, Vec<String>)>;

/// start / stop / restart: progress as each service finishes, then a summary.
fn act(cli: &Cli, services: &[String], op: Op) -> Result<i32> {
    let mut session = open(cli)?;
    let progress = render::Progress::new(cli.json, Style::for_stdout(), services.len());
    let (results, warnings) = op(&mut session, services, &|name, step| {
        progress.step(name, step)
    })?;
    // A start cut short by SIGTERM, SIGHUP or SIGINT fails, even when what had begun
    // was finished (the warnings say so).
    let failed = results.iter().any(|(_, r)| r.is_err()) || ops::interrupted();
    progress.finish(&results, &warnings, &role_config(&session));
    Ok(exit::failed_if(failed))
}
