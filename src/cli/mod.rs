//! The command line: parse with clap, call the library, print, pick the exit code.

pub mod exit;
pub mod render;

use crate::config::session::Session;
use crate::error::{Error, ErrorKind, Result};
use crate::ops;
use crate::playpen::Playpen;
use crate::service::lifecycle::Outcome;
use clap::{CommandFactory, Parser, Subcommand};
use render::Style;
use std::path::PathBuf;
use std::sync::Mutex;

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
    let cli = match Cli::try_parse() {
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
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            render::error(&e);
            code_for(&e)
        }
    }
}

fn code_for(e: &Error) -> i32 {
    match e.kind {
        ErrorKind::UnknownService => exit::UNKNOWN_SERVICE,
        _ => exit::FAILED,
    }
}

fn open(cli: &Cli) -> Result<Session> {
    Session::open(Playpen::discover(cli.playpen.as_deref())?)
}

fn json_print(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serialisable")
    );
}

pub fn run(cli: Cli) -> Result<i32> {
    match &cli.command {
        Command::Init { dir, role } => {
            let playpen = Playpen::init(dir, role)?;
            if cli.json {
                json_print(&serde_json::json!({"playpen": playpen.root, "role": role}));
            } else {
                println!(
                    "created playpen {} (role {role})\nnext: install services with `servicectl --playpen {} package install DIR`, list them in {}",
                    playpen.root.display(),
                    playpen.root.display(),
                    playpen.role_config(role).display()
                );
            }
            Ok(exit::OK)
        }
        Command::Start { services } => act(&cli, services, ops::start),
        Command::Stop { services } => act(&cli, services, ops::stop),
        Command::Restart { services } => act(&cli, services, ops::restart),
        Command::Status { services } => {
            let mut session = open(&cli)?;
            let statuses = match ops::status(&mut session, services) {
                Ok(s) => s,
                Err(e) => {
                    if cli.json {
                        json_print(&serde_json::json!({"error": e.to_string()}));
                    }
                    render::error(&e);
                    return Ok(code_for(&e));
                }
            };
            if cli.json {
                json_print(&statuses);
            } else if statuses.is_empty() {
                println!("no services");
            } else {
                print!("{}", render::status_table(&statuses, Style::for_stdout()));
            }
            Ok(render::status_exit_code(&statuses))
        }
        Command::Ping { services } => {
            let mut session = open(&cli)?;
            let (results, warnings) = ops::ping(&mut session, services)?;
            if results.is_empty() && !cli.json {
                nothing_to_do(&session);
            }
            warnings.iter().for_each(|w| render::warning(w));
            let style = Style::for_stdout();
            let mut failed = false;
            let mut json = Vec::new();
            for (name, result) in &results {
                match result {
                    Ok(p) => {
                        failed |= !p.ok;
                        if cli.json {
                            json.push(serde_json::to_value(p).expect("serialisable"));
                        } else if p.ok {
                            println!(
                                "{name}: {} ({}){}",
                                style.green("ok"),
                                p.by,
                                if p.detail.is_empty() {
                                    String::new()
                                } else {
                                    format!(": {}", p.detail)
                                }
                            );
                        } else {
                            println!("{name}: {} ({}): {}", style.red("FAILED"), p.by, p.detail);
                        }
                    }
                    Err(e) => {
                        failed = true;
                        if cli.json {
                            json.push(serde_json::json!({"name": name, "ok": false, "error": e.to_string()}));
                        }
                        render::error(e);
                    }
                }
            }
            if cli.json {
                json_print(&json);
            }
            Ok(if failed { exit::FAILED } else { exit::OK })
        }
        Command::PrintConfig { service, all } => {
            let mut session = open(&cli)?;
            let prepared = ops::print_config(&mut session, service)?;
            if cli.json {
                json_print(&serde_json::json!({
                    "service": service,
                    "version": prepared.config.id.version,
                    "fragments": prepared.config.fragments,
                    "variables": prepared.config.vars,
                    "environment": prepared.env,
                }));
            } else {
                println!(
                    "# {service}: evaluated from {}",
                    prepared
                        .config
                        .fragments
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                for (name, value) in &prepared.config.vars {
                    if !all && value.origin == crate::config::Origin::Environment {
                        continue;
                    }
                    let marker = if value.exported { "export " } else { "" };
                    println!(
                        "{marker}{name}={}  # {}",
                        shell_words::quote(&value.value),
                        value.origin
                    );
                }
                for (name, value) in &prepared.env {
                    if !prepared.config.vars.contains_key(name) {
                        println!(
                            "export {name}={}  # (resolved typed variable)",
                            shell_words::quote(value)
                        );
                    }
                }
            }
            Ok(exit::OK)
        }
        Command::Check { services, all } => {
            let mut session = open(&cli)?;
            let findings = ops::check(&mut session, services, *all)?;
            let bad = findings.iter().filter(|f| !f.ok).count();
            if cli.json {
                json_print(&findings);
            } else {
                let style = Style::for_stdout();
                for f in &findings {
                    for w in &f.warnings {
                        render::warning(w);
                    }
                    if f.ok {
                        println!("{}: {}", f.service, style.green("ok"));
                    } else {
                        for p in &f.problems {
                            println!("{}: {} {p}", f.service, style.red("problem:"));
                        }
                    }
                }
                println!("{} checked, {} with problems", findings.len(), bad);
            }
            Ok(if bad > 0 { exit::FAILED } else { exit::OK })
        }
        Command::Env { service, all } => {
            let mut session = open(&cli)?;
            let env = ops::environment(&mut session, service.as_deref(), *all)?;
            if cli.json {
                json_print(&env);
            } else {
                for (k, v) in env {
                    println!("export {k}={}", shell_words::quote(&v));
                }
            }
            Ok(exit::OK)
        }
        Command::MissingEnv {
            services,
            verbose,
            script,
        } => {
            let mut session = open(&cli)?;
            let report = ops::missing_env(&mut session, services)?;
            let any_missing = report.iter().any(|r| !r.missing.is_empty());
            if cli.json {
                json_print(&report);
            } else if *script {
                for r in &report {
                    if !r.missing.is_empty() {
                        print!(
                            "{}",
                            crate::config::envars::missing_script(&r.service, &r.missing)
                        );
                    }
                }
            } else {
                for r in &report {
                    if r.missing.is_empty() {
                        continue;
                    }
                    if *verbose {
                        print!(
                            "{}",
                            crate::config::envars::describe(&r.service, &r.missing)
                        );
                    } else {
                        for m in &r.missing {
                            println!("{}: {}", r.service, m.name);
                        }
                    }
                }
                if !any_missing {
                    println!("nothing missing");
                } else if !*script {
                    eprintln!(
                        "hint: `servicectl missing-env --script >> {}` sets each to its default",
                        session
                            .playpen
                            .role_config(&session.playpen.role().unwrap_or_default())
                            .display()
                    );
                }
            }
            Ok(if any_missing { exit::FAILED } else { exit::OK })
        }
        Command::SubConf { service, files } => {
            let mut session = open(&cli)?;
            let written = ops::sub_conf(&mut session, service.as_deref(), files)?;
            if cli.json {
                json_print(&written);
            } else {
                for w in written {
                    println!("rendered {}", w.display());
                }
            }
            Ok(exit::OK)
        }
        Command::NewService { services } => {
            let mut session = open(&cli)?;
            let mut reports = Vec::new();
            for name in services {
                let r = crate::ops::package::new_service(&mut session, name)?;
                if !cli.json {
                    print_new_service(&session, &r);
                }
                reports.push(r);
            }
            if cli.json {
                json_print(&reports);
            }
            Ok(exit::OK)
        }
        Command::RemoveService { services } => {
            let mut session = open(&cli)?;
            let mut reports = Vec::new();
            for name in services {
                let r = crate::ops::package::remove_service(&mut session, name)?;
                if !cli.json {
                    let mut done = Vec::new();
                    if r.stopped {
                        done.push("stopped".to_string());
                    }
                    if r.unregistered {
                        done.push("unregistered".to_string());
                    }
                    if !r.removed_files.is_empty() {
                        done.push(format!("removed {} file(s)", r.removed_files.len()));
                    }
                    if done.is_empty() {
                        println!("{name}: nothing to remove (not registered)");
                    } else {
                        println!("{name}: {}", done.join(", "));
                    }
                }
                reports.push(r);
            }
            if cli.json {
                json_print(&reports);
            }
            Ok(exit::OK)
        }
        Command::Package(PackageCommand::Install { dir }) => {
            let mut session = open(&cli)?;
            let report = crate::ops::package::install(&mut session, dir)?;
            if cli.json {
                json_print(&report);
            } else {
                match &report.replaced {
                    Some(old) if *old == report.package => {
                        println!("reinstalled {old} ({} files)", report.files)
                    }
                    Some(old) => println!(
                        "upgraded {old} to {} ({} files)",
                        report.package, report.files
                    ),
                    None => println!("installed {} ({} files)", report.package, report.files),
                }
                if let Some(u) = &report.upgrade {
                    print_upgrade(u);
                }
                for s in &report.services {
                    print_new_service(&session, s);
                }
            }
            Ok(exit::OK)
        }
        Command::Package(PackageCommand::Remove { name }) => {
            let mut session = open(&cli)?;
            let removed = crate::ops::package::remove(&mut session, name)?;
            if cli.json {
                json_print(&removed);
            } else {
                for r in &removed {
                    println!(
                        "{}: removed{}",
                        r.service,
                        if r.stopped { " (stopped first)" } else { "" }
                    );
                }
                println!("package {name} removed");
            }
            Ok(exit::OK)
        }
        Command::PreUpgrade { packages } | Command::PostUpgrade { packages } => {
            let mut session = open(&cli)?;
            let report = if matches!(cli.command, Command::PreUpgrade { .. }) {
                crate::ops::upgrade::pre_upgrade(&mut session, packages)?
            } else {
                crate::ops::upgrade::post_upgrade(&mut session, packages)?
            };
            if cli.json {
                json_print(&report);
            } else {
                print_upgrade(&report);
            }
            Ok(exit::OK)
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "servicectl",
                &mut std::io::stdout(),
            );
            Ok(exit::OK)
        }
    }
}

type Op =
    fn(&mut Session, &[String], ops::Progress) -> Result<(ops::Results<Outcome>, Vec<String>)>;

/// start / stop / restart: progress as each service finishes, then a summary.
fn act(cli: &Cli, services: &[String], op: Op) -> Result<i32> {
    let mut session = open(cli)?;
    let json = cli.json;
    let style = Style::for_stdout();
    let printed = Mutex::new(Vec::<String>::new());
    // Services left as they were are summed up at the end, not listed one per line.
    let unchanged = Mutex::new(Vec::<(String, String)>::new());
    let progress = |name: &str, result: &Result<Outcome>| {
        printed.lock().expect("not poisoned").push(name.to_string());
        if json {
            return;
        }
        match result {
            Ok(outcome @ (Outcome::AlreadyRunning { .. } | Outcome::AlreadyStopped))
                if services.len() != 1 =>
            {
                unchanged
                    .lock()
                    .expect("not poisoned")
                    .push((name.to_string(), outcome.to_string()));
            }
            Ok(outcome) => {
                let word = outcome.to_string();
                let shown = match outcome {
                    Outcome::Started { .. }
                    | Outcome::Stopped { .. }
                    | Outcome::Restarted { .. }
                    | Outcome::Reloaded { .. } => style.green(&word),
                    _ => word,
                };
                println!("{name}: {shown}");
            }
            Err(e) => render::error(e),
        }
    };
    let (results, warnings) = op(&mut session, services, &progress)?;
    if results.is_empty() && !json {
        nothing_to_do(&session);
    }
    warnings.iter().for_each(|w| render::warning(w));
    let mut unchanged = unchanged.into_inner().expect("not poisoned");
    unchanged.sort();
    let mut by_state: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (name, state) in unchanged {
        // "already running (pid 12)" → "already running"
        let state = state.split(" (").next().unwrap_or(&state).to_string();
        by_state.entry(state).or_default().push(name);
    }
    for (state, names) in by_state {
        println!(
            "{state} ({}): {}",
            names.len(),
            crate::text::short_list(&names, 12)
        );
    }
    let printed = printed.into_inner().expect("not poisoned");
    let mut code = exit::OK;
    for (name, result) in &results {
        if let Err(e) = result {
            code = exit::FAILED;
            if !json && !printed.contains(name) {
                render::error(e);
            }
        }
    }
    if json {
        let rows: Vec<serde_json::Value> = results
            .iter()
            .map(|(name, r)| match r {
                Ok(o) => serde_json::json!({"service": name, "ok": true, "result": o.word(), "pid": match o {
                    Outcome::Started { pid } | Outcome::AlreadyRunning { pid } | Outcome::Stopped { pid, .. } | Outcome::Restarted { pid } => *pid,
                    Outcome::Reloaded { pid } | Outcome::StoppedForFiledep { pid, .. } => Some(*pid),
                    Outcome::AlreadyStopped => None,
                }}),
                Err(e) => serde_json::json!({"service": name, "ok": false, "error": e.to_string()}),
            })
            .collect();
        json_print(&rows);
    }
    Ok(code)
}

fn print_new_service(session: &Session, r: &crate::ops::package::NewService) {
    println!(
        "{}: {}",
        r.service,
        if r.newly_registered {
            "registered"
        } else {
            "already registered (checked again)"
        }
    );
    let role_config = session
        .playpen
        .role_config(&session.playpen.role().unwrap_or_default());
    if !r.missing.is_empty() {
        println!(
            "{}: missing variables: {} — add them to {} (`servicectl missing-env --script {} >> {}` sets defaults):\n{}",
            r.service,
            r.missing.join(" "),
            role_config.display(),
            r.service,
            role_config.display(),
            r.missing_script.trim_end()
        );
    }
    if !r.in_role {
        println!(
            "{}: not in playpen_services of {}; add it there to start it with the role (or `servicectl start {}`)",
            r.service,
            role_config.display(),
            r.service
        );
    }
}

fn print_upgrade(r: &crate::ops::upgrade::Report) {
    for w in &r.warnings {
        render::warning(w);
    }
    for (what, list) in [
        ("stopped", &r.stopped),
        ("started", &r.started),
        ("restarted", &r.restarted),
        ("left running, marked upgraded", &r.marked),
    ] {
        if !list.is_empty() {
            println!("{what}: {}", list.join(" "));
        }
    }
}

/// No names given and the role lists no (enabled) services: say so, and where to list them.
fn nothing_to_do(session: &Session) {
    let role = session.playpen.role().unwrap_or_default();
    println!(
        "no services to act on: playpen_services in {} is empty; list services there or name them",
        session.playpen.role_config(&role).display()
    );
}
