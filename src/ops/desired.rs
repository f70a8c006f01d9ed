//! The desired state without a supervisor: `up` brings the role's services to what
//! `enable`/`disable` say, `down` stops them all, `wait` waits until they are ready.
//! (With a supervisor running, the CLI sends these to it instead.)

use crate::config::session::Session;
use crate::error::Result;
use crate::ops::{self, Progress, Results};
use crate::service::outcome::Outcome;
use std::time::{Duration, Instant};

/// up: start the enabled services of the role, stop the disabled ones (safe to repeat).
pub fn up(
    session: &mut Session,
    _: &[String],
    progress: Progress,
) -> Result<(Results<Outcome>, Vec<String>)> {
    let disabled = crate::playpen::registry::disabled(&session.playpen)?;
    let role = session.role_services()?;
    let (mut results, mut warnings) = ops::start(session, &[], progress)?;
    let to_stop: Vec<String> = role.into_iter().filter(|s| disabled.contains(s)).collect();
    if !to_stop.is_empty() {
        let (stopped, more) = ops::stop(session, &to_stop, progress)?;
        results.extend(stopped);
        warnings.extend(more);
    }
    Ok((results, warnings))
}

/// down: stop every service of the role, enabled or not, dependants first.
pub fn down(
    session: &mut Session,
    _: &[String],
    progress: Progress,
) -> Result<(Results<Outcome>, Vec<String>)> {
    let role = session.role_services()?;
    ops::stop(session, &role, progress)
}

/// What `wait` found: the services that are ready, and those that are not with why.
#[derive(Debug, Clone)]
pub struct WaitReport {
    pub ready: Vec<String>,
    pub not_ready: Vec<(String, String)>,
}

/// wait: ping until every service passes or `timeout_secs` is up. Nothing notifies
/// readiness without the supervisor, so this asks again at growing intervals (10 ms
/// doubling to 0.5 s).
pub fn wait(session: &mut Session, services: &[String], timeout_secs: f64) -> Result<WaitReport> {
    let deadline = Instant::now() + Duration::from_secs_f64(timeout_secs.clamp(0.0, 1e7));
    let mut pause = Duration::from_millis(10);
    loop {
        let (results, _) = ops::ping(session, services)?;
        if let Some((_, Err(e))) = results.iter().find(|(_, r)| r.is_err()) {
            return Err(e.clone());
        }
        let (ready, not): (Vec<_>, Vec<_>) = results
            .iter()
            .partition(|(_, r)| r.as_ref().is_ok_and(|p| p.ok));
        if not.is_empty() || Instant::now() >= deadline {
            return Ok(WaitReport {
                ready: ready.into_iter().map(|(n, _)| n.clone()).collect(),
                not_ready: not
                    .into_iter()
                    .map(|(n, r)| {
                        let detail = r.as_ref().map(|p| p.detail.clone()).unwrap_or_default();
                        (n.clone(), detail)
                    })
                    .collect(),
            });
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}
