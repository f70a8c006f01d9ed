//! The service_start, service_stop and service_restart scripts of a service that
//! starts itself: run on record, with the launch mark, and waited for.

use super::*;

/// Run a service script (service_start, service_stop, service_restart or the
/// package's restart script) to completion with NAME VERSION; a failure quotes its
/// output. With `launch`, what it starts carries that launch mark (see `census`).
pub(super) fn run_service_script(
    playpen: &Playpen,
    prepared: &Prepared,
    setting: &str,
    path: &Path,
    launch: Option<&str>,
) -> Result<()> {
    let output = playpen.output_file(prepared.name());
    let marked_env;
    let env = match launch {
        Some(launch) => {
            let mut env = prepared.env.clone();
            env.insert(census::LAUNCH.to_string(), launch.into());
            marked_env = env;
            &marked_env
        }
        None => &prepared.env,
    };
    let finished = hooks::run(
        playpen,
        &prepared.config.id,
        &Runnable::Script(path.to_path_buf()),
        env,
        Some(&output),
        None,
        prepared.settings.user.as_ref(),
    )?;
    if !finished.success {
        return Err(Error::runtime(format!(
            "{setting} {} {}:\n{}",
            path.display(),
            finished.status,
            crate::text::indent(
                &crate::text::last_lines(finished.output.trim_end(), 10).join("\n")
            )
        ))
        .with_service(prepared.name())
        .with_hint(format!("see {} for its full output", output.display())));
    }
    Ok(())
}

/// service_start: the script starts the service and (unless service_no_pidfile) writes
/// the pidfile. Like a program, it is on record (a start record with its launch mark)
/// before it runs; when it fails, what it started is stopped.
pub(super) fn start_by_script(
    playpen: &Playpen,
    prepared: &Prepared,
    start: &str,
) -> Result<Option<i32>> {
    let settings = &prepared.settings;
    let name = prepared.name();
    let path = script(playpen, prepared, "service_start", start)?;
    let launch = census::new_launch();
    let mut record = StartRecord {
        program: Some(path.display().to_string()),
        launch: Some(launch.clone()),
        starting: Some(Starter::me()),
        ..base_record(playpen, prepared)
    };
    pidfile::write_record(playpen, name, &record).map_err(|e| e.with_service(name))?;
    let roll_back = || {
        tracking::stop_launch(playpen, &launch, settings.halt_timeout);
        let _ = pidfile::clear(playpen, name);
    };
    if let Err(e) = run_service_script(playpen, prepared, "service_start", &path, Some(&launch)) {
        roll_back();
        return Err(e);
    }
    record.starting = None;
    if settings.pidfile == PidfileMode::None {
        pidfile::write_record(playpen, name, &record)?;
        return Ok(None);
    }
    let pidfile = playpen.pidfile(name);
    let pid = match wait_for_pidfile(&pidfile, None, settings.pidfile_timeout) {
        Ok(pid) => pid,
        Err(why) => {
            roll_back();
            let error = match why {
                PidfileWait::Interrupted(sig) => Error::runtime(format!(
                    "servicectl received {} while waiting for service_start {} to write {}; what it started was stopped",
                    sig.as_str(),
                    path.display(),
                    pidfile.display()
                ))
                .with_hint("start it again when you are ready"),
                _ => Error::runtime(format!(
                    "service_start {} finished but {} holds no live PID",
                    path.display(),
                    pidfile.display()
                ))
                .with_hint("the service_start script must write the service's PID to $SERVICE_PIDFILE (or set service_no_pidfile=1)"),
            };
            return Err(error.with_service(name));
        }
    };
    record.pid = Some(pid);
    record.start_ticks = proc::start_ticks(pid);
    pidfile::write_record(playpen, name, &record)?;
    Ok(Some(pid))
}
