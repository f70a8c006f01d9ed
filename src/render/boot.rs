//! The report of `boot enable|disable|status` (§13.2).

use super::{Report, Shown, Style, sink};
use crate::ops::boot::Boot;
use serde_json::json;

/// Which `boot` command made the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootAction {
    Enable,
    Disable,
    Status,
}

/// `boot`: what is installed (or was removed), and whether a supervisor of the
/// playpen answers now.
pub struct BootShown<'a> {
    pub boot: &'a Boot,
    pub action: BootAction,
    pub supervisor: bool,
}

impl Report for BootShown<'_> {
    fn json(&self) -> String {
        let b = self.boot;
        let mut doc = serde_json::to_value(b).expect("serialisable");
        doc["supervisor_running"] = json!(self.supervisor);
        sink::json_text(&doc)
    }

    fn text(&self, style: Style, shown: &mut Shown) {
        let b = self.boot;
        let mut out = String::new();
        match self.action {
            BootAction::Enable | BootAction::Status => {
                let done = match (self.action, b.changed) {
                    (BootAction::Enable, true) => "installed",
                    (BootAction::Enable, false) => "already installed",
                    _ => "installed",
                };
                if let Some(u) = &b.unit {
                    out.push_str(&format!(
                        "systemd: {} {} ({} unit{}{})\n",
                        style.green(done),
                        u.file.display(),
                        u.scope,
                        if u.enabled {
                            ", enabled"
                        } else {
                            ", not enabled"
                        },
                        u.active
                            .as_deref()
                            .map(|a| format!(", {a}"))
                            .unwrap_or_default()
                    ));
                } else if self.action == BootAction::Status {
                    out.push_str("systemd: no unit\n");
                }
                match &b.crontab {
                    Some(line) => out.push_str(&format!("crontab: {} {line}\n", style.green(done))),
                    None if self.action == BootAction::Status => out.push_str("crontab: no line\n"),
                    None => {}
                }
                if self.action == BootAction::Status && b.unit.is_none() && b.crontab.is_none() {
                    out.push_str(&format!(
                        "nothing starts the playpen {} at boot: `servicectl boot enable` does\n",
                        b.playpen.display()
                    ));
                }
            }
            BootAction::Disable => {
                if let Some(u) = &b.unit {
                    out.push_str(&format!("systemd: removed {}\n", u.file.display()));
                }
                if let Some(line) = &b.crontab {
                    out.push_str(&format!("crontab: removed {line}\n"));
                }
                if !b.changed {
                    out.push_str(&format!(
                        "nothing was installed to start the playpen {} at boot\n",
                        b.playpen.display()
                    ));
                }
            }
        }
        out.push_str(&format!(
            "supervisor: {}\n",
            if self.supervisor {
                "running"
            } else {
                "not running"
            }
        ));
        shown.out(&out);
        for hint in &b.hints {
            shown.note(hint);
        }
    }
}
