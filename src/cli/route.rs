//! The supervisor's commands, and how commands route: start, stop, restart, status, up,
//! down, wait and shutdown go to the playpen's supervisor when one answers on its
//! socket, else act directly as without one (a package manager's hook never needs a
//! daemon). enable, disable and logs always act directly on the files.

use super::{Cli, Command, act, exit, open};
use crate::control::{self, Op, Reply, Row};
use crate::error::{Error, Result};
use crate::ops;
use crate::playpen::Playpen;
use crate::render::{self, Style, commands, status};
use crate::service::outcome::Outcome;

/// The request a command makes of a running supervisor, if it makes one.
fn request(command: &Command) -> Option<Op> {
    Some(match command {
        Command::Start { services } => Op::Start {
            services: services.clone(),
        },
        Command::Stop { services } => Op::Stop {
            services: services.clone(),
        },
        Command::Restart { services } => Op::Restart {
            services: services.clone(),
        },
        Command::Status { services } => Op::Status {
            services: services.clone(),
        },
        Command::Up => Op::Up,
        Command::Down => Op::Down,
        Command::Wait { services, timeout } => Op::Wait {
            services: services.clone(),
            timeout_secs: Some(*timeout),
        },
        Command::Shutdown => Op::Shutdown,
        _ => return None,
    })
}

/// How long a command whose supervisor hung up on it waits for that supervisor to exit.
const LOST_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Some(exit code) when the supervisor handled the command; None: act directly.
pub fn route(cli: &Cli) -> Result<Option<i32>> {
    let Some(op) = request(&cli.command) else {
        return Ok(None);
    };
    let playpen = Playpen::discover(cli.playpen.as_deref())?;
    let Some(mut client) = control::connect(&playpen.root)? else {
        return Ok(None);
    };
    match client.call_or_lost(&op)? {
        Some(reply) => {
            let code = show(cli, &playpen, &op, reply);
            if matches!(op, Op::Shutdown) {
                // Returns once the supervisor is gone (its keeper's last writes done,
                // its lock released), so that a `supervise` right after is not refused.
                crate::supervise::lock::gone_within(&playpen, LOST_GRACE * 2);
            }
            Ok(Some(code))
        }
        // It ended before it answered (a shutdown that had just finished, a kill): once
        // it is gone, the command acts directly, as with no supervisor.
        None if crate::supervise::lock::gone_within(&playpen, LOST_GRACE) => Ok(None),
        None => Err(
            Error::runtime("the supervisor closed the connection without an answer").with_hint(
                "see var/run/servicectl.supervise.output; `servicectl status` says what runs",
            ),
        ),
    }
}

/// Restart services as `servicectl restart` does (through the supervisor when one
/// answers), for a command that restarts after its own work (`edit --restart`).
pub fn restart(cli: &Cli, services: &[String]) -> Result<(ops::Results<Outcome>, Vec<String>)> {
    let playpen = Playpen::discover(cli.playpen.as_deref())?;
    if let Some(mut client) = control::connect(&playpen.root)? {
        let op = Op::Restart {
            services: services.to_vec(),
        };
        return match client.call(&op)? {
            Reply::Results { results, warnings } => Ok((
                results.into_iter().map(Row::into_result).collect(),
                warnings,
            )),
            Reply::Error { error } => Err(Error::from(error)),
            _ => Err(Error::runtime(
                "the supervisor sent an answer that is not a restart's",
            )),
        };
    }
    let mut session = open(cli)?;
    ops::restart(&mut session, services, &|_, _| {})
}

/// Print the supervisor's answer as the command prints its own; the exit code.
fn show(cli: &Cli, playpen: &Playpen, op: &Op, reply: Reply) -> i32 {
    match reply {
        Reply::Error { error } => {
            let e = Error::from(error);
            render::show(&render::Failed(&e), cli.json);
            exit::for_error(&e)
        }
        Reply::Results { results, warnings } => {
            let named = match op {
                Op::Start { services } | Op::Stop { services } | Op::Restart { services } => {
                    services.len()
                }
                _ => 0,
            };
            let results: ops::Results<Outcome> =
                results.into_iter().map(Row::into_result).collect();
            let role = playpen.role_config(&playpen.role().unwrap_or_default());
            render::show(
                &render::progress::Answered {
                    results: &results,
                    warnings: &warnings,
                    named,
                    shut_down: matches!(op, Op::Shutdown).then_some(playpen.root.as_path()),
                    role_config: &role,
                },
                cli.json,
            );
            exit::failed_if(results.iter().any(|(_, r)| r.is_err()))
        }
        Reply::Status { services } => {
            let lease = crate::config::lease::current(playpen).unwrap_or(None);
            render::show(&status::Statuses(&services, lease), cli.json);
            exit::for_status(&services)
        }
        Reply::Wait { ready, not_ready } => {
            let not: Vec<(String, String)> = not_ready
                .into_iter()
                .map(|n| (n.service, n.state))
                .collect();
            render::show(
                &status::Readiness {
                    ready: &ready,
                    not_ready: &not,
                },
                cli.json,
            );
            exit::failed_if(!not.is_empty())
        }
        Reply::Hello { .. } => exit::OK,
    }
}

/// The supervisor's commands without a supervisor (and enable, disable, logs).
pub fn direct(cli: &Cli) -> Result<i32> {
    match &cli.command {
        Command::Shutdown => {
            let playpen = Playpen::discover(cli.playpen.as_deref())?;
            render::show(&status::NoSupervisor(&playpen.root), cli.json);
            Ok(exit::OK)
        }
        Command::Enable { services } | Command::Disable { services } => {
            let enable = matches!(cli.command, Command::Enable { .. });
            let mut session = open(cli)?;
            let names = session.targets(services)?;
            let typed: Vec<(String, String)> = names
                .iter()
                .map(|n| {
                    let kind = session
                        .settings(n)
                        .map(|(s, _)| s.service_type.name().to_string())
                        .unwrap_or_else(|_| "init".into());
                    (n.clone(), kind)
                })
                .collect();
            let changed = crate::playpen::registry::set_enabled(&session.playpen, &typed, enable)?;
            render::show(
                &commands::Enablement {
                    names: &names,
                    changed: &changed,
                    enable,
                },
                cli.json,
            );
            Ok(exit::OK)
        }
        Command::Up => act(cli, &[], ops::desired::up),
        Command::Down => act(cli, &[], ops::desired::down),
        Command::Wait { services, timeout } => wait_directly(cli, services, *timeout),
        Command::Logs {
            services,
            follow,
            lines,
        } => {
            let mut session = open(cli)?;
            let style = Style::for_stdout();
            let name = |n: &str| style.service_name(n);
            ops::logs(
                &mut session,
                services,
                *lines,
                *follow,
                &name,
                &mut render::sink::Stdout,
            )?;
            Ok(exit::OK)
        }
        _ => Ok(exit::USAGE),
    }
}

/// wait without a supervisor: the library pings until every service is ready or the
/// time is up.
fn wait_directly(cli: &Cli, services: &[String], timeout: f64) -> Result<i32> {
    let mut session = open(cli)?;
    let report = ops::desired::wait(&mut session, services, timeout)?;
    render::show(
        &status::Readiness {
            ready: &report.ready,
            not_ready: &report.not_ready,
        },
        cli.json,
    );
    Ok(exit::failed_if(!report.not_ready.is_empty()))
}
