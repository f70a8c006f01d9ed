//! What can be checked of a service without starting a process: its program and
//! scripts exist and can run, its watch patterns match, and where its scripts are.

use super::*;

/// Checks that need no process: the program and scripts exist, a service without a
/// pidfile has a ping. Cron and inetd services are valid here; only a direct start
/// refuses them ([`needs_supervisor`]).
pub fn validate(playpen: &Playpen, prepared: &Prepared) -> Result<()> {
    let settings = &prepared.settings;
    let name = prepared.name();
    let cwd = &playpen.root;
    let mut program = None;
    match &settings.scripts.start {
        None if settings.program.is_some() => {
            let path = prepared.program(playpen)?;
            executable::check_file(prepared, "service_program", &path, cwd, Via::Spawn)?;
            program = Some(path);
        }
        // No program and no start script: the settings reported it.
        None => {}
        Some(start) => {
            let path = script(playpen, prepared, "service_start", start)?;
            executable::check_file(prepared, "service_start", &path, cwd, Via::Execvp)?;
        }
    }
    for (setting, value) in [
        ("service_stop", &settings.scripts.stop),
        ("service_restart", &settings.scripts.restart),
        ("service_ping", &settings.scripts.ping),
    ] {
        if let Some(value) = value {
            let path = script(playpen, prepared, setting, value)?;
            executable::check_file(prepared, setting, &path, cwd, Via::Execvp)?;
        }
    }
    executable::check_environment(prepared, program.as_deref())?;
    check_watch(playpen, prepared)?;
    if settings.pidfile == PidfileMode::None && ping_runnable(playpen, prepared)?.is_none() {
        return Err(Error::config(format!(
            "service_no_pidfile=1 but there is no ping{}",
            prepared.config.origin_note("service_no_pidfile")
        ))
        .with_service(name)
        .with_hint("a service without a pidfile must provide service_ping (or a .ping script) so its state can be checked"));
    }
    Ok(())
}

/// Each service_watch pattern matches a file now: one that matches nothing is most
/// likely a typo, and would restart nothing.
pub(super) fn check_watch(playpen: &Playpen, prepared: &Prepared) -> Result<()> {
    for pattern in &prepared.settings.watch.patterns {
        let found = crate::service::watch::Patterns::new(std::slice::from_ref(pattern))
            .map(|p| p.first_match(&playpen.root));
        if let Ok(None) = found {
            return Err(Error::config(format!(
                "service_watch pattern `{pattern}`{} matches no file in {}",
                prepared.config.origin_note("service_watch"),
                playpen.root.display()
            ))
            .with_service(prepared.name())
            .with_hint("patterns are relative to the playpen root, and `*` stays in one folder (`src/**/*.py` crosses folders); fix the pattern or create the file"));
        }
    }
    Ok(())
}

/// Cron and inetd services are run by the supervisor: a direct `start` or
/// `restart` (no supervisor running) refuses them. `check` accepts them (they are valid
/// configuration); the supervisor arms them itself and never calls [`start`] for them.
pub fn needs_supervisor(prepared: &Prepared) -> Result<()> {
    match &prepared.settings.service_type {
        ServiceType::Init | ServiceType::Oneshot => Ok(()),
        kind => Err(Error::config(format!(
            "service_type={} needs the supervisor{}: cron and inetd services are run by `servicectl supervise`",
            kind.name(),
            prepared.config.origin_note("service_type")
        ))
        .with_service(prepared.name())
        .with_hint("start the supervisor (`servicectl supervise --daemon`), then run this again")),
    }
}

/// A script named by a setting (service_start, service_stop, …), resolved like
/// service_program.
pub(super) fn script(
    playpen: &Playpen,
    prepared: &Prepared,
    setting: &str,
    value: &str,
) -> Result<PathBuf> {
    program::resolve_setting(playpen, &prepared.config, setting, value, &prepared.env)
}

/// The ping for a service: the project's `services/$NAME/ping`, else service_ping,
/// else the package's `ping` script. None means: fall back to the status check.
pub fn ping_runnable(playpen: &Playpen, prepared: &Prepared) -> Result<Option<Runnable>> {
    let id = &prepared.config.id;
    for dir in catalog::project_dirs(playpen, id).into_iter().rev() {
        let path = dir.join("ping");
        if path.is_file() {
            return Ok(Some(Runnable::Script(path)));
        }
    }
    if let Some(ping) = &prepared.settings.scripts.ping {
        return Ok(Some(Runnable::Script(script(
            playpen,
            prepared,
            "service_ping",
            ping,
        )?)));
    }
    Ok(catalog::package_script(playpen, id, "ping").map(Runnable::Script))
}

/// The restart script: service_restart, else the package's `.restart` script (as a
/// package's `.pre-start` is the default of service_pre_start).
pub(super) fn restart_script(playpen: &Playpen, prepared: &Prepared) -> Result<Option<PathBuf>> {
    match &prepared.settings.scripts.restart {
        Some(value) => script(playpen, prepared, "service_restart", value).map(Some),
        None if prepared.config.is_stand_in() => Ok(None),
        None => Ok(catalog::package_script(
            playpen,
            &prepared.config.id,
            "restart",
        )),
    }
}
