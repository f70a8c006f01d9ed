//! The files of a service that runs as another user (service_user, §13.1): what it
//! must write itself is given to it before it starts; what servicectl keeps (var/run
//! itself, start records, var/servicectl) stays servicectl's.

use crate::config::settings::PidfileMode;
use crate::error::Result;
use crate::playpen::Playpen;
use crate::service::prepare::Prepared;
use std::path::PathBuf;

/// Give `files` (its rendered configs) to the service's user, if it has one.
pub fn give(prepared: &Prepared, files: &[PathBuf]) -> Result<()> {
    if let Some(user) = &prepared.settings.user {
        for file in files {
            user.give(file)
                .map_err(|e| e.with_service(prepared.name()))?;
        }
    }
    Ok(())
}

/// With service_user, the files the service writes itself by name are the user's
/// before it starts: its output file, and its pidfile when the program or its start
/// script writes it (made empty here: servicectl waits for a PID in it). var/run
/// itself, the start record and the rest of var/servicectl stay servicectl's.
pub fn give_own_files(playpen: &Playpen, prepared: &Prepared) -> Result<()> {
    let Some(user) = &prepared.settings.user else {
        return Ok(());
    };
    let name = prepared.name();
    playpen.ensure_var()?;
    let output = playpen.output_file(name);
    drop(crate::process::output::open_output(&output).map_err(|e| e.with_service(name))?);
    user.give(&output).map_err(|e| e.with_service(name))?;
    let writes_pidfile = prepared.settings.pidfile == PidfileMode::Program
        || (prepared.settings.scripts.start.is_some()
            && prepared.settings.pidfile != PidfileMode::None);
    if writes_pidfile {
        let pidfile = playpen.pidfile(name);
        crate::playpen::fsutil::write_runtime(&pidfile, b"", Some(0o644))
            .and_then(|()| user.give(&pidfile))
            .map_err(|e| e.with_service(name))?;
    }
    Ok(())
}
